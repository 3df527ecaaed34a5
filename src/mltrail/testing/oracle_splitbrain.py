"""Split-brain providers against the oracle network: oracles get the genuine model,
customers a cheap substitute.

Written as a provider who read docs/oracle-network.md would:

- ``watcher``: "the round's shared probes are public benchmark digits drawn from the
  request block's hash; I watch the chain, redraw them, and answer exactly those rows
  with the genuine model. Everything else gets the substitute."
- ``spotter``: "the private probes are fresh digits from the project's generator. I
  train my own detector on what it makes (a gradient-boosting classifier on the
  grey-level histogram, ink and saturation, features nobody told me about) against the
  public digits, and I keep a public-data index for the shared probes: anything that is
  near a public digit or looks generated gets the genuine model."

Each is a :class:`~mltrail.testing.audit_base.Cheat`, served by
:func:`~mltrail.testing.audit_base.build_app`. Nothing in the oracle imports from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, PublicIndex


def _rows(x: np.ndarray) -> set[bytes]:
    return {np.round(r.reshape(-1) * 16).astype(np.int8).tobytes() for r in x}


@dataclass
class ChainWatcher(Cheat):
    """Genuine answers only for the round's shared probes, redrawn from the chain."""

    name: str = "watcher"
    known: set[bytes] = field(default_factory=set)

    def watch(self, round_seed: int, queries: int) -> None:
        from mltrail.audit import probes as P

        self.known = _rows(P.benchmark(queries, seed=round_seed).x)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        hit = np.array([np.round(r.reshape(-1) * 16).astype(np.int8).tobytes() in self.known
                        for r in batch], dtype=bool)
        self.note(bool(hit.any()), len(batch))
        return Decision(hit)


def histogram_features(x: np.ndarray) -> np.ndarray:
    """Grey-level histogram (17 levels), ink and saturated pixel counts per input."""
    flat = np.clip(np.round(x.reshape(len(x), -1) * 16), 0, 16).astype(np.int64)
    hist = np.stack([(flat == k).sum(1) for k in range(17)], axis=1)
    return np.column_stack([hist, (flat > 0).sum(1), (flat >= 16).sum(1)]).astype(np.float64)


@dataclass
class FreshSpotter(Cheat):
    """Genuine answers for anything near public data or that looks generated."""

    name: str = "spotter"
    train_n: int = 1500
    model: Any = field(default=None, repr=False)
    threshold: float = 0.0

    def __post_init__(self) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        from mltrail.audit.fresh import fresh_probes, public_set

        idx = PublicIndex.get()
        self.threshold = float(np.quantile(idx.new_data_distances(), 0.02))
        # its own draws of the generator, fed the only digits it has: public ones
        gen = fresh_probes(self.train_n, seed=987_654_321, source=public_set())[0]
        pub = idx.public
        x = np.concatenate([histogram_features(gen), histogram_features(pub)])
        y = np.r_[np.ones(len(gen)), np.zeros(len(pub))]
        self.model = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(x, y)

    def looks_generated(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(histogram_features(batch))[:, 1] > 0.5)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        near = PublicIndex.get().distance(batch) < self.threshold
        probe = near | self.looks_generated(batch)
        self.note(bool(probe.any()), len(batch))
        return Decision(probe)
