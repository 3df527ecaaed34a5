"""Proof-of-Learning on the ledger: anchors, publishing a proof, recording a verdict.

Owns the few ledger calls PoL makes, all through :class:`~mltrail.ledger.client.Ledger`:

* :func:`start_training` — the start anchor made before step 0, whose block fixes the
  init seed (:func:`mltrail.pol.challenge.init_seed_from`);
* :func:`ledger_anchor` — the recorder's anchor callback (epoch roots on the training
  dataset's artefact, with the manifest header digest as metadata);
* :func:`public_challenge` — the verifier's seed from a block mined after the model's
  publication and the verifier's secret, the earlier rejections of the same weights and
  every other publication of them (each counts towards the miss rate);
* :func:`publish_model` — the packed bundle into the content store, the model artefact
  registered with the final weights' digest and moved to ``trained``;
* :func:`record_verdict` — the report's digest is the evidence of a move to the bound
  ``verified`` state (accepted, with a ledger-fixed init unless allowed otherwise) or to
  the bound ``rejected`` state (rejected), so a re-submission is visible to everyone;
* :func:`bundle_for` — fetch a model's proof bundle back from the store.

Rules (who may do what) are the contract's; this module only sends and reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError, LedgerError, NotFoundError, RefusedError
from mltrail.pol.bundle import Anchor, InitOrigin, Manifest, pack, read_manifest, unpack
from mltrail.pol.challenge import DEFAULT_DELAY, challenge_seed, init_seed_from, start_root
from mltrail.pol.report import Challenge, Report
from mltrail.pol.writer import AnchorFn

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


def block_hash(ledger: Ledger, number: int) -> bytes:
    """The hash of block ``number`` (checked against its header where the backend can)."""
    blocks = list(ledger.backend.blocks(number, number))
    if not blocks or not blocks[0].hash_ok:
        raise LedgerError(f"block {number} cannot be read or its hash does not match")
    return blocks[0].hash


def start_training(ledger: Ledger, dataset_id: str, *, data_digest: str, data_seed: int,
                   arch: dict[str, Any], scheme: str = "uniform_fan_in"
                   ) -> tuple[int, InitOrigin]:
    """Anchor the start of a training run on ``dataset_id`` before step 0; returns the init
    seed the anchor's block fixes and the origin to commit in the proof header."""
    aid = ledger.resolve(dataset_id)
    root = start_root(data_digest, ledger.address, data_seed, arch, scheme)
    tx = ledger.anchor(aid, root, 0)
    seed = init_seed_from(block_hash(ledger, tx.block), root)
    return seed, InitOrigin(artefact_id=aid, block=tx.block, tx_hash=tx.tx_hash, root=root.hex())


def public_challenge(ledger: Ledger, model_id: str, *, delay: int = DEFAULT_DELAY,
                     secret: bytes | None = None, by_prover: bool = True
                     ) -> tuple[Challenge, list[str], list[str]]:
    """The challenge for a published proof; the earlier rejections that count against
    it: of the same weights, and (``by_prover``) of any model its publisher registered
    before it; and every other publication of the same weights (any state, any time).

    The seed comes from the hash of block ``registration + delay`` (refused until that
    block exists), the model id, its bundle digest and the verifier ``secret`` (the
    workflow draws a fresh one unless told otherwise, so the prover cannot know the
    challenge before the verdict; ``docs/pol-format.md``, "The challenge").
    """
    if delay < 1:
        raise InputError("--delay must be at least 1 block after publication")
    art = ledger.artefact(model_id)
    bundle = metadata(ledger, art).get(BUNDLE_KEY)
    if not bundle:
        raise NotFoundError(f"model {art.id} names no proof bundle")
    target = art.block + delay
    head = ledger.backend.head()
    if head < target:
        raise RefusedError(f"the public challenge for {art.id[:10]}… is fixed by block "
                           f"{target}, not mined yet (head {head}); verify after "
                           f"{target - head} more block(s)")
    bh = block_hash(ledger, target)
    ch = Challenge(seed=challenge_seed(art.id, str(bundle), bh, secret), source="ledger",
                   model_id=art.id, bundle_digest=str(bundle), block=target,
                   block_hash="0x" + bh.hex(), secret=secret.hex() if secret else None)
    rejected = ledger.lifecycle.bound_state("pol", "rejected")
    same = [a for a in ledger.find_by_digest(art.content_digest)
            if a.id != art.id and a.kind == art.kind]
    prior = [a.id for a in same if a.state == rejected and a.block < art.block]
    if by_prover:  # a forger who re-forges other weights after a rejection pays for it too
        prior += [a.id for a in ledger.find_by_owner(art.owner, art.kind)
                  if a.state == rejected and a.block < art.block and a.id not in prior]
    return ch, prior, [a.id for a in same]


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
        data = json.loads(ledger.blob(art.metadata_digest, art.owner))
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
    return unpack(ledger.blob(str(digest), art.owner), dest)


def record_verdict(ledger: Ledger, model_id: str, report: Report, *,
                   allow_unseeded: bool = False, accept_trusted_code: bool = False
                   ) -> dict[str, Any]:
    """Store the report and record the verdict with its digest as evidence: a rejected
    proof moves the model to the bound ``rejected`` state; an accepted one to ``verified``
    if its init seed was fixed by the ledger (or ``allow_unseeded``), else nothing moves."""
    digest = ledger.home.store.put(report.to_json())
    if report.accepted and report.trusted_code and not accept_trusted_code:
        return {"report_digest": digest, "recorded": False,
                "why": "accepted in trusted-code mode (the prover's Python ran): not moved "
                       "to verified without --accept-trusted-code"}
    if report.accepted and report.init_origin != "ledger" and not allow_unseeded:
        return {"report_digest": digest, "recorded": False,
                "why": f"accepted, {report.qualifier}: not moved to verified without "
                       "--allow-unseeded"}
    key = "verified" if report.accepted else "rejected"
    state = ledger.lifecycle.bound_state("pol", key)
    tx = ledger.transition(model_id, state, evidence_digest=digest)
    return {"report_digest": digest, "recorded": True, "state": state,
            "tx_hash": tx.tx_hash, "block": tx.block, "gas_used": tx.gas_used}


def claimed_manifest(ledger: Ledger, model_id: str) -> Manifest:
    return read_manifest(bundle_for(ledger, model_id))
