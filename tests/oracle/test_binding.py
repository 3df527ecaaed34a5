"""The market's bindings in one process on the real embedded EVM: a round names only
the service, a pass never reinstates a suspended service, absent oracles are slashed
whatever the outcome, a tie escalates instead of refunding, and each oracle's private
probes can be checked against the digest it committed to."""

from __future__ import annotations

import os
from typing import Any

import pytest
from netkit import build_net, play_round, register_service

from testkit import PASSWORD

pytestmark = pytest.mark.xdist_group("oracle-net")

OK = {"agreement": 1.0, "accuracy": 0.95, "availability": 1.0}
BAD = {"agreement": 0.4, "accuracy": 0.3, "availability": 1.0}


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mltrail.oracle.market import Market

    net = build_net(tmp_path_factory.mktemp("bind"), n_oracles=5, stake=1000,
                    params={"commit_window": 6, "reveal_window": 6, "min_stake": 100,
                            "slash_amount": 10, "quorum": 3})
    ms = [Market.open(net.home, identity=f"oracle{i}", password=PASSWORD) for i in range(1, 6)]
    client = Market.open(net.home, identity="client", password=PASSWORD)
    yield net, client, ms
    for m in [client, *ms]:
        m.close()


def _f(metrics: dict[str, float], verdict: int) -> tuple[list[int], int]:
    from mltrail.oracle import market as M

    return [M.to_units(n, metrics.get(n, 0.0)) for n in M.METRICS], verdict


def _mask() -> int:
    from mltrail.oracle.market import metrics_mask

    return metrics_mask(["agreement", "accuracy", "availability"])


def _state(net: Any, sid: str) -> str:
    from mltrail.ledger.client import Ledger

    with Ledger.open(net.home, password=PASSWORD) as led:
        return str(led.artefact(sid).state)


def test_a_pass_never_moves_a_suspended_service(five: Any) -> None:
    from mltrail.oracle.market import FAIL, PASS

    net, client, ms = five
    sid = register_service(net, "http://127.0.0.1:9/", "sus")
    r = play_round(client, ms, sid, [_f(BAD, FAIL)] * 5, _mask())
    res = client.result(r["round"])
    assert res.round.verdict == "fail" and res.moved and _state(net, sid) == "suspended"
    r = play_round(client, ms, sid, [_f(OK, PASS)] * 5, _mask())
    res = client.result(r["round"])
    assert res.round.verdict == "pass" and len(res.paid) == 5  # settles, pays...
    assert res.moved is False and _state(net, sid) == "suspended"  # ...moves nothing


def test_absent_oracles_are_slashed_with_or_without_consensus(five: Any) -> None:
    from mltrail.oracle.market import PASS

    net, client, ms = five
    sid = register_service(net, "http://127.0.0.1:9/", "absent")
    r = play_round(client, ms, sid, [_f(OK, PASS)] * 4 + [None], _mask())
    res = client.result(r["round"])
    assert res.round.status == "consensus" and len(res.paid) == 4
    assert res.slashed == {ms[4].me: {"amount": 10, "reason": "did not commit"}}
    # too few reveals (quorum 3): no consensus, a refund, both absentees slashed anyway
    r = play_round(client, ms, sid, [_f(OK, PASS)] * 2 + [None] * 3, _mask())
    res = client.result(r["round"])
    assert res.round.status == "no consensus" and res.refunded == 50
    assert {o: s["reason"] for o, s in res.slashed.items()} == {
        m.me: "did not commit" for m in ms[2:]}


def test_a_tie_escalates_to_a_larger_round(five: Any) -> None:
    from mltrail.oracle.market import FAIL, PASS

    net, client, ms = five
    sid = register_service(net, "http://127.0.0.1:9/", "tie")
    before = client.balance()
    # two colluders say fail, two honest say pass, one honest oracle is away: a tie
    r = play_round(client, ms, sid, [_f(BAD, FAIL)] * 2 + [_f(OK, PASS)] * 2 + [None], _mask())
    res = client.result(r["round"])
    assert res.round.status == "escalated" and res.refunded == 0 and not res.paid
    assert res.slashed == {ms[4].me: {"amount": 10, "reason": "did not commit"}}
    nxt = client.round(res.escalated_to)
    assert nxt.status == "open" and nxt.fee == 50 and nxt.quorum == 5 and nxt.escalation == 1
    assert client.balance() == before - 50  # the fee went on to the larger round
    r2 = play_round(client, ms, sid, [_f(BAD, FAIL)] * 2 + [_f(OK, PASS)] * 3, _mask(),
                    rid=nxt.round)
    res2 = client.result(r2["round"])
    assert res2.round.verdict == "pass" and len(res2.paid) == 3
    assert sorted(res2.slashed) == sorted(m.me for m in ms[:2])
    assert _state(net, sid) == "audited"


def test_private_probes_are_secret_until_the_reveal_then_checkable() -> None:
    from mltrail.oracle import probes as OP

    salt, other = os.urandom(32), os.urandom(32)
    a = OP.draw(salt, 7, 16)
    assert OP.check(salt, 7, OP.digest(a), 16)
    assert not OP.check(other, 7, OP.digest(a), 16)  # another oracle's set differs
    assert not OP.check(salt, 8, OP.digest(a), 16)  # and so does another round's
    assert a.meta["source"] == "auditor-held"  # never public benchmark samples


def test_an_oracle_audits_the_claims_endpoint_never_the_requester_s(five: Any) -> None:
    from mltrail.ledger.client import Ledger
    from mltrail.oracle.daemon import service_claims
    from mltrail.oracle.metrics import measure

    net, _client, ms = five
    sid = register_service(net, "http://127.0.0.1:9/claimed", "svc")
    claims, why = service_claims(ms[0], sid)
    assert claims is not None and claims.claims.endpoint == "http://127.0.0.1:9/claimed"
    with Ledger.open(net.home, identity="operator", password=PASSWORD) as op:
        bare = op.register("service", "sha256:" + "cd" * 32,
                           metadata={"name": "bare"}).artefact_id
    none, why = service_claims(ms[0], bare)
    assert none is None and "claims" in why
    res = measure(None, ["agreement"], 1, claims_error=why)
    assert res.verdict == "fail" and why in res.report["error"]


# an honest oracle's salt from a CI run (round seed 1384883528): its 64 genuine digits
# happened to be told from public ones by the MLP detector (AUC 0.6845 > 0.6661), so the
# oracle voted "fail" on an honest service and, with two colluders, flipped the round
UNLUCKY_SALT = bytes.fromhex("f8e61f0389f3d77650276a81cdc92453fcd3cf766c85794956e2fde33a1a8382")
UNLUCKY_ROUND_SEED = 1384883528


def test_an_oracle_redraws_a_salt_whose_probes_a_detector_tells_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mltrail.audit.distinguish import assess_probes
    from mltrail.oracle import probes as OP

    bad = OP.draw(UNLUCKY_SALT, UNLUCKY_ROUND_SEED)
    assert not assess_probes(bad, len(bad), [], None, seed=None)["alone"]
    draws = iter([UNLUCKY_SALT])
    real = os.urandom
    monkeypatch.setattr(OP.os, "urandom", lambda n: next(draws, None) or real(n))
    salt, ps, tries = OP.fresh_salt(UNLUCKY_ROUND_SEED)
    assert tries == 2 and salt != UNLUCKY_SALT
    assert OP.digest(ps) == OP.digest(OP.draw(salt, UNLUCKY_ROUND_SEED))  # checkable later
    assert assess_probes(ps, len(ps), [], None, seed=None)["alone"]
