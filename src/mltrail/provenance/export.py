"""Exports a third party's tools read: W3C PROV (JSON, PROV-N) and in-toto bundles.

PROV (through the ``prov`` package): Entity = artefact, Activity = a captured step or a
lifecycle transition, Agent = participant (by address, labelled with the identity's name
where this home knows it). The in-toto bundle is JSON Lines, one signed DSSE envelope per
line, for every step in the artefact's ancestry: in-toto Statements (``in-toto``) or
in-toto links (``in-toto-links``, what ``in-toto-verify`` checks against a layout); an
ancestry without a captured step is refused rather than exported empty. Both cover the
artefact and all its ancestors. Reads only; never writes the ledger.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mltrail.errors import InputError, NotFoundError
from mltrail.identity import names_by_address
from mltrail.provenance import artefacts, attest

if TYPE_CHECKING:
    from prov.model import ProvDocument

    from mltrail.ledger.client import Artefact, Ledger

NS = "https://mltrail.dev/ns#"
Format = Literal["prov-json", "prov-n", "in-toto", "in-toto-links"]
FORMATS: tuple[Format, ...] = ("prov-json", "prov-n", "in-toto", "in-toto-links")


def ancestry(led: Ledger, artefact_id: str) -> list[Artefact]:
    """The artefact and all its ancestors (the artefact first)."""
    data = led.lineage(artefact_id)
    return [led.artefact(data["artefact"]["id"])] + [led.artefact(a["id"])
                                                     for a in data["ancestors"]]


def _time(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _envelope(led: Ledger, meta: dict[str, Any] | None,
              which: str = "envelope") -> dict[str, Any] | None:
    act = meta.get("activity") if meta else None
    if not isinstance(act, dict) or not isinstance(act.get(which), str):
        return None
    try:
        return attest.parse_envelope(led.home.store.get(act[which]))
    except NotFoundError:
        return None


def prov_document(led: Ledger, artefact_id: str) -> ProvDocument:
    """A W3C PROV document of the artefact's ancestry, steps and transitions."""
    from prov.model import ProvDocument

    doc = ProvDocument()
    doc.add_namespace("mlt", NS)
    arts = ancestry(led, artefact_id)
    ids = {a.id for a in arts}
    agents: set[str] = set()
    names = names_by_address(led.home)

    def agent(address: str) -> str:
        if address not in agents:
            agents.add(address)
            attrs: dict[str, Any] = {"prov:type": "prov:Person", "mlt:address": address}
            name = names.get(address.lower())
            attrs["prov:label"] = name or address
            doc.agent(f"mlt:{address}", attrs)
        return f"mlt:{address}"

    steps: set[str] = set()
    for a in arts:
        meta = artefacts.metadata(led.home.store, a) or {}
        ent = f"mlt:{a.id}"
        doc.entity(ent, {"prov:label": str(a.name or meta.get("name", a.id)), "mlt:kind": a.kind,
                         "mlt:state": a.state, "mlt:contentDigest": a.content_digest,
                         "mlt:metadataDigest": a.metadata_digest})
        doc.wasAttributedTo(ent, agent(a.owner))
        for p in a.parents:
            if p in ids:
                doc.wasDerivedFrom(ent, f"mlt:{p}")
        act = meta.get("activity")
        if isinstance(act, dict) and isinstance(act.get("statement"), str):
            step_id = "mlt:step-" + act["statement"].removeprefix("sha256:")[:32]
            if step_id not in steps:
                steps.add(step_id)
                env = _envelope(led, meta)
                times: tuple[Any, Any] = (None, None)
                if env is not None:
                    md = attest.statement_of(env)["predicate"]["runDetails"]["metadata"]
                    times = (md.get("startedOn"), md.get("finishedOn"))
                doc.activity(step_id, times[0], times[1],
                             {"prov:label": str(act.get("step")), "prov:type": "mlt:Step",
                              "mlt:statementDigest": act["statement"]})
                doc.wasAssociatedWith(step_id, agent(a.owner))
                for p in a.parents:
                    if p in ids:
                        doc.used(step_id, f"mlt:{p}")
            doc.wasGeneratedBy(ent, step_id)
        kind = led.lifecycle.kind(a.kind)
        for ev in led.history(a.id):
            if ev.name != "Transitioned":
                continue
            args = dict(ev.args)
            tid = f"mlt:transition-{ev.tx_hash.removeprefix('0x')}-{ev.log_index}"
            doc.activity(tid, _time(ev.timestamp), _time(ev.timestamp), {
                "prov:type": "mlt:Transition",
                "mlt:from": kind.state_name(int(args["from_state"])),
                "mlt:to": kind.state_name(int(args["to_state"])),
                "mlt:block": ev.block, "mlt:txHash": ev.tx_hash})
            doc.used(tid, ent)
            doc.wasAssociatedWith(tid, agent(str(ev.actor)))
    return doc


def intoto_bundle(led: Ledger, artefact_id: str,
                  links: bool = False) -> list[dict[str, Any]]:
    """Every signed statement (``links``: in-toto link) in the artefact's ancestry, one
    per step, oldest first. Steps captured before links were signed have none."""
    seen: dict[str, dict[str, Any]] = {}
    for a in reversed(ancestry(led, artefact_id)):
        env = _envelope(led, artefacts.metadata(led.home.store, a),
                        "link" if links else "envelope")
        if env is not None:
            seen.setdefault(attest.statement_digest(env), env)
    return list(seen.values())


def export(led: Ledger, artefact_id: str, fmt: Format) -> str:
    """The text of an export in ``fmt``."""
    if fmt in ("in-toto", "in-toto-links"):
        bundle = intoto_bundle(led, artefact_id, links=fmt == "in-toto-links")
        if not bundle:
            raise InputError(f"artefact {artefact_id} and its ancestors have no captured step "
                             "(nothing signed to export); capture one with 'mltrail run'")
        return "".join(json.dumps(e, sort_keys=True) + "\n" for e in bundle)
    doc = prov_document(led, artefact_id)
    if fmt == "prov-n":
        return str(doc.get_provn()) + "\n"
    return str(doc.serialize(format="json", indent=2)) + "\n"
