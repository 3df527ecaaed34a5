"""Fast reads: a home's settings checked, and queries answered from the event index alone.

Owns two things. :func:`load_home` opens a home's files defensively (config, lifecycle,
chain file, index file), turning every kind of damage into one line. :class:`IndexReader`
answers ``show``, ``history``, ``lineage``, ``list`` and ``roles list`` from the SQLite
index when the index is current with the chain's head, which it learns without py-evm:
from the chain database's ``meta`` table (``head``, ``head_hash``; py-evm's own canonical
head key for a chain written before that table existed), or with one batched JSON-RPC
call (httpx) for a node.

It must never write anything, never import py-evm, web3 or eth-account, and never decide
a rule. When the index is behind or anything is unusual, :meth:`IndexReader.open` answers
None and the caller falls back to the full :class:`~mltrail.ledger.client.Ledger` (which
syncs the index from the chain and checks the chain against the home's pins).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from mltrail._fs import regular_file
from mltrail.config import Home
from mltrail.errors import (
    InputError,
    LedgerError,
    MltrailError,
    NotFoundError,
    VerificationError,
)
from mltrail.lifecycle import Lifecycle, parse

if TYPE_CHECKING:
    from mltrail.config_models import Settings

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEX = frozenset("0123456789abcdef")
# py-evm's SchemaV1 keys (eth/db/schema.py), for chains written before the meta table
_PYEVM_HEAD = b"v1:canonical_head_hash"
_PYEVM_NUMBER = b"block-number-to-hash:%d"


def _damaged_home(what: str) -> InputError:
    return InputError(f"home damaged: {what}")


def _chain_damaged(what: str) -> VerificationError:
    """The chain file's damage, worded as the ledger client words it (exit 1)."""
    return VerificationError(f"ledger damaged: {what}")


def _sqlite_file(path: Path, what: str, required: bool) -> bool:
    """Whether ``path`` is a SQLite file; a missing one is fine unless ``required``.

    A damaged chain file is ``ledger damaged`` (exit 1, as the client reports it); a
    damaged index is ``home damaged`` (exit 2: the index is a cache, rebuilt from the chain).
    """
    def fail(message: str) -> MltrailError:
        if what == "chain file":
            return _chain_damaged(message)
        return InputError(f"home damaged: {message}",
                          hint=f"remove {path}: the next command rebuilds it from the chain")

    if not path.exists() and not path.is_symlink():
        if required:
            raise fail(f"{what} {path} is missing")
        return False
    try:
        regular_file(path, what)
        with open(path, "rb") as fh:
            magic = fh.read(16)
    except MltrailError as exc:
        raise fail(f"{exc.message}") from exc
    except OSError as exc:
        raise fail(f"cannot read {what} {path}: {exc.strerror}") from exc
    if magic != _SQLITE_MAGIC:
        raise fail(f"{what} {path} is unreadable (not a SQLite database"
                   + (", empty)" if not magic else ")"))
    return True


@dataclass(frozen=True)
class SettingsView:
    """``config.json`` read without pydantic (the fast path): the fields of
    :class:`~mltrail.config_models.Settings`, under the same names."""

    backend: str
    rpc_url: str | None
    chain_id: int
    registry: str
    identity: str
    lifecycle_digest: str


if TYPE_CHECKING:
    AnySettings: TypeAlias = Settings | SettingsView
_SETTINGS_FIELDS = frozenset(("backend", "rpc_url", "chain_id", "registry", "identity",
                              "lifecycle_digest"))
_MAX_CONFIG = 64 * 1024


def plain_settings(home: Home) -> SettingsView | None:
    """``config.json`` read with :mod:`json` alone when it is plainly well formed: known
    keys only, the required ones present, each of exactly its type. Anything else (even
    what pydantic's lax mode would coerce) is None, and :meth:`Home.settings` decides and
    words the error, so this never accepts what the pydantic model refuses."""
    try:
        with open(home.config_path, "rb") as fh:
            raw = fh.read(_MAX_CONFIG + 1)
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    if len(raw) > _MAX_CONFIG or not isinstance(doc, dict) or not set(doc) <= _SETTINGS_FIELDS:
        return None
    backend, rpc_url = doc.get("backend", "embedded"), doc.get("rpc_url")
    strings = [doc.get(k) for k in ("registry", "identity", "lifecycle_digest")]
    if backend not in ("embedded", "rpc") or not (rpc_url is None or type(rpc_url) is str) \
            or type(doc.get("chain_id")) is not int or any(type(v) is not str for v in strings):
        return None
    return SettingsView(backend, rpc_url, doc["chain_id"], *(str(v) for v in strings))


