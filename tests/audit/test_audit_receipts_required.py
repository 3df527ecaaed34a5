"""Receipts are not optional when the ledger claims say the service signs: unsigned
answers are clients' findings (kept, submitted, accepted), and a quorum of independent
clients turns them into a failed audit that a few lying clients cannot trigger."""

from __future__ import annotations

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims
from mltrail.audit.evidence import missing_receipt_test
from mltrail.audit.models import load_model
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.audit.service import serve_in_thread
from mltrail.audit.traffic import SamplingClient, create_inbox_app, submit
from mltrail.testing.audit_base import Cheat
from mltrail.testing.audit_dropper import Dropper
from mltrail.testing.audit_liars import fabricate, strip_and_alter

SID = "0x" + "cd" * 32


def _clients(url: str, key: str, digest: str, n: int, requests: int,
             x: np.ndarray) -> list[SamplingClient]:
    out = []
    for c in range(n):
        cl = SamplingClient(url, SID, rate=0.5, public_key=key, model_digest=digest,
                            client_id=f"client-{c}")
        for i in range(requests):
            j = (c * requests + i) * 2 % (len(x) - 2)
            assert cl.classify(x[j:j + 2]) is not None
        cl.close()
        out.append(cl)
    return out


def test_receipt_dropper_is_caught_by_a_quorum_of_clients(tmp_path, seeded_path,
                                                          start_cheat) -> None:  # type: ignore[no-untyped-def]
    audited_url, key = start_cheat(Cheat())              # honest to the auditor
    customer_url, _ = start_cheat(Dropper(fraction=0.3, seed=5))
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key,
                                     endpoint=audited_url)
    x = P.held(200, seed=8).x
    clients = _clients(customer_url, key, digest, 3, 16, x)
    for cl in clients:   # every unsigned answer is kept and in the submission, drawn or not
        assert cl.unsigned > 0 and cl.unsigned == len(cl.findings)
        assert all(s in cl.sample for s in cl.findings)
    subs = [s for cl in clients for s in cl.sample]
    with serve_in_thread(create_inbox_app(tmp_path / "inbox", {SID: (key, digest)})) as inbox:
        res = submit(inbox.url, subs)
    assert res["accepted"] == len(subs) and not res["rejected"]
    assert len(res["unsigned"]) == sum(cl.unsigned for cl in clients)
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                seed=2, traffic=subs))
    assert rep.verdict == "fail" and rep.failed("missing_receipts"), rep.findings
    t = rep.traffic["missing_receipts"]  # type: ignore[index]
    assert len(t["clients_rejecting"]) == 3 and rep.traffic["unsigned_differ"] > 0  # type: ignore[index]
    # the same evidence with a quorum larger than the number of clients: only a warning
    rep4 = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                 seed=2, traffic=subs, receipt_quorum=4))
    assert not rep4.failed("missing_receipts") and rep4.verdict == "pass", rep4.findings


def test_two_lying_clients_cannot_frame_an_honest_provider(seeded_path,
                                                          start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Cheat())
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    x = P.held(200, seed=9).x
    honest = _clients(url, key, digest, 2, 10, x)
    subs = [s for cl in honest for s in cl.sample]
    assert subs and all(cl.unsigned == 0 for cl in honest)
    rng = np.random.default_rng(0)
    lies = [strip_and_alter(s, rng, "liar-0") for s in subs[:4]]
    lies += [fabricate(SID, x[i:i + 3], rng, client="liar-1", now_ms=1) for i in range(5)]
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                seed=4, traffic=subs + lies))
    assert rep.verdict == "pass" and not rep.failed("missing_receipts"), rep.findings
    t = rep.traffic["missing_receipts"]  # type: ignore[index]
    assert sorted(t["clients_rejecting"]) == ["liar-0", "liar-1"]
    assert t["overall"]["unsigned"] == 0 and t["overall"]["dropped_clients"] == 2


def test_missing_receipt_test_keeps_its_false_alarm_rate_with_a_tolerance() -> None:
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(400):   # provider at the tolerance m0 = 0.02, 10 honest clients, 2 liars
        counts = {f"c{i}": (50, int(rng.binomial(50, 0.02))) for i in range(10)}
        counts |= {"liar-a": (50, 50), "liar-b": (50, 50)}
        alarms += missing_receipt_test(counts, 0.05, m0=0.02, quorum=3)["rejected"]
    assert alarms / 400 <= 0.05
    caught = sum(missing_receipt_test({f"c{i}": (50, int(rng.binomial(50, 0.2)))
                                       for i in range(10)}, 0.05, m0=0.02)["rejected"]
                 for _ in range(50))
    assert caught == 50


def test_detector_plus_receipt_dropping_is_caught_on_the_auditors_probes(
        seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    from mltrail.testing.audit_dodger import Dodger

    dodger = Dodger(seed=3, drop=True)
    url, key = start_cheat(dodger)
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                seed=5))
    # its detector cannot tell the auditor's own data from handwriting: it substitutes
    # them, unsigned, and a missing receipt is a failure when the claims say it signs
    assert rep.verdict == "fail" and rep.failed("receipts") and rep.receipts.missing > 0
    assert rep.failed("distribution") or rep.failed("identity"), rep.findings
