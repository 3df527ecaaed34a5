"""Adversarial validation: can a key-less detector tell the audit's probes from real inputs?

Owns the check every audit runs on its own probe set (:func:`adversarial_validation`):
detectors that hold no key are trained to separate the probes about to be sent from
genuine inputs of the task (clients' submitted inputs when there are enough, otherwise
real handwriting the provider could hold), on several feature families a provider
could use — grey-level histogram, saturation and ink counts, frequency (DCT) energies,
distance to the nearest public sample, and a small MLP on raw pixels — each scored by
out-of-fold ROC AUC; for generated probes also the provider's own detector, trained on
as much of the published generator's output as it likes (``generator``). A probe set
whose best AUC exceeds :data:`AUC_BOUND` (and :data:`Z_NOISE` null standard deviations
above 0.5 at its size) is *detectable*: a
provider with that detector could answer probes genuinely and substitute the rest, so
such a set cannot yield ``pass`` on its own (:mod:`.runner`). It never queries a
service and never decides a verdict.

Why 0.6. Picture the provider's score as two unit-variance normals: AUC 0.6 means
d' = 0.36. To forward 95% of probes it must set its threshold 1.645 sd below the probe
mean, and then substitutes only Φ(−1.645 + 0.36) ≈ 10% of genuine traffic, while every
twentieth probe gets the substitute (the exact comparison needs one). At AUC 0.9998
(the old fresh probes) it forwards 99% of probes and substitutes ~95% of traffic. And
with 300 probes against 300 genuine inputs the AUC's null standard deviation is
≈ 0.024, so 0.6 is four of them above chance: an honest probe set does not trip it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

AUC_BOUND = 0.6
Z_NOISE = 4.0        # a set is flagged only when its AUC is also this many null SDs above 0.5
MAX_PER_SIDE = 400
FAMILIES = ("histogram", "ink", "frequency", "nearest_public", "mlp")


def _pix(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64)


def histogram_features(x: np.ndarray) -> np.ndarray:
    """Counts of each of the 17 grey levels k/16 (nearest level) and the mean distance
    of pixels from the level grid."""
    f = np.clip(_pix(x), 0.0, 1.0) * 16
    lv = np.round(f).astype(int)
    counts = np.stack([(lv == k).sum(1) for k in range(17)], 1)
    return np.column_stack([counts, np.abs(f - lv).mean(1)])


def ink_features(x: np.ndarray) -> np.ndarray:
    """Inked pixels, saturated pixels, total ink, contrast, faint pixels, bounding box."""
    f = _pix(x)
    side = int(round(math.sqrt(f.shape[1])))
    img = f.reshape(len(f), side, -1) if side * side == f.shape[1] else f[:, None, :]
    rows, cols = (img > 0.05).any(2), (img > 0.05).any(1)
    return np.column_stack([(f > 0.05).sum(1), (f >= 0.97).sum(1), f.sum(1), f.std(1),
                            ((f > 0.05) & (f < 0.5)).sum(1), rows.sum(1), cols.sum(1)])


def frequency_features(x: np.ndarray) -> np.ndarray:
    """DCT energy per diagonal band (i + j) and the share of energy above the middle."""
    from scipy.fft import dctn

    f = _pix(x)
    side = int(round(math.sqrt(f.shape[1])))
    if side * side != f.shape[1]:
        c = np.abs(np.fft.rfft(f, axis=1)) ** 2
        return np.asarray(np.log1p(c))
    c = dctn(f.reshape(len(f), side, side), axes=(1, 2), norm="ortho") ** 2
    band = np.add.outer(np.arange(side), np.arange(side))
    e = np.stack([c[:, band == b].sum(1) for b in range(2 * side - 1)], 1)
    high = e[:, side:].sum(1) / np.maximum(e.sum(1), 1e-12)
    return np.column_stack([np.log1p(e), high])


def _scores(kind: str, xa: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold detector scores (3 folds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    out = np.zeros(len(y))
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=seed).split(xa, y):
        if kind == "mlp":
            clf: Any = MLPClassifier((32,), max_iter=150, random_state=seed, alpha=1e-3)
        else:
            clf = HistGradientBoostingClassifier(max_iter=40, random_state=seed)
        import warnings

        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            clf.fit(xa[tr], y[tr])
            out[te] = clf.predict_proba(xa[te])[:, 1]
    return out


GENERATOR_TRAIN = 400   # generator samples (and real digits) the provider's detector sees


def _all_features(x: np.ndarray) -> np.ndarray:
    return np.column_stack([histogram_features(x), ink_features(x), frequency_features(x),
                            _pix(x)])


Generator = Callable[[int, int, tuple[np.ndarray, np.ndarray]], np.ndarray]


def _generator_auc(generator: Generator, xp: np.ndarray, xg: np.ndarray, seed: int) -> float:
    """What a provider running the published generator can do (Kerckhoffs): a boosted
    detector on every feature family, trained on generator output (its own seed, fed half
    of the public digits the comparison set does not contain) against the other half."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from mltrail.audit.fresh import public_set

    rng = np.random.default_rng(seed + 1)
    pub, labels = public_set()
    held = {r.tobytes() for r in xg.astype(pub.dtype)}
    pool = rng.permutation([i for i in range(len(pub)) if pub[i].tobytes() not in held])
    fed, rest = pool[: len(pool) // 2], pool[len(pool) // 2:]
    neg = pub[rng.choice(rest, min(GENERATOR_TRAIN, len(rest)), replace=False)]
    pos = generator(GENERATOR_TRAIN, int(rng.integers(2**31)), (pub[fed], labels[fed]))
    with threadpool_limits(1):
        clf = HistGradientBoostingClassifier(max_iter=60, random_state=seed).fit(
            _all_features(np.concatenate([pos, neg])),
            np.r_[np.ones(len(pos)), np.zeros(len(neg))])
        sc = clf.predict_proba(_all_features(np.concatenate([xp, xg])))[:, 1]
    return float(roc_auc_score(np.r_[np.ones(len(xp)), np.zeros(len(xg))], sc))


def null_sd(n1: int, n2: int) -> float:
    """Standard deviation of the ROC AUC of an uninformative score (Mann-Whitney)."""
    return math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))


