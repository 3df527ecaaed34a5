"""Deploy a consortium's oracle network once, or join one another member deployed.

Deploying (the registry's admin): the AuditToken, then the AuditMarket configured with
the registry codes of the audited kind and its ``audited``/``suspended`` states, read from
the lifecycle *bindings* (never literal names); then the registry grants the market the
role that may take those transitions. The addresses go to ``<home>/oracle-network.json``;
other members' homes record the same addresses with :func:`join_network`, which checks
that the contracts there are ours and bound to the home's registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import is_address, to_checksum_address

from mltrail.config import Home
from mltrail.errors import InputError, LedgerError
from mltrail.ledger import contracts
from mltrail.ledger.abi import ContractABI
from mltrail.ledger.client import Ledger, open_backend
from mltrail.oracle.market import GAS_DEPLOY, NetworkConfig, network_path, save_network


@dataclass(frozen=True)
class Deployed:
    network: NetworkConfig
    gas_used: int
    tx_hash: str
    block: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.network.model_dump(), "gas_used": self.gas_used,
                "tx_hash": self.tx_hash, "block": self.block}


def audit_codes(ledger: Ledger) -> tuple[int, int, int]:
    """(kind, audited state, suspended state) codes from the lifecycle's audit bindings."""
    lc = ledger.lifecycle
    kind = lc.kind(lc.bound_kind("audit"))
    return (kind.code, kind.state_code(lc.bound_state("audit", "audited")),
            kind.state_code(lc.bound_state("audit", "suspended")))


def market_role(ledger: Ledger) -> str:
    """The role the lifecycle lists for the bound deployed -> audited/suspended moves."""
    lc = ledger.lifecycle
    kind = lc.kind(lc.bound_kind("audit"))
    src = lc.bound_state("audit", "deployed")
    roles = [set(kind.allowed(src, lc.bound_state("audit", s))) for s in ("audited",
                                                                         "suspended")]
    common = sorted(roles[0] & roles[1])
    if not common:
        raise InputError(f"no single role may move a {kind.name} from {src} to both the "
                         "audited and suspended states; the market cannot hold one")
    return "auditor" if "auditor" in common else common[0]


def deploy_network(ledger: Ledger, name: str = "mltrail audit token", symbol: str = "AUDIT",
                   supply: int = 0) -> Deployed:
    """Deploy token and market as the ledger's admin; grant the market its role; mint
    ``supply`` to the admin. Refused if this home already has a network."""
    home = ledger.home
    if network_path(home).exists():
        raise InputError(f"{network_path(home)} exists: this home already has an oracle network")
    kind, audited, suspended = audit_codes(ledger)
    role = market_role(ledger)
    be, acct = ledger.backend, ledger.account
    tok = contracts.load("AuditToken")
    mkt = contracts.load("AuditMarket")
    rc1 = be.transact(acct, None, ContractABI(tok.abi).encode_constructor(
        tok.bytecode, name[:32], symbol[:8]), GAS_DEPLOY)
    assert rc1.contract_address is not None
    rc2 = be.transact(acct, None, ContractABI(mkt.abi).encode_constructor(
        mkt.bytecode, rc1.contract_address, ledger.registry, kind, audited, suspended),
        GAS_DEPLOY + 1_000_000)
    assert rc2.contract_address is not None
    grant = ledger.grant_role(rc2.contract_address, role)
    gas = rc1.gas_used + rc2.gas_used + grant.gas_used
    if supply:
        rc3 = be.transact(acct, rc1.contract_address, ContractABI(tok.abi).encode(
            "mint", acct.address, supply), 120_000)
        gas += rc3.gas_used
    cfg = NetworkConfig(chain_id=be.chain_id, token=rc1.contract_address,
                        market=rc2.contract_address, deploy_block=rc1.block)
    save_network(home, cfg)
    return Deployed(cfg, gas, rc2.tx_hash, grant.block)


def join_network(home: Home, token: str, market: str) -> NetworkConfig:
    """Record another member's network in ``home`` after checking it on chain."""
    for what, addr in (("token", token), ("market", market)):
        if not is_address(addr):
            raise InputError(f"--{what} is not an address: {addr!r}")
    settings = home.settings()
    if network_path(home).exists():
        raise InputError(f"{network_path(home)} exists: this home already has an oracle network")
    backend = open_backend(home, settings)
    try:
        mabi = ContractABI(contracts.load("AuditMarket").abi)
        market = to_checksum_address(market)
        if not backend.code_at(market):
            raise LedgerError(f"no contract at {market} on chain {backend.chain_id}")
        try:
            def view(fn: str) -> Any:
                return mabi.decode_output(fn, backend.call(market, mabi.encode(fn)))[0]
            reg, tok = to_checksum_address(view("registry")), to_checksum_address(view("token"))
        except Exception as exc:  # noqa: BLE001 - anything else means it is not our market
            raise LedgerError(f"{market} is not an mltrail AuditMarket") from exc
        if reg != to_checksum_address(settings.registry):
            raise LedgerError(f"market {market} serves registry {reg}, not this home's "
                              f"{settings.registry}")
        if tok != to_checksum_address(token):
            raise LedgerError(f"market {market} uses token {tok}, not {token}")
        first = 0
        for lg in backend.logs(market, 0, backend.head())[:1]:
            first = lg.block
        cfg = NetworkConfig(chain_id=backend.chain_id, token=tok, market=market,
                            deploy_block=first)
    finally:
        backend.close()
    save_network(home, cfg)
    return cfg
