"""The verifier: judge a proof bundle by its structure and by partial replay.

Owns :func:`verify_bundle` (one verdict and a :class:`~mltrail.pol.report.Report`) and
:func:`verify_update` (a coordinator's spot check of an untrusted worker's update).
Hyperparameters come only from the manifest header; checkpoint files supply tensors
and nothing else. The verifier chooses its random segments with its own unpredictable
seed. It reads anchors from a ledger when given one but never writes to it (that is
:mod:`mltrail.pol.onchain`).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from mltrail.errors import MltrailError, VerificationError
from mltrail.pol import checks
from mltrail.pol.bundle import Manifest, load_tensors, read_manifest
from mltrail.pol.calibration import DEFAULT_OPTIM_THRESHOLD, DEFAULT_THRESHOLD
from mltrail.pol.replay import TrainingSpec, load_optimizer_tensors, optimizer_tensors, run_steps
from mltrail.pol.report import Check, Report, Segment
from mltrail.reference import build_model

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


def replay_segment(spec: TrainingSpec, model_state: State, optim_state: State,
                   x: torch.Tensor, y: torch.Tensor, start: int, end: int,
                   device: str = "cpu") -> tuple[State, State]:
    """Run steps ``start..end-1`` from the given states; returns the new states (CPU)."""
    model = build_model(spec.arch).to(device)
    model.load_state_dict(model_state)
    opt = spec.make_optimizer(model)
    load_optimizer_tensors(model, opt, optim_state)
    run_steps(spec, model, opt, x, y, start, end)
    return ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            optimizer_tensors(model, opt))


def verify_bundle(bundle: str | Path, data: tuple[torch.Tensor, torch.Tensor], *, q: int = 1,
                  r: int = 1, threshold: float | None = None, seed: int | None = None,
                  expected_model: str | None = None, ledger: Ledger | None = None,
                  device: str = "cpu", progress: Callable[[int], None] | None = None) -> Report:
    """Verify a proof bundle against the verifier's copy of the training data.

    Returns a report whose verdict is ``accepted`` only if every check passes. Raises
    :class:`~mltrail.errors.InputError` only when the bundle cannot be read at all.
    """
    t0 = time.perf_counter()
    folder = Path(bundle)
    man = read_manifest(folder)
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    othr = optim_threshold(thr)
    vseed = secrets.randbits(63) if seed is None else int(seed)
    rep = Report(verdict="rejected", bundle=str(folder), header_digest=man.header_digest,
                 chain_head=man.chain_head, final_model=man.final_model, threshold=thr,
                 optim_threshold=othr,
                 q=q, r=r, verifier_seed=vseed, torch_threads=torch.get_num_threads(),
                 device=device)
    x, y = data

    def add(c: Check) -> bool:
        rep.checks.append(c)
        if not c.ok:
            rep.reasons.append(f"{c.name}: {c.detail}")
        return c.ok

    structure_ok = add(checks.chain(man))
    structure_ok &= add(checks.schedule(man))
    add(checks.hyperparameters(man.header.training, man.header.k))
    anchor_check, rep.anchors = checks.anchors(man, ledger)
    add(anchor_check)
    data_ok = add(checks.data(man, x, y))
    rep.data_digest = man.header.data.digest
    add(checks.batch_order(folder, man))
    states: list[tuple[State, State]] = []
    if structure_ok:
        try:
            states = [(load_tensors(folder, c.files["model"], c.digests["model"]),
                       load_tensors(folder, c.files["optim"], c.digests["optim"]))
                      for c in man.checkpoints()]
        except VerificationError as exc:
            add(Check(name="files", ok=False, detail=exc.message))
            states = []
    if states:
        add(checks.init(man, states[0][0], states[0][1]))
        add(checks.final(man, expected_model))
        if data_ok:
            t1 = time.perf_counter()
            _replay(man, states, x, y, rep, q, r, thr, vseed, device, progress)
            rep.replay_seconds = time.perf_counter() - t1
            bad = [s for s in rep.segments if not s.ok]
            add(Check(name="replay", ok=not bad and bool(rep.segments),
                      detail=(f"{len(rep.segments)} segments, max error {rep.max_error:.3g} "
                              f"<= {thr:.3g} (optimizer state <= {othr:.3g})") if not bad else
                      f"{len(bad)} of {len(rep.segments)} segments do not reproduce: " + ", ".join(
                          f"#{s.index} (steps {s.start_step}-{s.end_step}) error {s.error:.3g}"
                          + (f", optimizer state error {s.optim_error:.3g}"
                             if s.error <= thr and s.optim_error is not None else "")
                          for s in bad[:3]) + (", …" if len(bad) > 3 else "")))
        else:
            add(Check(name="replay", ok=False, detail="skipped: no committed data to replay on"))
    elif structure_ok:
        add(Check(name="replay", ok=False, detail="skipped: checkpoints unreadable"))
    else:
        add(Check(name="replay", ok=False, detail="skipped: the bundle's structure is broken"))
    rep.verdict = "accepted" if all(c.ok for c in rep.checks) else "rejected"
    rep.total_seconds = time.perf_counter() - t0
    return rep


def optim_threshold(threshold: float) -> float:
    """The optimizer-state threshold that goes with a weights threshold (same ratio as
    the calibrated defaults: optimizer state is noisier, see the calibration doc)."""
    return threshold * DEFAULT_OPTIM_THRESHOLD / DEFAULT_THRESHOLD


def choose_segments(man: Manifest, states: list[tuple[State, State]], q: int, r: int,
                    vseed: int) -> list[tuple[int, Literal["top-q", "random"], float]]:
    """Top-``q`` segments per epoch by update size, plus ``r`` others at random."""
    spec = man.header.training
    cks = man.checkpoints()
    norms = [float((_flat(states[i + 1][0]) - _flat(states[i][0])).norm())
             for i in range(len(cks) - 1)]
    by_epoch: dict[int, list[int]] = {}
    for i in range(len(cks) - 1):
        by_epoch.setdefault(spec.epoch_of(cks[i].step), []).append(i)
    chosen: dict[int, Literal["top-q", "random"]] = {}
    for idxs in by_epoch.values():
        for i in sorted(idxs, key=lambda j: -norms[j])[:q]:
            chosen[i] = "top-q"
    rest = [i for i in range(len(cks) - 1) if i not in chosen]
    import random

    for i in random.Random(vseed).sample(rest, min(r, len(rest))):
        chosen[i] = "random"
    return [(i, chosen[i], norms[i]) for i in sorted(chosen)]


def _replay(man: Manifest, states: list[tuple[State, State]], x: torch.Tensor,
            y: torch.Tensor, rep: Report, q: int, r: int, thr: float, vseed: int, device: str,
            progress: Callable[[int], None] | None) -> None:
    spec = man.header.training
    cks = man.checkpoints()
    for i, why, norm in choose_segments(man, states, q, r, vseed):
        (m0, o0), (m1, o1) = states[i], states[i + 1]
        try:
            mr, orr = replay_segment(spec, m0, o0, x, y, cks[i].step, cks[i + 1].step, device)
        except (RuntimeError, MltrailError, KeyError, ValueError) as exc:
            rep.reasons.append(f"segment #{i} cannot be replayed: {exc}".splitlines()[0])
            err, cos, oerr = math.inf, None, None
        else:
            err, cos = relative_error(mr, m0, m1)
            o0z = {n: o0.get(n, torch.zeros_like(t)) for n, t in o1.items()}
            oerr = relative_error(orr, o0z, o1)[0] if o1 or orr else None
        ok = err <= thr and (oerr is None or oerr <= optim_threshold(thr))
        rep.segments.append(Segment(index=i, epoch=spec.epoch_of(cks[i].step),
                                    start_step=cks[i].step, end_step=cks[i + 1].step,
                                    chosen=why, update_norm=norm, error=err, optim_error=oerr,
                                    cosine=cos, ok=ok))
        if progress is not None:
            progress(1)


def verify_update(spec: TrainingSpec, start_step: int, end_step: int, model_state: State,
                  optim_state: State, reported_model: State,
                  data: tuple[torch.Tensor, torch.Tensor], *, threshold: float | None = None,
                  device: str = "cpu") -> Segment:
    """Spot-check an untrusted worker's update by replaying its segment.

    The coordinator handed the worker ``model_state``/``optim_state`` at ``start_step``
    and got ``reported_model`` back for ``end_step``. Returns the replayed
    :class:`Segment`; ``ok`` is False for a wrong or random update.
    """
    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    mr, _ = replay_segment(spec, model_state, optim_state, data[0], data[1], start_step,
                           end_step, device)
    err, cos = relative_error(mr, model_state, reported_model)
    update = float((_flat(reported_model) - _flat(model_state)).norm())
    return Segment(index=0, epoch=spec.epoch_of(start_step), start_step=start_step,
                   end_step=end_step, chosen="random", update_norm=update, error=err,
                   cosine=cos, ok=err <= thr)
