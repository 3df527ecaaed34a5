"""Registry v3's rules, sent as raw calls a modified client could make: co-admins cannot
outlive a handover, names hold no control character, anchors are bounded and never on a
revoked artefact."""

from __future__ import annotations

import os

import pytest

from mltrail.errors import RefusedError
from mltrail.provenance.digest import to_bytes32


def _view(led, fn, *args):
    return led.abi.decode_output(fn, led.backend.call(led.registry, led.abi.encode(fn, *args)))[0]


def test_a_handover_never_leaves_a_co_admin_behind(open_as):
    admin, dev, steward = open_as("admin"), open_as("dev"), open_as("steward")
    admin.grant_role("dev", "admin")  # a co-admin
    assert _view(admin, "co_admins") == 1
    with pytest.raises(RefusedError, match="co-admins hold the admin role: revoke it first"):
        admin.transfer_admin("steward")
    admin.revoke_role("dev", "admin")
    assert _view(admin, "co_admins") == 0
    admin.transfer_admin("steward")
    admin.grant_role("dev", "admin")  # granted between the offer and its acceptance
    with pytest.raises(RefusedError, match="co-admins hold the admin role"):
        steward.accept_admin()
    admin.revoke_role(dev.address, "admin")
    steward.accept_admin()
    holders = {a for a, m in steward.roles().items() if m & steward.lifecycle.role_mask(["admin"])}
    assert holders == {steward.address}
    # the co-admin itself may become the admin: nobody else holds the role afterwards
    steward.grant_role("dev", "admin")
    steward.transfer_admin("dev")
    dev.accept_admin()
    assert _view(dev, "co_admins") == 0 and _view(dev, "admin").lower() == dev.address.lower()
    holders = {a for a, m in dev.roles().items() if m & dev.lifecycle.role_mask(["admin"])}
    assert holders == {dev.address}


def _raw_register(led, name: str) -> None:
    from eth_abi import encode
    from eth_utils import keccak

    digest = to_bytes32("sha256:" + os.urandom(32).hex())
    code = led.lifecycle.kind("dataset").code
    aid = keccak(encode(["address", "uint256", "bytes32", "bytes32"],
                        [led.address, code, digest, b"\x00" * 32]))
    led._send("register", 200_000, aid, code, digest, [], b"\x00" * 32, name,
              expect="Registered", id="0x" + aid.hex())


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "x" * 40 + "\x1f", "del\x7f",
                                  "y" * 63 + "\n", "\x01" + "z" * 33, "é\x1b[2J"])
def test_contract_refuses_control_characters_in_names(open_as, name):
    steward = open_as("steward")
    head = steward.backend.head()
    with pytest.raises(RefusedError, match="bad name"):
        _raw_register(steward, name)
    assert steward.backend.head() == head


@pytest.mark.parametrize("name", ["", "a", "x" * 31 + " ", "y" * 32, "z" * 33, "w" * 64,
                                  "émoji ✓ ~!", "~" * 64])
def test_contract_takes_printable_names(open_as, name):
    _raw_register(open_as("steward"), name)


def test_contract_refuses_names_over_64_bytes(open_as):
    with pytest.raises(RefusedError):
        _raw_register(open_as("steward"), "n" * 65)


def test_anchors_are_bounded_and_never_on_a_revoked_artefact(open_as):
    steward = open_as("steward")
    ds = steward.register("dataset", "sha256:" + "ab" * 32).artefact_id
    limit = _view(steward, "MAX_ANCHOR_RECORDS")
    assert limit == 2**40
    steward.anchor(ds, b"\x01" * 32, limit)
    with pytest.raises(RefusedError, match="too many records"):
        steward._send("anchor", 100_000, to_bytes32(ds), b"\x02" * 32, limit + 1, b"\x00" * 32)
    steward.transition(ds, "revoked")
    with pytest.raises(RefusedError, match="artefact revoked"):
        steward.anchor(ds, b"\x03" * 32, 1)
