"""Cheater 10: probe detectors on features the audit's own adversarial validation never uses.

Reasoning: "The auditor checks its probe sets against grey-level histograms, ink and
saturation, DCT energies, the nearest public digit and a small MLP. So I look where it
does not: (a) gradient boosting on the raw pixels, (b) how often neighbouring pixels
take each pair of grey levels (co-occurrence, four directions), (c) the k nearest
neighbours in the hidden layer of the genuine model I serve. The generator is published
(Kerckhoffs), so I run it with my own seeds on the digits I hold — public ones — and
train each detector to separate its output from public handwriting. Whatever it calls a
probe gets the genuine model, signed; the rest gets the cheap model, and with ``drop``
no receipt either, so no signed answer incriminates me."

:func:`oof_auc` scores the same feature families the auditor's way (out-of-fold, trained
on the very probe set against genuine inputs): an upper bound on what any detector on
those features can do, used by bench/audit.py for every probe source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, main

Kind = Literal["pixels", "cooccurrence", "embedding"]
KINDS: tuple[Kind, ...] = ("pixels", "cooccurrence", "embedding")
BINS = 5   # grey levels 0..16 in five bins for co-occurrence


def cooccurrence_features(x: np.ndarray) -> np.ndarray:
    """Counts of each (level bin, level bin) pair of neighbouring pixels, for horizontal,
    vertical and both diagonal neighbours (4 × 25 counts)."""
    lv = np.clip(np.round(x.reshape(len(x), 8, 8) * 16), 0, 16).astype(np.int64) * BINS // 17
    pairs = [(lv[:, :, :-1], lv[:, :, 1:]), (lv[:, :-1, :], lv[:, 1:, :]),
             (lv[:, :-1, :-1], lv[:, 1:, 1:]), (lv[:, :-1, 1:], lv[:, 1:, :-1])]
    cols = []
    for a, b in pairs:
        code = a * BINS + b
        cols += [(code == k).sum((1, 2)) for k in range(BINS * BINS)]
    return np.stack(cols, 1).astype(np.float64)


def embedding_features(x: np.ndarray, net: Any) -> np.ndarray:
    """The genuine model's penultimate representation (the input of its last linear layer)."""
    import torch

    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen: list[np.ndarray] = []
    hook = last.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().numpy()))
    try:
        with torch.no_grad():
            net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        hook.remove()
    return np.asarray(seen[0], dtype=np.float64).reshape(len(x), -1)


def features(kind: Kind, x: np.ndarray, net: Any = None) -> np.ndarray:
    if kind == "pixels":
        return x.reshape(len(x), -1).astype(np.float64)
    if kind == "cooccurrence":
        return cooccurrence_features(x)
    if net is None:
        raise ValueError("the embedding detector needs the genuine model")
    return embedding_features(x, net)


def _classifier(kind: Kind, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "embedding":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(15))
    return HistGradientBoostingClassifier(max_iter=100, random_state=seed)


def train_detector(kind: Kind, seed: int = 0, net: Any = None, n: int = 600,
                   strength: float | None = None,
                   pool: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """The published generator's output (half of the digits it holds fed in, own seeds)
    against the other half; ``pool`` defaults to every public digit."""
    from threadpoolctl import threadpool_limits

    from mltrail.audit.fresh import STRENGTH, fresh_probes, public_set

    rng = np.random.default_rng(seed)
    pub = public_set() if pool is None else pool
    idx = rng.permutation(len(pub[1]))
    src = (pub[0][idx[:len(idx) // 2]], pub[1][idx[:len(idx) // 2]])
    neg = pub[0][rng.choice(idx[len(idx) // 2:], n, replace=False)]
    pos = fresh_probes(n, int(rng.integers(2**31)), source=src,
                       strength=STRENGTH if strength is None else strength)[0]
    with threadpool_limits(1):
        return _classifier(kind, seed).fit(
            np.concatenate([features(kind, pos, net), features(kind, neg, net)]),
            np.r_[np.ones(n), np.zeros(n)])


def oof_auc(kind: Kind, probes: np.ndarray, genuine: np.ndarray, seed: int,
            net: Any = None) -> float:
    """3-fold out-of-fold ROC AUC of this family's detector trained on ``probes`` (1)
    against ``genuine`` (0)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    xs = np.concatenate([features(kind, probes, net), features(kind, genuine, net)])
    y = np.r_[np.ones(len(probes)), np.zeros(len(genuine))]
    with threadpool_limits(1):
        p = cross_val_predict(_classifier(kind, seed), xs, y, method="predict_proba",
                              cv=StratifiedKFold(3, shuffle=True, random_state=seed))[:, 1]
    return float(roc_auc_score(y, p))


@dataclass
class Detector2(Cheat):
    name: str = "detector2"
    kind: Kind = "pixels"
    drop: bool = False
    seed: int = 0
    net: Any = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)
    threshold: float = 0.5

    def __post_init__(self) -> None:
        self.name = f"detector2-{self.kind}" + ("-drop" if self.drop else "")
        if self.model is None:
            self.model = train_detector(self.kind, self.seed, self.net)

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(features(self.kind, batch, self.net))[:, 1])

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        probe = self.score(batch) >= self.threshold
        self.note(bool(probe.any()), len(batch))
        return Decision(probe, sign=bool(probe.all()) or not self.drop)


if __name__ == "__main__":
    main(Detector2())
