"""``ledger check`` against forgeries of the chain, the index and the home, each on a fresh home.

Chain forgeries (a consistent head-state forgery, an in-place trie edit, a forged receipt,
a deleted or emptied chain file, a replaced chain) must be reported as ``ledger damaged``
(exit 1), never blamed on the index, and ``reindex`` must refuse them. Index forgeries
(every projection table, rows above the head) must be named, and ``reindex`` repairs them.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3

import pytest
import rlp
from eth.db.schema import SchemaV1
from eth_hash.auto import keccak
from eth_utils import to_canonical_address

from mltrail.errors import VerificationError
from mltrail.ledger.check import check, reindex
from mltrail.ledger.client import Ledger
from mltrail.testing.ledger_forgeries import damage_file
from testkit import PASSWORD


def _populate(open_as):
    steward, dev = open_as("steward"), open_as("dev")
    ds = steward.register("dataset", "sha256:" + "dd" * 32, name="data").artefact_id
    a = dev.register("model", "sha256:" + "aa" * 32, parents=[ds]).artefact_id
    dev.transition(a, "trained")
    dev.anchor(a, b"\x07" * 32, 3)
    return dev, a


def _slot(led: Ledger, aid: str) -> tuple[int, int]:
    """(storage key, packed value) of ``_artefacts[aid]`` in the registry's storage."""
    state = led.backend.chain.get_vm().state  # type: ignore[attr-defined]
    addr = to_canonical_address(led.registry)
    for slot in range(64):
        key = int.from_bytes(keccak(slot.to_bytes(32, "big") + bytes.fromhex(aid[2:])), "big")
        value = state.get_storage(addr, key)
        if value and value >> 96 == int(led.artefact(aid).owner, 16):
            return key, value
    raise AssertionError("artefact slot not found")


def _damaged(led: Ledger, where: str) -> None:
    with pytest.raises(VerificationError, match=f"ledger damaged: (.*/)?{where}") as err:
        check(led)
    assert err.value.hint is None or "reindex" not in err.value.hint
    with pytest.raises(VerificationError, match="ledger damaged"):
        reindex(led)


def test_clean_ledger_passes_and_reindex_is_identical(open_as):
    dev, a = _populate(open_as)
    before = [e.key() for e in dev.index.events()]
    report = check(dev)
    assert report.events == len(before) and report.artefacts == 2 and report.rows > 0
    assert dev.home.pins().verified_head == report.head  # type: ignore[union-attr]
    assert reindex(dev) == len(before)
    assert [e.key() for e in dev.index.events()] == before
    assert dev.artefact(a).state == "trained"


def _forge_head_state(dev: Ledger, aid: str) -> int:
    """Set a trained model to 'approved' in the head state, recompute the state root,
    rehash the head header and point every canonical pointer (and meta) at it."""
    backend = dev.backend
    chain = backend.chain  # type: ignore[attr-defined]
    kv = backend.kv  # type: ignore[attr-defined]
    key, value = _slot(dev, aid)
    approved = dev.lifecycle.kind("model").state_code("approved")
    head = chain.get_canonical_head()
    state = chain.get_vm(head).state
    state.set_storage(to_canonical_address(dev.registry), key, value & ~255 | approved)
    state.persist()
    forged = head.copy(state_root=state.state_root)
    kv[forged.hash] = rlp.encode(forged)
    kv[SchemaV1.make_block_number_to_hash_lookup_key(head.block_number)] = rlp.encode(
        forged.hash, sedes=rlp.sedes.binary)
    kv[SchemaV1.make_canonical_head_hash_lookup_key()] = forged.hash
    kv[SchemaV1.make_block_hash_to_score_lookup_key(forged.hash)] = kv[
        SchemaV1.make_block_hash_to_score_lookup_key(head.hash)]
    kv.commit({"head": str(head.block_number), "head_hash": "0x" + forged.hash.hex()})
    kv.cache.clear()
    return int(head.block_number)


def test_head_state_forgery_is_refused_before_a_write_and_found_by_check(open_as):
    dev, a = _populate(open_as)
    n = _forge_head_state(dev, a)
    operator = open_as("operator")
    (_, _, state, _) = operator.abi.decode_output("artefact", operator.backend.call(
        operator.registry, operator.abi.encode("artefact", bytes.fromhex(a[2:]))))
    assert state == dev.lifecycle.kind("model").state_code("approved")  # the forgery took
    with pytest.raises(VerificationError, match=f"ledger damaged: block {n} is "):
        operator.transition(a, "deployed")  # the pinned head hash no longer matches
    # a forger who also rewrites pins.json is caught by re-execution
    pins = json.loads(dev.home.pins_path.read_text())
    pins["head_hash"] = "0x" + dev.backend.block_hash(n).hex()
    dev.home.pins_path.write_text(json.dumps(pins))
    _damaged(dev, f"block {n} does not re-execute to its stored header")


