"""Exclusions of cheating workers, recorded on the ledger with their evidence.

Owns :func:`exclusion_evidence` (the canonical JSON that shows a worker's update did not
replay: its record, the digests of the claimed and the replayed update, the error and the
tolerance) and :func:`record_exclusion`: the evidence goes into the content store and its
digest onto the chain as an anchor on the training dataset's artefact (root = SHA-256 of
the evidence bytes, one record, metadata digest = the evidence's digest), sent by the
coordinator's identity. It never decides who cheated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mltrail.provenance.digest import canonical_json, digest_bytes

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

KIND = "mltrail-dp-exclusion/1"


def exclusion_evidence(record: Mapping[str, Any], replayed_digest: str, error: float,
                       tolerance: Mapping[str, Any], run: str) -> dict[str, Any]:
    return {"kind": KIND, "run": run, "worker": int(record["worker"]),
            "round": int(record["round"]), "indices": list(record["indices"]),
            "state": record["state"], "claimed_update": record["update"],
            "replayed_update": replayed_digest,
            "error": error if error != float("inf") else "inf",
            "tolerance": dict(tolerance)}


def evidence_digest(evidence: Mapping[str, Any]) -> str:
    return digest_bytes(canonical_json(dict(evidence)))


def record_exclusion(ledger: Ledger, dataset_id: str, evidence: Mapping[str, Any]
                     ) -> dict[str, Any]:
    """Store ``evidence`` and anchor its digest on ``dataset_id``; returns the receipt."""
    raw = canonical_json(dict(evidence))
    digest = ledger.home.store.put(raw)
    tx = ledger.anchor(dataset_id, hashlib.sha256(raw).digest(), 1, metadata_digest=digest)
    return {"evidence": digest, "artefact": ledger.resolve(dataset_id),
            "tx_hash": tx.tx_hash, "block": tx.block}
