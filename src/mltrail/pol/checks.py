"""The verifier's static checks: everything about a proof that needs no replay.

Owns one function per check (hash chain, record schedule, hyperparameter
plausibility, anchors, data digests, batch order, initial weights, final weights);
each returns a :class:`~mltrail.pol.report.Check`. They only read; replay and the
verdict are :mod:`mltrail.pol.verifier`'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from mltrail.errors import MltrailError, VerificationError
from mltrail.pol.bundle import (
    Manifest,
    data_commitment,
    epoch_groups,
    epoch_root,
    genesis_ok,
    link_of,
    load_tensors,
)
from mltrail.pol.challenge import init_seed_from, start_root
from mltrail.pol.limits import arch_problems, spec_problems
from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.replay import TrainingSpec
from mltrail.pol.report import AnchorEvent, Check
from mltrail.provenance.digest import digest_state_dict, to_bytes32
from mltrail.reference import build_model, init_bounds, init_weights

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

Origin = Literal["ledger", "seed", "unseeded"] | None
MAX_LR = {"sgd": 10.0, "adam": 1.0}
INIT_ALPHA = 1e-4  # family-wise level of the statistical init test


def bounds(man: Manifest) -> Check:
    """Sizes a verifier must not take on trust: steps, samples, k, model size (built on
    the ``meta`` device, nothing allocated). Runs before anything loops over steps."""
    spec = man.header.ref_training
    problems = spec_problems(spec, man.header.k)
    if problems:
        return Check(name="bounds", ok=False, detail="; ".join(problems))
    n = arch_problems(spec.arch)[1]
    return Check(name="bounds", ok=True,
                 detail=f"{spec.total_steps:,} steps, {n:,} model parameters and buffers "
                        "within the verifier's limits")


def chain(man: Manifest) -> Check:
    """The header digest opens the chain; each record names and hashes its predecessor."""
    if not genesis_ok(man):
        return Check(name="chain", ok=False,
                     detail="header digest does not match the header (manifest edited)")
    prev = man.header_digest
    for i, rec in enumerate(man.records):
        if rec.seq != i or rec.prev != prev or rec.link != link_of(rec):
            return Check(name="chain", ok=False, detail=f"hash chain broken at record {i}")
        prev = rec.link
    if not man.complete or man.final_model is None:
        return Check(name="chain", ok=False, detail="the proof is incomplete (no final model)")
    return Check(name="chain", ok=True,
                 detail=f"{len(man.records)} records chained from the header to {prev[:19]}…")


def expected_layout(spec: TrainingSpec | LoopSpec, k: int) -> list[tuple[str, int, int]]:
    """``(type, step, epoch)`` of every record an honest recorder writes, in order."""
    out: list[tuple[str, int, int]] = [("checkpoint", 0, 0)]
    for s in range(1, spec.total_steps + 1):
        if s % k == 0 or s == spec.total_steps:
            out.append(("checkpoint", s, spec.epoch_of(s - 1)))
        if s % spec.steps_per_epoch == 0:
            out.append(("epoch", s, spec.epoch_of(s - 1)))
    return out


def schedule(man: Manifest) -> Check:
    """Checkpoints every k steps and one index record per epoch, nothing missing or moved."""
    want = expected_layout(man.header.training, man.header.k)
    got = [(r.type, r.step, r.epoch) for r in man.records]
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                     min(len(got), len(want)))
        return Check(name="layout", ok=False,
                     detail=f"{len(got)} records where the spec needs {len(want)}; first "
                            f"difference at record {first} (checkpoint dropped, added or moved)")
    last = man.checkpoints()[-1]
    if man.final_model != last.digests.get("model"):
        return Check(name="layout", ok=False, detail="final model is not the last checkpoint")
    return Check(name="layout", ok=True,
                 detail=f"{len(man.checkpoints())} checkpoints every {man.header.k} steps "
                        f"over {man.header.training.epochs} epochs")


def hyperparameters(spec: TrainingSpec, k: int) -> Check:
    """Plausibility of the manifest's hyperparameters (the only ones the replay uses)."""
    o = spec.optimizer
    name = str(o.get("name"))
    problems: list[str] = []

    def num(key: str, default: float) -> float:
        try:
            v = float(o.get(key, default))
        except (TypeError, ValueError):
            problems.append(f"{key} is not a number")
            return default
        if not math.isfinite(v):
            problems.append(f"{key} is not finite")
        return v

    lr = num("lr", 0.0)
    if name not in MAX_LR:
        problems.append(f"unknown optimizer {name!r}")
    elif not 0.0 < lr <= MAX_LR[name]:
        problems.append(f"learning rate {lr:g} is implausible (must be in (0, {MAX_LR[name]:g}])")
    if name == "sgd" and not 0.0 <= num("momentum", 0.0) < 1.0:
        problems.append("momentum must be in [0, 1)")
    if not 0.0 <= num("weight_decay", 0.0) < 1.0:
        problems.append("weight decay must be in [0, 1)")
    if name == "adam":
        betas = o.get("betas", [0.9, 0.999])
        if not (isinstance(betas, list | tuple) and len(betas) == 2
                and all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas)):
            problems.append("betas must be two numbers in [0, 1)")
        if not 0.0 < num("eps", 1e-8) <= 1e-2:
            problems.append("eps must be in (0, 1e-2]")
    if not problems:
        try:
            spec.make_optimizer(torch.nn.Linear(1, 1))
        except MltrailError as exc:
            problems.append(exc.message)
    problems += _schedule_problems(spec, lr)
    if spec.batch_size > spec.n_samples:
        problems.append("batch size exceeds the number of samples")
    if k > spec.total_steps:
        problems.append(f"k={k} exceeds the {spec.total_steps} training steps")
    if problems:
        return Check(name="hyperparameters", ok=False, detail="; ".join(problems))
    return Check(name="hyperparameters", ok=True,
                 detail=f"{name} lr={lr:g} schedule={spec.schedule.get('name')} "
                        f"batch={spec.batch_size} epochs={spec.epochs} (from the manifest only)")


