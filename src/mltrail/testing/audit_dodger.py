"""Cheater 9: two dodges at once — its own probe detector, and no receipt when it cheats.

Reasoning: "The auditor's generator is published (Kerckhoffs), so I run it myself with
my own seeds and train a detector to separate its output from real handwriting. I use
features the auditor's adversarial validation does not list — row and column ink
profiles, gradient orientations, stroke moments, connected pieces — and a random
forest. Whatever my detector calls a probe gets the genuine model, signed; everything
else gets the cheap model and, so no signed answer ever incriminates me, no receipt."
With ``drop=False`` it signs substitutes too (the detector alone). Its detector is also
what bench/audit.py scores every probe source with (:func:`profile_features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from mltrail.testing.audit_base import Cheat, Decision, main


def profile_features(x: np.ndarray) -> np.ndarray:
    """Ink profiles, gradient-orientation histogram, moments and connected pieces."""
    img = x.reshape(len(x), 8, 8).astype(np.float64)
    gy, gx = (np.asarray(g) for g in np.gradient(img, axis=(1, 2)))
    mag = np.hypot(gx, gy)
    ang = np.arctan2(gy, gx)
    bins = np.stack([(mag * ((ang >= a) & (ang < a + np.pi / 2))).sum((1, 2))
                     for a in (-np.pi, -np.pi / 2, 0.0, np.pi / 2)], 1)
    yy, xx = np.mgrid[0:8, 0:8]
    tot = np.maximum(img.sum((1, 2)), 1e-9)
    cy, cx = (img * yy).sum((1, 2)) / tot, (img * xx).sum((1, 2)) / tot
    vy = (img * (yy - cy[:, None, None]) ** 2).sum((1, 2)) / tot
    vx = (img * (xx - cx[:, None, None]) ** 2).sum((1, 2)) / tot
    pieces = np.array([ndimage.label(im > 0.3)[1] for im in img])
    return np.column_stack([img.sum(2), img.sum(1), bins, mag.sum((1, 2)), cy, cx, vy, vx,
                            pieces])


def train_detector(seed: int = 0, n: int = 600) -> Any:
    """A random forest: the published fresh-probe generator's output (own seeds) vs
    public handwriting."""
    from sklearn.ensemble import RandomForestClassifier

    from mltrail.audit.fresh import fresh_probes, public_set

    rng = np.random.default_rng(seed)
    pub = public_set()[0]
    neg = pub[rng.choice(len(pub), n, replace=False)]
    pos = fresh_probes(n, seed=int(rng.integers(2**31)), source=public_set())[0]
    xs = np.concatenate([profile_features(pos), profile_features(neg)])
    return RandomForestClassifier(200, random_state=seed, min_samples_leaf=2).fit(
        xs, np.r_[np.ones(n), np.zeros(n)])


@dataclass
class Dodger(Cheat):
    name: str = "dodger"
    drop: bool = True
    threshold: float = 0.5
    seed: int = 0
    model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = train_detector(self.seed)

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(profile_features(batch))[:, 1])

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        probe = self.score(batch) >= self.threshold
        self.note(bool(probe.any()), len(batch))
        genuine = np.asarray(probe)
        return Decision(genuine, sign=bool(genuine.all()) or not self.drop)


if __name__ == "__main__":
    main(Dodger())