def load_settings(home: Home) -> AnySettings:
    """A home's ``config.json``, checked (a folder, garbage or a bad address is one line)."""
    if home.root.exists() and not home.root.is_dir():
        raise InputError(f"{home.root} is not a folder, so not an mltrail home")
    if not home.config_path.exists() and not home.config_path.is_symlink():
        raise NotFoundError(f"no mltrail home at {home.root}", hint="run 'mltrail init'")
    try:
        regular_file(home.config_path, "config")
        settings: AnySettings = plain_settings(home) or home.settings()
    except MltrailError as exc:
        raise _damaged_home(exc.message) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged_home(f"cannot read {home.config_path}: {exc}") from exc
    if not _ADDRESS.match(settings.registry):
        raise _damaged_home(f"{home.config_path}: registry {settings.registry!r} is not an "
                            "address")
    if settings.backend == "rpc" and not re.match(r"^https?://", settings.rpc_url or ""):
        raise _damaged_home(f"{home.config_path}: rpc backend without an http(s) rpc_url")
    return settings


def load_home(home: Home) -> tuple[AnySettings, Lifecycle]:
    """A home's settings and lifecycle, after checking its files are what they should be.

    Damage (a folder where a file belongs, garbage, a bad address, an edited lifecycle,
    a missing or non-SQLite chain file) is one line: never an internal error.
    """
    settings = load_settings(home)
    try:
        regular_file(home.lifecycle_path, "lifecycle")
        lifecycle = parse(home.lifecycle_path.read_bytes(), str(home.lifecycle_path))
    except NotFoundError as exc:
        raise _damaged_home(f"{home.lifecycle_path} is missing") from exc
    except InputError as exc:
        if exc.message.startswith("lifecycle "):  # a folder, a FIFO, a dangling link
            raise _damaged_home(exc.message) from exc
        raise
    except OSError as exc:
        raise _damaged_home(f"cannot read {home.lifecycle_path}: {exc.strerror}") from exc
    if lifecycle.digest != settings.lifecycle_digest:
        raise LedgerError(f"{home.lifecycle_path} was edited: its digest is not the one "
                          "published on chain")
    for folder in (home.keys_dir, home.root / "objects"):
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise _damaged_home(f"{folder} is not a folder")
    if settings.backend == "embedded":
        _sqlite_file(home.chain_db, "chain file", required=True)
    _sqlite_file(home.index_db, "index file", required=False)
    return settings, lifecycle


@dataclass(frozen=True)
class Head:
    """The chain's head as read without an EVM."""

    number: int
    hash: str | None  # "0x..." when known


def _connect_ro(path: Path) -> sqlite3.Connection:
    """An existing SQLite file, opened without creating it (WAL readers need write access
    to the ``-shm`` file, so this is ``mode=rw``; nothing is ever written through it)."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    return conn


def embedded_head(chain_db: Path) -> Head | None:
    """The head of an embedded chain, from its database directly (None if unreadable)."""
    try:
        conn = _connect_ro(chain_db)
    except sqlite3.Error:
        return None
    try:
        try:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                     "('head', 'head_hash')").fetchall())
        except sqlite3.OperationalError:  # a chain written before the meta table
            rows = {}
        if "head" in rows:
            return Head(int(rows["head"]), rows.get("head_hash"))
        row = conn.execute("SELECT v FROM kv WHERE k=?", (_PYEVM_HEAD,)).fetchone()
        if row is None:
            return None
        head_hash = bytes(row[0])
        # the number is inside the RLP header; walk down from a guess instead of decoding:
        # the caller only needs to know whether the head is block ``n`` (see is_block)
        return Head(-1, "0x" + head_hash.hex())
    except (sqlite3.Error, ValueError):
        return None
    finally:
        conn.close()


def _pyevm_is_block(chain_db: Path, number: int, head_hash: str) -> bool:
    """Whether py-evm's canonical block ``number`` has hash ``head_hash``."""
    try:
        conn = _connect_ro(chain_db)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT v FROM kv WHERE k=?", (_PYEVM_NUMBER % number,)).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    # the value is rlp(hash32): 0xa0 followed by the 32 bytes
    return row is not None and bytes(row[0]) == b"\xa0" + bytes.fromhex(head_hash[2:])


