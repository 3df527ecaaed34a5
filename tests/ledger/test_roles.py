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