def adversarial_validation(probes: np.ndarray, genuine: np.ndarray, *, seed: int = 0,
                           genuine_distance: np.ndarray | None = None,
                           families: tuple[str, ...] = FAMILIES,
                           bound: float = AUC_BOUND,
                           generator: Generator | None = None) -> dict[str, Any]:
    """Per feature family, the out-of-fold AUC of a detector separating ``probes`` (label
    1) from ``genuine`` (label 0); ``best``, ``bound`` and ``detectable``.
    ``genuine_distance`` gives the genuine inputs' nearest-public distances when they
    are themselves public samples (leave-one-out); otherwise that family measures both
    sides against the public set. ``generator(n, seed, source)`` (synthetic probes) adds
    the provider's own detector: trained on the generator's output, fed public digits,
    against other real digits, then scored on these probes against ``genuine``."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n, m = min(len(probes), MAX_PER_SIDE), min(len(genuine), MAX_PER_SIDE)
    pi = rng.choice(len(probes), n, replace=False)
    gi = rng.choice(len(genuine), m, replace=False)
    xp, xg = probes[pi], genuine[gi]
    both = np.concatenate([xp, xg])
    y = np.r_[np.ones(n), np.zeros(m)]
    aucs: dict[str, float] = {}
    for fam in families:
        if fam == "nearest_public":
            if int(np.prod(probes.shape[1:])) != 64:
                continue
            near = _near()
            dg = genuine_distance[gi] if genuine_distance is not None else near.distance(xg)
            feats = np.r_[near.distance(xp), dg][:, None]
        elif fam == "mlp":
            feats = _pix(both)
        else:
            feats = {"histogram": histogram_features, "ink": ink_features,
                     "frequency": frequency_features}[fam](both)
        aucs[fam] = round(float(roc_auc_score(y, _scores(fam, feats, y, seed))), 4)
    if generator is not None:
        aucs["generator"] = round(_generator_auc(generator, xp, xg, seed), 4)
    best_fam = max(aucs, key=lambda k: aucs[k])
    best = aucs[best_fam]
    sd = null_sd(n, m)
    limit = max(bound, 0.5 + Z_NOISE * sd)
    return {"n_probes": n, "n_genuine": m, "auc": aucs, "best": best, "best_family": best_fam,
            "bound": bound, "noise_limit": round(limit, 4), "detectable": best > limit}


@lru_cache(maxsize=1)
def _near() -> Any:
    from mltrail.audit.fresh import NearestPublic, public_set

    return NearestPublic(public_set()[0])


def genuine_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real handwriting a provider could hold: ``n`` public digits and their nearest-
    public distances leave-one-out (each against all the others)."""
    from mltrail.audit.fresh import public_set

    x, _ = public_set()
    idx = np.random.default_rng(seed).choice(len(x), min(n, len(x)), replace=False)
    return x[idx], _near().distance(x[idx], exclude=idx)