def test_storage_leaf_edited_in_place(open_as):
    dev, a = _populate(open_as)
    _, value = _slot(dev, a)
    approved = dev.lifecycle.kind("model").state_code("approved")
    old, new = rlp.encode(value), rlp.encode(value & ~255 | approved)
    db = sqlite3.connect(dev.home.chain_db)
    rows = [(k, v) for k, v in db.execute("SELECT k, v FROM kv") if len(k) == 32 and old in v]
    assert len(rows) == 1
    db.execute("UPDATE kv SET v=? WHERE k=?", (rows[0][1].replace(old, new), rows[0][0]))
    db.commit()
    db.close()
    dev.backend.kv.cache.clear()  # type: ignore[attr-defined]
    # the next write reads that leaf: refused before it builds on it, nothing mined
    head = dev.backend.head()
    with pytest.raises(VerificationError, match="ledger damaged: .* does not hash to its key"):
        dev.transition(a, "evaluated")
    assert dev.backend.head() == head
    _damaged(dev, "chain.sqlite: row 0x[0-9a-f]+ does not hash to its key")


def test_forged_receipt_log_is_chain_damage_not_index(open_as):
    dev, a = _populate(open_as)
    ev = next(e for e in dev.index.events(a) if e.name == "Transitioned")
    header = dev.backend.chain.get_canonical_block_header_by_number(ev.block)  # type: ignore
    db = sqlite3.connect(dev.home.chain_db)
    (node,) = db.execute("SELECT v FROM kv WHERE k=?", (header.receipt_root,)).fetchone()
    words = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")  # registered -> trained
    assert node.count(words) == 1
    forged = node.replace(words, (1).to_bytes(32, "big") + (6).to_bytes(32, "big"))
    db.execute("UPDATE kv SET v=? WHERE k=?", (forged, header.receipt_root))
    db.commit()
    db.close()
    dev.backend.kv.cache.clear()  # type: ignore[attr-defined]
    _damaged(dev, "chain.sqlite: row 0x")


def test_tampered_block_header_is_found(open_as):
    dev, _ = _populate(open_as)
    chain = dev.backend.chain  # type: ignore[attr-defined]
    h = chain.chaindb.get_canonical_block_header_by_number(3)
    db = sqlite3.connect(dev.home.chain_db)
    db.execute("UPDATE kv SET v=? WHERE k=?", (rlp.encode(h.copy(extra_data=b"forged")),
                                              bytes(h.hash)))
    db.commit()
    db.close()
    dev.backend.kv.cache.clear()  # type: ignore[attr-defined]
    _damaged(dev, f"chain.sqlite: row 0x{bytes(h.hash).hex()}")


def test_meta_head_table_is_checked(open_as):
    dev, _ = _populate(open_as)
    db = sqlite3.connect(dev.home.chain_db)
    db.execute("UPDATE meta SET value='3' WHERE key='head'")
    db.commit()
    db.close()
    _damaged(dev, "chain.sqlite: meta.head is '3'")


EDITS = {
    "artefacts.state": "UPDATE artefacts SET state=6 WHERE kind=2",
    "artefacts row deleted": "DELETE FROM artefacts WHERE kind=1",
    "artefacts row above head": "INSERT INTO artefacts SELECT '0x' || substr(id, 3, 63) || "
                                "CASE substr(id, 66, 1) WHEN 'f' THEN 'e' ELSE 'f' END,"
                                " kind, state, owner, content_digest, metadata_digest, parents,"
                                " block + 50, timestamp, name FROM artefacts WHERE kind=2",
    "artefacts.name": "UPDATE artefacts SET name='other' WHERE kind=1",
    "roles": "UPDATE roles SET mask='63' WHERE mask='4'",
    "roles row deleted": "DELETE FROM roles WHERE mask='2'",
    "parents": "DELETE FROM parents",
    "parents row added": "INSERT INTO parents SELECT parent, child FROM parents",
    "events": "UPDATE events SET name='Transitioned' WHERE name='Anchored'",
    "events row above head": "INSERT INTO events SELECT block + 40, log_index, tx_hash, name,"
                             " artefact_id, actor, timestamp, args FROM events LIMIT 1",
    "meta above head": "UPDATE meta SET value=value + 5 WHERE key='last_block'",
}


@pytest.mark.parametrize("what", list(EDITS))
def test_projection_table_edits_are_named_and_reindex_repairs(open_as, what):
    dev, a = _populate(open_as)
    db = sqlite3.connect(dev.home.index_db)
    assert db.execute(EDITS[what]).rowcount >= 1
    db.commit()
    db.close()
    table = what.split(".")[0].split()[0]
    with pytest.raises(VerificationError, match=f"index differs from chain: table {table}") as e:
        check(dev)
    assert "reindex" in (e.value.hint or "")
    reindex(dev)
    check(dev)
    assert dev.artefact(a).state == "trained" and dev.lineage("data")["descendants"]


