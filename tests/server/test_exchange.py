"""Blob exchange: two homes, two nodes, one anvil. What org A stored, org B can read."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from mltrail.errors import NotFoundError, VerificationError
from mltrail.identity import create_identity
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
from mltrail.provenance import exchange
from mltrail.provenance.digest import digest_bytes
from mltrail.server.tokens import TokenStore
from testkit import ANVIL_KEY, PASSWORD, fund

pytestmark = pytest.mark.xdist_group("anvil")


def _publish(led: Ledger, url: str, homes) -> None:
    exchange.publish_url(led, url)
    if not callable(getattr(led, "profile", None)):  # shim until profiles are on chain
        for h in homes:
            exchange.remember_peer(h, led.address, url)


@pytest.fixture(scope="module")
def orgs(anvil, tmp_path_factory):
    from mltrail.audit.service import serve_in_thread
    from mltrail.server.app import create_app

    a = init_home(tmp_path_factory.mktemp("orgA") / ".mltrail", PASSWORD, rpc_url=anvil,
                  private_key=bytes.fromhex(ANVIL_KEY))
    b = init_home(tmp_path_factory.mktemp("orgB") / ".mltrail", PASSWORD, rpc_url=anvil,
                  registry=a.settings().registry, identity="bob")
    alice, eve = create_identity(a, "alice", PASSWORD), create_identity(a, "eve", PASSWORD)
    bob = Ledger.open(b, password=PASSWORD)
    for address in (alice, eve, bob.address):
        fund(anvil, address)
    with Ledger.open(a, password=PASSWORD) as admin:
        admin.grant_role(alice, "model_developer")
        admin.grant_role(eve, "model_developer")
        admin.grant_role(bob.address, "verifier")
    app_a, app_b = create_app(a, password=PASSWORD), create_app(b, password=PASSWORD)
    evil = FastAPI()
    lies: dict[str, bytes] = {}

    @evil.get("/v1/blobs/{digest}")
    def _lie(digest: str) -> Response:  # a member's node that answers with other bytes
        return Response(lies.get(digest, b"not what you asked for"))

    with serve_in_thread(app_a) as node_a, serve_in_thread(app_b) as node_b, \
            serve_in_thread(evil) as node_e:
        al = Ledger.open(a, identity="alice", password=PASSWORD)
        ev = Ledger.open(a, identity="eve", password=PASSWORD)
        _publish(al, node_a.url, [a, b])
        _publish(bob, node_b.url, [a, b])
        _publish(ev, node_e.url, [a, b])
        tok_b = TokenStore(b).create("b-viewer", "bob", read_only=True)[1]
        yield {"a": a, "b": b, "alice": al, "bob": bob, "eve": ev, "url_a": node_a.url,
               "url_b": node_b.url, "tok_b": {"Authorization": f"Bearer {tok_b}"}}
        al.close()
        ev.close()
    bob.close()
    app_a.state.node.close()
    app_b.state.node.close()


def test_b_reads_what_a_stored(orgs):
    alice, bob = orgs["alice"], orgs["bob"]
    reg = alice.register("model", "sha256:" + "a1" * 32, (), {"name": "shared-cnn"})
    art = bob.artefact(reg.artefact_id)
    assert not orgs["b"].store.has(art.metadata_digest)
    # B's node shows A's artefact with its name: the metadata came from A's node
    d = httpx.get(f"{orgs['url_b']}/v1/artefacts/{reg.artefact_id}",
                  headers=orgs["tok_b"]).json()
    assert d["artefact"]["name"] == "shared-cnn" and d["metadata"]["name"] == "shared-cnn"
    assert orgs["b"].store.has(art.metadata_digest)  # checked and cached
    # a report A holds as evidence reads the same from B's node
    report = {"format": "mltrail-pol-report/1", "verdict": "accepted", "threshold": 0.1}
    ev = alice.home.store.put(json.dumps(report).encode())
    alice.transition(reg.artefact_id, "trained", ev)
    r = httpx.get(f"{orgs['url_b']}/v1/reports/{ev}", headers=orgs["tok_b"]).json()
    assert r["type"] == "pol" and r["report"] == report


def test_blobs_are_for_members(orgs):
    alice, bob = orgs["alice"], orgs["bob"]
    digest = alice.home.store.put(b"members only")
    url = f"{orgs['url_a']}/v1/blobs/{digest}"
    assert httpx.get(url).status_code == 401
    a_node = alice.address  # alice published node A's URL: requests to it name her
    assert httpx.get(url, headers={exchange.HEADER: exchange.sign_request(bob, digest, a_node)}
                     ).content == b"members only"
    from eth_account import Account

    class Stranger:  # a key with no role on chain
        account = Account.create()

    hdr = exchange.sign_request(Stranger, digest, a_node)  # type: ignore[arg-type]
    assert httpx.get(url, headers={exchange.HEADER: hdr}).status_code == 403
    old = exchange.sign_request(bob, digest, a_node, now=1_000_000)
    assert httpx.get(url, headers={exchange.HEADER: old}).status_code == 401
    # the owner narrows it to eve only: bob is refused, and fetch_blob says no node has it
    exchange.Readers(orgs["a"]).set(digest, [orgs["eve"].address])
    assert httpx.get(url, headers={exchange.HEADER: exchange.sign_request(bob, digest, a_node)}
                     ).status_code == 403
    with pytest.raises((NotFoundError, VerificationError)):
        exchange.fetch_blob(bob, digest, alice.address)
    exchange.Readers(orgs["a"]).set(digest, None)
    assert exchange.fetch_blob(bob, digest, alice.address) == b"members only"


def test_wrong_bytes_are_never_cached(orgs):
    alice, bob, eve = orgs["alice"], orgs["bob"], orgs["eve"]
    # eve claims to own it, her node lies; alice's node has the real bytes
    digest = alice.home.store.put(b"the real statement")
    assert exchange.fetch_blob(bob, digest, eve.address) == b"the real statement"
    # nobody honest has these bytes: only the lie comes back, and it is refused
    missing = digest_bytes(b"never stored anywhere")
    with pytest.raises(VerificationError, match="no node sent the bytes"):
        exchange.fetch_blob(bob, missing, eve.address)
    assert not orgs["b"].store.has(missing)


def test_library_reads_fetch_what_another_home_holds(orgs):
    """PoL and audits read metadata and bundles through ``Ledger.blob``: org B's home gets
    what only org A's home holds, the same answer as in A's home."""
    from mltrail.pol.onchain import metadata

    alice, bob = orgs["alice"], orgs["bob"]
    meta = {"name": "fetched-model", "pol_bundle": "sha256:" + "0" * 64}
    reg = alice.register("model", "sha256:" + "b2" * 32, (), meta)
    art = bob.artefact(reg.artefact_id)
    assert not orgs["b"].store.has(art.metadata_digest)
    assert metadata(bob, art) == metadata(alice, alice.artefact(reg.artefact_id)) == meta
    assert orgs["b"].store.has(art.metadata_digest)
    # nobody holds it (and eve's lying node sends other bytes): a one-line error, no crash
    with pytest.raises((NotFoundError, VerificationError)):
        bob.blob("sha256:" + "cd" * 32, alice.address)
