"""Forgers that rewrite an embedded chain's blocks with py-evm, as a cheater who owns the home.

Each edits ``chain.sqlite`` below its roots or consistently: state or receipts edited in
a block in the middle with every later header rehashed and re-linked, header fields that
execution never reads, history truncated or rewritten with keys found in the home, the
chain file replaced. By seed, the forger also rewrites ``pins.json`` (and ``config.json``)
to match: what a pin can defend against is measured, not assumed. A forgery the docs say
``check`` cannot catch is marked ``limit``. The index is wiped afterwards (a cache the
next command rebuilds, so the forgery is mirrored into it). Registered into
:data:`mltrail.testing.ledger_forgeries.FORGERS`; tests and benchmarks only.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlp
from eth.db.schema import SchemaV1
from eth.db.trie import make_trie_root_and_nodes
from eth.rlp.logs import Log
from eth_abi import decode, encode
from eth_hash.auto import keccak
from eth_typing import BlockNumber
from eth_utils import to_canonical_address

from mltrail.config import Home
from mltrail.ledger.abi import ContractABI, _type
from mltrail.ledger.contracts import load
from mltrail.ledger.embedded import EmbeddedBackend
from mltrail.ledger.trust import new_pins
from mltrail.testing.ledger_forgeries import PASSWORD, Forged, _connect, _lifecycle, forger

_STATIC = ("bytes32", "uint256", "uint8", "address")


def _backend(home: Home) -> EmbeddedBackend:
    return EmbeddedBackend(home.chain_db, home.lock_path)


def _registry(home: Home) -> str:
    return home.settings().registry


def _artefacts(home: Home) -> list[tuple[str, int, int, str, int]]:
    """(id, kind, state, owner, block) of every artefact, from the index before it is wiped."""
    db = _connect(home.index_db)
    try:
        return [(str(r[0]), int(r[1]), int(r[2]), str(r[3]), int(r[4])) for r in db.execute(
            "SELECT id, kind, state, owner, block FROM artefacts ORDER BY block")]
    finally:
        db.close()


def _events(home: Home) -> list[tuple[int, str]]:
    db = _connect(home.index_db)
    try:
        return [(int(b), str(n)) for b, n in db.execute("SELECT block, name FROM events")]
    finally:
        db.close()


def _wipe_index(home: Home) -> None:
    db = _connect(home.index_db)
    try:
        for table in ("events", "artefacts", "parents", "roles", "meta"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    finally:
        db.close()


def _forge_pins(home: Home, backend: EmbeddedBackend) -> None:
    pins = new_pins(backend, _registry(home))
    home.save_pins(pins.model_copy(update={"verified_head": pins.head}))


def _slot(backend: EmbeddedBackend, registry: str, aid: str, owner: str,
          header: Any) -> tuple[int, int]:
    """(storage key, packed value) of ``_artefacts[aid]`` in the state after ``header``."""
    state = backend.chain.get_vm(header).state
    addr = to_canonical_address(registry)
    for slot in range(64):
        key = int.from_bytes(keccak(slot.to_bytes(32, "big") + bytes.fromhex(aid[2:])), "big")
        value = state.get_storage(addr, key)
        if value and value >> 96 == int(owner, 16):
            return key, value
    raise LookupError(f"no storage slot for artefact {aid}")


def _relink(backend: EmbeddedBackend, forged: Any, head: int, shift: int = 0) -> bytes:
    """Store ``forged`` as canonical block ``n`` and rehash every later header onto it, moving
    the canonical pointers, scores and the ``meta`` head along (later timestamps moved by
    ``shift`` seconds); returns the new head hash."""
    chaindb, kv = backend.chain.chaindb, backend.kv  # (backend.head() would drop pending)
    n = int(forged.block_number)
    old = [chaindb.get_canonical_block_header_by_number(BlockNumber(i)) for i in range(n, head + 1)]
    new, prev = [forged], forged
    for h in old[1:]:
        prev = h.copy(parent_hash=prev.hash, timestamp=h.timestamp + shift)
        new.append(prev)
    for o, h in zip(old, new, strict=True):
        kv[h.hash] = rlp.encode(h)
        kv[SchemaV1.make_block_number_to_hash_lookup_key(h.block_number)] = rlp.encode(
            h.hash, sedes=rlp.sedes.binary)
        kv[SchemaV1.make_block_hash_to_score_lookup_key(h.hash)] = kv[
            SchemaV1.make_block_hash_to_score_lookup_key(o.hash)]
    kv[SchemaV1.make_canonical_head_hash_lookup_key()] = prev.hash
    kv.commit({"head": str(head), "head_hash": "0x" + bytes(prev.hash).hex()})
    kv.cache.clear()
    return bytes(prev.hash)


def _finish(home: Home, backend: EmbeddedBackend, rng: random.Random) -> bool:
    """Wipe the index; by seed, forge the pins to match. Returns whether pins were forged."""
    forge = rng.random() < 0.5
    if forge:
        _forge_pins(home, backend)
    backend.close()
    _wipe_index(home)
    return forge


def _pins(forged: bool) -> str:
    return ", pins.json forged" if forged else ", pins.json kept"


def _state_forgery(home: Home, rng: random.Random, at_head: bool) -> tuple[str, bool]:
    lc = _lifecycle(home)
    arts = _artefacts(home)
    backend = _backend(home)
    head = backend.head()
    k = head if at_head else rng.randint(min(a[4] for a in arts), head)
    aid, code, state, owner, _ = rng.choice([a for a in arts if a[4] <= k])
    kind = lc.kind_by_code(code)
    header = backend.chain.get_canonical_block_header_by_number(BlockNumber(k))
    key, value = _slot(backend, _registry(home), aid, owner, header)
    now = kind.state_name(value & 255)
    allowed = [t for t in kind.states if kind.allowed(now, t)] or [
        t for t in kind.states if t != now]
    target = rng.choice(allowed)
    st = backend.chain.get_vm(header).state
    st.set_storage(to_canonical_address(_registry(home)), key,
                   value & ~255 | kind.state_code(target))
    st.persist()
    _relink(backend, header.copy(state_root=st.state_root), head)
    forged = _finish(home, backend, rng)
    return f"block {k}/{head}: {kind.name} {aid[:10]} {now} -> {target}{_pins(forged)}", forged


@forger("head_state")
def head_state(home: Home, rng: random.Random) -> Forged:
    """The head state edited (an artefact moved to a state its lifecycle allows), the state
    root recomputed, the head header rehashed and every canonical pointer moved."""
    what, _ = _state_forgery(home, rng, at_head=True)
    return Forged("head_state", what, "chain")


@forger("middle_state")
def middle_state(home: Home, rng: random.Random) -> Forged:
    """As ``head_state`` in a block in the middle, with every later header re-linked."""
    what, _ = _state_forgery(home, rng, at_head=False)
    return Forged("middle_state", what, "chain")


@forger("receipt_rehashed")
def receipt_rehashed(home: Home, rng: random.Random) -> Forged:
    """One argument of an old event rewritten in its receipt, the receipt root recomputed,
    the header and every later one rehashed; the index rebuilt to mirror it."""
    abi = ContractABI(load("ArtefactRegistry").abi)
    backend = _backend(home)
    head = backend.head()
    chaindb = backend.chain.chaindb
    registry = to_canonical_address(_registry(home))
    spots = []
    for block in sorted({b for b, _ in _events(home)}):
        blk = backend.chain.get_canonical_block_by_number(BlockNumber(block))
        for i, r in enumerate(blk.get_receipts(chaindb)):
            for j, lg in enumerate(r.logs):
                name, inputs = abi.events[lg.topics[0].to_bytes(32, "big")]
                plain = [a for a in inputs if not a.get("indexed")]
                static = [n for n, a in enumerate(plain) if _type(a) in _STATIC]
                if lg.address == registry and static:
                    spots.append((block, i, j, name, plain, static))
    block, i, j, name, plain, static = rng.choice(spots)
    blk = backend.chain.get_canonical_block_by_number(BlockNumber(block))
    receipts = list(blk.get_receipts(chaindb))
    log = receipts[i].logs[j]
    types = [_type(a) for a in plain]
    values = list(decode(types, log.data))
    n = rng.choice(static)
    old = values[n]
    if types[n] == "bytes32":
        values[n] = rng.randbytes(32)
    elif types[n] == "address":
        values[n] = "0x" + rng.randbytes(20).hex()
    else:
        values[n] = (int(old) + rng.randint(1, 5)) % 256
    forged_log = Log(log.address, tuple(log.topics), encode(types, values))
    logs = list(receipts[i].logs)
    logs[j] = forged_log
    receipts[i] = receipts[i].copy(logs=tuple(logs))
    root, nodes = make_trie_root_and_nodes(tuple(receipts))
    for key, value in nodes.items():
        backend.kv[key] = value
    _relink(backend, blk.header.copy(receipt_root=root), head)
    forged = _finish(home, backend, rng)
    return Forged("receipt_rehashed", f"block {block} {name}.{plain[n]['name']} rewritten"
                                      f"{_pins(forged)}", "chain")


@forger("receipt_in_place")
def receipt_in_place(home: Home, rng: random.Random) -> Forged:
    """A 32-byte word of an event's data replaced in the stored receipt trie node."""
    block, name = rng.choice(_events(home))
    backend = _backend(home)
    header = backend.chain.get_canonical_block_header_by_number(BlockNumber(block))
    root = bytes(header.receipt_root)
    backend.close()

    def word(node: bytearray) -> str:
        at = rng.randrange(max(1, len(node) - 32))
        node[at:at + 32] = rng.randbytes(min(32, len(node) - at))
        return f"at byte {at}"

    done = _edit_row(home, lambda _db: root, word)
    return Forged("receipt_in_place", f"receipt node of block {block} ({name}) {done}",
                  "chain")


