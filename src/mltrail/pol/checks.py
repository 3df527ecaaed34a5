"""The verifier's structural checks of any proof: hash chain, record layout, anchors,
final weights.

Owns one function per check, each returning a :class:`~mltrail.pol.report.Check`, and
:func:`find_anchor` (an ``Anchored`` event on the ledger). The checks that read the
spec, the data, the programs and the tensors are :mod:`mltrail.pol.loopverify`'s. They
only read; replay and the verdict are :mod:`mltrail.pol.loopverify`'s and
:mod:`mltrail.pol.verifier`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mltrail.errors import MltrailError
from mltrail.pol.bundle import (
    Manifest,
    epoch_groups,
    epoch_root,
    genesis_ok,
    link_of,
)
from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.report import AnchorEvent, Check
from mltrail.provenance.digest import to_bytes32

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger


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


def expected_layout(spec: LoopSpec, k: int) -> list[tuple[str, int, int]]:
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


def final(man: Manifest, expected_model: str | None) -> Check:
    """The final checkpoint is the claimed model artefact."""
    if expected_model is not None and man.final_model != expected_model:
        return Check(name="final model", ok=False,
                     detail=f"proof ends at {man.final_model}, the model is {expected_model}")
    return Check(name="final model", ok=True,
                 detail=f"final weights {man.final_model}"
                        + (" equal the model artefact" if expected_model else ""))
