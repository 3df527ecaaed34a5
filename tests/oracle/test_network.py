"""Five oracle daemons, each a real process, audit real services on loopback and reach
consensus on chain: on the embedded ledger and on anvil.

oracle1-3 run ``mltrail oracle run``; oracle4-5 run the scheduled adversary
(:mod:`mltrail.testing.oracles`), honest unless the test's schedule says otherwise.
The tests share the daemons and run in order, one round each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from netkit import ORACLES, Net, build_net, register_service

from testkit import PASSWORD

pytestmark = [pytest.mark.xdist_group("oracle-net")]

QUERIES = "64"  # the identity test needs 59 answers for power 0.95 at 5% disagreement
METRICS = ["agreement", "accuracy", "latency", "availability"]


@dataclass
class Services:
    supplier: str
    cheat: str
    stop: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    import torch

    from mltrail.audit import models as M
    from mltrail.audit.receipts import load_or_create_key
    from mltrail.audit.service import create_app, serve_in_thread
    from mltrail.provenance.digest import digest_bytes
    from mltrail.testing.providers import ProxyMode, create_proxy_app

    torch.set_num_threads(1)
    arch = {"type": "mlp", "hidden": [32], "classes": 10}
    net = M.train_plain(arch, steps=150, seed=1)
    card = M.ModelCard(name="genuine", arch=arch, classes=10)
    acc = M.accuracy_of(net, *M.digits()[2:])
    card = card.model_copy(update={"claims": M.Claims(accuracy=round(int(acc * 100) / 100, 2))})
    other, _ = M.cheap_model(seed=7)  # a cheaper model the dishonest provider serves
    sup = serve_in_thread(create_app(net, card, digest_bytes(b"genuine"), load_or_create_key(None)))
    cheat = serve_in_thread(create_proxy_app(sup.url, ProxyMode("substitute"),
                                             lambda b: M.predict(other, b)))
    yield Services(sup.url, cheat.url, [sup, cheat])
    for s in (cheat, sup):
        s.stop()


@dataclass
class Network:
    net: Net
    tmp: Path
    schedule: Path
    procs: dict[str, subprocess.Popen[bytes]]
    commands: dict[str, list[str]]
    rpc_url: str | None
    good: str = ""
    bad: str = ""

    def start(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MLTRAIL_PASSWORD": PASSWORD}
        self.procs[name] = subprocess.Popen(self.commands[name], stdout=log,
                                            stderr=subprocess.STDOUT, env=env)

    def set_schedule(self, rid: int, **who: str) -> None:
        doc = json.loads(self.schedule.read_text()) if self.schedule.exists() else {}
        for name, behaviour in who.items():
            doc.setdefault(name, {})[str(rid)] = behaviour
        for name in ("oracle4", "oracle5"):
            (self.tmp / f"{name}.schedule").write_text(json.dumps(doc.get(name, {})))
        self.schedule.write_text(json.dumps(doc))

    def market(self, who: str = "client") -> Any:
        from mltrail.oracle.market import Market

        return Market.open(self.net.home, identity=who, password=PASSWORD)

    def next_round(self) -> int:
        with self.market() as m:
            return int(m.view("round_count")) + 1

    def request(self, service: str) -> int:
        from mltrail.oracle.market import metrics_mask

        with self.market() as m:
            rid, _ = m.request(service, metrics_mask(METRICS), 50)
        return rid

    def wait_closed(self, rid: int, timeout: float = 240,
                    advance_after: Callable[[], bool] | None = None) -> Any:
        """Wait for the round to close; once ``advance_after()``, mine blocks from the
        test too (the chain moves on whatever the daemons do)."""
        deadline = time.monotonic() + timeout
        with self.market("admin") as m:
            while time.monotonic() < deadline:
                info = m.round(rid)
                if info.status != "open":
                    return m.result(rid)
                advance = advance_after is not None and advance_after()
                for name, p in self.procs.items():
                    assert p.poll() is None, f"{name} died:\n{self.logs(name)}"
                if advance:
                    m.tick()  # the chain moves on without the daemons
                time.sleep(0.2)
        raise AssertionError(f"round {rid} still open:\n" + "\n".join(
            self.logs(n) for n in self.procs))

    def logs(self, name: str) -> str:
        p = self.tmp / f"{name}.log"
        return f"--- {name}\n" + (p.read_text()[-3000:] if p.exists() else "")

    def addr(self, name: str) -> str:
        return self.net.addresses[name]


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            services: Services) -> Iterator[Network]:
    rpc = request.getfixturevalue("anvil") if request.param == "anvil" else None
    tmp = tmp_path_factory.mktemp(f"oracles-{request.param}")
    net = build_net(tmp, rpc, stake=400)
    nw = Network(net, tmp, tmp / "schedule.json", {}, {}, rpc)
    nw.good = register_service(net, services.supplier, "good", describe=True)
    nw.bad = register_service(net, services.cheat, "bad", describe=True)
    home = str(net.home.root)  # type: ignore[attr-defined]
    nw.set_schedule(0)
    for name in ORACLES:
        if name in ("oracle4", "oracle5"):
            cmd = [sys.executable, "-m", "mltrail.testing.oracles", "--home", home, "--as", name,
                   "--schedule", str(tmp / f"{name}.schedule"), "--reference", services.supplier,
                   "--queries", QUERIES, "--poll", "0.3", "--tick", "1.0"]
        else:
            cmd = [sys.executable, "-m", "mltrail.cli.main", "--home", home, "--as", name,
                   "oracle", "run", "--reference", services.supplier, "--queries", QUERIES,
                   "--poll", "0.3", "--tick", "1.0"]
        nw.commands[name] = cmd
        nw.start(name)
    yield nw
    for p in nw.procs.values():
        p.terminate()
    for p in nw.procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _state(nw: Network, sid: str) -> str:
    from mltrail.ledger.client import Ledger

    with Ledger.open(nw.net.home, password=PASSWORD) as led:  # type: ignore[arg-type]
        return led.artefact(sid).state


def test_all_honest_consensus_and_everyone_paid(network: Network) -> None:
    rid = network.request(network.good)
    res = network.wait_closed(rid)
    assert res.round.status == "consensus" and res.round.verdict == "pass"
    assert res.round.revealed == 5
    assert sorted(res.paid) == sorted(network.addr(n) for n in ORACLES)
    assert res.medians["agreement"] == 1.0 and res.medians["availability"] == 1.0
    assert 0.5 < res.medians["accuracy"] <= 1.0
    assert not res.slashed and res.moved
    assert _state(network, network.good) == "audited"


def test_one_liar_is_slashed_and_changes_nothing(network: Network) -> None:
    rid = network.next_round()
    network.set_schedule(rid, oracle5="lie")
    res = network.wait_closed(network.request(network.good))
    assert res.round.verdict == "pass" and res.medians["agreement"] == 1.0
    assert list(res.slashed) == [network.addr("oracle5")]
    assert res.slashed[network.addr("oracle5")]["reason"] == "deviated from consensus"
    assert len(res.paid) == 4


def test_two_colluding_liars_do_not_move_consensus(network: Network) -> None:
    rid = network.next_round()
    network.set_schedule(rid, oracle4="collude", oracle5="collude")
    res = network.wait_closed(network.request(network.good))
    assert res.round.verdict == "pass" and res.medians["agreement"] == 1.0
    assert sorted(res.slashed) == sorted([network.addr("oracle4"), network.addr("oracle5")])
    lies = [r for r in res.reveals if r["verdict"] == "fail"]
    assert len(lies) == 2 and all(r["values"]["agreement"] < 0.5 for r in lies)


def test_copied_commitment_cannot_reveal(network: Network) -> None:
    with network.market("admin") as m:
        m.set_params(commit_window=60, reveal_window=30)
    rid = network.next_round()
    network.set_schedule(rid, oracle5="copy:" + network.addr("oracle1"))
    try:
        res = network.wait_closed(network.request(network.good),
                                  advance_after=lambda: "copying" in network.logs("oracle5"))
    finally:
        with network.market("admin") as m:
            m.set_params(commit_window=200, reveal_window=200)
    assert network.addr("oracle5") in res.commits
    assert all(r["oracle"] != network.addr("oracle5") for r in res.reveals)
    assert res.slashed[network.addr("oracle5")]["reason"] == "did not reveal"
    assert res.round.verdict == "pass" and network.addr("oracle1") in res.paid
    assert "reveal does not match commitment" in network.logs("oracle5")


def test_killed_after_commit_and_restarted_still_reveals(network: Network) -> None:
    rid = network.next_round()
    network.set_schedule(rid, oracle4="hold")  # keeps the commit phase open meanwhile
    network.request(network.good)
    victim = network.addr("oracle2")
    with network.market("admin") as m:
        deadline = time.monotonic() + 120
        while bytes(m.view("commitments", rid, victim)) == b"\x00" * 32:
            assert time.monotonic() < deadline, network.logs("oracle2")
            time.sleep(0.2)
    network.procs["oracle2"].kill()
    network.procs["oracle2"].wait(10)
    network.start("oracle2")
    network.set_schedule(rid, oracle4="honest")
    res = network.wait_closed(rid)
    assert victim in {r["oracle"] for r in res.reveals}
    assert victim in res.paid and not res.slashed


def test_dishonest_service_fails_and_is_suspended(network: Network) -> None:
    res = network.wait_closed(network.request(network.bad))
    assert res.round.status == "consensus" and res.round.verdict == "fail"
    assert res.medians["agreement"] < 0.99
    assert res.moved and len(res.paid) == 5
    assert _state(network, network.bad) == "suspended"
