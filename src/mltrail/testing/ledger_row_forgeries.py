"""Forgers that delete: rows of an embedded chain file, and the home's pins.

``row_deleted`` is the adversary of ``check``'s completeness pass.
A deleted row hides from a pass that hashes every stored row (nothing is left to hash)
and from re-execution (which rebuilds state on a scratch database). By seed, the forger
deletes a node of the registry's storage trie at the head (the rows a contract view
reads: ``check`` used to end in "refused by contract: reverted", exit 2), a node of the
head's account trie, or any content-addressed row (an old state's node, a transaction or
receipt trie node, a header, code). ``check`` must say ``ledger damaged`` (exit 1).

``pins_deleted`` cuts the chain back by 0 to 2 blocks (the head pointer and the ``meta``
rows moved, so the chain is consistent), deletes ``pins.json`` and, by seed, the index:
with pins re-created silently, ``reindex`` then ``check`` used to pass over an erased
transition. A home without pins must be refused until the user re-trusts it.

Registered into :data:`mltrail.testing.ledger_forgeries.FORGERS`; tests and benchmarks
only: it destroys the home it is given.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import rlp
from eth.db.schema import SchemaV1
from eth_hash.auto import keccak
from eth_utils import to_canonical_address
from trie.hexary import HexaryTrie

from mltrail.config import Home
from mltrail.ledger.embedded import EmbeddedBackend
from mltrail.testing.ledger_forgeries import Forged, _connect, forger


def trie_nodes(get: Callable[[bytes], bytes], root: bytes) -> list[bytes]:
    """Keys of the hashed nodes of the trie under ``root`` (nodes under 32 bytes are
    inlined in their parent and have no row)."""
    out: list[bytes] = []
    todo = [root]
    while todo:
        key = todo.pop()
        out.append(key)
        stack = [rlp.decode(get(key))]
        while stack:
            node = stack.pop()
            if not isinstance(node, list):
                continue
            if len(node) == 17:
                children = node[:16]
            elif len(node) == 2 and node[0] and node[0][0] >> 4 in (0, 1):
                children = [node[1]]  # an extension; a leaf (flag 2 or 3) holds a value
            else:
                children = []
            for child in children:
                if isinstance(child, bytes) and len(child) == 32:
                    todo.append(child)
                elif isinstance(child, list):
                    stack.append(child)
    return out


@forger("row_deleted")
def row_deleted(home: Home, rng: random.Random) -> Forged:
    """Delete one row: a storage-trie node of the registry at the head, an account-trie
    node at the head, or any content-addressed row, by seed."""
    backend = EmbeddedBackend(home.chain_db, home.lock_path)
    try:
        state = backend.chain.get_vm().state
        registry = to_canonical_address(home.settings().registry)
        where = rng.choice(["registry storage", "account trie", "any row"])
        if where == "registry storage":
            account = HexaryTrie(backend.kv, state.state_root).get(keccak(registry))
            keys = trie_nodes(backend.kv.__getitem__, bytes(rlp.decode(account)[2]))
        elif where == "account trie":
            keys = trie_nodes(backend.kv.__getitem__, bytes(state.state_root))
        else:
            keys = [bytes(k) for (k,) in backend.kv.conn.execute(
                "SELECT k FROM kv WHERE length(k)=32")]
    finally:
        backend.close()
    key = rng.choice(sorted(keys))
    db = _connect(home.chain_db)
    try:
        db.execute("DELETE FROM kv WHERE k=?", (key,))
    finally:
        db.close()
    return Forged("row_deleted", f"{where}: row 0x{key.hex()[:12]}.. deleted", "chain")


@forger("pins_deleted")
def pins_deleted(home: Home, rng: random.Random) -> Forged:
    """``pins.json`` deleted after cutting the chain back by 0 to 2 blocks; the index is
    deleted too by seed (then nothing in the home remembers the old head)."""
    cut = rng.randint(0, 2)
    backend = EmbeddedBackend(home.chain_db, home.lock_path)
    try:
        head = backend.head() - cut
        new_head = backend.block_hash(head)
    finally:
        backend.close()
    if cut:
        db = _connect(home.chain_db)
        try:
            db.execute("UPDATE kv SET v=? WHERE k=?",
                       (new_head, SchemaV1.make_canonical_head_hash_lookup_key()))
            db.executemany("UPDATE meta SET value=? WHERE key=?",
                           [(str(head), "head"), ("0x" + new_head.hex(), "head_hash")])
        finally:
            db.close()
    home.pins_path.unlink()
    index = rng.random() < 0.5
    if index:
        home.index_db.unlink()
    return Forged("pins_deleted", f"cut back {cut} blocks, pins.json"
                  + (" and index.sqlite" if index else "") + " deleted", "chain")
