"""Set-up shared by the oracle tests and bench/oracle.py: a home with a deployed oracle
network, five staked oracles, a client and a deployed service artefact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testkit import PASSWORD, make_home

ORACLES = [f"oracle{i}" for i in range(1, 6)]


@dataclass
class Net:
    home: object
    token: str
    market: str
    addresses: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)


def build_net(tmp: Path, rpc_url: str | None = None, n_oracles: int = 5, stake: int = 200,
              params: dict[str, int] | None = None) -> Net:
    """An embedded home (or one on ``rpc_url``, its identities funded) with the network."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.oracle.deploy import deploy_network
    from mltrail.oracle.market import Market

    if rpc_url is None:
        h = make_home(tmp)
    else:
        from mltrail.ledger.setup import init_home
        from testkit import ROLE_IDENTITIES, fund

        h = init_home(tmp / ".mltrail", password=PASSWORD, rpc_url=rpc_url,
                      private_key=_fresh_funded_key(rpc_url))
        with Ledger.open(h, password=PASSWORD) as admin:
            for name, role in ROLE_IDENTITIES.items():
                addr = create_identity(h, name, PASSWORD)
                fund(rpc_url, addr)
                admin.grant_role(addr, role)
    names = [f"oracle{i}" for i in range(1, n_oracles + 1)] + ["client"]
    addrs = {}
    for name in names:
        addrs[name] = create_identity(h, name, PASSWORD)
        if rpc_url:
            from testkit import fund

            fund(rpc_url, addrs[name])
    with Ledger.open(h, password=PASSWORD) as admin:
        dep = deploy_network(admin, supply=10**9)
    net = Net(h, dep.network.token, dep.network.market, addrs)
    with Market.open(h, password=PASSWORD) as m:
        m.set_params(**(params or {"commit_window": 200, "reveal_window": 200,
                                   "min_stake": 100, "slash_amount": 50, "quorum": 3}))
        # p99 latency: five oracles load one service on a small machine; accept 3x the median
        m.set_tolerances([10_000, 10_000, 50_000, 500_000, 100_000], [0, 0, 0, 20_000, 0])
        for name in names:
            m.transfer(addrs[name], stake + 1000)
            if name != "client":
                m.admit(addrs[name])
    for name in names[:-1]:
        with Market.open(h, identity=name, password=PASSWORD) as m:
            m.stake(stake)
    return net


def _fresh_funded_key(rpc_url: str) -> bytes:
    import os

    from eth_account import Account

    from testkit import fund

    key = os.urandom(32)
    fund(rpc_url, Account.from_key(key).address, eth=100)
    return key


def register_service(net: Net, url: str, name: str, *, describe: bool = False) -> str:
    """The operator registers a service with signed claims naming ``url`` (the claims the
    service at ``url`` describes if ``describe``, else minimal ones) and deploys it;
    returns its id."""
    from mltrail.audit.claims import ServiceClaims
    from mltrail.audit.claims import register_service as register
    from mltrail.audit.workflows import claims_from_target
    from mltrail.ledger.client import Ledger

    claims = claims_from_target(url, name) if describe else ServiceClaims(
        name=name, endpoint=url, model_digest="sha256:" + "0" * 64)
    with Ledger.open(net.home, identity="operator", password=PASSWORD) as op:
        reg, _ = register(op, claims)
        op.transition(reg.artefact_id, "deployed")
    net.services[name] = reg.artefact_id
    return reg.artefact_id


Finding = tuple[list[int], int]  # (values in units, verdict code)


def play_round(client: object, oracles: list[object], sid: str,
               findings: Sequence[Finding | None], mask: int, fee: int = 50,
               rid: int | None = None) -> dict[str, object]:
    """One protocol round in process (findings fixed in advance): request (unless ``rid``
    names an open round, e.g. an escalation), a commitment from each oracle whose finding
    is not None, the reveals, the finalisation (after the reveal window if a committed
    oracle held its reveal back); returns the round's gas by step."""
    import os

    from mltrail.oracle import market as M

    if rid is None:
        rid, tx = client.request(sid, mask, fee)  # type: ignore[attr-defined]
        gas: dict[str, object] = {"request": tx.gas_used}
    else:
        gas = {"request": 0}
    salts: list[bytes] = []
    commits, reveals = [], []
    for m, f in zip(oracles, findings, strict=True):
        salts.append(os.urandom(32))
        if f is not None:
            c = M.commitment(rid, f[0], f[1], b"\x01" * 32, b"\x02" * 32, salts[-1],
                             m.me)  # type: ignore[attr-defined]
            commits.append(m.commit(rid, c).gas_used)  # type: ignore[attr-defined]
    if len(commits) < len(oracles):  # close the commit phase by mining past it
        info = client.round(rid)  # type: ignore[attr-defined]
        while client.backend.head() < info.commit_end:  # type: ignore[attr-defined]
            client.tick()  # type: ignore[attr-defined]
    for m, f, salt in zip(oracles, findings, salts, strict=True):
        if f is not None:
            reveals.append(m.reveal(rid, f[0], f[1], b"\x01" * 32, b"\x02" * 32,  # type: ignore[attr-defined]
                                    salt).gas_used)
    while not client.round(rid).can_finalize(client.backend.head() + 1):  # type: ignore[attr-defined]
        client.tick()  # type: ignore[attr-defined]  # a reveal held back: wait out the window
    gas |= {"commit": commits, "reveal": reveals,
            "finalize": oracles[0].finalize(rid).gas_used,  # type: ignore[attr-defined]
            "round": rid}
    return gas
