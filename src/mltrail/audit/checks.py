"""The audit's bank of sequential tests, their α split, and the power each one reached.

Owns which tests an audit runs, with which null hypothesis, how the audit's α is split
among them (Bonferroni), how one observation updates them (:meth:`TestBank.pair`,
:meth:`TestBank.keyed`, :meth:`TestBank.outcome`), and the power rule behind "no test,
no pass" (:meth:`TestBank.power`): an identity or claim test counts only if it rejected,
decided, or saw enough observations to detect its stated effect with the stated power.
It never queries a service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mltrail.audit.stats import BernoulliSPRT, BettingTest, fixed_sample_size

# tests that bear on identity or on a claim about the model (the others are SLA tests)
IDENTITY_TESTS = ("identity", "distribution", "paired_accuracy", "claimed_accuracy", "stego",
                  "trigger", "traffic_identity", "traffic_distribution")
WHAT = {"identity": "labels differ from the reference",
        "distribution": "probabilities differ from the reference",
        "paired_accuracy": "target is less accurate than the reference",
        "claimed_accuracy": "accuracy is below the claim",
        "stego": "keyed stego probes are not recognised (not the genuine model)",
        "trigger": "keyed trigger set is not recognised (not the genuine model)",
        "traffic_identity": "clients' signed answers differ from the reference's labels",
        "traffic_distribution": "clients' signed answers differ from the reference's "
                                "probabilities",
        "availability": "too many requests refused, timed out or malformed",
        "latency": "too many requests slower than the claimed p95"}


def required_n(m0: float, effect: float, alpha: float, power: float) -> int:
    """Observations a test of H0 mean ≤ m0 needs to see a mean of m0 + effect with
    ``power``. For m0 ≈ 0 one deviation rejects, so it is the number of draws that sees
    one with probability ``power``; otherwise the exact binomial test's sample size."""
    if m0 <= 0.01:
        return math.ceil(math.log(1.0 - power) / math.log(1.0 - effect))
    return fixed_sample_size(m0, min(0.99, m0 + effect), alpha, power)


@dataclass
class TestBank:
    names: list[str]
    alpha: float
    m0: dict[str, float]
    effect: dict[str, float]
    power_target: float = 0.95
    sprt: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (p0, p1)
    exact_tol: float | None = None  # local reference: a probability off by more = 1
    tests: dict[str, BettingTest | BernoulliSPRT] = field(default_factory=dict)
    decided_at: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = self.per_test
        for name in self.names:
            if name in self.sprt:
                p0, p1 = self.sprt[name]
                self.tests[name] = BernoulliSPRT(p0, p1, a, 0.05)
            else:
                self.tests[name] = BettingTest(self.m0[name], a)

    @property
    def per_test(self) -> float:
        return self.alpha / max(1, len(self.names))

    def update(self, name: str, x: float, query: int) -> None:
        t = self.tests.get(name)
        if t is None:
            return
        t.update(x)
        if t.rejected and name not in self.decided_at:
            self.decided_at[name] = query

    def pair(self, prefix: str, lab: int, probs: np.ndarray, rl: int, rp: np.ndarray,
             query: int) -> None:
        """One answer against the reference's answer for the same input. With a local
        (exact) reference the probability test observes 1[some probability differs by
        more than ``exact_tol``] under H0 mean ≤ 0, so one substituted answer rejects
        however many honest ones came before; otherwise the total-variation distance."""
        self.update(prefix + "identity", float(lab != rl), query)
        if probs.shape != rp.shape:
            x = 1.0
        elif self.exact_tol is not None:
            x = float(float(np.abs(probs - rp).max()) > self.exact_tol)
        else:
            x = 0.5 * float(np.abs(probs - rp).sum())
        self.update(prefix + "distribution", x, query)

    def first_alarm(self) -> int | None:
        alarms = [v for n, v in self.decided_at.items() if n != "claimed_accuracy"]
        return min(alarms) if alarms else None

    def power(self) -> dict[str, Any]:
        """Per identity/claim test: observations, observations needed, and whether it
        counts; ``sufficient`` is True when at least one counts."""
        out: dict[str, Any] = {"target_power": self.power_target, "tests": {}}
        for name, t in self.tests.items():
            if name not in IDENTITY_TESTS:
                continue
            if isinstance(t, BernoulliSPRT):
                need = None
                ok = t.decision is not None
            else:
                need = required_n(t.m0, self.effect[name], self.per_test, self.power_target)
                ok = t.rejected or t.n >= need
            out["tests"][name] = {"n": t.n, "needed": need, "effect": self.effect.get(name),
                                  "counts": bool(ok)}
        out["sufficient"] = any(v["counts"] for v in out["tests"].values())
        return out

    def summaries(self) -> dict[str, Any]:
        seq = {}
        for name, t in self.tests.items():
            s = t.summary()
            s["path"] = t.log_wealth if isinstance(t, BettingTest) else t.path
            s["threshold"] = t.threshold if isinstance(t, BettingTest) else t.upper
            if t.rejected:
                s["rejected_at_query"] = self.decided_at.get(name)
            seq[name] = s
        return seq
