"""Exact tests and anytime-valid sequential tests, including a false-alarm simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltrail.audit.stats import (
    BernoulliSPRT,
    BettingTest,
    binomial_exact,
    fixed_sample_size,
    mcnemar_exact,
    mixture_log_wealth,
    sprt_stop_times,
)

ALPHA = 0.05


def test_mcnemar_counts_and_one_sided_p() -> None:
    t = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 38, dtype=bool)
    r = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 38, dtype=bool)
    res = mcnemar_exact(t, r)
    assert (res["b"], res["c"]) == (2, 10)
    # P(X >= 10 | n=12, p=1/2) = (66 + 12 + 1) / 4096
    assert res["p_target_worse"] == pytest.approx(79 / 4096)
    assert mcnemar_exact(r, t)["p_target_worse"] > 0.9


def test_fixed_sample_sizes_match_the_issue() -> None:
    assert fixed_sample_size(0.92, 0.88, ALPHA, 0.95) == 613
    # first-disagreement test at d = 5%: smallest n with 0.95^n <= 0.05
    assert math.ceil(math.log(ALPHA) / math.log(0.95)) == 59
    assert binomial_exact(5, 100, 0.92) < 1e-30


def test_false_alarm_rate_under_h0_is_at_most_alpha_when_checked_after_every_query() -> None:
    rng = np.random.default_rng(7)
    runs, n = 4000, 400
    # betting e-process at the boundary of H0 (mean = m0), several m0
    for m0 in (0.05, 0.3, 0.5):
        x = (rng.random((runs, n)) < m0).astype(float)
        ever = (mixture_log_wealth(x, m0, ALPHA) >= math.log(1 / ALPHA)).any(-1).mean()
        assert ever <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs), (m0, ever)
    # bounded (non-binary) observations with mean m0
    x = rng.beta(1, 9, size=(runs, n))  # mean 0.1
    ever = (mixture_log_wealth(x, 0.1, ALPHA) >= math.log(1 / ALPHA)).any(-1).mean()
    assert ever <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    # SPRT: monitor the LR path without futility stopping (worst case for type I)
    x = rng.random((runs, 1500)) < 0.08
    llr = np.cumsum(np.where(x, math.log(0.12 / 0.08), math.log(0.88 / 0.92)), axis=-1)
    ever = (llr >= math.log(1 / ALPHA)).any(-1).mean()
    assert ever <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    # a naive repeated fixed-sample test checked after every query does NOT hold alpha
    k = np.cumsum(x[:, :400], axis=-1)
    steps = np.arange(1, 401)
    z = (k - 0.08 * steps) / np.sqrt(0.08 * 0.92 * steps)
    assert (z[:, 20:] >= 1.645).any(-1).mean() > 2 * ALPHA


def test_sequential_tests_detect_real_effects_quickly() -> None:
    rng = np.random.default_rng(1)
    stops, rejected = sprt_stop_times(rng.random((1000, 1500)) < 0.12, 0.08, 0.12, ALPHA, ALPHA)
    assert stops.mean() < 613 and rejected.mean() > 0.9
    bt = BettingTest(0.0, ALPHA)
    for v in [0, 0, 0, 1]:
        bt.update(v)
    assert bt.rejected_at == 4
    bt = BettingTest(0.5, ALPHA)
    for v in rng.random(300) < 0.8:
        bt.update(float(v))
    assert bt.rejected and bt.summary()["e_value"] >= 1 / ALPHA


def test_sprt_accepts_h0_when_true_and_keeps_its_decision() -> None:
    rng = np.random.default_rng(2)
    t = BernoulliSPRT(0.08, 0.12, ALPHA, ALPHA)
    for v in rng.random(3000) < 0.04:
        t.update(float(v))
    assert t.decision == "accept" and t.decided_at is not None
    with pytest.raises(ValueError):
        BernoulliSPRT(0.2, 0.1)
    with pytest.raises(ValueError):
        BettingTest(1.0)
