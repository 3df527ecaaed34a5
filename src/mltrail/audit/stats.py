"""The audit's statistics: exact fixed-sample tests and anytime-valid sequential tests.

* :func:`mcnemar_exact` — paired exact test of target vs reference accuracy;
* :func:`binomial_exact` — one-sample exact binomial test (claimed accuracy, probe hits);
* :class:`BettingTest` — an e-process by testing by betting for the mean of bounded
  observations in [0, 1], H0: mean ≤ m0. Its wealth is a mixture over a fixed grid of
  bets of nonnegative supermartingales under H0, so by Ville's inequality
  P(wealth ever ≥ 1/α) ≤ α: it may be checked after every query and stopped at will;
* :class:`BernoulliSPRT` — Wald's SPRT of p ≤ p0 against p = p1 > p0 with the
  anytime-valid rejection threshold 1/α (and Wald's futility bound β/(1-α)).

Nothing here knows about services or models; inputs are numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import logsumexp

DEFAULT_BETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)


def mcnemar_exact(target_correct: np.ndarray, ref_correct: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test on paired correctness.

    ``b`` counts pairs where only the target is right, ``c`` where only the reference is.
    ``p_target_worse`` is the one-sided p-value of H0 "target at least as accurate".
    """
    t = np.asarray(target_correct, dtype=bool)
    r = np.asarray(ref_correct, dtype=bool)
    b, c = int((t & ~r).sum()), int((~t & r).sum())
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "p_two_sided": 1.0, "p_target_worse": 1.0}
    return {"b": b, "c": c,
            "p_two_sided": float(sps.binomtest(c, n, 0.5).pvalue),
            "p_target_worse": float(sps.binomtest(c, n, 0.5, alternative="greater").pvalue)}


def binomial_exact(successes: int, n: int, p0: float, alternative: str = "less") -> float:
    """Exact binomial p-value of ``successes`` in ``n`` against rate ``p0``."""
    if n == 0:
        return 1.0
    return float(sps.binomtest(int(successes), int(n), p0, alternative=alternative).pvalue)


def fixed_sample_size(p0: float, p1: float, alpha: float, power: float) -> int:
    """Smallest n for which the one-sided exact binomial test of p0 vs p1 has ``power``."""
    lower = p1 < p0
    for n in range(1, 100_000):
        if lower:
            k = int(sps.binom.ppf(alpha, n, p0))  # reject when X <= crit
            crit = k if sps.binom.cdf(k, n, p0) <= alpha else k - 1
            if crit >= 0 and sps.binom.cdf(crit, n, p1) >= power:
                return n
        else:
            crit = int(sps.binom.isf(alpha, n, p0)) + 1  # reject when X >= crit
            if sps.binom.sf(crit - 1, n, p1) >= power:
                return n
    raise ValueError("no sample size below 100000")


def _bets(m0: float, alpha: float, fractions: tuple[float, ...]) -> np.ndarray:
    if m0 <= 0.0:
        return np.array([2.0 / alpha])  # any disagreement at all is evidence
    return np.array(fractions) / m0


def mixture_log_wealth(x: np.ndarray, m0: float, alpha: float,
                       fractions: tuple[float, ...] = DEFAULT_BETS) -> np.ndarray:
    """Log-wealth after each observation, vectorised over leading axes (time is last)."""
    lam = _bets(m0, alpha, fractions)
    steps = np.log1p(lam[:, None] * (np.asarray(x, dtype=np.float64)[..., None, :] - m0))
    return np.asarray(logsumexp(np.cumsum(steps, axis=-1), axis=-2) - math.log(len(lam)))


