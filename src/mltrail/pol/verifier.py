"""The verifier: judge a proof bundle by its structure and by partial replay.

Owns :func:`verify_bundle` (one verdict and a :class:`~mltrail.pol.report.Report`, every
check and replay by :mod:`mltrail.pol.loopverify`), :func:`plan` and
:func:`relative_error`. Hyperparameters come only from the manifest header; checkpoint
files supply tensors and nothing else, checked for names and shapes before they are
loaded. Which segments
are replayed is :mod:`mltrail.pol.challenge`'s rule, from a seed the prover cannot steer
(a ledger block after publication, see :mod:`mltrail.pol.onchain`, or the verifier's
own randomness). It reads anchors from a ledger when given one but never writes to it.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltrail.pol import challenge as challenge_mod
from mltrail.pol import environment
from mltrail.pol.bundle import Manifest, read_manifest
from mltrail.pol.calibration import DEFAULT_OPTIM_THRESHOLD, DEFAULT_THRESHOLD
from mltrail.pol.challenge import DEFAULT_FORGED, DEFAULT_MISS_RATE, Why
from mltrail.pol.report import Challenge, Report, Segment
from mltrail.pol.tolerance import Tolerance, decide

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

State = dict[str, torch.Tensor]


def _flat(state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    parts = [v.detach().reshape(-1).to("cpu", torch.float64) for k, v in sorted(state.items())
             if v.is_floating_point()]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def relative_error(replayed: Mapping[str, torch.Tensor], start: Mapping[str, torch.Tensor],
                   claimed: Mapping[str, torch.Tensor]) -> tuple[float, float | None]:
    """``(‖W′−W_next‖ / ‖W_next−W‖, cos(W′−W, W_next−W))`` over floating tensors.

    A claimed update of size zero counts as an infinite error: a step with a positive
    learning rate always moves the weights.
    """
    if set(replayed) != set(claimed) or any(
            replayed[k].shape != claimed[k].shape for k in claimed):
        return math.inf, None
    w, wn, wr = _flat(start), _flat(claimed), _flat(replayed)
    upd, rep = wn - w, wr - w
    den = float(upd.norm())
    num = float((wr - wn).norm())
    if not math.isfinite(num) or den == 0.0:
        return math.inf, None
    cos = float(upd @ rep) / (den * float(rep.norm())) if float(rep.norm()) > 0 else 0.0
    return num / den, cos


def verify_bundle(bundle: str | Path, data: Any, *, q: int = 1,
                  r: int | None = None, miss_rate: float = DEFAULT_MISS_RATE,
                  forged: float = DEFAULT_FORGED, threshold: float | None = None,
                  seed: int | None = None, challenge: Challenge | None = None,
                  prior_rejections: Sequence[str] = (), expected_model: str | None = None,
                  ledger: Ledger | None = None, device: str = "cpu",
                  progress: Callable[[int], None] | None = None,
                  code_paths: Sequence[str] = (), timeout: float | None = None,
                  calibration: Sequence[Mapping[str, Any]] = (),
                  publications: Sequence[str] = (),
                  on_segment: Callable[[Segment], None] | None = None,
                  trusted_code: bool = False,
                  on_plan: Callable[[int], None] | None = None) -> Report:
    """Verify a proof bundle against the verifier's copy of the training data.

    ``r`` random segments, or (``r=None``) as many as make the chance of missing a proof
    with a fraction ``forged`` of fake segments at most ``miss_rate`` (halved for each of
    ``prior_rejections``, earlier rejected publications of the same weights). The random
    seed is ``seed``, else ``challenge.seed``, else unpredictable. Checks run in order and
    stop at the first failure. Returns a report whose verdict is ``accepted`` only if
    every check passes; raises :class:`~mltrail.errors.InputError` only when the bundle
    cannot be read at all.

    Every proof is a loop spec (``pol train``'s reference task included) and is checked
    and replayed by :mod:`mltrail.pol.loopverify`; a manifest in the reference-engine
    format of mltrail 0.1.0 is refused when read (:class:`~mltrail.errors.InputError`).
    ``data`` is a data file or folder, a mapping of named tensors, ``(x, y)`` (named
    ``x`` and ``y``) or a tensor dataset; ``code_paths`` are the folders where the
    prover's pinned code is found, and the replay runs it in a separate process,
    ``timeout`` seconds at most — only for a proof recorded in trusted-code mode and only
    with ``trusted_code=True``; an exported proof runs none of the prover's Python.

    The replay runs with the thread count and deterministic mode the proof declares
    (``header.env``); the thresholds are :func:`mltrail.pol.tolerance.decide`'s (exact in
    the declared environment, else ``calibration`` rows for the pair, else the
    verifier's ``threshold``), and a pair with none refuses with
    :class:`~mltrail.errors.InputError`. ``publications`` are the other publications of
    the same weights (each halves the miss rate, like ``prior_rejections``);
    ``on_segment`` sees each replayed segment as it finishes, ``on_plan`` how many will be
    replayed, once the challenge has drawn them.
    """
    t0 = time.perf_counter()
    folder = Path(bundle)
    man = read_manifest(folder)
    environment.check_device(device)
    declared = man.header.env
    # the replay processes can run the declared (lower) CPU capability's kernels
    emulated = environment.emulation(declared, device)
    with environment.declared(declared, device, emulated) as here:
        tol = decide(declared, here, override=threshold, calibration=calibration)
        return _verify(folder, man, data, tol, here, q=q, r=r, miss_rate=miss_rate,
                       forged=forged, seed=seed, challenge=challenge,
                       prior_rejections=prior_rejections, publications=publications,
                       expected_model=expected_model, ledger=ledger, device=device,
                       progress=progress, code_paths=code_paths, timeout=timeout,
                       on_segment=on_segment, trusted_code=trusted_code, t0=t0,
                       on_plan=on_plan)


def _verify(folder: Path, man: Manifest, data: Any, tol: Tolerance,
            here: environment.Environment, *, q: int, r: int | None, miss_rate: float,
            forged: float, seed: int | None, challenge: Challenge | None,
            prior_rejections: Sequence[str], publications: Sequence[str],
            expected_model: str | None, ledger: Ledger | None, device: str,
            progress: Callable[[int], None] | None, code_paths: Sequence[str],
            timeout: float | None, on_segment: Callable[[Segment], None] | None,
            trusted_code: bool, t0: float,
            on_plan: Callable[[int], None] | None = None) -> Report:
    thr, othr = tol.threshold, tol.optim_threshold
    if seed is not None:
        challenge = Challenge(seed=int(seed), source="verifier")
    elif challenge is None:
        challenge = Challenge(seed=secrets.randbits(63), source="verifier")
    rep = Report(verdict="rejected", bundle=str(folder), header_digest=man.header_digest,
                 chain_head=man.chain_head, final_model=man.final_model, threshold=thr,
                 optim_threshold=othr, q=q, r=r if r is not None else 0,
                 verifier_seed=challenge.seed, challenge=challenge,
                 prior_rejections=list(prior_rejections), publications=list(publications),
                 torch_threads=torch.get_num_threads(), device=device,
                 tolerance=tol.as_dict(), replay_env=here.model_dump(),
                 declared_env=man.header.env.model_dump() if man.header.env else None)
    from mltrail.pol.loopverify import verify_loop

    verify_loop(folder, man, data, rep, q=q, r=r, miss_rate=miss_rate, forged=forged,
                threshold=thr, code_paths=code_paths, ledger=ledger,
                expected_model=expected_model, device=device, timeout=timeout,
                progress=progress, trusted_code=trusted_code, on_segment=on_segment,
                on_plan=on_plan)
    rep.verdict = "accepted" if rep.checks and all(c.ok for c in rep.checks) \
        and rep.checks[-1].name == "replay" else "rejected"
    rep.total_seconds = time.perf_counter() - t0
    return rep


def optim_threshold(threshold: float) -> float:
    """The optimizer-state threshold that goes with a weights threshold (same ratio as
    the calibrated defaults: optimizer state is noisier, see the calibration doc)."""
    return threshold * DEFAULT_OPTIM_THRESHOLD / DEFAULT_THRESHOLD


def plan(man: Manifest, states: list[tuple[State, State]], q: int, r: int | None,
         miss_rate: float, forged: float, seed: int, prior: int = 0
         ) -> tuple[list[tuple[int, Why]], list[float], dict[str, float | int]]:
    """The segments to replay, the score of each segment, and how R was chosen."""
    spec = man.header.training
    cks = man.checkpoints()
    epochs = [spec.epoch_of(cks[i].step) for i in range(len(cks) - 1)]
    score = challenge_mod.scores(challenge_mod.state_changes(states))
    pool = challenge_mod.pool_size(epochs, score, q)
    target = miss_rate / 2 ** prior
    rule: dict[str, float | int] = {"segments": len(score), "pool": pool}
    if r is None:
        r = challenge_mod.random_count(pool, len(score), target, forged)
        rule.update(miss_rate=miss_rate, effective_miss_rate=target, forged=forged,
                    forged_segments=challenge_mod.forged_count(len(score), forged))
    rule.update(r=r, predicted_miss=challenge_mod.miss_probability(
        pool, challenge_mod.forged_count(len(score), forged), r))
    return challenge_mod.choose_segments(epochs, score, q, r, seed), score, rule
