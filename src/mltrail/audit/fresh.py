"""Fresh probes and nearest-public-sample distances.

Every probe an auditor copies or lightly perturbs from a public data set lies close to
some public sample, and a provider who holds that data set can recognise it. This
module owns (1) :func:`fresh_probes`: new inputs made by strong, class-preserving
deformations of *pairs* of same-class digits (a random blend, then a random affine
warp and stroke-width change, then quantised to the data set's own 17 grey levels), so
that a probe is as far from every public sample as new handwriting is; and (2) the
measurements: :func:`nearest_public_distance` (shift-invariant L2 to the nearest public
sample, the statistic a memorising provider would use) and :func:`distance_report`
(its distribution per probe set against that of genuinely new samples, estimated by
leave-one-out over the public set). It never queries a service.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

LEVELS = 16  # digits pixels are k/16, k = 0..16


def public_set() -> tuple[np.ndarray, np.ndarray]:
    """The whole public data set (training split and public benchmark; never the
    auditor's own split, :mod:`.heldout`), N×1×8×8 and labels."""
    from mltrail.audit.heldout import public_set as public

    return public()


class NearestPublic:
    """Shift-invariant L2 distance of inputs to the nearest sample of a public set."""

    def __init__(self, public: np.ndarray, shifts: int = 1) -> None:
        self.pub = public.reshape(len(public), -1).astype(np.float64)
        self.norms = (self.pub ** 2).sum(1)
        self.shifts = [(dy, dx) for dy in range(-shifts, shifts + 1)
                       for dx in range(-shifts, shifts + 1)]

    def _plain(self, q: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        q = q.reshape(len(q), -1).astype(np.float64)
        d2 = (q ** 2).sum(1)[:, None] + self.norms[None] - 2.0 * q @ self.pub.T
        if exclude is not None:
            d2[np.arange(len(q)), exclude] = np.inf
        return np.asarray(np.sqrt(np.maximum(d2.min(1), 0.0)))

    def distance(self, x: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Minimum over one-pixel shifts of the L2 distance to the nearest public sample;
        ``exclude`` names, per row, a public index to leave out (leave-one-out)."""
        best = np.full(len(x), np.inf)
        for dy, dx in self.shifts:
            shifted = np.roll(x, (dy, dx), axis=(-2, -1))
            ex = exclude if (dy, dx) == (0, 0) else None
            best = np.minimum(best, self._plain(shifted, ex))
        return best


def _warp(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A random affine warp (rotation, scale, shear, sub-pixel shift) of one 8×8 image,
    computed on a 4× upsampled copy so strokes stay smooth."""
    up = np.kron(img, np.ones((4, 4)))
    ang = np.deg2rad(rng.uniform(-15, 15) * strength)
    sc = 1.0 + rng.uniform(-0.12, 0.12) * strength
    sh = rng.uniform(-0.2, 0.2) * strength
    m = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ \
        np.array([[1.0, sh], [0.0, 1.0]]) / sc
    c = (np.array(up.shape) - 1) / 2.0
    off = c - m @ c + rng.uniform(-2.0, 2.0, 2) * strength
    out = ndimage.affine_transform(up, m, offset=off, order=1, mode="constant")
    width = rng.uniform(-0.6, 0.9) * strength  # thinner or thicker strokes
    if width > 0:
        out = np.maximum(out, ndimage.grey_dilation(out, size=(3, 3)) * width)
    elif width < 0:
        out = out * (1.0 + width) + ndimage.grey_erosion(out, size=(3, 3)) * (-width)
    small = out.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    peak = small.max()
    if peak > 0:  # the data set's strokes reach full intensity
        small = small * min(4.0, float(img.max()) / peak)
    return np.asarray(small)


def fresh_probes(n: int, seed: int, *, strength: float = 0.5, blend: float = 0.5,
                 source: tuple[np.ndarray, np.ndarray] | None = None, match: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new inputs (float32, N×1×8×8, quantised to k/16) and the class they were made
    from. Each blends two different samples of one class with a random weight and warps
    the blend; with ``match`` its grey levels are then matched to real handwriting's
    (:func:`_match_histograms`); ``seed`` is the auditor's secret."""
    rng = np.random.default_rng(seed)
    x, y = source if source is not None else public_set()
    by_class = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
    labels = rng.integers(0, len(by_class), n)
    out = np.empty((n, 1, 8, 8), dtype=np.float32)
    for i, c in enumerate(labels):
        a, b = rng.choice(by_class[c], 2, replace=False)
        w = 1.0 - rng.uniform(0.0, blend)
        mixed = w * x[a, 0] + (1.0 - w) * x[b, 0]
        out[i, 0] = _warp(mixed.astype(np.float64), rng, strength)
    quantised = np.round(np.clip(out, 0.0, 1.0) * LEVELS) / LEVELS
    if match:
        quantised = _match_histograms(quantised, labels, x, y, by_class, rng)
    return quantised.astype(np.float32), labels.astype(np.int64)


def _match_histograms(out: np.ndarray, labels: np.ndarray, x: np.ndarray, y: np.ndarray,
                      by_class: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Give each probe the grey-level distribution of real handwriting of its class: its
    pixels keep their rank order but take, rank by rank, the value of one of two same-class
    samples chosen at random. Resampling blurs strokes (more faint ink, fewer
    saturated pixels); this undoes it without copying any one sample's histogram."""
    res = out.copy()
    for i, c in enumerate(labels):
        a, b = rng.choice(by_class[c], 2, replace=False)
        pick = rng.random(flat_len(x[a])) < 0.5
        target = np.sort(np.where(pick, np.sort(x[a].ravel()), np.sort(x[b].ravel())))
        flat = res[i].ravel().astype(np.float64) + rng.uniform(0.0, 1e-6, flat_len(res[i]))
        new = np.empty(len(flat))
        new[np.argsort(flat, kind="stable")] = target
        res[i] = new.reshape(res[i].shape)
    return res


def flat_len(a: np.ndarray) -> int:
    return int(np.prod(a.shape))


def _quantiles(d: np.ndarray) -> dict[str, float]:
    qs = (1, 5, 25, 50, 75, 95)
    return {"n": int(len(d)), "mean": float(d.mean()),
            **{f"p{q}": float(np.percentile(d, q)) for q in qs}}


def new_data_distances(near: NearestPublic, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Distances of genuinely new handwriting, estimated leave-one-out: each public sample
    against all the others (excluding itself, including its shifts)."""
    x, _ = public_set()
    idx = np.arange(len(x)) if n is None else \
        np.random.default_rng(seed).choice(len(x), n, replace=False)
    return near.distance(x[idx], exclude=idx)


def distance_report(probe_sets: dict[str, np.ndarray], n_new: int | None = 600,
                    seed: int = 0) -> dict[str, Any]:
    """Per probe set, the nearest-public distance distribution and how a memorising
    provider would separate it from new data (ROC AUC of 'small distance = probe')."""
    from sklearn.metrics import roc_auc_score

    x, _ = public_set()
    near = NearestPublic(x)
    new = new_data_distances(near, n_new, seed)
    out: dict[str, Any] = {"new_data": _quantiles(new)}
    for name, xs in probe_sets.items():
        d = near.distance(xs)
        auc = float(roc_auc_score(np.r_[np.zeros(len(new)), np.ones(len(d))], -np.r_[new, d]))
        out[name] = {**_quantiles(d), "auc_vs_new_data": auc,
                     "below_new_data_p5": float((d < np.percentile(new, 5)).mean())}
    return out
