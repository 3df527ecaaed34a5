"""The market's rules through the CLI and the library, in one process on the embedded
ledger: refusals with their reasons, too few reveals, a target that is down."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netkit import build_net, register_service

from testkit import PASSWORD, free_port

pytestmark = pytest.mark.xdist_group("oracle-net")


@pytest.fixture
def small(tmp_path: Path):
    net = build_net(tmp_path, n_oracles=3, stake=200,
                    params={"commit_window": 3, "reveal_window": 3, "min_stake": 100,
                            "slash_amount": 50, "quorum": 2})
    dead = f"http://127.0.0.1:{free_port()}"
    sid = register_service(net, dead, "down")
    return net, sid, dead


def _claims(url: str):
    from mltrail.audit.claims import ServiceClaims

    return ServiceClaims(name="t", endpoint=url, model_digest="sha256:" + "0" * 64)


def _market(net, who: str):
    from mltrail.oracle.market import Market

    return Market.open(net.home, identity=who, password=PASSWORD)


def test_refusals_reasons_and_a_round_without_consensus(small, cli) -> None:
    net, sid, dead = small
    h = net.home.root
    r = cli("--as", "client", "audit", "request", sid[:12], "--fee", "10", "--target",
            "http://127.0.0.1:1/", home=h)  # the requester names no endpoint any more
    assert r.code == 2
    r = cli("--as", "client", "audit", "request", sid[:12], "--fee", "10",
            "--metrics", "agreement,availability", "--json", home=h)
    assert r.code == 0, r.err
    req = r.json()
    assert req["round"] == 1 and {"tx_hash", "block", "gas_used"} <= set(req)
    assert req["endpoint"] == dead  # from the service's signed claims
    with _market(net, "client") as m:
        before = m.balance()

    r = cli("--as", "client", "oracle", "commit", "1", home=h)
    assert r.code == 2 and "not an oracle" in r.err
    assert cli("--as", "oracle1", "oracle", "commit", "1", home=h).code == 0
    r = cli("--as", "oracle1", "oracle", "commit", "1", home=h)
    assert r.code == 2 and "already committed" in r.err
    r = cli("--as", "oracle1", "oracle", "reveal", "1", home=h)
    assert r.code == 2 and "reveal window not open yet" in r.err
    r = cli("--as", "oracle1", "oracle", "unstake", "10", home=h)
    assert r.code == 2 and "open rounds" in r.err
    assert cli("--as", "oracle2", "oracle", "commit", "1", home=h).code == 0
    assert cli("--as", "oracle3", "oracle", "commit", "1", home=h).code == 0  # all in: reveal
    r = cli("--as", "oracle1", "oracle", "reveal", "1", "--salt", "11" * 32, home=h)
    assert r.code == 2 and "reveal does not match commitment" in r.err
    r = cli("--as", "oracle1", "oracle", "reveal", "1", "--json", home=h)
    assert r.code == 0, r.err
    r = cli("oracle", "finalize", "1", home=h)
    assert r.code == 2 and "reveal window still open" in r.err
    with _market(net, "admin") as m:
        while m.backend.head() < m.round(1).reveal_end:
            m.tick()
    r = cli("--as", "oracle2", "oracle", "reveal", "1", home=h)
    assert r.code == 2 and "reveal window closed" in r.err
    assert cli("oracle", "finalize", "1", home=h).code == 0

    res = cli("audit", "result", "1", "--json", home=h).json()
    assert res["round"]["status"] == "no consensus" and res["refunded"] == 10  # type: ignore
    (rv,) = res["reveals"]  # type: ignore[index]
    assert rv["verdict"] == "fail" and rv["values"] == {"agreement": 0.0, "availability": 0.0}
    assert sorted(s["reason"] for s in res["slashed"].values()) == [  # type: ignore[index]
        "did not reveal", "did not reveal"]
    with _market(net, "client") as m:
        assert m.balance() == before + 10
    st1 = cli("--as", "oracle1", "oracle", "status", "--json", home=h).json()
    assert st1["stake"] == 200 and st1["rounds"]["revealed"] == 1  # type: ignore[index]
    st2 = cli("oracle", "status", "oracle2", "--json", home=h).json()
    assert st2["stake"] == 150 and st2["slashed"] == 50  # type: ignore[index]
    assert "round 1" in cli("audit", "result", "1", home=h).out
    assert cli("audit", "result", "9", home=h).code == 2


def test_requests_are_checked_by_the_contract(small) -> None:
    from mltrail.errors import InputError, RefusedError
    from mltrail.ledger.client import Ledger
    from mltrail.oracle.market import metrics_mask

    net, sid, dead = small
    with Ledger.open(net.home, identity="steward", password=PASSWORD) as led:
        ds = led.register("dataset", "sha256:" + "ab" * 32).artefact_id
    with _market(net, "client") as m:
        with pytest.raises(RefusedError, match="unknown service artefact"):
            m.request("0x" + "12" * 32, 1, 5)
        with pytest.raises(RefusedError, match="not an artefact of the audited kind"):
            m.request(ds, 1, 5)
        with pytest.raises(RefusedError, match="bad metrics mask"):
            m.request(sid, 64, 5)
        with pytest.raises(RefusedError, match="insufficient"):
            m.request(sid, metrics_mask(["all"]), 10**9)
        with pytest.raises(InputError):
            m.request(sid, 1, 0)
    with _market(net, "oracle1") as m:
        with pytest.raises(RefusedError, match="admin only"):
            m.admit(net.addresses["client"])
        with pytest.raises(RefusedError, match="admin only"):
            m.set_params(quorum=1)


def test_a_down_target_reports_availability_not_a_crash() -> None:
    from mltrail.oracle.metrics import measure

    m = measure(_claims(f"http://127.0.0.1:{free_port()}"), ["agreement", "availability"],
                seed=1)
    assert m.verdict == "fail" and m.values["availability"] == 0.0
    assert m.report["available"] is False and "cannot reach" in m.report["error"]


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=30))
def test_amounts_and_metric_names_never_crash(text: str) -> None:
    from mltrail.errors import InputError
    from mltrail.oracle.market import mask_names, metrics_mask, parse_amount

    with contextlib.suppress(InputError):
        assert parse_amount(text) >= 0
    with contextlib.suppress(InputError):
        assert mask_names(metrics_mask([text]))


def test_another_member_joins_the_network(anvil: str, tmp_path: Path) -> None:
    from mltrail.errors import InputError, LedgerError
    from mltrail.ledger.setup import init_home
    from mltrail.oracle.deploy import join_network
    from mltrail.oracle.market import Market, load_network

    net = build_net(tmp_path / "a", anvil, n_oracles=1, stake=100)
    other = init_home(tmp_path / "b" / ".mltrail", password=PASSWORD, rpc_url=anvil,
                      registry=net.home.settings().registry)  # type: ignore[attr-defined]
    with pytest.raises(LedgerError, match="not an mltrail AuditMarket"):
        join_network(other, net.token, net.token)
    with pytest.raises(InputError, match="not an address"):
        join_network(other, "0x12", net.market)
    cfg = join_network(other, net.token, net.market)
    assert cfg == load_network(other).model_copy(update={})
    with Market.open(other, password=PASSWORD) as m:
        assert m.oracle_status(net.addresses["oracle1"])["stake"] == 100
        assert m.params()["oracle_count"] == 1
    with pytest.raises(InputError, match="already has an oracle network"):
        join_network(other, net.token, net.market)


def test_a_target_answering_nonsense_fails_without_a_crash() -> None:
    from fastapi import FastAPI, Request

    from mltrail.audit.service import serve_in_thread
    from mltrail.oracle.metrics import measure

    app = FastAPI()

    @app.get("/v1/model")
    async def info() -> dict[str, object]:
        return {"model_digest": "sha256:" + "00" * 32, "input_shape": [1, 8, 8]}

    @app.post("/v1/classify")
    async def classify(request: Request) -> dict[str, object]:
        n = len((await request.json())["inputs"])
        return {"outputs": [{"label": "seven", "probs": None}] * n}

    srv = serve_in_thread(app)
    try:
        m = measure(_claims(srv.url), ["agreement", "accuracy"], seed=2)
    finally:
        srv.stop()
    assert m.verdict == "fail" and m.values["agreement"] == 0.0
