"""Three organisations, three real nodes on loopback, one anvil: who reads restricted content.

Org A (alice) owns an artefact whose metadata she restricts to bob (org B, a reader).
Carol (org C) is a member but not a reader; mallory (org C) runs a relaying node that
keeps the signed requests sent to it and replays them; sam's node stalls. The
adversaries are ``mltrail.testing.node_adversaries``; their rates are in docs/node.md.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from mltrail.identity import create_identity
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
from mltrail.provenance import exchange
from mltrail.server.tokens import TokenStore
from mltrail.testing.node_adversaries import RelayingNode, keep_reading, stalling_node
from testkit import ANVIL_KEY, PASSWORD, fund

pytestmark = pytest.mark.xdist_group("anvil")
CANARY = "canary-7f3a91-only-for-bob"
SECRET_PATH = "/home/alice/private/train-set.csv"


@pytest.fixture(scope="module")
def net(anvil, tmp_path_factory):
    from mltrail.audit.service import serve_in_thread
    from mltrail.server.app import create_app

    a = init_home(tmp_path_factory.mktemp("A") / ".mltrail", PASSWORD, rpc_url=anvil,
                  private_key=bytes.fromhex(ANVIL_KEY))
    reg = a.settings().registry
    b = init_home(tmp_path_factory.mktemp("B") / ".mltrail", PASSWORD, rpc_url=anvil,
                  registry=reg, identity="bob")
    c = init_home(tmp_path_factory.mktemp("C") / ".mltrail", PASSWORD, rpc_url=anvil,
                  registry=reg, identity="carol")
    for h, name in ((a, "alice"), (c, "mallory"), (c, "sam")):
        create_identity(h, name, PASSWORD)
    led = {n: Ledger.open(h, identity=n, password=PASSWORD)
           for n, h in (("bob", b), ("carol", c))}
    led |= {n: Ledger.open(h, identity=n, password=PASSWORD)
            for n, h in (("alice", a), ("mallory", c), ("sam", c))}
    for lg in led.values():
        fund(anvil, lg.address)
    with Ledger.open(a, password=PASSWORD) as admin:
        for n, role in (("alice", "model_developer"), ("bob", "verifier"),
                        ("carol", "verifier"), ("mallory", "verifier"),
                        ("sam", "model_developer")):
            admin.grant_role(led[n].address, role)
    apps = {h: create_app(home, password=PASSWORD) for h, home in (("a", a), ("b", b), ("c", c))}
    relay = RelayingNode()
    with serve_in_thread(apps["a"]) as na, serve_in_thread(apps["b"]) as nb, \
            serve_in_thread(apps["c"]) as nc, serve_in_thread(relay.app()) as nm, \
            serve_in_thread(stalling_node(4)) as ns:
        for n, url in (("alice", na.url), ("bob", nb.url), ("carol", nc.url),
                       ("mallory", nm.url), ("sam", ns.url)):
            exchange.publish_url(led[n], url)
        art = led["alice"].register("model", "sha256:" + "c1" * 32, (), {
            "name": "secret-model", "note": CANARY, "path": SECRET_PATH})
        md = led["alice"].artefact(art.artefact_id).metadata_digest
        exchange.Readers(a).set(md, [led["bob"].address])
        tok = {h: TokenStore(home).create(f"{h}-viewer", ident, read_only=True)[1]
               for h, home, ident in (("a", a, "alice"), ("b", b, "bob"), ("c", c, "carol"))}
        yield {"homes": {"a": a, "b": b, "c": c}, "led": led, "relay": relay,
               "url": {"a": na.url, "b": nb.url, "c": nc.url}, "art": art.artefact_id,
               "md": md, "tok": {h: {"Authorization": f"Bearer {t}"} for h, t in tok.items()}}
    for lg in led.values():
        lg.close()
    for app in apps.values():
        app.state.node.close()


def _detail(net, node: str, token: bool = True) -> dict:
    headers = net["tok"][node] if token else {}
    r = httpx.get(f"{net['url'][node]}/v1/artefacts/{net['art']}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_reader_non_reader_and_anonymous(net):
    # bob's node fetches the metadata from alice's node (he is a reader); paths stay alice's
    d = _detail(net, "b")
    assert d["metadata"]["note"] == CANARY
    assert d["metadata"]["path"] == "…/train-set.csv" and SECRET_PATH not in str(d)
    # carol is a member but not a reader: digests only, and the error says who refused why
    d = _detail(net, "c")
    assert d["metadata"] is None and CANARY not in str(d)
    note = d["metadata_note"]
    assert "HTTP 403" in note and net["url"]["a"] in note and "readers" in note, note
    assert d["artefact"]["metadata_digest"] == net["md"]
    # anonymous callers see no content on any node, the owner's included
    for node in ("a", "b", "c"):
        d = _detail(net, node, token=False)
        assert d["metadata"] is None and CANARY not in str(d) and SECRET_PATH not in str(d)
    # the owner's own people see the whole document, local path included
    assert _detail(net, "a")["metadata"]["path"] == SECRET_PATH


def test_a_reader_never_relays(net):
    """Bob's node holds alice's restricted metadata; carol asking bob's node gets 403."""
    _detail(net, "b")
    assert exchange.Readers(net["homes"]["b"]).get(net["md"]) == []  # recorded: not to relay
    carol, bob = net["led"]["carol"], net["led"]["bob"]
    hdr = exchange.sign_request(carol, net["md"], bob.address)
    r = httpx.get(f"{net['url']['b']}/v1/blobs/{net['md']}", headers={exchange.HEADER: hdr})
    assert r.status_code == 403 and CANARY not in r.text
    log = (net["homes"]["b"].root / "node" / "access.log").read_text()
    assert f"blob {net['md']} member:{carol.address} refused" in log


