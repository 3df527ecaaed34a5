"""ledger check catches a tampered index or chain; reindex repairs the index."""

from __future__ import annotations

import sqlite3

import pytest

from mltrail.errors import VerificationError
from mltrail.ledger.check import check, reindex


def _populate(open_as):
    dev = open_as("dev")
    a = dev.register("model", "sha256:" + "aa" * 32).artefact_id
    dev.transition(a, "trained")
    dev.anchor(a, b"\x07" * 32, 3)
    return dev, a


def test_clean_ledger_passes_and_reindex_is_identical(open_as):
    dev, a = _populate(open_as)
    before = [e.key() for e in dev.index.events()]
    report = check(dev)
    assert report.events == len(before)
    assert reindex(dev) == len(before)
    assert [e.key() for e in dev.index.events()] == before
    assert dev.artefact(a).state == "trained"


def test_tampered_index_is_named(open_as):
    dev, a = _populate(open_as)
    db = sqlite3.connect(dev.home.index_db)
    db.execute("UPDATE events SET name='Transitioned' WHERE name='Anchored'")
    db.commit()
    with pytest.raises(VerificationError, match="index differs from chain at event"):
        check(dev)
    reindex(dev)
    check(dev)


def test_deleted_index_row_is_found(open_as):
    dev, _ = _populate(open_as)
    db = sqlite3.connect(dev.home.index_db)
    db.execute("DELETE FROM events WHERE name='Anchored'")
    db.commit()
    with pytest.raises(VerificationError, match="more events"):
        check(dev)


def test_tampered_block_header_is_found(open_as):
    import rlp
    from eth.db.chain import ChainDB  # noqa: F401 - documents where headers live
    from eth_hash.auto import keccak

    dev, _ = _populate(open_as)
    chain = dev.backend.chain  # type: ignore[attr-defined]
    n = 3
    h = chain.chaindb.get_canonical_block_header_by_number(n)
    forged = h.copy(extra_data=b"forged")
    db = sqlite3.connect(dev.home.chain_db)
    db.execute("UPDATE kv SET v=? WHERE k=?", (rlp.encode(forged), bytes(h.hash)))
    db.commit()
    assert keccak(rlp.encode(forged)) != bytes(h.hash)
    dev.backend.kv.cache.clear()  # type: ignore[attr-defined]
    with pytest.raises(VerificationError, match=f"block {n}: stored header"):
        check(dev)