def _schedule_problems(spec: TrainingSpec, lr: float) -> list[str]:
    s = spec.schedule
    name = s.get("name", "constant")
    try:
        if name == "step":
            gamma, size = float(s.get("gamma", 0.1)), int(s.get("step_size", 1))
            if not (0.0 < gamma <= 1.0 and size >= 1):
                return ["step schedule needs 0 < gamma <= 1 and step_size >= 1"]
        elif name == "cosine":
            lo = float(s.get("min_lr", 0.0))
            if not 0.0 <= lo <= lr:
                return ["cosine schedule needs 0 <= min_lr <= lr"]
        elif name != "constant":
            return [f"unknown schedule {name!r}"]
        rate_of = spec.lr_schedule()
        rates = [rate_of(t) for t in range(spec.total_steps)]
    except (TypeError, ValueError, MltrailError) as exc:
        return [f"schedule cannot be evaluated: {exc}"]
    low = min(rates, default=lr)
    if not all(math.isfinite(v) for v in rates) or low <= 0.0 or low < 1e-6 * lr:
        return [f"the schedule drives the learning rate to {low:g}: no training would happen"]
    return []


def anchors(man: Manifest, ledger: Ledger | None) -> tuple[Check, list[AnchorEvent]]:
    """Anchored epoch roots equal the recomputed ones; with a ledger, they are on chain."""
    groups = epoch_groups(man.records)
    roots = [epoch_root(g) for g in groups]
    if len(man.anchors) != len(roots) or any(
            a.root != r.hex() or a.count != len(g) or a.epoch != i
            for i, (a, r, g) in enumerate(zip(man.anchors, roots, groups, strict=False))):
        return Check(name="anchors", ok=False,
                     detail="epoch Merkle roots in the manifest do not match its records"), []
    found: list[AnchorEvent] = []
    if ledger is None:
        n = sum(1 for a in man.anchors if a.artefact_id)
        return Check(name="anchors", ok=True,
                     detail=f"{len(roots)} epoch roots consistent; {n} claim ledger anchors "
                            "(not checked: no ledger)"), found
    missing, unclaimed = [], []
    for a in man.anchors:
        if not a.artefact_id:
            unclaimed.append(a.epoch)
            continue
        ev = find_anchor(ledger, a.artefact_id, bytes.fromhex(a.root), a.count,
                         man.header_digest, actor=a.actor or man.header.prover)
        if ev is None:
            missing.append(a.epoch)
        else:
            found.append(AnchorEvent(epoch=a.epoch, **ev))
    if missing:
        return Check(name="anchors", ok=False,
                     detail=f"epochs {missing} are not anchored on the ledger as claimed"), found
    if not found:
        return Check(name="anchors", ok=True,
                     detail=f"{len(roots)} epoch roots consistent; none anchored (the proof "
                            "has no chronology of its own)"), found
    first = found[0]
    return Check(name="anchors", ok=True,
                 detail=f"{len(found)} of {len(roots)} epoch roots on the ledger, first at "
                        f"block {first.block} (t={first.timestamp})"), found


