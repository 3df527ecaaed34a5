"""The same ledger on a real Ethereum node (anvil from npm), with two homes joining."""

from __future__ import annotations

import pytest

from mltrail.errors import InputError, LedgerError, RefusedError
from mltrail.identity import create_identity
from mltrail.ledger.check import check
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
from testkit import ANVIL_KEY, PASSWORD, fund

pytestmark = pytest.mark.xdist_group("anvil")


@pytest.fixture(scope="module")
def network(anvil, tmp_path_factory):
    """Org A deploys with a funded key; org B joins the same registry with a new identity."""
    a = init_home(tmp_path_factory.mktemp("orgA") / ".mltrail", PASSWORD, rpc_url=anvil,
                  private_key=bytes.fromhex(ANVIL_KEY))
    registry = a.settings().registry
    b = init_home(tmp_path_factory.mktemp("orgB") / ".mltrail", PASSWORD, rpc_url=anvil,
                  registry=registry, identity="bob")
    dev_a = create_identity(a, "alice", PASSWORD)
    bob = Ledger.open(b, password=PASSWORD)
    for address in (dev_a, bob.address):
        fund(anvil, address)
    with Ledger.open(a, password=PASSWORD) as admin:
        admin.grant_role(dev_a, "model_developer")
        admin.grant_role(bob.address, "verifier")
    alice = Ledger.open(a, identity="alice", password=PASSWORD)
    yield {"url": anvil, "a": a, "b": b, "alice": alice, "bob": bob, "registry": registry}
    alice.close()
    bob.close()


def test_each_home_sees_the_others_records_and_roles_hold(network):
    alice, bob = network["alice"], network["bob"]
    assert bob.settings.lifecycle_digest == alice.settings.lifecycle_digest
    m = alice.register("model", "sha256:" + "5a" * 32)
    assert m.gas_used <= 70_000 and m.tx_hash.startswith("0x")
    assert bob.artefact(m.artefact_id).owner == alice.address
    alice.transition(m.artefact_id, "trained")
    with pytest.raises(RefusedError, match="missing role"):
        alice.transition(m.artefact_id, "verified")  # alice is no verifier
    with pytest.raises(RefusedError, match="missing role"):
        bob.register("model", "sha256:" + "5b" * 32)  # bob is no developer
    bob.transition(m.artefact_id, "verified", "sha256:" + "5c" * 32)
    assert alice.artefact(m.artefact_id).state == "verified"
    assert [e.name for e in alice.history(m.artefact_id)] == [
        "Registered", "Transitioned", "Transitioned"]
    check(alice)
    check(bob)


@pytest.mark.parametrize("source,target,who,ok", [
    ("registered", "trained", "alice", True),
    ("registered", "trained", "bob", False),
    ("registered", "approved", "alice", False),
    ("trained", "verified", "bob", True),
    ("trained", "deployed", "bob", False),
])
def test_lifecycle_cells_on_anvil(network, source, target, who, ok):
    alice = network["alice"]
    import os

    aid = alice.register("model", "sha256:" + os.urandom(32).hex()).artefact_id
    if source == "trained":
        alice.transition(aid, "trained")
    led = network[who]
    if ok:
        led.transition(aid, target)
        assert alice.artefact(aid).state == target
    else:
        with pytest.raises(RefusedError):
            led.transition(aid, target)
        assert alice.artefact(aid).state == source


def test_join_errors(network, tmp_path):
    with pytest.raises(LedgerError, match="cannot reach"):
        init_home(tmp_path / "x", PASSWORD, rpc_url="http://127.0.0.1:9")
    with pytest.raises(LedgerError, match="no contract"):
        init_home(tmp_path / "y", PASSWORD, rpc_url=network["url"],
                  registry="0x" + "12" * 20)
    with pytest.raises(InputError, match="needs --ledger"):
        init_home(tmp_path / "z", PASSWORD, registry=network["registry"])
    assert not any(tmp_path.iterdir()), "a failed init left files behind"


def test_chain_id_mismatch_and_unfunded(network, tmp_path):
    import json

    b = init_home(tmp_path / "c" / ".mltrail", PASSWORD, rpc_url=network["url"],
                  registry=network["registry"], identity="carol")
    with Ledger.open(b, password=PASSWORD) as carol, \
            Ledger.open(network["a"], password=PASSWORD) as admin:
        admin.grant_role(carol.address, "verifier")
        with pytest.raises(LedgerError, match="has 0 wei"):
            carol.anchor(network["alice"].register(
                "model", "sha256:" + "6d" * 32).artefact_id, b"\x01" * 32, 1)
    cfg = json.loads(b.config_path.read_text())
    cfg["chain_id"] = 1
    b.config_path.write_text(json.dumps(cfg))
    with pytest.raises(LedgerError, match="chain id mismatch"):
        Ledger.open(b, password=PASSWORD)
