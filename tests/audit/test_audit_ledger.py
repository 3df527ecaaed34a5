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
    probes = P.benchmark(64)
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