def _as32(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    return to_bytes32(str(v))


def find_anchor(ledger: Ledger, artefact_id: str, root: bytes, count: int,
                header_digest: str | None, actor: str | None = None,
                block: int | None = None) -> dict[str, Any] | None:
    """Earliest ``Anchored`` event on ``artefact_id`` with this root (and header digest),
    sent by ``actor`` when given (anchors are looked up per sender: someone else's copy
    of an anchor, sent first, takes nothing from its owner), in ``block`` when given (a
    start anchor belongs to one run: a second run with the same data, seed and
    architecture anchors the same root again, in its own block)."""
    try:
        events = ledger.anchors(artefact_id)
    except MltrailError:
        return None
    for ev in events:
        if actor and str(ev.actor or "").lower() != actor.lower():
            continue
        if block is not None and ev.block != block:
            continue
        args = ev.args
        if _as32(args.get("root", b"")) != root or int(args.get("count", -1)) != count:
            continue
        if header_digest and _as32(args.get("metadata_digest", b"\0" * 32)) != \
                to_bytes32(header_digest):
            continue
        return {"artefact_id": artefact_id, "block": ev.block, "timestamp": ev.timestamp,
                "actor": ev.actor, "tx_hash": ev.tx_hash, "root": root.hex()}
    return None


def data(man: Manifest, x: torch.Tensor, y: torch.Tensor) -> Check:
    """The verifier's data are byte-for-byte the committed training data and labels."""
    want = man.header.ref_data
    if len(x) != len(y):
        return Check(name="data", ok=False, detail="the given inputs and labels differ in length")
    got = data_commitment(x, y)
    bad = [n for n in ("inputs", "labels") if getattr(got, n) != getattr(want, n)]
    if not bad and (want.n, want.shape, want.dtype) != (got.n, got.shape, got.dtype):
        return Check(name="data", ok=False,
                     detail=f"the committed data is declared as {want.n} samples of shape "
                            f"{want.shape} ({want.dtype}), the data with these digests has "
                            f"{got.n} of {got.shape} ({got.dtype})")
    if bad:
        return Check(name="data", ok=False,
                     detail=f"training {' and '.join(bad)} do not match the committed digests "
                            f"({want.digest[:19]}… committed, {got.digest[:19]}… given)")
    return Check(name="data", ok=True,
                 detail=f"{got.n} samples and labels match {got.digest[:19]}…")


def declared(man: Manifest, x: torch.Tensor, y: torch.Tensor) -> Check:
    """Declared parameters against what they name: n_samples is the committed data's
    sample count (a subset must be committed as its own data), and the architecture
    takes the committed inputs and has an output for every label."""
    spec, d = man.header.ref_training, man.header.ref_data
    if spec.n_samples != d.n:
        return Check(name="declared", ok=False,
                     detail=f"n_samples is {spec.n_samples} but the committed data has {d.n} "
                            "samples (train on a subset only by committing that subset)")
    try:
        model = build_model(spec.arch)
        model.eval()
        with torch.no_grad():
            out = model(spec.transform(x[:1], 0))
    except (RuntimeError, ValueError, MltrailError) as exc:
        return Check(name="declared", ok=False,
                     detail=f"the architecture does not take the committed inputs "
                            f"{list(x.shape[1:])}: {str(exc).splitlines()[0][:120]}")
    classes = int(out.shape[-1]) if out.dim() == 2 else -1
    if out.dim() != 2 or classes < 1:
        return Check(name="declared", ok=False,
                     detail=f"the architecture's output {list(out.shape)} is not N×classes")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        return Check(name="declared", ok=False,
                     detail=f"labels range over {int(y.min())}..{int(y.max())}, the "
                            f"architecture has {classes} classes")
    return Check(name="declared", ok=True,
                 detail=f"n_samples={spec.n_samples} = committed samples; batch "
                        f"{spec.batch_size}, {spec.epochs} epochs of {spec.steps_per_epoch} "
                        f"steps; {len(spec.transforms)} declared transforms; architecture "
                        f"maps {list(x.shape[1:])} to {classes} classes")


def batch_order(folder: Path, man: Manifest) -> Check:
    """Recorded batch indices are the order the committed data seed produces."""
    spec = man.header.ref_training
    for rec in man.epoch_records():
        try:
            t = load_tensors(folder, rec.files["indices"], rec.digests["indices"])
        except (VerificationError, KeyError) as exc:
            return Check(name="batch order", ok=False, detail=str(exc))
        want = spec.epoch_order(rec.epoch)
        sizes = t.get("sizes")
        if not torch.equal(t.get("indices", torch.zeros(0)), want) or sizes is None or \
                [int(s) for s in sizes] != [len(spec.batch_indices(rec.epoch *
                                            spec.steps_per_epoch + i))
                                            for i in range(spec.steps_per_epoch)]:
            return Check(name="batch order", ok=False,
                         detail=f"epoch {rec.epoch}: recorded batches are not the committed "
                                "seeded order")
    return Check(name="batch order", ok=True,
                 detail=f"{len(man.epoch_records())} epochs in the order of data seed "
                        f"{spec.data_seed}")


def init(man: Manifest, model0: dict[str, torch.Tensor], optim0: dict[str, torch.Tensor],
         ledger: Ledger | None = None) -> tuple[Check, Origin]:
    """Checkpoint 0 is what the committed seed and scheme give; returns the check and the
    seed's origin: ``ledger`` (derived from the block of the prover's start anchor,
    checked on ``ledger``), ``seed`` (a seed the prover chose) or ``unseeded`` (only the
    distribution tests, which a prover who picks the init can pass)."""
    arch, ic = man.header.ref_training.arch, man.header.init
    if optim0:
        return Check(name="init", ok=False, detail="optimizer state at step 0 is not empty"), None
    try:
        ref = build_model(arch)
        if ic.seed is None:
            return _init_statistical(ref, model0, ic.scheme), "unseeded"
        want = digest_state_dict(init_weights(ref, ic.scheme, ic.seed).state_dict())
        if digest_state_dict(model0) != want:
            return Check(name="init", ok=False, detail=f"initial weights are NOT exactly "
                                                        f"{ic.scheme} with seed {ic.seed}"), None
        if ic.origin is None:
            return Check(name="init", ok=True,
                         detail=f"initial weights are exactly {ic.scheme} with seed {ic.seed}, "
                                "a seed the prover chose (not fixed by the ledger)"), "seed"
        return _init_origin(man, ledger)
    except MltrailError as exc:
        return Check(name="init", ok=False, detail=exc.message), None


def _init_origin(man: Manifest, ledger: Ledger | None) -> tuple[Check, Origin]:
    ic, h = man.header.init, man.header
    o = ic.origin
    assert o is not None
    spec = h.ref_training
    root = start_root(h.data.digest, h.prover, spec.data_seed, spec.arch, ic.scheme)
    if o.root != root.hex():
        return Check(name="init", ok=False, detail="the start anchor's root does not bind this "
                                                   "header's data, prover and architecture"), "seed"
    if ledger is None:
        return Check(name="init", ok=True,
                     detail=f"initial weights are exactly {ic.scheme} with seed {ic.seed}, "
                            f"said to come from block {o.block} (not checked: no ledger)"), "seed"
    ev = find_anchor(ledger, o.artefact_id, root, 0, None, actor=h.prover, block=o.block)
    if ev is None:
        return Check(name="init", ok=False,
                     detail=f"no start anchor by the prover at block {o.block} on "
                            f"{o.artefact_id[:10]}…: the init seed is not the ledger's"), "seed"
    blocks = list(ledger.backend.blocks(o.block, o.block))
    if not blocks or not blocks[0].hash_ok:
        return Check(name="init", ok=False, detail=f"block {o.block} cannot be read"), "seed"
    if init_seed_from(blocks[0].hash, root) != ic.seed:
        return Check(name="init", ok=False,
                     detail=f"the init seed is not the one block {o.block} fixes"), "seed"
    return Check(name="init", ok=True,
                 detail=f"initial weights are exactly {ic.scheme} with the seed fixed by block "
                        f"{o.block} (the prover's start anchor, before step 0)"), "ledger"


_SMALL = 20  # tensors with fewer values are tested pooled, not one by one


def _init_statistical(ref: torch.nn.Module, model0: dict[str, torch.Tensor], scheme: str
                      ) -> Check:
    """Second line when no seed is committed: every value inside its family's support,
    a KS test per tensor of at least ``_SMALL`` values, and one KS test over all smaller
    tensors pooled after scaling to the unit distribution."""
    from scipy import stats

    bounds = init_bounds(ref, scheme)
    if set(model0) != set(ref.state_dict()):
        return Check(name="init", ok=False, detail="initial weights do not fit the architecture")
    tests: list[tuple[str, Any, Any]] = []
    pooled: dict[str, list[Any]] = {"uniform": [], "normal": []}
    for name, (fam, scale) in bounds.items():
        v = model0[name].double().reshape(-1).numpy()
        if fam == "const":
            if not (v == scale).all():
                return Check(name="init", ok=False, detail=f"{name} is not the constant {scale}")
            continue
        if fam == "uniform" and len(v) and float(abs(v).max()) > scale:
            return Check(name="init", ok=False,
                         detail=f"{name} has values outside U(-{scale:.3g}, {scale:.3g})")
        if len(v) >= _SMALL:
            cdf = stats.uniform(-scale, 2 * scale).cdf if fam == "uniform" else \
                stats.norm(0, scale).cdf
            tests.append((name, v, cdf))
        else:
            pooled[fam] += list(v / scale)
    for fam, vals in pooled.items():
        if len(vals) >= 5:
            cdf = stats.uniform(-1, 2).cdf if fam == "uniform" else stats.norm(0, 1).cdf
            tests.append((f"the {len(vals)} values of small {fam} tensors", vals, cdf))
    level = INIT_ALPHA / max(len(tests), 1)
    for name, v, cdf in tests:
        p = float(stats.kstest(v, cdf).pvalue)
        if p < level:
            return Check(name="init", ok=False,
                         detail=f"no init seed committed and {name} fails the KS test for "
                                f"{scheme} (p={p:.2g} < {level:.2g})")
    return Check(name="init", ok=True,
                 detail=f"no init seed committed; {len(tests)} KS tests for {scheme} pass at "
                        f"family-wise level {INIT_ALPHA:g} (a chosen init can pass them)")


def final(man: Manifest, expected_model: str | None) -> Check:
    """The final checkpoint is the claimed model artefact."""
    if expected_model is not None and man.final_model != expected_model:
        return Check(name="final model", ok=False,
                     detail=f"proof ends at {man.final_model}, the model is {expected_model}")
    return Check(name="final model", ok=True,
                 detail=f"final weights {man.final_model}"
                        + (" equal the model artefact" if expected_model else ""))
