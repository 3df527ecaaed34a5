"""Role management and the two-step admin handover, enforced by the contract."""

import pytest

from mltrail.errors import RefusedError


def test_grant_revoke_and_admin_handover(open_as):
    admin, dev, steward = open_as("admin"), open_as("dev"), open_as("steward")
    with pytest.raises(RefusedError, match="admin only"):
        dev.grant_role(dev.address, "verifier")
    admin.grant_role("dev", "verifier")
    assert dev.lifecycle.role_names(dev.roles()[dev.address]) == ["model_developer", "verifier"]
    admin.revoke_role(dev.address, "model_developer")
    with pytest.raises(RefusedError, match="missing role"):
        dev.register("model", "sha256:" + "9a" * 32)
    with pytest.raises(RefusedError, match="not the pending admin"):
        steward.accept_admin()
    admin.transfer_admin("steward")
    steward.accept_admin()
    with pytest.raises(RefusedError, match="admin only"):
        admin.grant_role("dev", "auditor")
    steward.grant_role("dev", "model_developer")
    assert dev.register("model", "sha256:" + "9b" * 32).gas_used > 0


def test_contract_rejects_forged_ids_and_out_of_range_states(open_as):
    """Raw calls a modified client could make: the contract itself refuses them."""
    import os

    from mltrail.provenance.digest import to_bytes32

    dev = open_as("dev")
    digest = "sha256:" + os.urandom(32).hex()
    squat = os.urandom(32)  # not keccak(sender, kind, digests)
    with pytest.raises(RefusedError, match="artefact id mismatch"):
        dev._send("register", 200_000, squat, 2, to_bytes32(digest), [], b"\x00" * 32, "")
    aid = dev.register("model", digest).artefact_id
    head = dev.backend.head()
    # 2 | 1 << 8 would keep the rule key of registered -> trained and corrupt the kind
    with pytest.raises(RefusedError, match="bad state"):
        dev._send("transition", 100_000, to_bytes32(aid), 2 | 1 << 8, b"\x00" * 32)
    assert dev.backend.head() == head
    assert dev.artefact(aid).kind == "model" and dev.artefact(aid).state == "registered"
