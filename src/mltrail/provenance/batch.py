"""Batch anchoring: many fine-grained records under one Merkle root on chain.

A batch (per-file digests of a big data set, per-step training records, audit logs) is
kept in the content store as canonical JSON, its RFC 6962 root and count anchored about
an artefact with one ``anchor`` transaction. A proof file lets anyone check offline that
one record was in the batch, and against the chain that the root was anchored. This
module sends only ``anchor`` transactions and never changes an artefact's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mltrail.errors import InputError, VerificationError
from mltrail.provenance.anchor import (
    inclusion_proof,
    leaf_hash,
    levels,
    merkle_root,
    path_in,
    record_bytes,
    verify_inclusion,
)
from mltrail.provenance.digest import canonical_json

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

MAX_PROOF_FILE = 1 << 20
Advance = Callable[[int], None] | None
# ``progress(total)``: a context manager yielding ``advance(n)`` (a CLI progress bar)
Progress = Callable[[int | None], AbstractContextManager[Callable[[int], None]]]


class InclusionProof(BaseModel):
    """What ``mltrail verify --proof FILE`` reads."""

    model_config = ConfigDict(extra="forbid")

    artefact_id: str
    root: str          # hex, 32 bytes
    count: int
    index: int
    record: Any        # the record as JSON (bytes records as {"hex": ...})
    proof: list[str]   # hex sibling hashes, leaf upwards
    batch: str | None = None  # digest of the whole batch in the content store

    def record_value(self) -> Any:
        if isinstance(self.record, dict) and set(self.record) == {"hex"}:
            return bytes.fromhex(str(self.record["hex"]))
        return self.record


def _as_json(record: Any) -> Any:
    return {"hex": record.hex()} if isinstance(record, bytes) else record


def anchor_batch(led: Ledger, artefact_id: str, records: Sequence[Any],
                 advance: Advance = None) -> dict[str, Any]:
    """Anchor ``records`` about an artefact; keep the batch in the store. ``advance(n)``
    hears the records hashed."""
    if not records:
        raise InputError("an empty batch has nothing to anchor")
    batch = led.home.store.put(canonical_json([_as_json(r) for r in records]))
    root = merkle_root(records, advance)
    tx = led.anchor(artefact_id, root, len(records), batch)
    return {"artefact_id": led.resolve(artefact_id), "root": root.hex(), "count": len(records),
            "batch": batch, **tx.as_dict()}


def make_proof(artefact_id: str, records: Sequence[Any], index: int,
               batch: str | None = None) -> InclusionProof:
    """The inclusion proof of ``records[index]``."""
    return InclusionProof(artefact_id=artefact_id, root=merkle_root(records).hex(),
                          count=len(records), index=index, record=_as_json(records[index]),
                          proof=[h.hex() for h in inclusion_proof(records, index)], batch=batch)


MAX_RECORDS_FILE = 1 << 30


def read_records(path: str | Path) -> list[Any]:
    """Records from a JSON Lines file (one JSON value a line; blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"records file not found: {p}")
    if p.stat().st_size > MAX_RECORDS_FILE:
        raise InputError(f"records file larger than {MAX_RECORDS_FILE} bytes: {p}")
    out = []
    with p.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise InputError(f"{p}:{n}: not JSON") from exc
    return out


def write_proofs(folder: str | Path, artefact_id: str, records: Sequence[Any],
                 batch: str | None = None, advance: Advance = None) -> list[Path]:
    """One ``proof-<index>.json`` per record (leaf hashes computed once); ``advance(1)``
    hears each proof written."""
    from mltrail._fs import atomic_write

    tree = levels([leaf_hash(record_bytes(r)) for r in records])
    root = tree[-1][0].hex()
    out = []
    for i, r in enumerate(records):
        proof = InclusionProof(artefact_id=artefact_id, root=root, count=len(records),
                               index=i, record=_as_json(r),
                               proof=[h.hex() for h in path_in(tree, i)], batch=batch)
        target = Path(folder) / f"proof-{i}.json"
        atomic_write(target, proof.model_dump_json(indent=1).encode(), durable=False)
        out.append(target)
        if advance is not None:
            advance(1)
    return out


def _no_progress(total: int | None) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


def anchor_file(led: Ledger, artefact_id: str, records: str | Path,
                proofs: str | Path | None = None,
                progress: Progress = _no_progress) -> dict[str, Any]:
    """Anchor the records of a JSON Lines file about an artefact; with ``proofs``, write one
    inclusion proof per record into that folder (named in the result as ``proofs``).
    ``progress(total)`` counts the records hashed, then the proofs written."""
    rows = read_records(records)
    with progress(len(rows) * (1 if proofs is None else 2)) as advance:
        res = anchor_batch(led, artefact_id, rows, advance)
        if proofs is not None:
            write_proofs(proofs, res["artefact_id"], rows, res["batch"], advance)
            res["proofs"] = str(proofs)
    return res


