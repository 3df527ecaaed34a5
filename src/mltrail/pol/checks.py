"""The verifier's static checks: everything about a proof that needs no replay.

Owns one function per check (hash chain, record schedule, hyperparameter
plausibility, anchors, data digests, batch order, initial weights, final weights);
each returns a :class:`~mltrail.pol.report.Check`. They only read; replay and the
verdict are :mod:`mltrail.pol.verifier`'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from mltrail.pol.replay import TrainingSpec
from mltrail.pol.report import Check
from mltrail.provenance.digest import digest_state_dict, to_bytes32
from mltrail.reference import build_model, init_bounds, init_weights

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

MAX_LR = {"sgd": 10.0, "adam": 1.0}
INIT_ALPHA = 1e-4  # family-wise level of the statistical init test


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


def expected_layout(spec: TrainingSpec, k: int) -> list[tuple[str, int, int]]:
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
        rates = [spec.lr_at(t) for t in range(spec.total_steps)]
    except (TypeError, ValueError, MltrailError) as exc:
        return [f"schedule cannot be evaluated: {exc}"]
    low = min(rates, default=lr)
    if not all(math.isfinite(v) for v in rates) or low <= 0.0 or low < 1e-6 * lr:
        return [f"the schedule drives the learning rate to {low:g}: no training would happen"]
    return []


def anchors(man: Manifest, ledger: Ledger | None) -> tuple[Check, list[dict[str, Any]]]:
    """Anchored epoch roots equal the recomputed ones; with a ledger, they are on chain."""
    groups = epoch_groups(man.records)
    roots = [epoch_root(g) for g in groups]
    if len(man.anchors) != len(roots) or any(
            a.root != r.hex() or a.count != len(g) or a.epoch != i
            for i, (a, r, g) in enumerate(zip(man.anchors, roots, groups, strict=False))):
        return Check(name="anchors", ok=False,
                     detail="epoch Merkle roots in the manifest do not match its records"), []
    found: list[dict[str, Any]] = []
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
                         man.header_digest)
        if ev is None:
            missing.append(a.epoch)
        else:
            found.append({"epoch": a.epoch, **ev})
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
                        f"block {first.get('block')} (t={first.get('timestamp')})"), found


def _as32(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    return to_bytes32(str(v))


def find_anchor(ledger: Ledger, artefact_id: str, root: bytes, count: int,
                header_digest: str | None) -> dict[str, Any] | None:
    """Earliest ``Anchored`` event on ``artefact_id`` with this root (and header digest)."""
    try:
        events = ledger.anchors(artefact_id)
    except MltrailError:
        return None
    for ev in events:
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
    want = man.header.data
    got = data_commitment(x, y)
    bad = [n for n in ("inputs", "labels") if getattr(got, n) != getattr(want, n)]
    if bad:
        return Check(name="data", ok=False,
                     detail=f"training {' and '.join(bad)} do not match the committed digests "
                            f"({want.digest[:19]}… committed, {got.digest[:19]}… given)")
    return Check(name="data", ok=True,
                 detail=f"{got.n} samples and labels match {got.digest[:19]}…")


def batch_order(folder: Path, man: Manifest) -> Check:
    """Recorded batch indices are the order the committed data seed produces."""
    spec = man.header.training
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


def init(man: Manifest, model0: dict[str, torch.Tensor], optim0: dict[str, torch.Tensor]
         ) -> Check:
    """Checkpoint 0 is what the committed seed and scheme give (or passes a KS test)."""
    arch, scheme, seed = man.header.training.arch, man.header.init.scheme, man.header.init.seed
    if optim0:
        return Check(name="init", ok=False, detail="optimizer state at step 0 is not empty")
    try:
        ref = build_model(arch)
        if seed is not None:
            want = digest_state_dict(init_weights(ref, scheme, seed).state_dict())
            ok = digest_state_dict(model0) == want
            return Check(name="init", ok=ok,
                         detail=f"initial weights {'are' if ok else 'are NOT'} exactly "
                                f"{scheme} with seed {seed}")
        return _init_statistical(ref, model0, scheme)
    except MltrailError as exc:
        return Check(name="init", ok=False, detail=exc.message)


def _init_statistical(ref: torch.nn.Module, model0: dict[str, torch.Tensor], scheme: str
                      ) -> Check:
    from scipy import stats

    bounds = init_bounds(ref, scheme)
    tests = [(n, b) for n, b in bounds.items() if b[0] != "const" and model0[n].numel() >= 20]
    if set(model0) != set(ref.state_dict()):
        return Check(name="init", ok=False, detail="initial weights do not fit the architecture")
    level = INIT_ALPHA / max(len(tests), 1)
    for name, (fam, scale) in bounds.items():
        v = model0[name].double().reshape(-1).numpy()
        if fam == "const":
            if not (v == scale).all():
                return Check(name="init", ok=False, detail=f"{name} is not the constant {scale}")
            continue
        if len(v) < 20:
            continue
        cdf = stats.uniform(-scale, 2 * scale).cdf if fam == "uniform" else stats.norm(0, scale).cdf
        p = float(stats.kstest(v, cdf).pvalue)
        if p < level:
            return Check(name="init", ok=False,
                         detail=f"no init seed committed and {name} fails the KS test for "
                                f"{scheme} (p={p:.2g} < {level:.2g})")
    return Check(name="init", ok=True,
                 detail=f"no init seed committed; {len(tests)} tensors pass the KS test "
                        f"for {scheme} at family-wise level {INIT_ALPHA:g}")


def final(man: Manifest, expected_model: str | None) -> Check:
    """The final checkpoint is the claimed model artefact."""
    if expected_model is not None and man.final_model != expected_model:
        return Check(name="final model", ok=False,
                     detail=f"proof ends at {man.final_model}, the model is {expected_model}")
    return Check(name="final model", ok=True,
                 detail=f"final weights {man.final_model}"
                        + (" equal the model artefact" if expected_model else ""))
