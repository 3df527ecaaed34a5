"""Proof-of-Learning on the ledger: anchors, publishing a proof, recording a verdict.

Owns the few ledger calls PoL makes, all through :class:`~mltrail.ledger.client.Ledger`:

* :func:`ledger_anchor` — the recorder's anchor callback (epoch roots on the training
  dataset's artefact, with the manifest header digest as metadata);
* :func:`publish_model` — the packed bundle into the content store, the model artefact
  registered with the final weights' digest and moved to ``trained``;
* :func:`record_verdict` — an accepted report moves the model to ``verified`` with the
  report's digest as evidence; a rejected one is only stored;
* :func:`bundle_for` — fetch a model's proof bundle back from the store.

Rules (who may do what) are the contract's; this module only sends and reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError, NotFoundError
from mltrail.pol.bundle import Anchor, Manifest, pack, read_manifest, unpack
from mltrail.pol.recorder import AnchorFn
from mltrail.pol.report import Report

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact, Ledger

BUNDLE_KEY = "pol_bundle"


def ledger_anchor(ledger: Ledger, artefact_id: str) -> AnchorFn:
    """An anchor callback that puts each epoch root on ``artefact_id``'s history."""
    aid = ledger.resolve(artefact_id)

    def anchor(epoch: int, root: bytes, count: int, header_digest: str) -> Anchor:
        tx = ledger.anchor(aid, root, count, metadata_digest=header_digest)
        return Anchor(epoch=epoch, root=root.hex(), count=count, artefact_id=aid,
                      tx_hash=tx.tx_hash, block=tx.block, timestamp=tx.timestamp,
                      actor=ledger.address)

    return anchor


def find_dataset(ledger: Ledger, data_digest: str) -> Artefact | None:
    """The oldest dataset artefact registered with this content digest, if any."""
    kind = ledger.lifecycle.bound_kind("pol", "data_kind")
    return next((a for a in ledger.find_by_digest(data_digest) if a.kind == kind), None)


def publish_model(ledger: Ledger, bundle: str | Path, *, name: str,
                  parents: list[str] | None = None) -> dict[str, Any]:
    """Store the bundle, register the model (digest = final weights) and mark it trained."""
    man = read_manifest(bundle)
    if not man.complete or man.final_model is None:
        raise InputError(f"{bundle} holds an incomplete proof")
    bundle_digest = ledger.home.store.put(pack(bundle))
    meta = {"name": name, BUNDLE_KEY: bundle_digest, "pol_header": man.header_digest,
            "pol_chain_head": man.chain_head, "prover": man.header.prover}
    lc = ledger.lifecycle
    reg = ledger.register(lc.bound_kind("pol"), man.final_model, parents=parents or [],
                          metadata=meta)
    tr = ledger.transition(reg.artefact_id, lc.bound_state("pol", "trained"),
                           evidence_digest=bundle_digest)
    return {"model_id": reg.artefact_id, "content_digest": man.final_model,
            "bundle_digest": bundle_digest, "tx_hash": tr.tx_hash, "block": tr.block,
            "gas_used": reg.gas_used + tr.gas_used, "register_tx": reg.tx_hash}


def metadata(ledger: Ledger, art: Artefact) -> dict[str, Any]:
    try:
        data = json.loads(ledger.home.store.get(art.metadata_digest))
    except (NotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def bundle_for(ledger: Ledger, model_id: str, cache: str | Path | None = None) -> Path:
    """Unpack the proof bundle a model artefact names into ``cache`` (default: the home)."""
    art = ledger.artefact(model_id)
    digest = metadata(ledger, art).get(BUNDLE_KEY)
    if not digest:
        raise NotFoundError(f"model {art.id} names no proof bundle")
    dest = Path(cache) if cache else ledger.home.root / "pol" / str(digest).split(":")[-1]
    if (dest / "manifest.json").exists():
        return dest
    return unpack(ledger.home.store.get(str(digest)), dest)


def record_verdict(ledger: Ledger, model_id: str, report: Report) -> dict[str, Any]:
    """Store the report; if the proof was accepted, move the model to ``verified``."""
    digest = ledger.home.store.put(report.to_json())
    if not report.accepted:
        return {"report_digest": digest, "recorded": False}
    state = ledger.lifecycle.bound_state("pol", "verified")
    tx = ledger.transition(model_id, state, evidence_digest=digest)
    return {"report_digest": digest, "recorded": True, "state": state,
            "tx_hash": tx.tx_hash, "block": tx.block, "gas_used": tx.gas_used}


def claimed_manifest(ledger: Ledger, model_id: str) -> Manifest:
    return read_manifest(bundle_for(ledger, model_id))
