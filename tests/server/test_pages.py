"""Dashboard pages render from the library's data: names not hex, badges, no raw JSON."""

from __future__ import annotations

import json

import httpx

from mltrail.ledger.client import Ledger
from testkit import PASSWORD

AUDIT = {"version": 1, "target": "http://127.0.0.1:9", "verdict": "fail", "queries": 32,
         "claimed": {"name": "digits-cnn", "model_digest": "sha256:" + "12" * 32},
         "alpha": 0.01, "alpha_per_test": 0.0025, "first_alarm_at": 2,
         "probes": {"benchmark": 450}, "probe_meta": {"kind": "benchmark"},
         "receipts": {"checked": True, "valid": 31, "invalid": 0, "missing": 1,
                      "bad_examples": []},
         "sequential": {"identity": {"rejected": True, "n": 32, "rejected_at_query": 12,
                                     "path": [0.1 * i for i in range(32)], "threshold": 5.3}},
         "fixed_sample": {"mcnemar": {"n": 32, "p_value": 0.004}},
         "findings": [{"severity": "fail", "check": "identity",
                       "message": "labels differ from the reference"}],
         "duration_s": 1.5}


def test_pages(served):
    with httpx.Client(base_url=served.url, cookies={"mltrail_token": served.tokens["viewer"]}
                      ) as c:
        home = c.get("/").text
        assert "digits-cnn" in home and 'class="badge good">verified' in home
        assert "digits-api" not in c.get("/?kind=model").text
        art = c.get(f"/a/{served.ids['model']}").text
        assert "proof-of-learning report" in art and 'data-state="verified"' in art
        pol = c.get(f"/reports/{served.ids['report']}").text
        assert "the proof was <strong>accepted</strong>" in pol and "verifier" in pol
        assert "None" not in pol and "{&#34;" not in pol and "{'" not in pol
        assert "API token" in c.get("/ledger").text
        assert c.get("/a/0x" + "ab" * 32).status_code == 404


def test_audit_report_page(served):
    digest = served.home.store.put(json.dumps(AUDIT).encode())
    with Ledger.open(served.home, identity="operator", password=PASSWORD) as op:
        if op.artefact(served.ids["service"]).state == "registered":
            op.transition(served.ids["service"], "deployed")
    with Ledger.open(served.home, identity="auditor", password=PASSWORD) as au:
        au.transition(served.ids["service"], "suspended", digest)
    page = httpx.get(f"{served.url}/reports/{digest}", timeout=120,  # matplotlib
                     cookies={"mltrail_token": served.tokens["viewer"]}).text
    assert "failed the audit" in page and "first alarm at query 2" in page
    assert "auditor" in page and "digits-api" in page  # who and what, by name
    assert 'class="plot sequential"' in page and "<svg" in page  # the evidence paths
    assert "None" not in page
