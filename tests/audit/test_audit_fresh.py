"""Fresh probes made in the data set's own bitmap space from the auditor's digits: exact
grey levels, labels that hold, no detector (the audit's or a provider's on other
features) that separates them from real handwriting; and suppliers that combine two
dodges are caught by them (rates over many seeds: bench/audit.py)."""

from __future__ import annotations

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.claims import ServiceClaims
from mltrail.audit.distinguish import _generator_of, adversarial_validation
from mltrail.audit.fresh import bitmaps, block_counts, fresh_probes
from mltrail.audit.heldout import auditor_split, public_heldout
from mltrail.audit.models import load_model, predict
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.testing.audit_detector2 import Detector2, oof_auc
from mltrail.testing.audit_twofaced import TwoFaced


def test_fresh_probes_are_warped_bitmaps_of_the_auditors_digits(seeded_path) -> None:  # type: ignore[no-untyped-def]
    x, y = auditor_split()
    rng = np.random.default_rng(0)
    assert (block_counts(bitmaps(x, rng)) == x).all()     # the reduction the data set used
    copies, cy = fresh_probes(50, 3, strength=0.0)
    rows = {r.tobytes() for r in x}
    assert all(c.tobytes() in rows for c in copies)         # strength 0: the source itself
    pr = P.fresh(300, seed=3)
    assert pr.meta["provenance"] == "synthetic" and pr.meta["strength"] == 0.4
    levels = pr.x * 16
    assert np.array_equal(levels, np.round(levels)) and levels.max() <= 16
    assert not any(r.tobytes() in rows for r in pr.x[:100])   # new inputs, not copies
    # the labels hold: the reference model agrees with them as often as with real digits
    net = load_model(seeded_path)[0]
    fresh_acc = (predict(net, pr.x).argmax(1) == pr.y).mean()
    held_acc = (predict(net, x).argmax(1) == y).mean()
    assert fresh_acc >= held_acc - 0.05, (fresh_acc, held_acc)
    # nor does a provider feeding the published generator public digits get the private ones
    pub = public_heldout()
    assert not any(r.tobytes() in rows for r in fresh_probes(50, 4, source=pub, strength=0)[0])


def test_no_detector_separates_fresh_probes_from_real_digits(seeded_path) -> None:  # type: ignore[no-untyped-def]
    g = public_heldout()[0]
    pr = P.fresh(150, seed=11)
    av = adversarial_validation(pr.x, g, seed=2, generator=_generator_of(pr),
                                families=("histogram", "ink", "mlp"))
    assert not av["detectable"] and av["best"] < 0.66, av
    assert set(av["auc"]) == {"histogram", "ink", "mlp", "generator"}
    net = load_model(seeded_path)[0]
    for kind in ("cooccurrence", "embedding"):
        assert oof_auc(kind, pr.x, g, 2, net) < 0.66, kind
    # the warp itself is what a detector sees when it is pushed too far
    far = P.fresh(150, seed=11, strength=3.0)
    assert adversarial_validation(far.x, g, seed=2, families=("mlp",))["best"] > 0.75


def test_two_dodges_at_once_are_caught_by_the_auditors_probes(seeded_path, start_cheat) -> None:  # type: ignore[no-untyped-def]
    _, card, digest = load_model(seeded_path)
    # a provider detector on pixel-pair co-occurrence, trained on the generator, and no receipt on
    # substitutes: it cannot tell fresh probes from traffic, substitutes some, unsigned
    url, key = start_cheat(Detector2(kind="cooccurrence", drop=True, seed=1))
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    rep = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                seed=4, probes=P.fresh(64, seed=4), probe_check=False))
    assert rep.verdict == "fail" and rep.failed("receipts"), rep.findings
    # client recognition plus public-data memorisation: public probes cannot pass, the
    # auditor's own digits from an address it does not know catch it
    url, key = start_cheat(TwoFaced(known={"127.0.0.9"}))
    claims = ServiceClaims.from_card(card, model_digest=digest, public_key=key, endpoint=url)
    bench = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                  seed=5, probes=P.benchmark(64, 5)))
    assert bench.verdict == "inconclusive", bench.findings
    own = run_audit(AuditConfig(claims=claims, model_path=str(seeded_path), max_queries=64,
                                seed=5, probe_check=False))
    assert own.verdict == "fail" and (own.failed("identity") or own.failed("distribution"))
