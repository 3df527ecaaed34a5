"""End to end on loopback: real supplier, real providers, the auditor's verdicts."""

from __future__ import annotations

import json

import pytest

from mltrail.audit import probes as P
from mltrail.audit.report import to_html, to_json_bytes
from mltrail.audit.result import AuditReport
from mltrail.audit.runner import AuditConfig, run_audit


@pytest.fixture(scope="module")
def bench() -> P.ProbeSet:
    return P.benchmark(seed=0)


@pytest.fixture(scope="module")
def held() -> P.ProbeSet:
    return P.held(seed=0)


@pytest.fixture(scope="module")
def keyed(stego) -> P.ProbeSet:  # type: ignore[no-untyped-def]
    return P.keyed(stego[1], n_ordinary=120, n_containers=60, n_triggers=30, seed=5)


def _fails(rep: AuditReport, check: str) -> bool:
    return rep.failed(check)


def test_honest_provider_raises_no_alarm(supplier, make_proxy, bench, held) -> None:  # type: ignore[no-untyped-def]
    url = make_proxy(supplier.url, "honest")
    public = run_audit(AuditConfig(target=url, probes=bench, reference_url=supplier.url,
                                   fixed_batch=True, max_queries=96))
    # public benchmark probes: the accuracy claim is accepted, but they cannot pass alone
    assert public.verdict == "inconclusive" and public.first_alarm_at is None
    assert not public.sequential["claimed_accuracy"]["rejected"]
    assert [f.check for f in public.findings if f.severity == "warn"][-1] == "probes"
    rep = run_audit(AuditConfig(target=url, probes=held, reference_url=supplier.url,
                                fixed_batch=True))
    assert rep.verdict == "pass", rep.findings
    assert rep.receipts.valid == rep.queries // 32 + (rep.queries % 32 > 0)
    assert rep.metrics.agreement == 1.0 and rep.metrics.availability == 1.0
    assert rep.receipts.invalid == 0 and rep.first_alarm_at is None
    html = to_html(json.loads(to_json_bytes(rep.to_dict())))
    assert "Verdict: pass" in html and 'class="plot sequential"' in html


def test_seeded_rebuild_gives_an_exact_reference(supplier, make_proxy, bench, held) -> None:  # type: ignore[no-untyped-def]
    honest = run_audit(AuditConfig(target=make_proxy(supplier.url, "honest"), probes=held,
                                   public_key=supplier.pubkey, max_queries=96))
    assert honest.reference.digest_matches is True
    assert honest.exact["passed"] and honest.exact["max_abs_diff"] < 1e-4
    assert honest.verdict == "pass", honest.findings
    sub = run_audit(AuditConfig(target=make_proxy(supplier.url, "substitute"), probes=bench,
                                public_key=supplier.pubkey, max_queries=96))
    assert sub.verdict == "fail" and _fails(sub, "deterministic") and _fails(sub, "identity")


def test_substitute_is_caught_quickly(supplier, make_proxy, bench) -> None:  # type: ignore[no-untyped-def]
    url = make_proxy(supplier.url, "substitute")
    rep = run_audit(AuditConfig(target=url, probes=bench, model_path=str(supplier.path),
                                public_key=supplier.pubkey, stop_on_alarm=True, batch_size=4))
    assert rep.verdict == "fail"
    assert _fails(rep, "identity") or _fails(rep, "distribution")
    assert rep.first_alarm_at is not None and rep.queries < 100
    assert rep.receipts.missing > 0


def test_mix_of_ten_percent_is_caught(supplier, make_proxy, held) -> None:  # type: ignore[no-untyped-def]
    url = make_proxy(supplier.url, "mix=0.1", seed=11)
    rep = run_audit(AuditConfig(target=url, probes=held, reference_url=supplier.url,
                                batch_size=4))
    assert rep.verdict == "fail" and _fails(rep, "distribution"), rep.findings
    d = rep.sequential["identity"]["mean"]
    assert 0 < d < 0.1  # only a few answers differ, and the audit still sees it


