"""Merkle trees for anchoring batches of fine-grained records on the ledger.

RFC 6962 (Certificate Transparency) hashing: a leaf is ``SHA256(0x00 || record)``, an
inner node ``SHA256(0x01 || left || right)``, and a tree of n leaves splits at the
largest power of two below n (built bottom-up in O(n)). Records are canonical JSON.
One ``anchor`` transaction puts the root and the count on chain; an inclusion proof
shows one record was in it. This module computes; it never sends transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from mltrail.errors import InputError
from mltrail.provenance.digest import canonical_json


def leaf_hash(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first. Building bottom-up and promoting a lone last
    node gives exactly RFC 6962's tree (split at the largest power of two below n)."""
    out = [list(leaves)]
    while len(out[-1]) > 1:
        cur = out[-1]
        nxt = [node_hash(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        out.append(nxt)
    return out


def _root(leaves: Sequence[bytes]) -> bytes:
    return levels(leaves)[-1][0]


def _path_in(tree: list[list[bytes]], index: int) -> list[bytes]:
    path = []
    for level in tree[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return path


def _path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    return _path_in(levels(leaves), index)


def record_bytes(record: Any) -> bytes:
    """Canonical bytes of one record (bytes pass through, anything else is JSON)."""
    return record if isinstance(record, bytes) else canonical_json(record)


def merkle_root(records: Sequence[Any],
                advance: Callable[[int], None] | None = None) -> bytes:
    """Root over ``records``; the root of no records is SHA256 of the empty string.
    ``advance(n)`` hears every 1,024 records hashed (and the rest at the end)."""
    if not records:
        return hashlib.sha256(b"").digest()
    leaves = []
    for i, r in enumerate(records, 1):
        leaves.append(leaf_hash(record_bytes(r)))
        if advance is not None and (i % 1024 == 0 or i == len(records)):
            advance(i % 1024 or 1024)
    return _root(leaves)


def path_in(tree: list[list[bytes]], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` in a tree built by :func:`levels`."""
    return _path_in(tree, index)


def inclusion_proof(records: Sequence[Any], index: int) -> list[bytes]:
    """Audit path for ``records[index]`` (sibling hashes from the leaf upwards)."""
    if not 0 <= index < len(records):
        raise InputError(f"record index {index} out of range 0..{len(records) - 1}")
    return _path([leaf_hash(record_bytes(r)) for r in records], index)


def verify_inclusion(record: Any, index: int, count: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """Check an RFC 6962 audit path for leaf ``index`` of a tree of ``count`` leaves."""
    if not 0 <= index < count:
        return False
    node = leaf_hash(record_bytes(record))
    fn, sn = index, count - 1
    for sibling in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            node = node_hash(sibling, node)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == root