def load_proof(path: str | Path) -> InclusionProof:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"proof file not found: {p}")
    if p.stat().st_size > MAX_PROOF_FILE:
        raise InputError(f"proof file larger than {MAX_PROOF_FILE} bytes: {p}")
    try:
        proof = InclusionProof.model_validate(json.loads(p.read_bytes()))
        root, path_hashes = bytes.fromhex(proof.root), [bytes.fromhex(h) for h in proof.proof]
    except (ValidationError, ValueError) as exc:
        raise InputError(f"malformed proof file {p}: {str(exc).splitlines()[0]}") from exc
    if len(root) != 32 or any(len(h) != 32 for h in path_hashes) or len(path_hashes) > 64:
        raise InputError(f"malformed proof file {p}: hashes must be 32 bytes, at most 64")
    return proof


def check_offline(proof: InclusionProof) -> bool:
    """The audit path leads from the record to the root (no chain needed)."""
    try:
        record = proof.record_value()
        hashes = [bytes.fromhex(h) for h in proof.proof]
        root = bytes.fromhex(proof.root)
    except ValueError:
        return False
    return verify_inclusion(record, proof.index, proof.count, hashes, root)


def roles_at(led: Ledger, account: str, block: int, log_index: int) -> int:
    """The role mask ``account`` held just before event (``block``, ``log_index``), from the
    chain's ``RolesChanged`` events."""
    mask = 0
    for ev in led.index.events(None, "RolesChanged"):
        if (ev.block, ev.log_index) >= (block, log_index):
            break
        if str(ev.args["account"]).lower() == account.lower():
            mask = int(ev.args["roles"])
    return mask


def anchorer(led: Ledger, ev: Any, owner: str, kind: str) -> dict[str, Any]:
    """Who made anchor ``ev``: the address, the roles held then, whether it is the owner,
    and whether the kind's ``anchor:`` rule allowed it (the owner, or a listed role)."""
    lc = led.lifecycle
    rule = lc.kind(kind).anchor
    actor = str(ev.actor)
    held = roles_at(led, actor, ev.block, ev.log_index)
    is_owner = actor.lower() == owner.lower()
    allowed = is_owner or bool(held & lc.role_mask(list(rule)))
    return {"anchored_by": actor, "anchored_by_roles": lc.role_names(held),
            "anchored_by_owner": is_owner, "allowed": allowed,
            "rule": f"kinds.{kind}.anchor: [{', '.join(rule)}] (and the owner)"}


def verify_proof(led: Ledger, proof: InclusionProof,
                 anchored_by: str | None = None) -> dict[str, Any]:
    """Offline check, then: this root and count were anchored about the artefact by a member
    the kind's ``anchor:`` rule allows (and by ``anchored_by``, an address, an identity or
    ``owner``, if given). The result names the anchoring member and the artefact's owner."""
    if not check_offline(proof):
        raise VerificationError(f"record {proof.index} is not in the batch with root "
                                f"{proof.root[:16]}...: the inclusion proof fails")
    root = bytes.fromhex(proof.root)
    art = led.artefact(proof.artefact_id)
    matches = [ev for ev in led.anchors(proof.artefact_id)
               if ev.args["root"] == root and int(ev.args["count"]) == proof.count]
    if not matches:
        raise VerificationError(f"root {proof.root[:16]}... ({proof.count} records) was never "
                                f"anchored about artefact {proof.artefact_id}")
    who = [(ev, anchorer(led, ev, art.owner, art.kind)) for ev in matches]
    if anchored_by is not None:
        want = art.owner if anchored_by == "owner" else led._account_arg(anchored_by)
        found = [(ev, w) for ev, w in who if str(ev.actor).lower() == want.lower()]
        if not found:
            raise VerificationError(
                f"root {proof.root[:16]}... was anchored about {art.kind} {art.id[:10]} only by "
                + ", ".join(sorted({str(ev.actor) for ev in matches}))
                + f", not by {anchored_by} ({want}); the owner is {art.owner}")
        who = found
    ok = [(ev, w) for ev, w in who if w["allowed"]]
    if not ok:
        ev, w = who[0]
        raise VerificationError(
            f"root {proof.root[:16]}... was anchored about {art.kind} {art.id[:10]} by "
            f"{ev.actor} holding {', '.join(w['anchored_by_roles']) or 'no role'}, who is not "
            f"its owner {art.owner} and not allowed by the lifecycle's rule {w['rule']}")
    ev, w = min(ok, key=lambda p: (not p[1]["anchored_by_owner"], p[0].block))
    return {"ok": True, "artefact_id": ev.artefact_id, "kind": art.kind, "index": proof.index,
            "count": proof.count, "root": proof.root, "anchored_block": ev.block,
            "tx_hash": ev.tx_hash, "owner": art.owner, **w}