def test_probe_aware_provider_fools_public_benchmarks_but_not_keyed_probes(
        stego_supplier, make_proxy, bench, keyed) -> None:  # type: ignore[no-untyped-def]
    url = make_proxy(stego_supplier.url, "probe-aware")
    # public benchmark probes are recognised and forwarded: no alarm, and with no reference
    # and too few labelled probes for the accuracy claim, no test reached its power
    fooled = run_audit(AuditConfig(target=url, probes=bench, public_key=stego_supplier.pubkey,
                                   max_queries=64))
    assert fooled.verdict == "inconclusive", fooled.findings
    assert fooled.first_alarm_at is None and not fooled.power.sufficient
    # keyed probes hidden in ordinary-looking traffic, no reference at all: caught
    rep = run_audit(AuditConfig(target=url, probes=keyed, public_key=stego_supplier.pubkey))
    assert rep.verdict == "fail"
    assert _fails(rep, "stego") and _fails(rep, "trigger"), rep.findings
    assert rep.fixed_sample["stego"]["p_value"] < 0.01
    # the genuine supplier raises no alarm on the same keyed audit; but the kit is built
    # on public digits, so it cannot pass alone (a memoriser would pass it too)
    ok = run_audit(AuditConfig(target=stego_supplier.url, probes=keyed,
                               public_key=stego_supplier.pubkey))
    assert ok.verdict == "inconclusive" and ok.first_alarm_at is None, ok.findings
    assert ok.probe_check is not None and ok.probe_check["provenance"] == "public-derived"
    assert ok.fixed_sample["stego"]["hits"] >= 0.9 * ok.fixed_sample["stego"]["n"]


@pytest.mark.parametrize("mode", ["forge", "replay"])
def test_forged_or_replayed_receipts_are_proof_of_fraud(supplier, make_proxy, bench,
                                                        mode) -> None:  # type: ignore[no-untyped-def]
    url = make_proxy(supplier.url, "substitute", receipts=mode)
    rep = run_audit(AuditConfig(target=url, probes=bench, public_key=supplier.pubkey,
                                max_queries=32, batch_size=8, rebuild_seeded=False))
    assert rep.verdict == "fail" and _fails(rep, "receipts")
    assert rep.receipts.invalid >= 1
    problems = " ".join(p for ex in rep.receipts.bad_examples for p in ex["problems"])
    assert ("signature" in problems) if mode == "forge" else ("replayed" in problems)
    assert "bad signature" in to_html(rep.to_dict()) or "replayed" in to_html(rep.to_dict())


def test_robustness_and_latency_against_claims(supplier, bench) -> None:  # type: ignore[no-untyped-def]
    rep = run_audit(AuditConfig(target=supplier.url, probes=bench, max_queries=16,
                                public_key=supplier.pubkey,
                                robustness={"eps": 0.25, "query_cap": 60, "per_class": 1},
                                latency={"rate_qps": 40, "duration_s": 1.0}))
    rob, lat = rep.robustness, rep.latency
    assert {a["attack"] for a in rob["attacks"]} == {"simba", "square"}
    assert 0.0 <= rob["measured_score"] <= 1.0 and rob["meets_claim"] is None
    assert lat["errors"] == 0 and lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
    assert lat["meets_claim"] is True
    html = to_html(json.loads(to_json_bytes(rep.to_dict())))
    assert html.count('<figure class="plot ') == 3


def test_a_seed_config_that_does_not_rebuild_the_model_fails(stego, bench) -> None:  # type: ignore[no-untyped-def]
    from mltrail.audit.models import load_model
    from mltrail.audit.receipts import load_or_create_key
    from mltrail.audit.service import create_app, serve_in_thread

    net, card, digest = load_model(stego[0])
    recipe = {"seed": 1, "arch": {"type": "mlp", "hidden": [64]}, "epochs": 2}
    card = card.model_copy(update={"seed_config": recipe})  # a recipe it was not trained with
    with serve_in_thread(create_app(net, card, digest, load_or_create_key(None))) as srv:
        rep = run_audit(AuditConfig(target=srv.url, probes=bench, max_queries=32))
    assert rep.reference.digest_matches is False
    assert rep.verdict == "fail" and _fails(rep, "deterministic")