@dataclass
class BettingTest:
    """Sequential test of H0: E[x] ≤ m0 for x in [0, 1]; reject when wealth ≥ 1/α."""

    m0: float
    alpha: float = 0.05
    fractions: tuple[float, ...] = DEFAULT_BETS
    n: int = 0
    total: float = 0.0
    rejected_at: int | None = None
    log_wealth: list[float] = field(default_factory=list)
    _logk: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if not 0.0 <= self.m0 < 1.0 or not 0.0 < self.alpha < 1.0:
            raise ValueError("need 0 <= m0 < 1 and 0 < alpha < 1")
        self._lam = _bets(self.m0, self.alpha, self.fractions)
        self._logk = np.zeros(len(self._lam))

    @property
    def threshold(self) -> float:
        return math.log(1.0 / self.alpha)

    @property
    def rejected(self) -> bool:
        return self.rejected_at is not None

    def update(self, x: float) -> bool:
        """Add one observation; True once H0 is rejected (and forever after)."""
        x = min(max(float(x), 0.0), 1.0)
        self.n += 1
        self.total += x
        self._logk += np.log1p(self._lam * (x - self.m0))
        lw = float(logsumexp(self._logk) - math.log(len(self._lam)))
        self.log_wealth.append(lw)
        if self.rejected_at is None and lw >= self.threshold:
            self.rejected_at = self.n
        return self.rejected

    def summary(self) -> dict[str, Any]:
        return {"test": "betting e-process", "h0": f"mean <= {self.m0:g}", "alpha": self.alpha,
                "n": self.n, "mean": self.total / self.n if self.n else None,
                "e_value": math.exp(min(max(self.log_wealth, default=0.0), 700.0)),
                "rejected": self.rejected, "rejected_at": self.rejected_at}


@dataclass
class BernoulliSPRT:
    """Wald's SPRT for a Bernoulli rate: H0 p ≤ p0 against H1 p = p1 (p1 > p0).

    The likelihood ratio is a nonnegative supermartingale under any p ≤ p0, so rejecting
    at LR ≥ 1/α keeps the false-alarm rate ≤ α under continuous monitoring. Stopping
    for futility at LR ≤ β/(1-α) can only lower it.
    """

    p0: float
    p1: float
    alpha: float = 0.05
    beta: float = 0.05
    n: int = 0
    total: int = 0
    llr: float = 0.0
    decision: str | None = None  # "reject" | "accept" once decided
    decided_at: int | None = None
    path: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.p0 < self.p1 < 1.0:
            raise ValueError("need 0 < p0 < p1 < 1")
        self._up = math.log(self.p1 / self.p0)
        self._down = math.log((1 - self.p1) / (1 - self.p0))

    @property
    def upper(self) -> float:
        return math.log(1.0 / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta / (1.0 - self.alpha))

    def update(self, x: float) -> str | None:
        """Add one 0/1 observation; return the decision once made (it then stays)."""
        bit = float(x) >= 0.5
        self.n += 1
        self.total += int(bit)
        self.llr += self._up if bit else self._down
        self.path.append(self.llr)
        if self.decision is None:
            if self.llr >= self.upper:
                self.decision, self.decided_at = "reject", self.n
            elif self.llr <= self.lower:
                self.decision, self.decided_at = "accept", self.n
        return self.decision

    @property
    def rejected(self) -> bool:
        return self.decision == "reject"

    def summary(self) -> dict[str, Any]:
        return {"test": "SPRT", "h0": f"rate <= {self.p0:g}", "h1": f"rate = {self.p1:g}",
                "alpha": self.alpha, "beta": self.beta, "n": self.n,
                "rate": self.total / self.n if self.n else None,
                "decision": self.decision, "decided_at": self.decided_at,
                "rejected": self.rejected}


def sprt_paths(x: np.ndarray, p0: float, p1: float) -> np.ndarray:
    """Log-likelihood-ratio paths of 0/1 data, vectorised (time is the last axis)."""
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    return np.cumsum(np.where(np.asarray(x, dtype=bool), up, down), axis=-1)


def sprt_stop_times(x: np.ndarray, p0: float, p1: float, alpha: float,
                    beta: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row: the step at which the SPRT stops (n if never) and whether it rejected."""
    llr = sprt_paths(x, p0, p1)
    up, lo = math.log(1 / alpha), math.log(beta / (1 - alpha))
    crossed = (llr >= up) | (llr <= lo)
    n = x.shape[-1]
    first = np.where(crossed.any(-1), crossed.argmax(-1), n - 1)
    rejected = np.take_along_axis(llr, first[..., None], -1)[..., 0] >= up
    return first + 1, rejected
