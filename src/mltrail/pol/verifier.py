"""The verifier: judge a proof bundle by its structure and by partial replay.

Owns :func:`verify_bundle` (one verdict and a :class:`~mltrail.pol.report.Report`) and
:func:`verify_update` (a coordinator's spot check of an untrusted worker's update).
Hyperparameters come only from the manifest header; checkpoint files supply tensors
and nothing else, checked for names and shapes before they are loaded. Which segments
are replayed is :mod:`mltrail.pol.challenge`'s rule, from a seed the prover cannot steer
(a ledger block after publication, see :mod:`mltrail.pol.onchain`, or the verifier's
own randomness). It reads anchors from a ledger when given one but never writes to it.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltrail.errors import InputError, MltrailError, VerificationError
from mltrail.pol import challenge as challenge_mod
from mltrail.pol import checks, environment
from mltrail.pol.bundle import Manifest, load_tensors, read_manifest
from mltrail.pol.calibration import DEFAULT_OPTIM_THRESHOLD, DEFAULT_THRESHOLD
from mltrail.pol.challenge import DEFAULT_FORGED, DEFAULT_MISS_RATE, Why
from mltrail.pol.curve import checkpoint_curve
from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.replay import TrainingSpec, load_optimizer_tensors, optimizer_tensors, run_steps
from mltrail.pol.report import Challenge, Check, Report, Segment
from mltrail.pol.tolerance import Tolerance, decide
from mltrail.reference import build_model

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

State = dict[str, torch.Tensor]
OPTIMIZER_KEYS = {"sgd": ("momentum_buffer",), "adam": ("step", "exp_avg", "exp_avg_sq")}


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
                   device: str = "cpu", model: torch.nn.Module | None = None
                   ) -> tuple[State, State]:
    """Run steps ``start..end-1`` from the given states; returns the new states (CPU).
    ``model`` (built from ``spec.arch`` on ``device``) is reused when given."""
    model = build_model(spec.arch).to(device) if model is None else model
    model.load_state_dict(model_state)
    opt = spec.make_optimizer(model)
    load_optimizer_tensors(model, opt, optim_state)
    run_steps(spec, model, opt, x, y, start, end)
    return ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            optimizer_tensors(model, opt))


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
                  trusted_code: bool = False) -> Report:
    """Verify a proof bundle against the verifier's copy of the training data.

    ``r`` random segments, or (``r=None``) as many as make the chance of missing a proof
    with a fraction ``forged`` of fake segments at most ``miss_rate`` (halved for each of
    ``prior_rejections``, earlier rejected publications of the same weights). The random
    seed is ``seed``, else ``challenge.seed``, else unpredictable. Checks run in order and
    stop at the first failure. Returns a report whose verdict is ``accepted`` only if
    every check passes; raises :class:`~mltrail.errors.InputError` only when the bundle
    cannot be read at all.

    ``data`` is ``(x, y)`` for the reference task. For a proof recorded from a user's own
    loop (:class:`~mltrail.pol.loop.LoopRecorder`) it is a data file or folder, a mapping
    of named tensors, ``(x, y)`` or a tensor dataset; ``code_paths`` are the folders where
    the prover's pinned code is found, and the replay runs it in a separate process
    (:mod:`mltrail.pol.loopverify`), ``timeout`` seconds at most — only for a proof
    recorded in trusted-code mode and only with ``trusted_code=True``; an exported proof
    runs none of the prover's Python.

    The replay runs with the thread count and deterministic mode the proof declares
    (``header.env``); the thresholds are :func:`mltrail.pol.tolerance.decide`'s (exact in
    the declared environment, else ``calibration`` rows for the pair, else the
    verifier's ``threshold``), and a pair with none refuses with
    :class:`~mltrail.errors.InputError`. ``publications`` are the other publications of
    the same weights (each halves the miss rate, like ``prior_rejections``);
    ``on_segment`` sees each replayed segment as it finishes.
    """
    t0 = time.perf_counter()
    folder = Path(bundle)
    man = read_manifest(folder)
    environment.check_device(device)
    declared = man.header.env
    # a loop proof's replay processes can run the declared (lower) CPU capability's kernels
    emulated = environment.emulation(declared, device) \
        if isinstance(man.header.training, LoopSpec) else None
    with environment.declared(declared, device, emulated) as here:
        tol = decide(declared, here, override=threshold, calibration=calibration)
        return _verify(folder, man, data, tol, here, q=q, r=r, miss_rate=miss_rate,
                       forged=forged, seed=seed, challenge=challenge,
                       prior_rejections=prior_rejections, publications=publications,
                       expected_model=expected_model, ledger=ledger, device=device,
                       progress=progress, code_paths=code_paths, timeout=timeout,
                       on_segment=on_segment, trusted_code=trusted_code, t0=t0)


def _verify(folder: Path, man: Manifest, data: Any, tol: Tolerance,
            here: environment.Environment, *, q: int, r: int | None, miss_rate: float,
            forged: float, seed: int | None, challenge: Challenge | None,
            prior_rejections: Sequence[str], publications: Sequence[str],
            expected_model: str | None, ledger: Ledger | None, device: str,
            progress: Callable[[int], None] | None, code_paths: Sequence[str],
            timeout: float | None, on_segment: Callable[[Segment], None] | None,
            trusted_code: bool, t0: float) -> Report:
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
    if isinstance(man.header.training, LoopSpec):
        from mltrail.pol.loopverify import verify_loop

        verify_loop(folder, man, data, rep, q=q, r=r, miss_rate=miss_rate, forged=forged,
                    threshold=thr, code_paths=code_paths, ledger=ledger,
                    expected_model=expected_model, device=device, timeout=timeout,
                    progress=progress, trusted_code=trusted_code, on_segment=on_segment)
        rep.verdict = "accepted" if rep.checks and all(c.ok for c in rep.checks) \
            and rep.checks[-1].name == "replay" else "rejected"
        rep.total_seconds = time.perf_counter() - t0
        return rep
    x, y = data

    run = rep.run

    spec = man.header.ref_training
    ok = run(lambda: checks.bounds(man),
             lambda: checks.chain(man),
             lambda: checks.schedule(man),
             lambda: checks.hyperparameters(spec, man.header.k),
             lambda: _own_input(checks.data(man, x, y)),
             lambda: checks.declared(man, x, y))
    rep.data_digest = man.header.ref_data.digest
    if ok:
        anchor_check, rep.anchors = checks.anchors(man, ledger)
        ok = run(lambda: anchor_check, lambda: checks.batch_order(folder, man))
    states: list[tuple[State, State]] = []
    if ok:
        try:
            states = load_all_states(folder, man)
        except VerificationError as exc:
            failed = Check(name="files", ok=False, detail=exc.message)
            ok = run(lambda: failed)
    if ok:
        rep.curve = checkpoint_curve(man, [m for m, _ in states], x, y, device)
        init_check, rep.init_origin = checks.init(man, states[0][0], states[0][1], ledger)
        ok = run(lambda: init_check, lambda: checks.final(man, expected_model))
    if ok:
        t1 = time.perf_counter()
        _replay(man, states, x, y, rep, q, r, miss_rate, forged, tol, device, progress,
                on_segment)
        rep.replay_seconds = time.perf_counter() - t1
        run(lambda: rep.replay_check(
            f"{len(rep.segments)} segments, max error {rep.max_error:.3g} <= {thr:.3g} "
            f"(optimizer state <= {othr:.3g}; {tol.basis})", error_bound=thr))
    rep.verdict = "accepted" if ok and all(c.ok for c in rep.checks) else "rejected"
    rep.total_seconds = time.perf_counter() - t0
    return rep


def _own_input(check: Check) -> Check:
    """The verifier's data are its own input: bytes other than the committed ones are an
    :class:`~mltrail.errors.InputError` (exit 2, nothing recorded), never a verdict."""
    if not check.ok:
        raise InputError(f"--data is not the data this proof commits to: {check.detail}")
    return check


def load_all_states(folder: Path, man: Manifest) -> list[tuple[State, State]]:
    """Every checkpoint's (model, optimizer) tensors, each file's names and shapes checked
    against the architecture and optimizer before it is loaded."""
    spec = man.header.ref_training
    with torch.device("meta"):
        ref = build_model(spec.arch)
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    per = {n: tuple(p.shape) for n, p in ref.named_parameters()}
    keys = OPTIMIZER_KEYS.get(str(spec.optimizer.get("name")), ())
    limit = 8 * sum(math.prod(s) for s in shapes.values()) + (1 << 20)
    out = []
    real = Path(os.path.realpath(folder))
    for n, c in enumerate(man.checkpoints()):
        if set(c.files) != {"model", "optim"} or set(c.digests) != {"model", "optim"}:
            raise VerificationError(f"checkpoint record {n} names files other than model "
                                    "and optim")
        model = load_tensors(real, c.files["model"], c.digests["model"], shapes, limit)
        optim = load_tensors(real, c.files["optim"], c.digests["optim"], None, 2 * limit)
        for key, t in optim.items():
            pname, _, skey = key.rpartition(".")
            if pname not in per or skey not in keys or (
                    t.dim() > 0 and tuple(t.shape) != per[pname]):
                raise VerificationError(f"checkpoint {n}: optimizer state {key!r} does not "
                                        "fit the architecture and optimizer")
        out.append((model, optim))
    return out


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


def _replay(man: Manifest, states: list[tuple[State, State]], x: torch.Tensor,
            y: torch.Tensor, rep: Report, q: int, r: int | None, miss_rate: float,
            forged: float, tol: Tolerance, device: str,
            progress: Callable[[int], None] | None,
            on_segment: Callable[[Segment], None] | None = None) -> None:
    spec = man.header.ref_training
    cks = man.checkpoints()
    chosen, score, rule = plan(man, states, q, r, miss_rate, forged, rep.verifier_seed,
                               len(set(rep.prior_rejections) | set(rep.publications)))
    rep.r, rep.r_rule = int(rule["r"]), rule
    model = build_model(spec.arch).to(device)
    for i, why in chosen:
        (m0, o0), (m1, o1) = states[i], states[i + 1]
        try:
            mr, orr = replay_segment(spec, m0, o0, x, y, cks[i].step, cks[i + 1].step, device,
                                     model)
        except (RuntimeError, MltrailError, KeyError, ValueError) as exc:
            rep.reasons.append(f"segment #{i} cannot be replayed: {exc}".splitlines()[0])
            err, cos, oerr = math.inf, None, None
        else:
            err, cos = relative_error(mr, m0, m1)
            o0z = {n: o0.get(n, torch.zeros_like(t)) for n, t in o1.items()}
            oerr = relative_error(orr, o0z, o1)[0] if o1 or orr else None
        ok = err <= tol.threshold and (oerr is None or oerr <= tol.optim_threshold)
        seg = Segment(index=i, epoch=spec.epoch_of(cks[i].step), start_step=cks[i].step,
                      end_step=cks[i + 1].step, chosen=why, update_norm=score[i], error=err,
                      optim_error=oerr, cosine=cos, ok=ok)
        rep.segments.append(seg)
        if on_segment is not None:
            on_segment(seg)
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
