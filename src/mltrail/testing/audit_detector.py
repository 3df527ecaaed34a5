"""Cheater 2: its own key-less probe detector, trained on what the docs say probes are.

Reasoning: "I cannot read keyed containers without the key, but I do not need to. I
train a classifier on features that probes and my customers' handwriting differ in:
distance to the nearest public digit, how far pixels sit from the data set's 17 grey
levels (noise and stego residuals break the quantisation), total ink and contrast.
Positives: copies, augmented copies and bounded-noise 'containers' as documented;
negatives: new handwriting as my customers send it (I stand it in with public digits
left out one at a time). Whatever it calls a probe gets the genuine model, the rest the
cheap one."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, PublicIndex, main


def features(x: np.ndarray, index: PublicIndex, skip_self: bool = False) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype(np.float64)
    quant = np.abs(flat * 16 - np.round(flat * 16)).mean(1)
    return np.column_stack([index.distance(x, skip_self), quant, flat.sum(1) / 64,
                            flat.std(1)])


def _documented_probes(pub: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(pub)
    shifted = np.stack([np.roll(im, tuple(rng.integers(-1, 2, 2)), axis=(-2, -1))
                        for im in pub])
    aug = np.clip(shifted + rng.normal(0, 0.03, pub.shape), 0, 1)
    cont = np.clip(aug + 0.15 * np.tanh(rng.normal(0, 1, pub.shape)), 0, 1)
    return np.concatenate([pub[: n // 3], aug, cont]).astype(np.float32)


@dataclass
class Detector(Cheat):
    name: str = "detector"
    model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        idx = PublicIndex.get()
        rng = np.random.default_rng(7)
        some = idx.public[rng.choice(len(idx.public), 600, replace=False)]
        pos = features(_documented_probes(some, rng), idx)
        neg = features(some, idx, skip_self=True)
        self.model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(
            np.concatenate([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))])

    def is_probe(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(features(batch, PublicIndex.get())) > 0.5)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        probe = self.is_probe(batch)
        self.note(bool(probe.any()), len(batch))
        return Decision(probe)


if __name__ == "__main__":
    main(Detector())
