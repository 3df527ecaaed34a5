"""Verify an embedded chain from its stored bytes: every block re-executed from genesis.

SQLite's integrity check first (pages and the key index), then two passes over
``chain.sqlite``, neither of which trusts a stored root:

1. Every row whose key is 32 bytes is content-addressed in py-evm's layout (trie nodes of
   state, storage, transactions and receipts; contract code; headers): its key must be
   the keccak256 of its value. An in-place edit of any of them is found here.
2. Every block from 1 to the head is re-executed on a scratch in-memory state built from
   the stored genesis header; py-evm's ``import_block`` recomputes the state, transaction
   and receipt roots, gas and bloom and refuses a block whose stored header differs. The
   re-executed hash of each block must equal the stored canonical hash. Header fields
   that execution never reads (coinbase, extra data, mix hash) must be what mltrail's
   miner writes; a block's timestamp is only bound to its neighbours'.
3. Every content-addressed row the re-execution wrote (each state's and storage trie's
   nodes, code, headers, transaction and receipt tries) is in ``chain.sqlite``: a deleted
   row (which pass 1 cannot see) is found here, not later as a contract call that fails.

A consistent forgery (state edited, roots and header hashes recomputed) passes pass 1 and
fails pass 2; an edit below a root fails pass 1. Time: about 7 ms per block on a 2-core
VM (``docs/ledger.md``). This module only reads the chain; it never repairs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from eth import constants
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth_typing import BlockNumber

from mltrail.errors import VerificationError
from mltrail.ledger.backend import damaged
from mltrail.ledger.embedded import EmbeddedBackend, EmbeddedChain, check_row

# header fields execution never reads, as mltrail's embedded miner always writes them: a
# rewrite of one (rehashed, later headers re-linked, pins forged) is caught here
_MINED: dict[str, Any] = {"coinbase": constants.ZERO_ADDRESS, "extra_data": b"",
                          "mix_hash": constants.ZERO_HASH32}
_GENESIS_FIELDS = ("coinbase", "difficulty", "gas_limit", "extra_data", "nonce", "mix_hash",
                   "timestamp", "base_fee_per_gas")


def sqlite_integrity(backend: EmbeddedBackend) -> None:
    """Pass 0: SQLite's own ``integrity_check`` (every b-tree page, and each index against
    its table). A garbled page of the key index is invisible to a table scan but makes
    lookups by key answer wrongly, so the scans below cannot stand in for it."""
    try:
        rows = backend.kv.conn.execute("PRAGMA integrity_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise damaged(f"{backend.path} is unreadable ({exc})") from exc
    problems = [str(r[0]) for r in rows]
    if problems != ["ok"]:
        raise damaged(f"{backend.path} fails SQLite's integrity check: "
                      + "; ".join(problems)[:300])


def content_addressed_rows(backend: EmbeddedBackend) -> int:
    """Pass 1: every 32-byte key is the keccak of its value; returns the rows checked."""
    checked = 0
    try:
        rows = backend.kv.conn.execute("SELECT k, v FROM kv")
        for key, value in rows:
            if not isinstance(key, bytes) or not isinstance(value, bytes):
                raise damaged(f"{backend.path}: a row of the chain table is malformed")
            if len(key) != 32:
                continue
            checked += 1
            check_row(backend.path, bytes(key), bytes(value))
    except sqlite3.DatabaseError as exc:
        raise damaged(f"{backend.path} is unreadable ({exc})") from exc
    return checked


def replay(backend: EmbeddedBackend, head: int,
           advance: Callable[[int], None] | None = None) -> MemoryDB:
    """Pass 2: re-execute blocks 1..``head`` from the stored genesis on a scratch state;
    returns the scratch database."""
    chain = backend.chain
    try:
        genesis = chain.get_canonical_block_header_by_number(BlockNumber(0))
    except Exception as exc:  # noqa: BLE001 - HeaderNotFound, decoding errors
        raise damaged(f"{backend.path} has no readable genesis block") from exc
    params: dict[str, Any] = {f: getattr(genesis, f) for f in _GENESIS_FIELDS}
    scratch_db = MemoryDB()
    scratch = EmbeddedChain.from_genesis(AtomicDB(scratch_db), params, {})
    if scratch.get_canonical_head().hash != genesis.hash:
        raise damaged("the genesis block is not an mltrail genesis (its state is not empty)")
    if advance is not None:
        advance(1)
    for n in range(1, head + 1):
        stored = backend.block_hash(n)
        try:
            block = chain.get_canonical_block_by_number(BlockNumber(n))
        except Exception as exc:  # noqa: BLE001 - a missing body or trie node
            raise damaged(f"block {n} cannot be read from {backend.path} "
                          f"({type(exc).__name__})") from exc
        for field, value in _MINED.items():
            if getattr(block.header, field) != value:
                raise damaged(f"block {n}: header field {field} is "
                              f"{getattr(block.header, field)!r}, mltrail's miner writes "
                              f"{value!r} (header rewritten)")
        try:
            scratch.import_block(block)
        except Exception as exc:  # noqa: BLE001 - ValidationError with py-evm's reason
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise damaged(f"block {n} does not re-execute to its stored header: "
                          f"{reason}") from exc
        again = bytes(scratch.chaindb.get_canonical_block_hash(BlockNumber(n)))
        if again != stored:
            raise damaged(f"block {n}: re-executed hash 0x{again.hex()} is not the stored "
                          f"0x{stored.hex()}")
        if advance is not None:
            advance(1)
    return scratch_db


def deleted_rows(backend: EmbeddedBackend, scratch: MemoryDB) -> None:
    """Pass 3: every content-addressed row of the re-executed chain is stored."""
    conn = backend.kv.conn
    for key in scratch.kv_store:
        if len(key) == 32 and conn.execute("SELECT 1 FROM kv WHERE k=?",
                                           (bytes(key),)).fetchone() is None:
            raise damaged(f"{backend.path} lacks row 0x{bytes(key).hex()} that re-executing "
                          "the chain produces (a trie node, code or header was deleted)")


def head_meta(backend: EmbeddedBackend, head: int) -> None:
    """The ``meta`` table (read by the fast path) names the verified head."""
    rows = dict(backend.kv.conn.execute("SELECT key, value FROM meta").fetchall())
    want = {"head": str(head), "head_hash": "0x" + backend.block_hash(head).hex()}
    for key, value in want.items():
        if rows.get(key) != value:
            raise damaged(f"{backend.path}: meta.{key} is {rows.get(key)!r}, the chain's is "
                          f"{value!r}")


def verify_embedded(backend: EmbeddedBackend, head: int,
                    advance: Callable[[int], None] | None = None) -> int:
    """The integrity check, the three passes and the meta table; returns the rows checked."""
    try:
        sqlite_integrity(backend)
        rows = content_addressed_rows(backend)
        deleted_rows(backend, replay(backend, head, advance))
        head_meta(backend, head)
    except VerificationError:
        raise
    except sqlite3.DatabaseError as exc:
        raise damaged(f"{backend.path} is unreadable ({exc})") from exc
    return rows
