"""Fresh probes and nearest-public-sample distances.

A probe an auditor copies or lightly perturbs from a public data set lies close to some
public sample, and a provider who holds that data set recognises it; a probe that is
synthesised by resampling and blending leaves fingerprints (grey levels, stroke shape)
that a detector trained on the published generator's output finds. This module owns
(1) :func:`fresh_probes`: new inputs made in the data set's own pixel space. The digits
were made by counting the "on" pixels of 32×32 binary bitmaps in 4×4 blocks (values
0..16); each probe rebuilds a bitmap consistent with one of the auditor's *private*
digits (:mod:`.heldout`), bends it with a smooth random warp that keeps its top and
bottom rows where they were (the data set's size normalisation) and counts the blocks
again — so its grey levels, saturation and stroke shapes are those of real handwriting
by construction, and it is labelled with the class of the digit it was made from; and
(2) the measurements: :class:`NearestPublic` (shift-invariant L2 to the
nearest public sample, the statistic a memorising provider would use) and
:func:`distance_report`. It never queries a service.
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


BLOCK = 4          # each 8×8 pixel counts the on pixels of a 4×4 block of a 32×32 bitmap
SIDE = 8 * BLOCK
STRENGTH = 0.4     # the default warp (see fresh_probes)
MIN_MOVE = 0.5     # × strength: a warp that moves a probe less from its source is redrawn
RETRIES = 20


def bitmaps(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """N×32×32 binary bitmaps whose block counts are exactly ``x``'s (N×1×8×8 in k/16):
    in each block the ``k`` pixels nearest the image's smoothed ink go on."""
    c = np.clip(np.round(x.reshape(len(x), 8, 8) * LEVELS), 0, LEVELS).astype(np.int64)
    up = np.kron(c.astype(np.float64), np.ones((1, BLOCK, BLOCK)))
    smooth = ndimage.gaussian_filter(up, (0, 1.5, 1.5)) + rng.uniform(0, 1e-3, up.shape)
    blocks = smooth.reshape(len(c), 8, BLOCK, 8, BLOCK).transpose(0, 1, 3, 2, 4)
    rank = blocks.reshape(len(c), 8, 8, -1).argsort(-1).argsort(-1)
    on = rank >= BLOCK * BLOCK - c[..., None]
    return np.asarray(on.reshape(len(c), 8, 8, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
                      .reshape(len(c), SIDE, SIDE))


def block_counts(bm: np.ndarray) -> np.ndarray:
    """The data set's own reduction: on pixels per 4×4 block, as k/16 (N×1×8×8)."""
    n = len(bm)
    c = bm.reshape(n, 8, BLOCK, 8, BLOCK).sum((2, 4))
    return np.asarray((c / LEVELS).astype(np.float32)[:, None])


def _bend(bm: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth random warp of one bitmap: vertical stretch and elastic displacement that
    vanish on its top and bottom rows (the data set scaled every digit to the box's
    height), horizontal scale, slant and elastic displacement about its centre of ink.
    Nearest-pixel resampling keeps it binary and its strokes as wide as they were."""
    rows = np.flatnonzero(bm.any(1))
    if not len(rows):
        return bm
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    top, h = rows[0], max(int(rows[-1] - rows[0]), 1)
    pinned = np.sin(np.pi * np.clip((yy - top) / h, 0.0, 1.0))
    cy, cx = ndimage.center_of_mass(bm.astype(np.float64))
    sigma = 4.0

    def field() -> np.ndarray:
        return np.asarray(ndimage.gaussian_filter(rng.normal(0, 1, (SIDE, SIDE)), sigma)
                          * sigma * 1.2 * strength)

    src_y = yy + (rng.uniform(-0.08, 0.08) * strength * h + field()) * pinned
    scale = 1.0 + rng.uniform(-0.08, 0.08) * strength
    src_x = cx + (xx - cx) / scale - rng.uniform(-0.12, 0.12) * strength * (yy - cy) + field()
    out = ndimage.map_coordinates(bm.astype(np.float64), [src_y, src_x], order=0,
                                  mode="constant")
    return np.asarray(out > 0.5)


def fresh_probes(n: int, seed: int, *, strength: float = STRENGTH,
                 source: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new inputs (float32, N×1×8×8, k/16) and the class of the digit each was made
    from. ``source`` defaults to the auditor's own split (:func:`mltrail.audit.heldout.
    auditor_split`), which nobody else holds; a provider running this published code has
    only public digits to feed it. ``seed`` is the auditor's secret. ``strength`` scales
    the warp: 0 copies the source; the default 0.4 moves a probe about 0.48 (L2 on
    [0, 1] pixels; a warp that moves it less than 0.2 is redrawn) from its source,
    against about 1.0 between a new digit and its nearest neighbour; at 1 a detector
    trained on the generator's output starts to see the warp (docs/audit.md, section h)."""
    rng = np.random.default_rng(seed)
    if source is None:
        from mltrail.audit.heldout import auditor_split

        source = auditor_split()
    x, y = source
    idx = rng.integers(0, len(y), n)
    src = np.round(x[idx] * LEVELS).astype(np.float32) / LEVELS
    out = src.copy()
    for i, b in enumerate(bitmaps(src, rng)):
        for _ in range(RETRIES if strength > 0 else 1):
            out[i] = block_counts(_bend(b, rng, strength)[None])[0]
            if float(np.sqrt(((out[i] - src[i]) ** 2).sum())) >= MIN_MOVE * min(strength, 1.0):
                break
    return out, y[idx].astype(np.int64)


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
