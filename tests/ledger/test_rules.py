"""Contract rules that hold between members (registry v2), on the embedded chain and anvil.

Each rule is exercised through the Ledger API and, where a modified client could bypass
the API, by a raw call the contract itself must refuse. The same tests run on both
backends (``members`` is parametrized); anvil runs on one xdist worker.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from mltrail.errors import InputError, RefusedError, VerificationError
from mltrail.identity import create_identity
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
from mltrail.ledger.trust import check_lifecycle
from mltrail.provenance.digest import to_bytes32
from testkit import ANVIL_KEY, PASSWORD, ROLE_IDENTITIES, fund

pytestmark = pytest.mark.xdist_group("anvil")

MEMBERS = {**ROLE_IDENTITIES, "dev2": "model_developer", "nobody": None}


def _digest() -> str:
    return "sha256:" + os.urandom(32).hex()


def deploy(where: str, tmp, anvil_url: str | None) -> dict[str, Ledger]:
    """A fresh registry with one identity per role (plus a second developer and a member
    without any role), each opened as a Ledger."""
    if where == "anvil":
        home = init_home(tmp / ".mltrail", PASSWORD, rpc_url=anvil_url,
                         private_key=bytes.fromhex(ANVIL_KEY))
    else:
        home = init_home(tmp / ".mltrail", PASSWORD)
    admin = Ledger.open(home, password=PASSWORD)
    out = {"admin": admin}
    for name, role in MEMBERS.items():
        address = create_identity(home, name, PASSWORD)
        if where == "anvil":
            fund(anvil_url or "", address)
        if role:
            admin.grant_role(address, role)
        out[name] = Ledger.open(home, identity=name, password=PASSWORD)
    return out


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def members(request, tmp_path_factory):
    url = request.getfixturevalue("anvil") if request.param == "anvil" else None
    world = deploy(request.param, tmp_path_factory.mktemp(request.param), url)
    world["_where"] = request.param  # type: ignore[assignment]
    world["_url"] = url  # type: ignore[assignment]
    yield world
    for key, led in world.items():
        if not key.startswith("_"):
            led.close()


def test_gas_bounds(members):
    dev = members["dev"]
    reg = dev.register("model", _digest(), name="x" * 64)  # the longest name
    tr = dev.transition(reg.artefact_id, "trained", _digest())
    assert reg.gas_used <= 60_000, reg.gas_used
    assert tr.gas_used <= 40_000, tr.gas_used


def test_owner_and_role(members):
    dev, dev2, verifier = members["dev"], members["dev2"], members["verifier"]
    aid = dev.register("model", _digest()).artefact_id
    head = dev.backend.head()
    with pytest.raises(RefusedError, match="not the owner"):
        dev2.transition(aid, "trained")  # same role, someone else's model
    assert dev.backend.head() == head and dev.artefact(aid).state == "registered"
    with pytest.raises(RefusedError, match="missing role"):
        verifier.transition(aid, "trained")  # not the developer's step
    dev.transition(aid, "trained")
    verifier.transition(aid, "verified")  # role-only: any verifier, not the owner
    assert dev2.artefact(aid).state == "verified"
    assert dev2.artefact(aid).owner == dev.address


def test_parents_duplicate_revoked_and_kind(members):
    steward, dev, admin, operator = (members["steward"], members["dev"], members["admin"],
                                     members["operator"])
    ds = steward.register("dataset", _digest()).artefact_id
    other = steward.register("dataset", _digest()).artefact_id
    m = dev.register("model", _digest(), parents=[other, ds])  # model from datasets: allowed
    assert sorted(dev.artefact(m.artefact_id).parents) == dev.artefact(m.artefact_id).parents
    with pytest.raises(InputError, match="listed twice"):
        dev.register("model", _digest(), parents=[ds, ds])
    # a modified client sending the same parent twice: the contract refuses
    digest, meta = _digest(), dev.home.store.put(b"{}")
    aid = dev.artefact_id_for("model", digest, meta)
    with pytest.raises(RefusedError, match="duplicate or unsorted parents"):
        dev._send("register", 300_000, to_bytes32(aid), 2, to_bytes32(digest),
                  [to_bytes32(ds), to_bytes32(ds)], to_bytes32(meta), "")
    svc = operator.register("service", _digest(), parents=[m.artefact_id]).artefact_id
    with pytest.raises(RefusedError, match="parent kind not allowed: a dataset may derive "
                                           "from dataset, not service"):
        steward.register("dataset", _digest(), parents=[svc])
    admin.transition(other, "revoked")
    with pytest.raises(RefusedError, match="parent revoked"):
        dev.register("model", _digest(), parents=[other])


def test_anchor_roles_and_front_running(members):
    steward, dev, dev2, verifier, operator = (members[n] for n in
                                              ("steward", "dev", "dev2", "verifier", "operator"))
    ds = steward.register("dataset", _digest()).artefact_id
    steward.anchor(ds, b"\x01" * 32, 1)  # the owner, without an anchor role
    dev.anchor(ds, b"\x02" * 32, 2)  # model_developer may anchor on datasets (PoL)
    with pytest.raises(RefusedError, match="only the owner .* or a holder of"):
        operator.anchor(ds, b"\x03" * 32, 3)
    model = dev.register("model", _digest()).artefact_id
    root = os.urandom(32)
    dev2.anchor(model, root, 7)  # a front-runner with an anchor role sends the same root first
    dev.anchor(model, root, 7)
    mine = dev.anchors(model, actor=dev.address)
    assert [e.actor for e in mine] == [dev.address]
    assert verifier.anchors(model, actor="dev")[0].block == mine[0].block
    assert len(dev.anchors(model)) == 2
    assert dev.anchors(model)[0].actor == dev2.address  # first overall, but not dev's


def test_names_are_shared_on_chain(members):
    dev, dev2, verifier = members["dev"], members["dev2"], members["verifier"]
    tag = os.urandom(4).hex() + "-net"
    a = dev.register("model", _digest(), name=tag).artefact_id
    assert verifier.resolve(tag) == a and verifier.artefact(tag).name == tag
    b = dev2.register("model", _digest(), metadata={"name": tag + "2"}).artefact_id
    assert verifier.artefact(b).name == tag + "2"
    dev2.register("model", _digest(), name=tag)
    with pytest.raises(InputError, match=f"ambiguous artefact name '{tag}': 0x"):
        verifier.resolve(tag)
    assert verifier.resolve(a[:10]) == a  # prefixes keep working
    for bad in ("", " x", "a\nb", "x" * 65, "deadbeef", "0xabc123"):
        with pytest.raises(InputError):
            dev.register("model", _digest(), name=bad)


def test_profiles(members):
    dev, nobody, verifier = members["dev"], members["nobody"], members["verifier"]
    assert verifier.profile(dev.address) is None
    dev.set_profile("http://127.0.0.1:8765")
    assert verifier.profile(dev.address) == "http://127.0.0.1:8765"
    assert verifier.profile("dev") == "http://127.0.0.1:8765"
    with pytest.raises(RefusedError, match="missing role"):
        nobody.set_profile("http://evil")
    with pytest.raises(InputError):
        dev.set_profile("x" * 257)


def test_lifecycle_digest_is_computed_on_chain_and_published_once(members):
    admin = members["admin"]
    lc = admin.lifecycle
    raw = admin.backend.call(admin.registry, admin.abi.encode("lifecycle_digest"))
    assert raw == hashlib.sha256(lc.document).digest()
    check_lifecycle(admin.backend, admin.abi, admin.registry, lc)
    with pytest.raises(RefusedError, match="lifecycle already published"):
        admin._send("publish_lifecycle", 3_000_000, lc.document, *lc.contract_tables())
    from mltrail.lifecycle import parse

    edited = parse(lc.document.replace(b"anchor: [auditor]", b"anchor: [auditor, operator]"))
    with pytest.raises(VerificationError, match="ledger damaged: registry .* enforces lifecycle"):
        check_lifecycle(admin.backend, admin.abi, admin.registry, edited)


def test_admin_handover_moves_role_bits_with_events(members, tmp_path):
    world = deploy(members["_where"], tmp_path, members["_url"])
    try:
        admin, steward = world["admin"], world["steward"]
        everything = admin.lifecycle.role_mask(admin.lifecycle.roles)
        admin.transfer_admin("steward")
        admin.cancel_admin_transfer()
        with pytest.raises(RefusedError, match="not the pending admin"):
            steward.accept_admin()
        admin.transfer_admin("steward")
        steward.accept_admin()
        names = [e.name for e in steward.index.events() if e.name.startswith("Admin")]
        assert names == ["AdminChanged", "AdminOffered", "AdminOfferCancelled", "AdminOffered",
                         "AdminChanged"]
        roles = steward.roles()
        assert roles[steward.address] == everything
        assert admin.address not in roles  # the old admin keeps no admin bits
        with pytest.raises(RefusedError, match="admin only"):
            admin.grant_role("dev", "auditor")
        steward.grant_role("dev", "auditor")
        with pytest.raises(RefusedError, match="admin only"):
            admin.transfer_admin("dev")
    finally:
        for led in world.values():
            led.close()


def test_a_receipt_without_the_expected_event_is_not_a_write(members):
    dev = members["dev"]
    aid = dev.register("model", _digest()).artefact_id
    rc = dev._send("transition", 100_000, to_bytes32(aid), 2, b"\x00" * 32,
                   expect="Transitioned", id=aid, to_state=2)
    with pytest.raises(VerificationError, match="write not confirmed: .* holds Transitioned"):
        dev._confirm(rc, "Transitioned", {"id": aid, "to_state": 3})
    with pytest.raises(VerificationError, match="expected Registered"):
        dev._confirm(rc, "Registered", {"id": aid})
