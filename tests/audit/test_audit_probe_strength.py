"""Probes a provider cannot tell from traffic: the auditor's own data by default, an
adversarial validation in every audit, and public or detectable probe sets that cannot
pass on their own; an audit whose verdict could not be recorded is refused up front."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims, register_service
from mltrail.audit.distinguish import adversarial_validation, genuine_digits
from mltrail.audit.heldout import auditor_split, public_set
from mltrail.audit.models import load_model
from mltrail.audit.request import AuditRequest, audit_and_record
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.errors import RefusedError
from mltrail.testing.audit_base import Cheat, PublicIndex


def test_the_auditors_split_is_private_and_the_default(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    held, pub = auditor_split()[0], public_set()[0]
    flat = {h.tobytes() for h in held}
    assert not any(p.tobytes() in flat for p in pub)              # never in the public set
    assert not any(p.tobytes() in flat for p in PublicIndex.get().public)  # cheaters lack it
    url, key = start_cheat(Cheat())
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=96,
                                seed=7))
    assert rep.probe_meta["source"] == "auditor-held" and rep.verdict == "pass", rep.findings
    pc = rep.probe_check
    assert pc is not None and pc["alone"] and pc["provenance"] == "private"
    assert not pc["adversarial_validation"]["detectable"]


def test_detectable_probes_cannot_pass_alone(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    url, key = start_cheat(Cheat())
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    # old-style probes: one-pixel shifts plus noise break the 17 grey levels
    base = P.held(96, seed=3)
    noisy = np.clip(base.x + np.random.default_rng(0).normal(0, 0.03, base.x.shape), 0, 1)
    pr = P.ProbeSet(noisy.astype(np.float32), base.y, base.kind,
                    {"source": "augmented", "provenance": "synthetic"})
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), probes=pr,
                                seed=3))
    assert rep.verdict == "inconclusive" and not rep.power.probe_set_alone, rep.findings
    av = rep.probe_check["adversarial_validation"]  # type: ignore[index]
    assert av["detectable"] and av["best"] > 0.9 and set(av["auc"]) >= {"histogram", "mlp"}
    assert any(f.check == "probes" and "AUC" in f.message for f in rep.findings)


def test_adversarial_validation_scores_each_family() -> None:
    g, gd = genuine_digits(200, 1)
    held = adversarial_validation(P.held(200, 2).x, g, genuine_distance=gd, seed=1)
    bench = adversarial_validation(P.benchmark(150, 2).x, g, genuine_distance=gd, seed=1)
    assert not held["detectable"] and held["best"] < 0.6
    assert bench["detectable"] and bench["auc"]["nearest_public"] > 0.95


def test_an_unrecordable_audit_is_refused_before_any_probe(ledger_home, seeded_path,
                                                           start_cheat) -> None:  # type: ignore[no-untyped-def]
    from mltrail.ledger.client import Ledger

    class Counting(Cheat):
        calls = 0

        def decide(self, batch, nonce, now):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().decide(batch, nonce, now)

    url, key = start_cheat(Counting())
    _, card, digest = load_model(seeded_path)
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    oscar = Ledger.open(ledger_home, identity="oscar", password="pw")
    sid = register_service(oscar, claims)[0].artefact_id
    req = AuditRequest(service=sid, model=seeded_path, max_queries=20, seed=1)

    def as_(who: str):  # type: ignore[no-untyped-def]
        return lambda: Ledger.open(ledger_home, identity=who, password="pw")

    def progress(total: int):  # type: ignore[no-untyped-def]
        return nullcontext(lambda n: None)

    with pytest.raises(RefusedError, match="registered"):          # not deployed yet
        audit_and_record(req, as_("audrey"), progress)
    oscar.transition(sid, "deployed")
    with pytest.raises(RefusedError, match="before any probe"):   # not an auditor
        audit_and_record(req, as_("oscar"), progress)
    audrey = Ledger.open(ledger_home, identity="audrey", password="pw")
    audrey.transition(sid, "suspended")   # suspended -> audited is the lifecycle's own path
    oscar.transition(sid, "retired")
    with pytest.raises(RefusedError, match="retired"):             # cannot move at all
        audit_and_record(req, as_("audrey"), progress)
    assert Counting.calls == 0
