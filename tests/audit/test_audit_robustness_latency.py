"""SimBA, Square Attack and open-loop latency, against local functions and a slow service."""

from __future__ import annotations

import time

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit import robustness as R
from mltrail.audit.latency import poisson_offsets, run_load
from mltrail.audit.models import predict
from mltrail.audit.receipts import load_or_create_key
from mltrail.audit.service import create_app, serve_in_thread


def test_attacks_respect_eps_and_cap_and_larger_eps_flips_faster(supplier) -> None:  # type: ignore[no-untyped-def]
    b = P.benchmark()
    x, y = R.select_per_class(b.x, b.y, 2)
    seen: list[np.ndarray] = []

    def query(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return predict(supplier.model, batch)

    for attack in (R.simba, R.square):
        small = attack(query, x, y, eps=0.1, query_cap=80)
        big = attack(query, x, y, eps=0.4, query_cap=80)
        assert len(small.queries) >= 15
        assert np.all((small.queries <= 80) | np.isinf(small.queries))
        assert np.isfinite(big.queries).mean() >= np.isfinite(small.queries).mean()
        assert big.median_queries() <= small.median_queries()
        assert 0 <= big.score() <= small.score() <= 1
        s = big.summary()
        assert set(s["per_class_median"]) <= {str(c) for c in range(10)}
    allq = np.concatenate([q.reshape(len(q), -1) for q in seen])
    assert allq.min() >= 0.0 and allq.max() <= 1.0
    assert R.sigmoid_score(float("inf"), 10) == 1.0 and R.sigmoid_score(10, 10) == 0.5
    cmp = R.compare_with_claim([big], claimed=0.99)
    assert cmp["meets_claim"] is False


def test_poisson_arrivals_have_the_target_rate() -> None:
    t = poisson_offsets(200.0, 50.0, seed=3)
    assert abs(len(t) / 50.0 - 200.0) < 10
    gaps = np.diff(t)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1  # exponential: cv = 1


def test_open_loop_load_sees_a_slow_service_miss_its_claim(supplier) -> None:  # type: ignore[no-untyped-def]
    def slow(batch: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return predict(supplier.model, batch)

    app = create_app(supplier.model, supplier.card, supplier.digest, load_or_create_key(None),
                     predict_fn=slow)
    claim = {"rate_qps": 60, "p95_ms": 20, "max_error_rate": 0.01}
    with serve_in_thread(app) as srv:
        res = run_load(srv.url, P.benchmark(8).x, rate_qps=60, duration_s=1.0)
    s = res.summary(claim)
    # the service takes >= 30 ms per request: open-loop arrivals queue up behind it
    assert s["p50_ms"] >= 30 and s["meets_claim"] is False
    fast = run_load(supplier.url, P.benchmark(8).x, rate_qps=30, duration_s=1.0)
    assert fast.error_rate == 0 and fast.percentile(50) is not None
