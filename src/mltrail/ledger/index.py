"""The event index: a SQLite cache of every registry event, rebuilt from the chain at will.

Rows are written from transaction receipts as they are mined and caught up from chain
logs (``sync``) before reads, so two homes on one network see each other's records.
Projections (artefacts, parents, roles) make lineage and history queries fast. The chain
stays the source of truth: ``check`` compares this index with the chain's events.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from mltrail.ledger.abi import ContractABI
from mltrail.ledger.backend import Log

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
  name TEXT NOT NULL, artefact_id TEXT, actor TEXT, timestamp INTEGER NOT NULL,
  args TEXT NOT NULL, PRIMARY KEY (block, log_index));
CREATE INDEX IF NOT EXISTS events_by_artefact ON events (artefact_id, block, log_index);
CREATE TABLE IF NOT EXISTS artefacts (
  id TEXT PRIMARY KEY, kind INTEGER NOT NULL, state INTEGER NOT NULL, owner TEXT NOT NULL,
  content_digest TEXT NOT NULL, metadata_digest TEXT NOT NULL, parents TEXT NOT NULL,
  block INTEGER NOT NULL, timestamp INTEGER NOT NULL, name TEXT);
CREATE INDEX IF NOT EXISTS artefacts_by_digest ON artefacts (content_digest, block);
CREATE INDEX IF NOT EXISTS artefacts_by_name ON artefacts (name);
CREATE TABLE IF NOT EXISTS parents (child TEXT NOT NULL, parent TEXT NOT NULL,
  PRIMARY KEY (child, parent));
CREATE INDEX IF NOT EXISTS parents_by_parent ON parents (parent);
CREATE TABLE IF NOT EXISTS roles (account TEXT PRIMARY KEY, mask TEXT NOT NULL);
"""
TABLES = ("events", "artefacts", "parents", "roles", "meta")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


@dataclass(frozen=True)
class IndexedEvent:
    block: int
    log_index: int
    tx_hash: str
    name: str
    artefact_id: str | None
    actor: str | None
    timestamp: int
    args: dict[str, Any]

    def key(self) -> tuple[Any, ...]:
        return (self.block, self.log_index, self.tx_hash, self.name, self.artefact_id,
                self.actor, self.timestamp, json.dumps(self.args, sort_keys=True))


def decode_events(abi: ContractABI, logs: Iterable[Log]) -> list[IndexedEvent]:
    out = []
    for log in logs:
        name, raw = abi.decode_log(log)
        args = {k: _jsonable(v) for k, v in raw.items()}
        artefact = args.pop("id", None)
        actor = args.pop("actor", None)
        out.append(IndexedEvent(log.block, log.log_index, log.tx_hash, name, artefact, actor,
                                log.timestamp, args))
    return out


class EventIndex:
    """SQLite index at ``path``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost tail is re-synced
        cols = [r[1] for r in self.conn.execute("PRAGMA table_info(artefacts)")]
        if cols and "name" not in cols:  # an index of registry v1: a cache, rebuilt from chain
            for table in TABLES:
                self.conn.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - fixed names
        self.conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def last_block(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='last_block'").fetchone()
        return int(row[0]) if row else 0

    def last_hash(self) -> str | None:
        """``0x`` hash of block ``last_block`` as it was when indexed (None if unknown)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='last_hash'").fetchone()
        return str(row[0]) if row else None

    def apply(self, events: list[IndexedEvent], up_to_block: int,
              up_to_hash: bytes | None = None) -> None:
        """Add ``events`` (all from blocks after ``last_block``) and advance to ``up_to_block``."""
        with self._tx() as db:
            last = int((db.execute("SELECT value FROM meta WHERE key='last_block'").fetchone()
                        or [0])[0])
            if up_to_block <= last:
                return
            for ev in events:
                if ev.block <= last:
                    continue
                db.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
                           (ev.block, ev.log_index, ev.tx_hash, ev.name, ev.artefact_id,
                            ev.actor, ev.timestamp, json.dumps(ev.args, sort_keys=True)))
                self._project(db, ev)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(up_to_block),))
            if up_to_hash:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_hash', ?)",
                           ("0x" + up_to_hash.hex(),))
            else:
                db.execute("DELETE FROM meta WHERE key='last_hash'")

    @staticmethod
    def _project(db: sqlite3.Connection, ev: IndexedEvent) -> None:
        a = ev.args
        if ev.name == "Registered":
            db.execute("INSERT OR REPLACE INTO artefacts VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (ev.artefact_id, a["kind"], a["state"], ev.actor, a["content_digest"],
                        a["metadata_digest"], json.dumps(a["parents"]), ev.block, ev.timestamp,
                        a.get("name") or None))
            db.executemany("INSERT OR IGNORE INTO parents VALUES (?,?)",
                           [(ev.artefact_id, p) for p in a["parents"]])
        elif ev.name == "Transitioned":
            db.execute("UPDATE artefacts SET state=? WHERE id=?", (a["to_state"], ev.artefact_id))
        elif ev.name == "RolesChanged":
            db.execute("INSERT OR REPLACE INTO roles VALUES (?,?)", (a["account"], str(a["roles"])))

    def clear(self) -> None:
        with self._tx() as db:
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def events(self, artefact_id: str | None = None, name: str | None = None) -> list[IndexedEvent]:
        sql, params = "SELECT * FROM events WHERE 1=1", []
        if artefact_id is not None:
            sql += " AND artefact_id=?"
            params.append(artefact_id)
        if name is not None:
            sql += " AND name=?"
            params.append(name)
        rows = self.conn.execute(sql + " ORDER BY block, log_index", params).fetchall()
        return [IndexedEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))
                for r in rows]

    def artefact_row(self, artefact_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(
            "SELECT * FROM artefacts WHERE id=?", (artefact_id,)).fetchone()
        return row

    def by_digest(self, content_digest: str) -> list[tuple[Any, ...]]:
        return self.conn.execute("SELECT * FROM artefacts WHERE content_digest=? ORDER BY block",
                                 (content_digest,)).fetchall()

    def by_owner(self, owner: str, kind: int) -> list[tuple[Any, ...]]:
        return self.conn.execute("SELECT * FROM artefacts WHERE lower(owner)=? AND kind=? "
                                 "ORDER BY block", (owner.lower(), kind)).fetchall()

    def resolve_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM artefacts WHERE id >= ? AND id < ? LIMIT 3",
            (prefix, prefix + "g"))]

    def by_name(self, name: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM artefacts WHERE name=? ORDER BY block LIMIT 10", (name,))]

    def table_rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of ``table`` (one of TABLES), sorted: what ``check`` compares."""
        if table not in TABLES:
            raise ValueError(table)
        return sorted(self.conn.execute(f"SELECT * FROM {table}").fetchall(),  # noqa: S608
                      key=repr)

    def parents_of(self, artefact_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT parent FROM parents WHERE child=?", (artefact_id,))]

    def children_of(self, artefact_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT child FROM parents WHERE parent=?", (artefact_id,))]

    def roles(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.conn.execute("SELECT account, mask FROM roles")}

    def all_artefacts(self, limit: int = 1000, kind: int | None = None) -> list[tuple[Any, ...]]:
        if kind is None:
            return self.conn.execute("SELECT * FROM artefacts ORDER BY block DESC LIMIT ?",
                                     (limit,)).fetchall()
        return self.conn.execute("SELECT * FROM artefacts WHERE kind=? ORDER BY block DESC "
                                 "LIMIT ?", (kind, limit)).fetchall()

    def close(self) -> None:
        self.conn.close()
