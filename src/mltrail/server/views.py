"""Library objects turned into the plain dicts the API returns and the pages render.

Owns presentation only: names for addresses and artefacts, a one-line summary of each
event, the moves the lifecycle lists from a state. It never reads the chain itself
(the caller passes what the ``Ledger`` returned) and never decides what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.lifecycle import Kind, Lifecycle

if TYPE_CHECKING:
    from mltrail.config import Home
    from mltrail.ledger.client import Artefact, Event, Ledger
    from mltrail.server.queries import Names

ZERO = "sha256:" + "0" * 64


class People:
    """Names of the home's identities by address (re-read when ``keys/`` changes)."""

    def __init__(self, home: Home) -> None:
        self.keys: Path = home.keys_dir
        self.home = home
        self._stamp = -1.0
        self._names: dict[str, str] = {}

    def names(self) -> dict[str, str]:
        from mltrail.identity import list_identities

        stamp = self.keys.stat().st_mtime if self.keys.exists() else 0.0
        if stamp != self._stamp:
            self._names = {i.address: i.name for i in list_identities(self.home)}
            self._stamp = stamp
        return self._names

    def name(self, address: str | None) -> str | None:
        return self.names().get(address) if address else None


def artefact(ledger: Ledger, names: Names, people: People, art: Artefact) -> dict[str, Any]:
    return {"id": art.id, "kind": art.kind, "state": art.state, "name": names.of(ledger, art),
            "owner": art.owner, "owner_name": people.name(art.owner),
            "content_digest": art.content_digest, "metadata_digest": art.metadata_digest,
            "parents": list(art.parents), "block": art.block, "timestamp": art.timestamp}


def next_states(kind: Kind, state: str) -> list[dict[str, Any]]:
    """The moves the lifecycle lists from ``state``, with the roles each needs."""
    out = []
    for target in kind.states:
        roles = kind.allowed(state, target)
        if roles:
            out.append({"state": target, "roles": list(roles)})
    return out


def lifecycle_kind(lc: Lifecycle, kind: str) -> dict[str, Any]:
    k = lc.kind(kind)
    return {"kind": k.name, "initial": k.initial, "states": list(k.states),
            "register_roles": list(k.register_roles),
            "transitions": [{"from": t.source, "to": t.target, "roles": list(t.roles)}
                            for t in k.transitions]}


def _sha(v: Any) -> str | None:
    s = "sha256:" + str(v).removeprefix("0x") if isinstance(v, str) else None
    return None if s is None or s == ZERO else s


def event(kind: Kind, ev: Event, people: People) -> dict[str, Any]:
    a = ev.args
    evidence: str | None = None
    if ev.name == "Registered":
        summary = f"registered as {kind.state_name(int(a['state']))}"
    elif ev.name == "Transitioned":
        summary = (f"{kind.state_name(int(a['from_state']))} → "
                   f"{kind.state_name(int(a['to_state']))}")
        evidence = _sha(a.get("evidence_digest"))
    elif ev.name == "Anchored":
        root = a["root"].hex() if isinstance(a["root"], bytes) else str(a["root"])
        summary = f"anchored {a['count']} records (root {root.removeprefix('0x')[:12]}…)"
        evidence = _sha(a.get("metadata_digest"))
    else:
        summary = ev.name
    return {"block": ev.block, "log_index": ev.log_index, "tx_hash": ev.tx_hash,
            "event": ev.name, "actor": ev.actor, "actor_name": people.name(ev.actor),
            "timestamp": ev.timestamp, "summary": summary, "evidence_digest": evidence}