@forger("trie_row")
def trie_row(home: Home, rng: random.Random) -> Forged:
    """One byte of a random content-addressed row (trie node, code, header) changed."""

    def bit(value: bytearray) -> str:
        at = rng.randrange(len(value))
        value[at] ^= 1 << rng.randrange(8)
        return f"byte {at} of {len(value)}"

    done = _edit_row(home, lambda db: rng.choice(
        [bytes(k) for (k,) in db.execute("SELECT k FROM kv WHERE length(k)=32")]), bit)
    return Forged("trie_row", done, "chain")


def _edit_row(home: Home, pick: Callable[[sqlite3.Connection], bytes],
              edit: Callable[[bytearray], str]) -> str:
    """Edit one row of the chain file in place, its key unchanged: ``pick`` chooses the
    key, ``edit`` changes the value and says how."""
    db = _connect(home.chain_db)
    try:
        key = pick(db)
        (value,) = db.execute("SELECT v FROM kv WHERE k=?", (key,)).fetchone()
        value = bytearray(value)
        how = edit(value)
        db.execute("UPDATE kv SET v=? WHERE k=?", (bytes(value), key))
    finally:
        db.close()
    return f"row 0x{key.hex()[:12]}.. {how}"


@forger("header_fields")
def header_fields(home: Home, rng: random.Random) -> Forged:
    """A header field that execution never reads (extra data, mix hash) of a block in the
    middle rewritten, or its timestamp and every later one moved later, headers rehashed;
    pins forged by seed (then, for timestamps, a documented limit: nothing left in the
    home remembers the old ones)."""
    backend = _backend(home)
    head = backend.head()
    k = rng.randint(1, head)
    chaindb = backend.chain.chaindb
    h = chaindb.get_canonical_block_header_by_number(BlockNumber(k))
    field = rng.choice(["extra_data", "mix_hash", "timestamp"])
    shift = 0
    if field == "extra_data":
        forged_header = h.copy(extra_data=rng.randbytes(rng.randint(1, 32)))
    elif field == "mix_hash":
        forged_header = h.copy(mix_hash=rng.randbytes(32))
    else:  # this block and every later one moved later in time, order kept
        shift = rng.randint(1, 86_400)
        forged_header = h.copy(timestamp=h.timestamp + shift)
    _relink(backend, forged_header, head, shift)
    forged = _finish(home, backend, rng)
    return Forged("header_fields", f"block {k}/{head} {field}{_pins(forged)}", "chain",
                  limit=forged and field == "timestamp")


