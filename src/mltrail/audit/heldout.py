"""The auditor's own labelled data: a split of the task's data nobody else is given.

Owns which samples are the auditor's (:func:`auditor_split`: a fixed share of the
digits held-out split that mltrail never publishes as probes, benchmarks, kits or
fresh-probe material) and which are public (:func:`public_heldout`: the rest of the
held-out split, the benchmark). In a deployment the auditor brings data it collected
itself; here the split stands in for it, and the project's cheaters
(:mod:`mltrail.testing`) are given only the public part, as a real provider would be.
Probes from it are drawn fresh per audit by the audit's secret seed
(:func:`mltrail.audit.probes.held`). It never queries a service.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mltrail.audit.models import digits

AUDITOR_HELD = 300       # of the 450 held-out digits; the other 150 are the public benchmark
SPLIT_SEED = 20261204    # fixed: the split must be the same in every process


@lru_cache(maxsize=1)
def _order() -> np.ndarray:
    n = len(digits()[3])
    return np.random.default_rng(SPLIT_SEED).permutation(n)


def auditor_split() -> tuple[np.ndarray, np.ndarray]:
    """The auditor's private labelled inputs (N×1×8×8 in [0, 1]) and labels."""
    _, _, x, y = digits()
    idx = _order()[:AUDITOR_HELD]
    return x[idx], y[idx]


def public_heldout() -> tuple[np.ndarray, np.ndarray]:
    """The public benchmark: the held-out digits that are not the auditor's."""
    _, _, x, y = digits()
    idx = _order()[AUDITOR_HELD:]
    return x[idx], y[idx]


def public_set() -> tuple[np.ndarray, np.ndarray]:
    """Everything public: the training split and the public benchmark (what a provider
    holds, and the only material fresh probes and keyed kits are made from)."""
    x_tr, y_tr, _, _ = digits()
    x_b, y_b = public_heldout()
    return np.concatenate([x_tr, x_b]), np.concatenate([y_tr, y_b])
