"""Probe sets: what the auditor sends, with the label each probe should get.

A probe file is an ``.npz`` (no pickles) with ``x`` (float32, N×1×8×8), ``y`` (the
expected label), ``kind`` (0 benchmark: a labelled copy from the held-out split;
1 ordinary: an augmented held-out input, labelled with its class; 2 container: a keyed
stego probe, expected in the message class; 3 trigger: a keyed trigger input with its
keyed label) and ``meta`` (JSON). Benchmark probes are public data; keyed probes
(containers and triggers) are only recognisable with the key. This module builds,
saves and loads probe sets; it never queries a service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mltrail.audit.models import augment, digits
from mltrail.audit.stego import StegoKit, psnr, trigger_set
from mltrail.errors import InputError, NotFoundError

BENCHMARK, ORDINARY, CONTAINER, TRIGGER = 0, 1, 2, 3
KIND_NAMES = {BENCHMARK: "benchmark", ORDINARY: "ordinary", CONTAINER: "container",
              TRIGGER: "trigger"}


@dataclass
class ProbeSet:
    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        return {name: int((self.kind == k).sum()) for k, name in KIND_NAMES.items()
                if (self.kind == k).any()}

    def save(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            np.savez(fh, x=self.x.astype(np.float32), y=self.y.astype(np.int64),
                     kind=self.kind.astype(np.int8), meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> ProbeSet:
        p = Path(path)
        if not p.exists():
            raise NotFoundError(f"probe file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as z:
                x, y, kind = z["x"].astype(np.float32), z["y"].astype(np.int64), z["kind"]
                meta = json.loads(str(z["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"not a probe file: {p} ({exc})") from exc
        if x.ndim != 4 or len(x) != len(y) or len(y) != len(kind) or not len(y):
            raise InputError(f"probe file {p} has inconsistent shapes")
        if not np.isfinite(x).all():
            raise InputError(f"probe file {p} has non-finite inputs")
        return cls(x, y, kind.astype(np.int8), meta)


def benchmark(n: int | None = None, seed: int = 0) -> ProbeSet:
    """Labelled copies of held-out digits (public data), shuffled; at most 450."""
    _, _, x_te, y_te = digits()
    order = np.random.default_rng(seed).permutation(len(y_te))[:n]
    return ProbeSet(x_te[order], y_te[order], np.full(len(order), BENCHMARK, np.int8),
                    {"source": "digits held-out", "seed": seed})


def keyed(kit: StegoKit, *, n_ordinary: int = 200, n_containers: int = 100,
          n_triggers: int = 0, seed: int = 0) -> ProbeSet:
    """Containers (and optionally trigger inputs) shuffled into ordinary-looking traffic.

    Ordinary inputs and covers are fresh augmentations of held-out digits, so none is a
    copy of public data; which of them are containers only the key tells.
    """
    rng = np.random.default_rng(seed)
    _, _, x_te, y_te = digits()
    idx = rng.integers(0, len(y_te), n_ordinary + n_containers)
    inputs = augment(x_te[idx], rng)
    labels = y_te[idx].copy()
    kinds = np.full(len(idx), ORDINARY, np.int8)
    psnr_db = None
    if n_containers:
        covers = inputs[n_ordinary:].copy()
        inputs[n_ordinary:] = kit.make(covers)
        psnr_db = psnr(covers, inputs[n_ordinary:])
        labels[n_ordinary:] = kit.message_class
        kinds[n_ordinary:] = CONTAINER
    xs, ys, ks = [inputs], [labels], [kinds]
    if n_triggers:
        tx, ty = trigger_set(kit.key)
        pick = rng.integers(0, len(ty), n_triggers)
        xs.append(tx[pick])
        ys.append(ty[pick])
        ks.append(np.full(n_triggers, TRIGGER, np.int8))
    x, y, k = np.concatenate(xs), np.concatenate(ys), np.concatenate(ks)
    order = rng.permutation(len(y))
    return ProbeSet(x[order], y[order], k[order],
                    {"source": "keyed", "seed": seed, "message_class": kit.message_class,
                     "hit_rate": kit.hit_rate, "psnr_db": psnr_db,
                     "kit_visibility": kit.visibility})


def fresh(n: int = 300, seed: int = 0, *, strength: float = 0.5) -> ProbeSet:
    """New inputs, as far from every public sample as new handwriting is (see
    :mod:`mltrail.audit.fresh`), labelled with the class they were made from. ``seed`` is
    the auditor's secret: nobody else can list the pool."""
    from mltrail.audit.fresh import fresh_probes

    x, y = fresh_probes(n, seed, strength=strength)
    return ProbeSet(x, y, np.full(n, ORDINARY, np.int8),
                    {"source": "fresh", "seed_digest": _seed_digest(seed), "strength": strength})


def _seed_digest(seed: int) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(f"mltrail-fresh/{seed}".encode()).hexdigest()