def rpc_head(url: str, chain_id: int, timeout: float = 5.0) -> Head | None:
    """The head of a JSON-RPC node, in one batched request (None if unreachable or odd)."""
    import httpx

    batch = [{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
             {"jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber",
              "params": ["latest", False]}]
    try:
        reply = httpx.post(url, json=batch, timeout=timeout).json()
        by_id = {r["id"]: r.get("result") for r in reply}
        if int(by_id[1], 16) != chain_id:
            return None
        block = by_id[2]
        return Head(int(block["number"], 16), str(block["hash"]).lower())
    except Exception:  # noqa: BLE001 - any failure: let the full client report it
        return None


def iso_time(timestamp: int) -> str:
    """ISO 8601 in UTC, to the second: ``2026-11-25T13:45:00Z``."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(hex32: str) -> str:
    return "sha256:" + str(hex32).removeprefix("0x")


def lineage_depths(root: str, step: Callable[[str], list[str]]) -> dict[str, int]:
    """Every artefact reachable from ``root`` by ``step`` (parents or children), with its
    distance; breadth first, so each gets its shortest depth. Shared by Ledger and reader."""
    seen: dict[str, int] = {}
    frontier, depth = [root], 0
    while frontier:
        depth += 1
        nxt = []
        for node in frontier:
            for other in step(node):
                if other not in seen and other != root:
                    seen[other] = depth
                    nxt.append(other)
        frontier = nxt
    return seen


def looks_like_id(text: str) -> bool:
    """Hex of 6 digits or more (``0x`` optional): taken as an id or id prefix, not a name."""
    ident = text.lower().removeprefix("0x")
    return len(ident) >= 6 and set(ident) <= _HEX


@dataclass(frozen=True)
class ArtefactView:
    """An artefact as the index shows it; timestamps are ISO 8601 UTC."""

    id: str
    name: str | None
    kind: str
    state: str
    owner: str
    content_digest: str
    parents: list[str]
    metadata_digest: str
    block: int
    timestamp: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IndexReader:
    """Read-only queries over a home's event index (open with :meth:`open`)."""

    def __init__(self, home: Home, settings: AnySettings, lifecycle: Lifecycle,
                 conn: sqlite3.Connection, head: int) -> None:
        self.home, self.settings, self.lifecycle, self.conn = home, settings, lifecycle, conn
        self.head = head
        cols = {r[1] for r in conn.execute("PRAGMA table_info(artefacts)")}
        if not cols:
            raise sqlite3.OperationalError("no artefacts table")
        self._name_column = "name" in cols
        self._names: dict[str, str | None] = {}

    @classmethod
    def open(cls, home: Home, settings: AnySettings | None = None,
             lifecycle: Lifecycle | None = None,
             require_current: bool = True) -> IndexReader | None:
        """A reader if the index is current with the chain's head, else None.

        ``require_current=False`` skips the head check (the caller has just synced).
        """
        if settings is None or lifecycle is None:
            settings, lifecycle = load_home(home)
        if not home.index_db.is_file():
            return None
        try:
            conn = _connect_ro(home.index_db)
        except sqlite3.Error:
            return None
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            last = int(meta.get("last_block", -1))
            if last < 0 or (require_current and
                            not cls._current(home, settings, last, meta.get("last_hash"))):
                conn.close()
                return None
            return cls(home, settings, lifecycle, conn, last)
        except (sqlite3.Error, ValueError):
            conn.close()
            return None

    @staticmethod
    def _current(home: Home, settings: AnySettings, last: int, last_hash: str | None) -> bool:
        if settings.backend == "rpc":
            head = rpc_head(settings.rpc_url or "", settings.chain_id)
        else:
            head = embedded_head(home.chain_db)
        if head is None or head.hash is None:
            return False
        if head.number < 0:  # py-evm keys only: is block ``last`` the head?
            if not _pyevm_is_block(home.chain_db, last, head.hash):
                return False
        elif head.number != last:
            return False
        return last_hash is None or last_hash.lower() == head.hash.lower()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- names ------------------------------------------------------------------------------

    def _name_of(self, artefact_id: str, row_name: str | None,
                 metadata_digest: str) -> str | None:
        if self._name_column:
            return row_name or None
        if artefact_id not in self._names:  # an index from before names went on chain:
            self._names[artefact_id] = self._local_name(metadata_digest)  # registrant's store
        return self._names[artefact_id]

    def _local_name(self, metadata_digest: str) -> str | None:
        try:
            doc = json.loads(self.home.store.get(_sha(metadata_digest)))
        except (MltrailError, ValueError, OSError):
            return None
        name = doc.get("name") if isinstance(doc, dict) else None
        return name if isinstance(name, str) else None

    # -- queries ----------------------------------------------------------------------------

    _COLS = ("id, kind, state, owner, content_digest, metadata_digest, parents, block, "
             "timestamp")

    def _select(self) -> str:
        return f"SELECT {self._COLS}{', name' if self._name_column else ', NULL'} FROM artefacts"

    def _view(self, row: tuple[Any, ...]) -> ArtefactView:
        k = self.lifecycle.kind_by_code(int(row[1]))
        return ArtefactView(row[0], self._name_of(row[0], row[9], row[5]), k.name,
                            k.state_name(int(row[2])), row[3], _sha(row[4]),
                            list(json.loads(row[6])), _sha(row[5]), int(row[7]),
                            iso_time(int(row[8])))

    def resolve(self, ref: str) -> str:
        """Full id from an id, a unique id prefix (6 hex digits or more), or a unique name."""
        text = ref.strip()
        if not text:
            raise InputError("an artefact id or name is required")
        if looks_like_id(text) or text.lower().startswith("0x"):
            ident = text.lower() if text.lower().startswith("0x") else "0x" + text.lower()
            if not set(ident[2:]) <= _HEX:
                raise InputError(f"not an artefact id: {ref!r}")
            if len(ident) > 66:
                raise InputError(f"not an artefact id: {ref!r} (too long)")
            if len(ident) < 8:
                raise InputError(f"artefact id prefix {ref!r} too short (6 hex digits min)")
            found = [r[0] for r in self.conn.execute(
                "SELECT id FROM artefacts WHERE id >= ? AND id < ? LIMIT 3",
                (ident, ident + "g"))]
            if len(found) > 1:
                raise InputError(f"ambiguous artefact id prefix {ref}")
            if found:
                return str(found[0])
        named = self._by_name(text)
        if len(named) > 1:
            raise InputError(f"ambiguous artefact name {text!r}: {', '.join(named)}; use an id")
        if not named:
            raise NotFoundError(f"unknown artefact {ref}")
        return named[0]

    def _by_name(self, name: str) -> list[str]:
        if self._name_column:
            return [str(r[0]) for r in self.conn.execute(
                "SELECT id FROM artefacts WHERE name=? ORDER BY block LIMIT 10", (name,))]
        rows = self.conn.execute("SELECT id, metadata_digest FROM artefacts ORDER BY block")
        return [str(i) for i, md in rows if self._name_of(i, None, md) == name][:10]

    def artefact(self, ref: str) -> ArtefactView:
        row = self.conn.execute(self._select() + " WHERE id=?", (self.resolve(ref),)).fetchone()
        return self._view(row)

    def artefacts(self, limit: int = 1000, kind: str | None = None) -> list[ArtefactView]:
        """Artefacts, newest first, optionally of one kind."""
        if kind is None:
            rows = self.conn.execute(self._select() + " ORDER BY block DESC LIMIT ?", (limit,))
        else:
            code = self.lifecycle.kind(kind).code
            rows = self.conn.execute(self._select() + " WHERE kind=? ORDER BY block DESC "
                                     "LIMIT ?", (code, limit))
        return [self._view(r) for r in rows.fetchall()]

    def history(self, ref: str) -> tuple[ArtefactView, list[dict[str, Any]]]:
        """An artefact and its events, oldest first (block, log index, tx, name, actor, args)."""
        art = self.artefact(ref)
        rows = self.conn.execute("SELECT block, log_index, tx_hash, name, actor, timestamp, args "
                                 "FROM events WHERE artefact_id=? ORDER BY block, log_index",
                                 (art.id,)).fetchall()
        return art, [{"block": int(r[0]), "log_index": int(r[1]), "tx_hash": r[2],
                      "event": r[3], "actor": r[4], "timestamp": iso_time(int(r[5])),
                      "args": json.loads(r[6])} for r in rows]

    def lineage(self, ref: str) -> dict[str, Any]:
        """Ancestors and descendants of an artefact (transitively), each with its depth."""
        root = self.resolve(ref)

        def walk(step: Callable[[str], list[str]]) -> list[dict[str, Any]]:
            out = []
            for i, d in lineage_depths(root, step).items():
                row = self.conn.execute(self._select() + " WHERE id=?", (i,)).fetchone()
                if row is not None:
                    out.append({"depth": d, **self._view(row).as_dict()})
            return out

        def parents(node: str) -> list[str]:
            return [str(r[0]) for r in self.conn.execute(
                "SELECT parent FROM parents WHERE child=?", (node,))]

        def children(node: str) -> list[str]:
            return [str(r[0]) for r in self.conn.execute(
                "SELECT child FROM parents WHERE parent=?", (node,))]

        return {"artefact": self.artefact(root).as_dict(), "ancestors": walk(parents),
                "descendants": walk(children)}

    def roles(self) -> dict[str, int]:
        """Non-zero role masks by address, as the index holds them."""
        return {str(a): int(m) for a, m in self.conn.execute("SELECT account, mask FROM roles")
                if int(m)}