@forger("history_truncated")
def history_truncated(home: Home, rng: random.Random) -> Forged:
    """The canonical head moved back to an earlier block (and the ``meta`` head with it);
    pins forged by seed (then a documented limit)."""
    backend = _backend(home)
    head = backend.head()
    k = rng.randint(1, head - 1)
    kv = backend.kv
    to = backend.block_hash(k)
    kv[SchemaV1.make_canonical_head_hash_lookup_key()] = to
    kv.commit({"head": str(k), "head_hash": "0x" + to.hex()})
    kv.cache.clear()
    forged = _finish(home, _backend_after(home, backend), rng)
    return Forged("history_truncated", f"head {head} -> {k}{_pins(forged)}", "chain",
                  limit=forged)


def _backend_after(home: Home, backend: EmbeddedBackend) -> EmbeddedBackend:
    backend.close()
    return _backend(home)


@forger("history_rewritten")
def history_rewritten(home: Home, rng: random.Random) -> Forged:
    """History rewritten with the keys found in the home: the head moved back below a
    transition, a different one sent in its place by the same member, blocks added until
    the old head is passed. Pins forged by seed (then a documented limit)."""
    from mltrail.ledger.client import Ledger

    backend = _backend(home)
    head = backend.head()
    arts = [a for a in _artefacts(home) if a[4] < head]
    aid, code, _, _, born = rng.choice(arts)
    original = home.pins_path.read_bytes()
    k = rng.randint(born, head - 1)
    kv = backend.kv
    to = backend.block_hash(k)
    kv[SchemaV1.make_canonical_head_hash_lookup_key()] = to
    kv.commit({"head": str(k), "head_hash": "0x" + to.hex()})
    backend = _backend_after(home, backend)
    _forge_pins(home, backend)
    backend.close()
    _wipe_index(home)
    lc = _lifecycle(home)
    kind = lc.kind_by_code(code)
    with Ledger.open(home, identity="admin", password=PASSWORD) as admin:
        admin.transition(aid, lc.terminal)
        while admin.backend.head() <= head:
            admin.grant_role("0x" + rng.randbytes(20).hex(), rng.choice(lc.roles))
    forged = rng.random() < 0.5
    if not forged:
        home.pins_path.write_bytes(original)
    return Forged("history_rewritten", f"from block {k}/{head}: admin revoked {kind.name} "
                                       f"{aid[:10]}{_pins(forged)}", "chain", limit=forged)


@forger("chain_replaced")
def chain_replaced(home: Home, rng: random.Random) -> Forged:
    """``chain.sqlite`` replaced by another home's chain; by seed ``pins.json`` too, or the
    whole home's settings (config, pins, lifecycle: then it is another home, a limit)."""
    from mltrail.ledger.setup import init_home

    with tempfile.TemporaryDirectory(dir=home.root.parent) as tmp:
        donor = init_home(Path(tmp) / ".mltrail", password=PASSWORD)
        how = rng.choice(["chain", "chain+pins", "chain+pins+config"])
        shutil.copy(donor.chain_db, home.chain_db)
        for suffix in ("-wal", "-shm"):
            Path(str(home.chain_db) + suffix).unlink(missing_ok=True)
        if "pins" in how:
            shutil.copy(donor.pins_path, home.pins_path)
        if "config" in how:
            shutil.copy(donor.config_path, home.config_path)
    _wipe_index(home)
    return Forged("chain_replaced", how, "chain", limit=how.endswith("config"))

