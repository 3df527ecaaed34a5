"""Merkle batch anchoring: RFC 6962 test vectors, proofs offline and against the chain.

Vectors: the RFC 6962 known answers used by Certificate Transparency implementations
(transparency-dev/merkle ``testonly/constants.go``; the inclusion proofs of
certificate-transparency's verifier tests, leaf indices 0-based here).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.provenance import batch
from mltrail.provenance.anchor import (
    inclusion_proof,
    leaf_hash,
    levels,
    merkle_root,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                     "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
NODES = [
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# (leaf index, tree size, audit path)
PROOFS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def test_rfc6962_roots_nodes_and_proofs():
    for n, root in enumerate(ROOTS):
        assert merkle_root(LEAVES[:n]).hex() == root
    tree = levels([leaf_hash(x) for x in LEAVES])
    assert [[h.hex() for h in level] for level in tree] == NODES
    for index, size, path in PROOFS:
        assert [h.hex() for h in inclusion_proof(LEAVES[:size], index)] == path
        assert verify_inclusion(LEAVES[index], index, size, [bytes.fromhex(h) for h in path],
                                bytes.fromhex(ROOTS[size]))


def test_proof_for_a_record_outside_the_batch_fails():
    records = [{"file": f"f{i}", "sha256": f"{i:064x}"} for i in range(100)]
    root = merkle_root(records)
    proof = inclusion_proof(records, 17)
    assert verify_inclusion(records[17], 17, 100, proof, root)
    outsider = {"file": "f17", "sha256": "f" * 64}
    assert not verify_inclusion(outsider, 17, 100, proof, root)
    assert not verify_inclusion(records[17], 18, 100, proof, root)   # wrong position
    assert not verify_inclusion(records[17], 17, 100, proof[:-1], root)
    assert not verify_inclusion(records[17], 17, 100, [*proof, root], root)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_every_leaf_proves_and_a_changed_record_does_not(records, data):
    i = data.draw(st.integers(0, len(records) - 1))
    root, proof = merkle_root(records), inclusion_proof(records, i)
    assert verify_inclusion(records[i], i, len(records), proof, root)
    other = data.draw(st.binary(max_size=8).filter(lambda b: b != records[i]))
    assert not verify_inclusion(other, i, len(records), proof, root)


def test_batch_anchored_and_checked_against_chain(project, open_as, cli):
    led = open_as("admin")
    from mltrail.provenance.artefacts import register_path

    reg, _ = register_path(led, project / "raw", "dataset")
    records = [{"n": i} for i in range(1000)]
    res = batch.anchor_batch(led, reg.artefact_id, records)
    assert res["count"] == 1000 and res["gas_used"] > 0
    paths = batch.write_proofs(project / "proofs", res["artefact_id"], records, res["batch"])
    proof = batch.load_proof(paths[421])
    assert batch.verify_proof(led, proof)["anchored_block"] == res["block"]
    home = led.home.root
    ok = cli("verify", "--proof", str(paths[421]), "--json", home=home)
    assert ok.code == 0 and ok.json()["index"] == 421
    # a record that was never in the batch, with the same path and root: rejected
    doc = json.loads(paths[421].read_text())
    doc["record"] = {"n": 100_000}
    forged = project / "forged.json"
    forged.write_text(json.dumps(doc))
    bad = cli("verify", "--proof", str(forged), home=home)
    assert bad.code == 1 and "not in the batch" in bad.err
    # a whole batch built by someone else: offline proof holds, but never anchored
    other = batch.make_proof(res["artefact_id"], [{"n": -1}, {"n": -2}], 1)
    forged.write_text(other.model_dump_json())
    never = cli("verify", "--proof", str(forged), home=home)
    assert never.code == 1 and "never anchored" in never.err
    forged.write_text("{not json")
    assert cli("verify", "--proof", str(forged), home=home).code == 2


def test_verify_proof_says_who_anchored_and_who_owns(open_as, cli, tmp_path):
    """Issue 20: a model developer anchored a forged record on a data steward's dataset and
    ``verify --proof`` said "ok" without saying who. Over 12 seeds, a random member the
    rule allows (or the owner) anchors a batch: the answer names the anchorer and the
    owner every time, and ``--anchored-by owner`` exits 1 exactly when it was not the owner."""
    import random

    steward, dev, verifier = open_as("steward"), open_as("dev"), open_as("verifier")
    home = steward.home.root
    names = {m.address: n for n, m in (("steward", steward), ("dev", dev),
                                        ("verifier", verifier))}
    named = caught = others = 0
    for seed in range(12):
        rng = random.Random(seed)
        ds = steward.register("dataset", "sha256:" + rng.randbytes(32).hex()).artefact_id
        who = rng.choice([steward, dev, verifier])
        records = [{"forged": rng.random()} for _ in range(rng.randint(1, 5))]
        res = batch.anchor_batch(who, ds, records)
        path = tmp_path / f"p{seed}.json"
        path.write_text(batch.make_proof(ds, records, 0, res["batch"]).model_dump_json())
        r = cli("verify", "--proof", str(path), "--json", home=home)
        assert r.code == 0, r.err
        d = r.json()
        named += d["anchored_by"] == who.address and d["owner"] == steward.address
        assert d["anchored_by_owner"] == (who is steward)
        human = cli("verify", "--proof", str(path), home=home)
        assert who.address in human.out and (who is steward or steward.address in human.out)
        strict = cli("verify", "--proof", str(path), "--anchored-by", "owner", home=home)
        if who is steward:
            assert strict.code == 0, strict.err
        else:
            others += 1
            caught += strict.code == 1 and who.address in strict.err
            assert names[who.address] != "steward"
    assert named == 12 and caught == others > 0


def test_an_anchor_outside_the_anchor_rule_exits_1_naming_the_rule(open_as, cli, tmp_path):
    """The contract refuses such anchors; a forged index (or a lying node) can still show
    one: an anchor whose sender holds no role of the kind's ``anchor:`` rule is exit 1."""
    import sqlite3

    steward, operator = open_as("steward"), open_as("operator")
    ds = steward.register("dataset", "sha256:" + "5d" * 32).artefact_id
    records = [{"r": 1}, {"r": 2}]
    res = batch.anchor_batch(steward, ds, records)
    path = tmp_path / "p.json"
    path.write_text(batch.make_proof(ds, records, 1, res["batch"]).model_dump_json())
    db = sqlite3.connect(steward.home.index_db)
    db.execute("UPDATE events SET actor=? WHERE name='Anchored'", (operator.address,))
    db.commit()
    db.close()
    r = cli("verify", "--proof", str(path), home=steward.home.root)
    assert r.code == 1 and operator.address in r.err and steward.address in r.err, r.err
    assert "kinds.dataset.anchor: [model_developer, verifier]" in r.err
