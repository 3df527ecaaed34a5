"""Claims bound to the ledger: signed, compared with what the target advertises; no test,
no pass; a refused audit fails and is recorded."""

from __future__ import annotations

import json

import pytest

from mltrail.audit.claims import (
    ServiceClaims,
    compare_advertised,
    load_claims,
    register_service,
    sign_claims,
)
from mltrail.audit.report import to_json_bytes
from mltrail.audit.runner import AuditConfig, record_verdict, run_audit
from mltrail.errors import VerificationError
from mltrail.testing.audit_base import Cheat
from mltrail.testing.audit_refuser import Refuser
from mltrail.testing.audit_stripper import Stripper


def _claims(url: str, pubkey: str, seeded_path, **update) -> ServiceClaims:  # type: ignore[no-untyped-def]
    from mltrail.audit.models import load_model

    _, card, digest = load_model(seeded_path)
    return ServiceClaims.from_card(card.model_copy(update=update), model_digest=digest,
                                   public_key=pubkey, endpoint=url)


def _open(home, who):  # type: ignore[no-untyped-def]
    from mltrail.ledger.client import Ledger

    return Ledger.open(home, identity=who, password="pw")


def _deploy(home, claims):  # type: ignore[no-untyped-def]
    with _open(home, "oscar") as oscar:
        reg, digest = register_service(oscar, claims)
        oscar.transition(reg.artefact_id, oscar.lifecycle.bound_state("audit", "deployed"))
    return reg.artefact_id, digest


def test_claims_round_trip_and_signature_binding(ledger_home, seeded_path) -> None:  # type: ignore[no-untyped-def]
    claims = _claims("http://127.0.0.1:9", "A" * 44, seeded_path)
    sid, digest = _deploy(ledger_home, claims)
    with _open(ledger_home, "audrey") as led:
        got = load_claims(led, sid)
        assert got.claims == claims and got.digest == digest
        assert got.signer.lower() == led.artefact(sid).owner.lower()
        # a document signed by someone else, registered by oscar: refused on load
        forged = led.home.store.put(sign_claims(led, claims))
    with _open(ledger_home, "oscar") as oscar:
        kind = oscar.lifecycle.bound_kind("audit")
        other = oscar.register(kind, forged, metadata={"claims": forged, "name": "x"})
        with pytest.raises(VerificationError, match="not signed by the service's owner"):
            load_claims(oscar, other.artefact_id)


def test_honest_from_ledger_passes_and_stripper_is_named(ledger_home, seeded_path,
                                                        start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Cheat())
    sid, digest = _deploy(ledger_home, _claims(url, key, seeded_path))
    with _open(ledger_home, "audrey") as led:
        lc = load_claims(led, sid)
    rep = run_audit(AuditConfig(claims=lc.claims, service_id=sid, claims_digest=digest,
                                max_queries=96, seed=1))
    assert rep.verdict == "pass", rep.findings
    assert rep.claims_check.differences == [] and rep.reference.digest_matches
    assert rep.power.sufficient and rep.metrics.agreement == 1.0
    # the stripper advertises no seed config and no accuracy claim: each difference named
    surl, _ = start_cheat(Stripper())
    rep = run_audit(AuditConfig(claims=lc.claims, target=surl, max_queries=32, seed=1))
    assert rep.verdict == "fail" and rep.failed("claims")
    named = " ".join(f.message for f in rep.findings if f.check == "claims")
    assert "seed_config" in named and "claims:" in named


def test_stripped_claims_on_the_ledger_end_inconclusive(ledger_home, seeded_path,
                                                        start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Stripper())
    from mltrail.audit.models import Claims

    claims = _claims(url, key, seeded_path, seed_config=None, claims=Claims())
    sid, _ = _deploy(ledger_home, claims)
    rep = run_audit(AuditConfig(claims=claims, service_id=sid, max_queries=64, seed=2))
    assert rep.verdict == "inconclusive", rep.findings
    assert not rep.power.sufficient and rep.first_alarm_at is None
    with _open(ledger_home, "audrey") as led:
        before = led.artefact(sid).state
        out = record_verdict(led, sid, to_json_bytes(rep.to_dict()), rep.verdict)
        assert out["tx_hash"] is None and led.artefact(sid).state == before


def test_refused_audit_fails_is_recorded_and_exits_1(ledger_home, seeded_path, start_cheat,
                                                     monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import sys

    from mltrail.cli.main import run

    url, key = start_cheat(Refuser(burst=0))  # every request arrives in a "burst"
    sid, _ = _deploy(ledger_home, _claims(url, key, seeded_path))
    monkeypatch.setenv("MLTRAIL_HOME", str(ledger_home.root))
    monkeypatch.setenv("MLTRAIL_PASSWORD", "pw")
    monkeypatch.setattr(sys, "argv", ["mltrail", "--as", "audrey", "audit", "run", sid,
                                      "--max-queries", "64", "--seed", "3"])
    with pytest.raises(SystemExit) as exc:
        run()
    out = capsys.readouterr()
    assert exc.value.code == 1, out.err
    assert "error: audit failed: availability" in out.err and "Traceback" not in out.err
    assert "[fail] availability" in out.out  # the label survives Rich markup
    with _open(ledger_home, "audrey") as led:
        art = led.artefact(sid)
        assert art.state == led.lifecycle.bound_state("audit", "suspended")
        ev = led.history(sid)[-1]
        ev_digest = str(ev.args["evidence_digest"])
        rep = json.loads(led.home.store.get("sha256:" + ev_digest.removeprefix("0x")))
        assert rep["verdict"] == "fail" and rep["availability"]["answered"] < \
            rep["availability"]["requests"]


def test_compare_advertised_names_each_difference(seeded_path) -> None:  # type: ignore[no-untyped-def]
    c = _claims("http://x", "B" * 44, seeded_path)
    info = {**c.advertised_view(), "public_key": "C" * 44}
    assert compare_advertised(c, c.advertised_view()) == []
    assert [d.split(":")[0] for d in compare_advertised(c, info)] == ["public_key"]


def test_cli_register_then_audit_from_the_ledger(ledger_home, start_cheat, monkeypatch,
                                                 cli) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_cheat(Cheat())
    monkeypatch.setenv("MLTRAIL_HOME", str(ledger_home.root))
    monkeypatch.setenv("MLTRAIL_PASSWORD", "pw")

    def call(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        r = cli(*args)
        return r.code, json.loads(r.out) if r.out.strip() else {"err": r.err}

    code, reg = call("--as", "oscar", "audit", "register", "--target", url, "--name", "svc",
                     "--json")
    assert code == 0 and reg["tx_hash"] and reg["claims_digest"].startswith("sha256:")
    sid = reg["artefact_id"]
    assert call("--as", "oscar", "transition", sid, "deployed", "--json")[0] == 0
    code, rep = call("--as", "audrey", "audit", "run", sid, "--max-queries", "80", "--seed", "4",
                     "--json")
    assert code == 0, rep
    assert rep["verdict"] == "pass" and rep["tx_hash"] and rep["ledger"]["state"] == "audited"
    assert rep["metrics"]["agreement"] == 1.0
