"""The compiled-contract cache matches the Vyper source, and gas stays within targets."""

from mltrail.ledger import contracts


def test_cache_matches_source():
    for name in contracts.CONTRACTS:
        cached = contracts.load(name)
        fresh = contracts.compile_contract(name)
        assert cached.source_sha256 == contracts.source_digest(name), \
            f"{name}: cache is stale, run 'make contracts'"
        assert cached.bytecode == fresh.bytecode
        assert cached.abi == fresh.abi


def test_gas_within_targets(open_as):
    dev = open_as("dev")
    a = dev.register("model", "sha256:" + "01" * 32)
    b = dev.register("model", "sha256:" + "02" * 32, parents=[a.artefact_id])
    c = dev.register("model", "sha256:" + "03" * 32, parents=[a.artefact_id, b.artefact_id])
    t = dev.transition(a.artefact_id, "trained", "sha256:" + "04" * 32)
    assert a.gas_used <= 70_000
    assert b.gas_used - a.gas_used <= 6_000
    assert c.gas_used - b.gas_used <= 6_000
    assert t.gas_used <= 40_000
