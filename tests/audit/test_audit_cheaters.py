"""The cheating suppliers of mltrail.testing.audit_*: each caught (or inconclusive) within
a stated number of queries by an audit with the auditor's own probes (the default) and
ledger-style claims."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims
from mltrail.audit.models import LatencyClaim, load_model
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.testing.audit_base import Cheat
from mltrail.testing.audit_detector import Detector
from mltrail.testing.audit_memoriser import Memoriser
from mltrail.testing.audit_refuser import Refuser
from mltrail.testing.audit_slowpoke import Slowpoke

LATENCY = LatencyClaim(rate_qps=20, p95_ms=300)


def _claims(seeded_path: Path, url: str, key: str, latency: bool = False) -> ServiceClaims:
    _, card, digest = load_model(seeded_path)
    c = card.claims.model_copy(update={"latency": LATENCY}) if latency else card.claims
    return ServiceClaims.from_card(card.model_copy(update={"claims": c}), model_digest=digest,
                                   public_key=key, endpoint=url)


def _audit(claims: ServiceClaims, model: Path, **kw) -> object:  # type: ignore[no-untyped-def]
    # the claimed model file as the reference: faster than a seeded rebuild
    return run_audit(AuditConfig(claims=claims, stop_on_alarm=True, model_path=str(model),
                                 **kw))


@pytest.mark.parametrize("cheat", [Memoriser, Detector, Refuser],
                         ids=["memoriser", "detector", "refuser"])
def test_substituting_cheaters_are_caught_on_the_auditors_probes(seeded_path, start_cheat,
                                                          cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(cheat())
    rep = _audit(_claims(seeded_path, url, key), seeded_path, max_queries=64, seed=11)
    assert rep.verdict == "fail", rep.findings  # type: ignore[attr-defined]
    assert rep.first_alarm_at is not None and rep.first_alarm_at <= 64  # type: ignore[attr-defined]


def test_memoriser_fools_public_probes_which_cannot_pass_alone(seeded_path,
                                                               start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Memoriser())
    claims = _claims(seeded_path, url, key)
    old = _audit(claims, seeded_path, probes=P.benchmark(96, seed=3), seed=1)
    # the memoriser answers every public probe genuinely: no alarm, but no pass either
    assert old.verdict == "inconclusive" and old.first_alarm_at is None  # type: ignore[attr-defined]
    assert not old.power.probe_set_alone and "public" in old.probe_check["why"]  # type: ignore[attr-defined]
    assert any(f.check == "probes" for f in old.findings)  # type: ignore[attr-defined]
    new = _audit(claims, seeded_path, probes=P.held(96, seed=4), seed=1)
    assert new.verdict == "fail" and new.failed("distribution")  # type: ignore[attr-defined]


def test_slowpoke_misses_its_latency_claim_on_the_audit_stream(seeded_path,
                                                               start_cheat) -> None:  # type: ignore[no-untyped-def]
    from mltrail.audit.models import Claims as C

    url, key = start_cheat(Slowpoke(delay_s=0.6),
                           {"claims": C(accuracy=0.9, latency=LATENCY)})
    rep = _audit(_claims(seeded_path, url, key, latency=True), seeded_path, max_queries=96, seed=5)
    assert rep.verdict == "fail" and rep.failed("latency"), rep.findings  # type: ignore[attr-defined]
    assert rep.timing.p50_ms > LATENCY.p95_ms  # type: ignore[attr-defined]


def test_honest_supplier_passes_with_the_auditors_own_probes(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Cheat())
    rep = _audit(_claims(seeded_path, url, key), seeded_path, max_queries=96, seed=6)
    assert rep.verdict == "pass", rep.findings  # type: ignore[attr-defined]
    assert rep.metrics.availability == 1.0  # type: ignore[attr-defined]


def test_memoriser_as_its_own_process(tmp_path, seeded_path, cheap) -> None:  # type: ignore[no-untyped-def]
    from mltrail.audit.models import ModelCard, save_model

    cheap_path = tmp_path / "cheap.safetensors"
    save_model(cheap, ModelCard(arch={"type": "mlp", "hidden": []}, classes=10), cheap_path)
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "mltrail.testing.audit_memoriser",
                             str(seeded_path), "--cheap-model", str(cheap_path),
                             "--port-file", str(port_file)], stderr=subprocess.PIPE)
    try:
        url = None
        for _ in range(600):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            if port_file.exists() and port_file.read_text().strip():
                url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        assert url is not None
        key = httpx.get(url + "/v1/model").json()["public_key"]
        rep = _audit(_claims(seeded_path, url, key), seeded_path, max_queries=64, seed=12)
        assert rep.verdict == "fail" and rep.receipts.invalid == 0  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait(10)