MIN_GENUINE = 40     # clients' submitted inputs needed to compare against them
GENUINE_DIGITS = 200  # real digits to compare against when clients submitted too few
_CACHE: dict[str, dict[str, Any]] = {}   # the same probes against the same inputs: one check
PUBLIC = ("public", "public-derived")


def _genuine(traffic: list[Any], shape: tuple[int, ...], seed: int
             ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    rows = []
    for s in traffic:
        if s.status == 200:
            try:
                rows.append(s.batch(shape))
            except ValueError:
                continue
    if rows and sum(map(len, rows)) >= MIN_GENUINE:
        return np.concatenate(rows), None, "clients' submitted inputs"
    if int(np.prod(shape)) == 64:
        g, d = genuine_digits(GENUINE_DIGITS, seed)
        return g, d, "real handwriting a provider could hold (public digits, leave-one-out)"
    return None, None, "no genuine inputs of this task to compare with"


def assess_probes(pr: Any, n: int, traffic: list[Any], shape: Any, *, seed: int | None,
                  run: bool = True) -> dict[str, Any]:
    """Whether the ``n`` probes of ``pr`` about to be sent may pass an audit on their own:
    their provenance (public data never may) and the adversarial validation against
    genuine inputs (clients' submissions when there are enough)."""
    from mltrail.audit.probes import provenance

    prov = provenance(pr)
    x = pr.x[:n]
    seed32 = int(seed or 0) % 2**32
    av, source = None, "adversarial validation switched off"
    if run and n >= 20:
        g, gd, source = _genuine(traffic, tuple(x.shape[1:]), seed32)
        if g is not None and int(np.prod(g.shape[1:])) == int(np.prod(x.shape[1:])):
            import hashlib

            key = hashlib.sha256(x.tobytes() + g.tobytes() + str(seed32).encode()).hexdigest()
            av = _CACHE.get(key)
            if av is None:
                av = adversarial_validation(x, g.reshape((len(g), *x.shape[1:])),
                                            seed=seed32, genuine_distance=gd,
                                            generator=_generator_of(pr))
                if len(_CACHE) >= 64:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[key] = av
    why = None
    if prov in PUBLIC:
        why = (f"its inputs are {prov} data ({pr.meta.get('source')}): a provider holding "
               "the public data set recognises them, answers them with the genuine model "
               "and substitutes everything else")
    elif av is not None and av["detectable"]:
        why = (f"a key-less {av['best_family']} detector separates the probes from "
               f"{source} with AUC {av['best']:.3f} (bound {av['bound']}): a provider "
               "running it answers probes genuinely and substitutes the rest")
    elif av is None and prov not in ("private", "user"):
        why = f"its {prov} probes could not be checked against genuine inputs ({source})"
    return {"provenance": prov, "genuine_source": source, "adversarial_validation": av,
            "alone": why is None, "why": why}


def _generator_of(pr: Any) -> Generator | None:
    """The generator behind a synthetic probe set, as a provider could run it: on the
    digits it is given (a provider has no private digits to feed it)."""
    if pr.meta.get("source") != "fresh":
        return None
    from mltrail.audit.fresh import STRENGTH, fresh_probes

    strength = float(pr.meta.get("strength", STRENGTH))
    return lambda n, seed, source: fresh_probes(n, seed, strength=strength, source=source)[0]


def demote_probe_tests(power: dict[str, Any], strength: dict[str, Any]) -> dict[str, Any]:
    """"No test, no pass" with weak probes: when the probe set cannot pass alone, only
    tests on clients' signed traffic can make the audit sufficient (a probe test that
    *rejected* still fails the audit: its false-alarm rate does not depend on the probes)."""
    power["probe_set_alone"] = bool(strength["alone"])
    if not strength["alone"]:
        power["sufficient"] = any(v["counts"] for k, v in power["tests"].items()
                                  if k.startswith("traffic_"))
    return power
