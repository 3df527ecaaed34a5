"""The verdict on the ledger: report in the content store, service audited or suspended."""

from __future__ import annotations

import json

import pytest

from mltrail.audit import probes as P
from mltrail.audit.report import to_json_bytes
from mltrail.audit.runner import AuditConfig, record_verdict, run_audit
from mltrail.errors import RefusedError


def test_audit_verdicts_move_service_artefacts(tmp_path, supplier, make_proxy) -> None:  # type: ignore[no-untyped-def]
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    home = init_home(tmp_path / ".mltrail", password="pw")
    admin = Ledger.open(home, identity="admin", password="pw")
    for name, role in (("oscar", "operator"), ("audrey", "auditor")):
        admin.grant_role(create_identity(home, name, password="pw"), role)
    oscar = Ledger.open(home, identity="oscar", password="pw")
    audrey = Ledger.open(home, identity="audrey", password="pw")
    probes = P.held(64, seed=5)
    results = {}
    for mode in ("honest", "substitute"):
        url = make_proxy(supplier.url, mode)
        sid = oscar.register("service", content_digest=supplier.digest, parents=[],
                             metadata={"name": mode, "url": url}).artefact_id
        oscar.transition(sid, "deployed")
        rep = run_audit(AuditConfig(target=url, probes=probes, reference_url=supplier.url))
        raw = to_json_bytes(rep.to_dict())
        with pytest.raises(RefusedError):  # only an auditor may record a verdict
            record_verdict(oscar, sid, raw, rep.verdict)
        out = record_verdict(audrey, sid, raw, rep.verdict)
        art = audrey.artefact(sid)
        assert art.state == out["state"]
        assert json.loads(home.store.get(out["report_digest"]))["verdict"] == rep.verdict
        last = audrey.history(sid)[-1]
        assert last.name == "Transitioned" and out["tx_hash"] == last.tx_hash
        results[mode] = art.state
    assert results == {"honest": "audited", "substitute": "suspended"}


def test_a_registered_v2_service_is_audited_from_its_ledger_claims(ledger_home, supplier,
                                                                    start_cheat) -> None:  # type: ignore[no-untyped-def]
    from mltrail.audit.claims import load_claims, register_service
    from mltrail.audit.workflows import claims_from_target
    from mltrail.ledger.client import Ledger
    from mltrail.testing.audit_oip import SplitBrain

    oscar = Ledger.open(ledger_home, identity="oscar", password="pw")
    audrey = Ledger.open(ledger_home, identity="audrey", password="pw")
    cheat_url, _ = start_cheat(SplitBrain(honest_on="mltrail"))
    states = {}
    for name, base in (("honest", supplier.url), ("splitbrain", cheat_url)):
        claims = claims_from_target(f"{base}/v2/models/digits-mlp", name, model=supplier.path,
                                    public_key=supplier.pubkey)
        reg, _ = register_service(oscar, claims)
        oscar.transition(reg.artefact_id, "deployed")
        lc = load_claims(audrey, reg.artefact_id)
        assert lc.claims.endpoint.endswith("/v2/models/digits-mlp")
        rep = run_audit(AuditConfig(claims=lc.claims, service_id=lc.service_id,
                                    claims_digest=lc.digest, model_path=str(supplier.path),
                                    max_queries=64, seed=3, stop_on_alarm=True))
        assert rep.claims_source == "ledger" and rep.claimed["protocol"] == "oip"
        assert rep.claims_check.advertised_checked and not rep.claims_check.differences
        states[name] = record_verdict(audrey, reg.artefact_id, to_json_bytes(rep.to_dict()),
                                      rep.verdict)["state"]
    assert states == {"honest": "audited", "splitbrain": "suspended"}
