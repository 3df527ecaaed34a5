"""Black-box robustness scores: SimBA and Square Attack under a fixed L∞ ε and a query cap.

Both attacks see only probabilities returned by ``query(batch) -> probs`` and run on
all samples at once (one service request per attack step). For each correctly
classified sample they count the queries until the label flips (censored at the cap).
The score is the sigmoid of the log median queries-to-flip against a scale ``q_half``:
``score = σ(ln(q_med / q_half)) = q_med / (q_med + q_half)``, with ``q_half`` one quarter
of the query cap by default — 0.5 when half the budget's quarter suffices, → 1 for a
model that resists. This module never decides fraud; it measures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Query = Callable[[np.ndarray], np.ndarray]


@dataclass
class AttackResult:
    attack: str
    eps: float
    query_cap: int
    labels: np.ndarray          # true class of each attacked sample
    queries: np.ndarray         # queries to flip (inf if not flipped within the cap)

    def median_queries(self, mask: np.ndarray | None = None) -> float:
        q = self.queries if mask is None else self.queries[mask]
        return float(np.median(q)) if len(q) else float("nan")

    def per_class(self) -> dict[int, float]:
        return {int(c): self.median_queries(self.labels == c) for c in np.unique(self.labels)}

    def score(self, q_half: float | None = None) -> float:
        return sigmoid_score(self.median_queries(), q_half or self.query_cap / 4)

    def summary(self) -> dict[str, Any]:
        def fin(v: float) -> float | None:
            return None if math.isinf(v) or math.isnan(v) else v
        return {"attack": self.attack, "eps": self.eps, "query_cap": self.query_cap,
                "n": int(len(self.queries)),
                "flip_rate": float(np.isfinite(self.queries).mean()) if len(self.queries) else 0.0,
                "median_queries": fin(self.median_queries()),
                "per_class_median": {str(k): fin(v) for k, v in self.per_class().items()},
                "score": self.score()}


def sigmoid_score(q_med: float, q_half: float) -> float:
    if math.isnan(q_med):
        return float("nan")
    if math.isinf(q_med):
        return 1.0
    return q_med / (q_med + q_half)


def _correct(query: Query, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(query(x).argmax(1) == y)


def simba(query: Query, x: np.ndarray, y: np.ndarray, *, eps: float = 0.2,
          query_cap: int = 200, seed: int = 0) -> AttackResult:
    """SimBA with the pixel basis: try -ε then +ε on one new coordinate per step."""
    rng = np.random.default_rng(seed)
    keep = _correct(query, x, y)
    x, y = x[keep].astype(np.float32), y[keep]
    n, d = len(x), int(np.prod(x.shape[1:]))
    adv = x.reshape(n, d).copy()
    used = np.ones(n)  # the query that found the sample's clean probabilities
    done = np.full(n, np.inf)
    p_true = query(x)[np.arange(n), y]
    perms = np.stack([rng.permutation(d) for _ in range(n)]) if n else np.zeros((0, d), int)
    for t in range(d):
        active = np.flatnonzero(np.isinf(done) & (used < query_cap))
        if not len(active):
            break
        coord = perms[active, t]
        minus, plus = adv[active].copy(), adv[active].copy()
        minus[np.arange(len(active)), coord] -= eps
        plus[np.arange(len(active)), coord] += eps
        minus, plus = np.clip(minus, 0, 1), np.clip(plus, 0, 1)
        probs = query(np.concatenate([minus, plus]).reshape(-1, *x.shape[1:]))
        pm, pp = probs[: len(active)], probs[len(active):]
        for j, i in enumerate(active):
            used[i] += 1
            if pm[j, y[i]] < p_true[i]:
                adv[i], p_true[i], flipped = minus[j], pm[j, y[i]], pm[j].argmax() != y[i]
            elif used[i] < query_cap:
                used[i] += 1
                if pp[j, y[i]] < p_true[i]:
                    adv[i], p_true[i], flipped = plus[j], pp[j, y[i]], pp[j].argmax() != y[i]
                else:
                    flipped = False
            else:
                flipped = False
            if flipped:
                done[i] = used[i]
    return AttackResult("simba", eps, query_cap, y, done)


def _margin(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    other = probs.copy()
    other[np.arange(len(y)), y] = -1.0
    return np.asarray(probs[np.arange(len(y)), y] - other.max(1))


def square(query: Query, x: np.ndarray, y: np.ndarray, *, eps: float = 0.2,
           query_cap: int = 200, p_init: float = 0.3, seed: int = 0) -> AttackResult:
    """Square Attack (L∞) of Andriushchenko et al.: random ±ε squares, keep improvements."""
    rng = np.random.default_rng(seed)
    keep = _correct(query, x, y)
    x, y = x[keep].astype(np.float32), y[keep]
    n = len(x)
    c, h, w = x.shape[1:]
    stripes = rng.choice([-eps, eps], size=(n, c, 1, w)).astype(np.float32)
    adv = np.clip(x + stripes, 0, 1)
    probs = query(adv) if n else np.zeros((0, 1))
    margin = _margin(probs, y) if n else np.zeros(0)
    used = np.full(n, 2.0)  # clean check + initialisation
    done = np.where(margin < 0, used, np.inf)
    for it in range(query_cap):
        active = np.flatnonzero(np.isinf(done) & (used < query_cap))
        if not len(active):
            break
        frac = p_init * 0.5 ** (it // max(1, query_cap // 8))
        s = max(1, min(h - 1, int(round(math.sqrt(frac * h * w)))))
        cand = adv[active].copy()
        for j, i in enumerate(active):
            r, q = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
            delta = cand[j] - x[i]
            delta[:, r:r + s, q:q + s] = rng.choice([-eps, eps], size=(c, 1, 1))
            cand[j] = np.clip(x[i] + delta, 0, 1)
        pr = query(cand)
        m = _margin(pr, y[active])
        used[active] += 1
        better = m < margin[active]
        adv[active[better]] = cand[better]
        margin[active[better]] = m[better]
        flipped = active[m < 0]
        done[flipped] = used[flipped]
    return AttackResult("square", eps, query_cap, y, done)


def select_per_class(x: np.ndarray, y: np.ndarray, per_class: int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` samples of each class (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class]
                          for c in np.unique(y)])
    return x[idx], y[idx]


def compare_with_claim(results: list[AttackResult], claimed: float | None,
                       tolerance: float = 0.05) -> dict[str, Any]:
    """Measured score (worst attack) against the claimed one."""
    measured = min((r.score() for r in results), default=float("nan"))
    out: dict[str, Any] = {"measured_score": measured, "claimed_score": claimed,
                           "tolerance": tolerance}
    out["meets_claim"] = None if claimed is None else bool(measured >= claimed - tolerance)
    return out
