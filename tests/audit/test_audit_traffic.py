"""Audits drawn from real traffic: clients' sampled receipts catch what probes cannot."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims
from mltrail.audit.models import load_model
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.audit.service import serve_in_thread
from mltrail.audit.traffic import (
    SamplingClient,
    Submission,
    create_inbox_app,
    read_submissions,
    submit,
)
from mltrail.errors import InputError
from mltrail.testing.audit_base import Cheat
from mltrail.testing.audit_skimmer import Skimmer

SID = "0x" + "ab" * 32


def test_skimmer_forwards_probes_but_clients_samples_catch_it(tmp_path, seeded_path,
                                                              start_cheat) -> None:  # type: ignore[no-untyped-def]
    audited_url, key = start_cheat(Cheat())            # what the auditor's address sees
    customer_url, _ = start_cheat(Skimmer(fraction=0.2, seed=1))  # what customers see
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key,
                                     endpoint=audited_url)
    client = SamplingClient(customer_url, SID, rate=0.5)
    x, _ = P.held(80, seed=99).x, None
    for i in range(0, 80, 2):
        assert client.classify(x[i:i + 2]) is not None
    assert len(client.receipts) == 40 and 5 < len(client.sample) < 40
    samples = tmp_path / "samples.jsonl"
    n = client.write(samples)
    client.close()
    # through the auditor's inbox: signatures checked against the ledger key
    with serve_in_thread(create_inbox_app(tmp_path / "inbox", {SID: (key, digest)})) as inbox:
        res = submit(inbox.url, read_submissions(samples))
        assert res == {"submitted": n, "accepted": n, "rejected": [], "unsigned": []}
        bad = read_submissions(samples)[0].model_dump(mode="json")
        bad["response"]["outputs"][0]["label"] = (bad["response"]["outputs"][0]["label"] + 1) % 10
        res = submit(inbox.url, [Submission.model_validate(bad)])
        # accepted as a client's finding (an answer without a valid receipt), never as proof
        assert res["accepted"] == 1 and "receipt" in res["unsigned"][0]["reason"]
        bad["response"]["outputs"] = []
        res = submit(inbox.url, [Submission.model_validate(bad)])
        assert res["accepted"] == 0 and "response" in res["rejected"][0]["reason"]
    traffic = read_submissions(tmp_path / "inbox" / f"{SID}.jsonl", SID)[:n]
    assert len(traffic) == n
    probes_only = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path),
                                        max_queries=96, seed=2))
    assert probes_only.verdict == "pass", probes_only.findings
    both = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=96,
                                 seed=2, traffic=traffic))
    assert both.verdict == "fail" and both.failed("traffic_distribution"), both.findings
    assert both.traffic is not None and both.traffic["answered"] == n
    assert both.traffic["latency_p99_ms"] >= both.traffic["latency_p50_ms"] >= 0
    assert both.metrics.traffic_samples == n


def test_submission_format_is_plain_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Submission(service=SID, status=503, request={"inputs": [[0.0] * 64], "nonce": "n1"},
                   sent_at_ms=1, received_at_ms=2)
    line = s.model_dump_json()
    assert json.loads(line)["v"] == 1 and Submission.model_validate_json(line) == s
    assert np.asarray(s.batch((1, 8, 8))).shape == (1, 1, 8, 8)


@settings(max_examples=60, deadline=None, database=None)
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace")))
def test_hostile_submission_files_are_input_errors(tmp_path_factory, raw) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path_factory.mktemp("subs") / "s.jsonl"
    p.write_bytes(raw)
    try:
        for s in read_submissions(p):
            json.dumps(s.model_dump(mode="json"), allow_nan=False)
    except InputError:
        pass


def test_clients_of_a_v2_service_sample_and_submit_the_same_way(seeded_path,
                                                                start_cheat) -> None:  # type: ignore[no-untyped-def]
    v2 = "/v2/models/digits-mlp"
    audited_url, key = start_cheat(Cheat())
    customer_url, _ = start_cheat(Skimmer(fraction=0.3, seed=2))
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key,
                                     endpoint=audited_url + v2)
    client = SamplingClient(customer_url + v2, SID, rate=1.0)
    assert client.service.protocol == "oip"
    client.service.info()
    x = P.held(60, seed=98).x
    for i in range(0, 60, 3):
        assert client.classify(x[i:i + 3]) is not None
    client.close()
    traffic = [Submission.model_validate_json(s.model_dump_json()) for s in client.sample]
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=48,
                                seed=3, traffic=traffic))
    assert rep.receipts.invalid == 0 and rep.traffic is not None
    assert rep.traffic["invalid_receipts"] == 0 and rep.traffic["answered"] == 20
    assert rep.verdict == "fail" and rep.failed("traffic_distribution"), rep.findings
