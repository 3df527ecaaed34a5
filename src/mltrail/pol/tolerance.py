"""Which replay error a verifier tolerates, and why: one decision for every proof.

Owns :func:`decide`. The one verifier (:mod:`mltrail.pol.verifier`, which hands the
decided threshold to :mod:`mltrail.pol.loopverify`) takes its thresholds from it, for
every proof, and the report records the basis and the reason:

* **same environment** — the proof declares an environment (``header.env``) whose
  platform (torch, device, dtype, CPU capability, BLAS) is the verifier's; the verifier
  replays with the declared thread count and deterministic mode
  (:func:`mltrail.pol.environment.declared`), so an honest segment reproduces bit for
  bit and the tolerance is :data:`SAME_ENVIRONMENT`, the measured noise floor (0: any
  difference at all is a rejection; ``docs/pol-calibration.md``);
* **calibrated** — another platform: the thresholds ``mltrail pol calibrate`` measured
  for exactly that (declared, replay) pair, from a calibration file the verifier gives;
* **given** — the verifier's own ``--threshold`` (recorded as such).

With none of these (another platform and no calibration for the pair, or a proof that
declares no environment: anyone can strip the field, so it must not buy the old 0.1 / 0.3
bounds, within which drift towards a stolen model passes) it refuses with
:class:`~mltrail.errors.InputError` — the verifier's missing input, never a verdict, and
never a silent round-number default. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mltrail.errors import InputError
from mltrail.pol.environment import Environment, describe, platform_key

Basis = Literal["same-environment", "calibrated", "given"]

SAME_ENVIRONMENT = 0.0
"""Tolerance when replaying in the declared environment: honest replays measured bitwise
equal (pol-calibration.md: every same-environment replay measured, error exactly 0)."""
OPTIM_RATIO = 3.0  # optimizer state is noisier than the weights (calibration doc)


@dataclass(frozen=True)
class Tolerance:
    """The thresholds a replay is judged by, and the reason for them."""

    threshold: float
    optim_threshold: float
    basis: Basis
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "optim_threshold": self.optim_threshold,
                "basis": self.basis, "why": self.why}


def pair_entry(recorded: Environment, replayed: Environment, threshold: float,
               optim_threshold: float, replays: int) -> dict[str, Any]:
    """One row of a calibration file: the thresholds measured for a pair of platforms."""
    return {"recorded": platform_key(recorded), "replayed": platform_key(replayed),
            "threshold": threshold, "optim_threshold": optim_threshold, "replays": replays}


def decide(declared: Environment | None, replay: Environment, *,
           override: float | None = None,
           calibration: Sequence[Mapping[str, Any]] = ()) -> Tolerance:
    """The tolerance for replaying a proof trained in ``declared`` on ``replay``.

    ``override`` is the verifier's ``--threshold``; ``calibration`` the ``pairs`` of
    calibration files (:func:`mltrail.pol.calibration.calibrate`)."""
    if override is not None:
        if not 0.0 <= override < 1.0 or override != override:
            raise InputError("--threshold must be in [0, 1)")
        return Tolerance(override, override * OPTIM_RATIO, "given",
                         f"--threshold {override:g} given by the verifier")
    if declared is None:  # stripping it would otherwise buy a loose bound: refused
        raise InputError("the proof declares no environment, so no measured bound holds for "
                         "it (the old 0.1 default let drift through): give --threshold T, a "
                         "bound you choose and the report records, or have it re-recorded")
    if platform_key(declared) == platform_key(replay):
        return Tolerance(SAME_ENVIRONMENT, SAME_ENVIRONMENT, "same-environment",
                         f"replayed in the declared environment ({describe(declared)}): "
                         "an honest replay is bitwise equal, any difference rejects")
    want = (platform_key(declared), platform_key(replay))
    for row in calibration:
        if (row.get("recorded"), row.get("replayed")) == want:
            try:
                w, o = float(row["threshold"]), float(row["optim_threshold"])
            except (KeyError, TypeError, ValueError):
                raise InputError("a calibration row has no numeric thresholds") from None
            if not (0.0 <= w < 1.0 and 0.0 <= o < 1.0):
                raise InputError("a calibration row's thresholds are not in [0, 1)")
            return Tolerance(w, o, "calibrated",
                             f"trained in {describe(declared)}, replayed in "
                             f"{describe(replay)}: thresholds measured by pol calibrate for "
                             f"this pair over {row.get('replays', '?')} replays")
    raise InputError(f"the proof was trained in {describe(declared)}; this verifier replays "
                     f"in {describe(replay)} and has no calibration for that pair: run "
                     "'mltrail pol calibrate' for it and pass --calibration FILE, or "
                     "verify on the declared platform, or give --threshold")
