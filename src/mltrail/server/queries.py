"""Reads the node needs that ``Ledger`` does not offer: filtered listing, search, names, health.

Everything is read from the event index (after ``Ledger.sync``);
nothing is written except the node's record of the last ``ledger check``. Names come
from the chain (``Artefact.name``). This module never reads a blob (``access`` does) and
never decides a rule: states and kinds come from the lifecycle.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mltrail._fs import atomic_write
from mltrail.errors import InputError
from mltrail.server.tokens import node_dir

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact, Ledger

_HEX = re.compile(r"^(0x|sha256:)?[0-9a-f]{4,64}$")
MAX_LIMIT = 500


@dataclass
class Page:
    items: list[Artefact]
    total: int


class Names:
    """Artefact names: the name on chain, never one read from a metadata blob (that is
    content, for readers only: ``access``)."""

    def of(self, ledger: Ledger, art: Artefact) -> str | None:
        on_chain = getattr(art, "name", None)
        return on_chain if isinstance(on_chain, str) and on_chain else None


def ensure_indexes(ledger: Ledger) -> None:
    """Indexes for the node's filters (additive: the index stays a rebuildable cache)."""
    conn = ledger.index.conn
    conn.execute("CREATE INDEX IF NOT EXISTS node_by_kind_state ON artefacts (kind, state, block)")
    conn.execute("CREATE INDEX IF NOT EXISTS node_by_owner ON artefacts (owner, block)")


def _state_clause(ledger: Ledger, state: str, kind: str | None) -> tuple[str, list[Any]]:
    kinds = [ledger.lifecycle.kind(kind)] if kind else list(ledger.lifecycle.kinds.values())
    parts: list[str] = []
    params: list[Any] = []
    for k in kinds:
        if state in k.states:
            parts.append("(kind=? AND state=?)")
            params += [k.code, k.state_code(state)]
    if not parts:
        raise InputError(f"no kind has state {state!r}")
    return "(" + " OR ".join(parts) + ")", params


def list_artefacts(ledger: Ledger, names: Names, *, kind: str | None = None,
                   state: str | None = None, owner: str | None = None,
                   name: str | None = None, q: str | None = None,
                   limit: int = 50, offset: int = 0) -> Page:
    """Artefacts newest first, filtered by kind, state, owner, name; ``q`` searches names,
    id prefixes and content-digest prefixes."""
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InputError(f"limit must be 1..{MAX_LIMIT} and offset >= 0")
    ledger.sync()
    sql = "SELECT * FROM artefacts WHERE 1=1"
    params: list[Any] = []
    if kind:
        sql += " AND kind=?"
        params.append(ledger.lifecycle.kind(kind).code)
    if state:
        clause, extra = _state_clause(ledger, state, kind)
        sql += " AND " + clause
        params += extra
    if owner:
        from eth_utils import is_address, to_checksum_address

        if not is_address(owner):
            raise InputError(f"not an address: {owner!r}")
        sql += " AND owner=?"
        params.append(to_checksum_address(owner))
    needle = (q or "").strip().lower()
    hexq = needle if _HEX.match(needle) else None
    if hexq and not name:
        bare = hexq.removeprefix("sha256:").removeprefix("0x")
        sql += " AND (id LIKE ? OR content_digest LIKE ? OR metadata_digest LIKE ?)"
        params += ["0x" + bare + "%"] * 3
    conn = ledger.index.conn
    word = (name or ("" if hexq else needle)).lower()
    if not word:  # all in SQL: one page and a count
        total = int(conn.execute(sql.replace("SELECT *", "SELECT COUNT(*)", 1),
                                 params).fetchone()[0])
        rows = conn.execute(sql + " ORDER BY block DESC, id LIMIT ? OFFSET ?",
                            [*params, limit, offset]).fetchall()
        return Page([ledger._artefact(r) for r in rows], total)  # noqa: SLF001 - row decoder
    rows = conn.execute(sql + " ORDER BY block DESC, id", params).fetchall()
    arts = [ledger._artefact(r) for r in rows]  # noqa: SLF001 - the client's own row decoder
    arts = [a for a in arts if word in (names.of(ledger, a) or "").lower()]
    return Page(arts[offset:offset + limit], len(arts))