# The 'replaced' case keeps the steward's handle from _populate open while the file is
# swapped: SQLite would overlay the old chain's WAL frames on the copied file (a mixed
# chain that sometimes let the write through); SqliteKV.close leaves no frames behind.
@pytest.mark.parametrize("damage", ["deleted", "emptied", "truncated", "garbage", "replaced"])
def test_damaged_chain_file_exits_1(home, open_as, cli, tmp_path, damage):
    dev, _ = _populate(open_as)
    dev.close()
    open_as("steward").close()  # between two commands: nothing holds the file open
    from testkit import make_home

    other = make_home(tmp_path / "other") if damage == "replaced" else None
    path = home.chain_db
    if other is None:
        damage_file(path, damage, random.Random(0))
    else:
        shutil.copy(other.chain_db, path)
    r = cli("ledger", "check", home=home.root)
    assert r.code == 1, (r.code, r.err)
    assert "ledger damaged" in r.err and "reindex" not in r.err
    (tmp_path / "weights.bin").write_bytes(b"w")
    w = cli("--as", "dev", "register", str(tmp_path / "weights.bin"), "--kind", "model",
            home=home.root)
    assert w.code == 1 and "ledger damaged" in w.err, (w.code, w.err)
    if damage == "deleted":
        assert not path.exists(), "opening a damaged home must not create a new chain"


def test_truncated_history_below_the_pinned_head(open_as):
    dev, _ = _populate(open_as)
    head = dev.backend.head()
    kv = dev.backend.kv  # type: ignore[attr-defined]
    kv[SchemaV1.make_canonical_head_hash_lookup_key()] = dev.backend.block_hash(head - 2)
    kv.commit()
    dev.index.clear()
    with pytest.raises(VerificationError, match=f"below block {head} this home already saw"):
        check(dev)
    with pytest.raises(VerificationError, match="ledger damaged"):
        Ledger.open(dev.home, identity="dev", password=PASSWORD).register(
            "model", "sha256:" + "ef" * 32)


def test_missing_registry_code_row_is_damage_not_internal_error(open_as, cli, home, tmp_path):
    """Found by the trie_row forger: an unreadable registry code used to end in exit 3."""
    dev, _ = _populate(open_as)
    code_hash = keccak(dev.backend.code_at(dev.registry))
    dev.close()
    db = sqlite3.connect(home.chain_db)
    assert db.execute("DELETE FROM kv WHERE k=?", (code_hash,)).rowcount == 1
    db.commit()
    db.close()
    r = cli("ledger", "check", home=home.root)
    assert r.code == 1 and "ledger damaged" in r.err and "cannot be read" in r.err, r.err
    (tmp_path / "w.bin").write_bytes(b"w")
    w = cli("--as", "dev", "register", str(tmp_path / "w.bin"), "--kind", "model",
            home=home.root)
    assert w.code == 1 and "ledger damaged" in w.err, (w.code, w.err)


def test_chain_without_canonical_head_is_damage(open_as, cli, home):
    """Found by the stale_wal_swap forger: a chain whose head pointer cannot be read (a
    stale WAL overlaid on a swapped file) used to end in exit 3 when the home was opened."""
    dev, _ = _populate(open_as)
    dev.close()
    db = sqlite3.connect(home.chain_db)
    assert db.execute("DELETE FROM kv WHERE k=?",
                      (SchemaV1.make_canonical_head_hash_lookup_key(),)).rowcount == 1
    db.commit()
    db.close()
    r = cli("ledger", "check", home=home.root)
    assert r.code == 1 and "ledger damaged" in r.err and "no readable chain" in r.err, r.err


def test_deleted_storage_trie_node_is_damage_not_a_refusal(open_as, cli, home, tmp_path):
    """A deleted node of the registry's storage trie at the head: ``check`` used to end in
    "refused by contract: reverted", exit 2 (a contract view failed to read it). Three
    nodes of that trie are deleted in turn (the row_deleted forger covers more); a write
    says damage too."""
    from trie.hexary import HexaryTrie

    from mltrail.testing.ledger_row_forgeries import trie_nodes

    dev, aid = _populate(open_as)
    state = dev.backend.chain.get_vm().state  # type: ignore[attr-defined]
    account = HexaryTrie(dev.backend.kv, state.state_root).get(  # type: ignore[attr-defined]
        keccak(to_canonical_address(dev.registry)))
    nodes = trie_nodes(dev.backend.kv.__getitem__, rlp.decode(account)[2])  # type: ignore[attr-defined]
    dev.close()
    assert len(nodes) >= 2
    db = sqlite3.connect(home.chain_db, isolation_level=None)
    for key in dict.fromkeys([nodes[0], nodes[len(nodes) // 2], nodes[-1]]):  # root to leaf
        (value,) = db.execute("SELECT v FROM kv WHERE k=?", (key,)).fetchone()
        db.execute("DELETE FROM kv WHERE k=?", (key,))
        r = cli("ledger", "check", home=home.root)
        assert r.code == 1 and "ledger damaged" in r.err and "reverted" not in r.err, r.err
        db.execute("INSERT INTO kv VALUES (?, ?)", (key, value))
    key = nodes[0]
    db.execute("DELETE FROM kv WHERE k=?", (key,))
    db.close()
    with Ledger.open(home, identity="dev", password=PASSWORD) as led, \
            pytest.raises(VerificationError, match="ledger damaged"):
        led.transition(aid, "evaluated")