def test_relaying_member_cannot_replay(net):
    """Mallory's node keeps the requests bob's node sends it and replays them to alice's
    node, as captured or with one field changed: 0 accepted."""
    bob, alice, relay = net["led"]["bob"], net["led"]["alice"], net["relay"]
    other = alice.home.store.put(b"another blob, for bob only")
    exchange.Readers(net["homes"]["a"]).set(other, [bob.address])
    # bob's home asks mallory's node first (she is named as owner), then alice's
    assert exchange.fetch_blob(bob, other, net["led"]["mallory"].address) == \
        b"another blob, for bob only"
    assert relay.captured, "the relaying node saw no request"
    # a request bob sent to alice's node, captured on the way, is replayed too
    seen = exchange.sign_request(bob, net["md"], alice.address)
    r = httpx.get(f"{net['url']['a']}/v1/blobs/{net['md']}", headers={exchange.HEADER: seen})
    assert r.status_code == 200 and CANARY.encode() in r.content
    relay.captured.append((net["md"], seen))
    out = relay.replay(net["url"]["a"], alice.address, random.Random(7), 120, net["md"])
    assert out["accepted"] == 0, out
    assert all(n > 0 for n in out["tried"].values()), out


def test_reader_revoked_mid_session(net):
    bob, alice, admin_home = net["led"]["bob"], net["led"]["alice"], net["homes"]["a"]
    url, md = net["url"]["a"], net["md"]
    assert keep_reading(bob, url, alice.address, md, 3) == 3
    exchange.Readers(admin_home).set(md, [])  # the owner takes bob off the readers
    assert keep_reading(bob, url, alice.address, md, 20) == 0
    exchange.Readers(admin_home).set(md, [bob.address])
    assert keep_reading(bob, url, alice.address, md, 1) == 1
    with Ledger.open(admin_home, password=PASSWORD) as admin:
        admin.revoke_role(bob.address, "verifier")  # no longer a member at all
    try:
        time.sleep(0.3)  # the node re-reads the chain at most every 250 ms
        assert keep_reading(bob, url, alice.address, md, 20) == 0
    finally:
        with Ledger.open(admin_home, password=PASSWORD) as admin:
            admin.grant_role(bob.address, "verifier")
    # a token revoked on bob's own node: 401 from the next request on
    store = TokenStore(net["homes"]["b"])
    _, secret = store.create("short-lived", "bob", read_only=True)
    hdr = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{net['url']['b']}/v1/reports/{md}", headers=hdr).status_code != 401
    store.revoke("short-lived")
    assert httpx.get(f"{net['url']['b']}/v1/reports/{md}", headers=hdr).status_code == 401


def test_a_stalling_member_blocks_nothing(net):
    """Sam's node takes requests and never answers; bob's node still answers health at once
    and gives up on sam's metadata within its budget, saying so."""
    sam = net["led"]["sam"]
    reg = sam.register("model", "sha256:" + "d4" * 32, (), {"name": "stalled-model"})
    url = net["url"]["b"]
    out: dict = {}

    def slow() -> None:
        t0 = time.monotonic()
        out["r"] = httpx.get(f"{url}/v1/artefacts/{reg.artefact_id}",
                             headers=net["tok"]["b"], timeout=60).json()
        out["s"] = time.monotonic() - t0

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    assert httpx.get(f"{url}/v1/health", timeout=30).status_code == 200
    health_s = time.monotonic() - t0
    th.join(60)
    assert health_s < 1.5, health_s
    assert out["r"]["metadata"] is None and "timed out" in out["r"]["metadata_note"], out
    assert out["s"] < 10, out["s"]
