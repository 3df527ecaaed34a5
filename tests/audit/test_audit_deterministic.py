"""Deterministic benchmarking: seeded rebuild and exact comparison with a tolerance."""

from __future__ import annotations

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.deterministic import PROB_TOLERANCE, ExactComparison, rebuild
from mltrail.audit.models import load_card, load_model, predict


def test_rebuild_reproduces_the_digest_and_rejects_bad_configs(seeded_path) -> None:  # type: ignore[no-untyped-def]
    _, _, digest = load_model(seeded_path)
    config = load_card(seeded_path).seed_config
    assert config is not None
    rb = rebuild(config, digest)
    assert rb.matches and rb.model is not None
    assert not rebuild({**config, "seed": 2}, digest).matches
    bad = rebuild({"seed": 1, "bogus": True}, digest)
    assert bad.model is None and bad.error and not bad.matches


def test_exact_comparison_tolerance(seeded_path) -> None:  # type: ignore[no-untyped-def]
    model = load_model(seeded_path)[0]
    x = P.benchmark(20).x
    probs = predict(model, x)
    same = ExactComparison(model)
    same.add(x, probs.argmax(1), probs)
    assert same.ok and same.max_abs_diff <= PROB_TOLERANCE
    noisy = ExactComparison(model)
    noisy.add(x, probs.argmax(1), probs + np.where(np.arange(10) == 0, 1e-3, 0.0))
    assert not noisy.ok and noisy.prob_mismatches == 20 and noisy.label_mismatches <= 20
    wrong = ExactComparison(model)
    labels = probs.argmax(1).copy()
    labels[3] = (labels[3] + 1) % 10
    wrong.add(x, labels, probs)
    assert wrong.label_mismatches == 1 and wrong.first_mismatch == 4
    assert wrong.summary()["examples"][0]["query"] == 4