def counts(ledger: Ledger) -> dict[str, dict[str, int]]:
    """How many artefacts of each kind are in each state."""
    ledger.sync()
    out: dict[str, dict[str, int]] = {}
    for kcode, scode, n in ledger.index.conn.execute(
            "SELECT kind, state, COUNT(*) FROM artefacts GROUP BY kind, state"):
        k = ledger.lifecycle.kind_by_code(int(kcode))
        out.setdefault(k.name, {})[k.state_name(int(scode))] = int(n)
    return out


def health(ledger: Ledger) -> dict[str, Any]:
    """Head block, how far the index got, and the last recorded ``ledger check``."""
    head = ledger.backend.head()
    ledger.sync()
    last = ledger.index.last_block()
    s = ledger.settings
    return {"head": head, "index_block": last, "in_sync": last >= head,
            "backend": s.backend, "chain_id": s.chain_id, "registry": s.registry,
            "rpc_url": s.rpc_url, "lifecycle_digest": s.lifecycle_digest,
            "last_check": last_check(ledger)}


_CHECK_KEYS = ("ok", "checked_at", "blocks", "events", "head", "error")


def _check_doc(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields the API names, the rest of ``CheckReport.as_dict()`` under ``details``."""
    out = {k: raw[k] for k in _CHECK_KEYS if k in raw}
    out["ok"] = bool(raw.get("ok"))
    out["checked_at"] = int(raw.get("checked_at") or 0)
    out["details"] = {k: v for k, v in raw.items() if k not in _CHECK_KEYS
                      and k != "details" and isinstance(v, int | float | str | bool)}
    return out


def last_check(ledger: Ledger) -> dict[str, Any] | None:
    path = node_dir(ledger.home) / "last_check.json"
    try:
        doc = json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None
    return _check_doc(doc) if isinstance(doc, dict) else None


def run_check(ledger: Ledger) -> dict[str, Any]:
    """Run ``ledger check`` and record its result (ok or the first difference) with the time."""
    from mltrail.errors import VerificationError
    from mltrail.ledger.check import check

    try:
        result: dict[str, Any] = dict(check(ledger).as_dict())
    except VerificationError as exc:
        result = {"ok": False, "error": exc.message}
    result["checked_at"] = int(time.time())
    result = _check_doc(result)
    atomic_write(node_dir(ledger.home) / "last_check.json",
                 json.dumps(result, sort_keys=True).encode(), durable=False)
    return result


def cited_by(ledger: Ledger, digest: str) -> dict[str, Any] | None:
    """The first transition or anchor that cites ``digest`` as evidence (who, what, when)."""
    from mltrail.provenance.digest import to_bytes32

    hexd = "0x" + to_bytes32(digest).hex()
    ledger.sync()
    row = ledger.index.conn.execute(
        "SELECT block, tx_hash, name, artefact_id, actor, timestamp, args FROM events "
        "WHERE (name='Transitioned' AND args LIKE ?) OR (name='Anchored' AND args LIKE ?) "
        "ORDER BY block, log_index LIMIT 1",
        (f'%"evidence_digest": "{hexd}"%', f'%"metadata_digest": "{hexd}"%')).fetchone()
    if row is None:
        return None
    args = json.loads(row[6])
    out = {"block": row[0], "tx_hash": row[1], "event": row[2], "artefact_id": row[3],
           "actor": row[4], "timestamp": row[5]}
    if row[2] == "Transitioned":
        art_row = ledger.index.artefact_row(row[3]) or (None, 0)
        k = ledger.lifecycle.kind_by_code(int(art_row[1]))
        out["to_state"] = k.state_name(int(args["to_state"]))
        out["from_state"] = k.state_name(int(args["from_state"]))
    return out
