"""Probe sets: what the auditor sends, with the label each probe should get.

A probe file is an ``.npz`` (no pickles) with ``x`` (float32, N×1×8×8), ``y`` (the
expected label), ``kind`` (0 benchmark: a labelled copy from the held-out split;
1 ordinary: an augmented held-out input, labelled with its class; 2 container: a keyed
stego probe, expected in the message class; 3 trigger: a keyed trigger input with its
keyed label; 4 data: an unlabelled input from the user's own data) and ``meta`` (JSON).
Benchmark probes are public data; keyed probes (containers and triggers) are only
recognisable with the key. :func:`from_data` makes a probe set from the user's own data
(an ``.npz`` of image arrays, tabular rows or token sequences, with a declared kind;
docs/audit.md "Your own data"), and :func:`needs_images` says, in one line, why a probe
kind that assumes pixels cannot run on other data. This module builds, saves and loads
probe sets; it never queries a service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mltrail.audit.models import augment
from mltrail.audit.stego import StegoKit, psnr, trigger_set
from mltrail.errors import InputError

BENCHMARK, ORDINARY, CONTAINER, TRIGGER, DATA = 0, 1, 2, 3, 4
KIND_NAMES = {BENCHMARK: "benchmark", ORDINARY: "ordinary", CONTAINER: "container",
              TRIGGER: "trigger", DATA: "data"}
DATA_KINDS = ("image", "tabular", "tokens")
MAX_ROWS = 1_000_000
# what each pixel-assuming part of an audit does with pixels
IMAGE_ONLY = {
    "robustness": "SimBA and Square perturb pixels within [0, 1] by an L-infinity budget",
    "stego": "steganographic containers hide a key in an 8x8 digit image's pixels",
    "trigger": "the keyed trigger set blends 8x8 digit images with keyed noise",
    "fresh": "fresh probes are new 8x8 digit images",
}


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
        from mltrail._fs import regular_file

        p = regular_file(path, "probe file")
        try:
            with np.load(p, allow_pickle=False) as z:
                x, y, kind = z["x"].astype(np.float32), z["y"].astype(np.int64), z["kind"]
                meta = json.loads(str(z["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"not a probe file: {p} ({exc})") from exc
        if x.ndim < 2 or len(x) != len(y) or len(y) != len(kind) or not len(y):
            raise InputError(f"probe file {p} has inconsistent shapes")
        if not np.isfinite(x).all():
            raise InputError(f"probe file {p} has non-finite inputs")
        return cls(x, y, kind.astype(np.int8), meta)


def needs_images(part: str, data_kind: str) -> str | None:
    """Why ``part`` cannot run on ``data_kind`` data, in one line (None if it can)."""
    if data_kind == "image":
        return None
    return f"{part} needs image data ({IMAGE_ONLY[part]}); the probe data are {data_kind}"


def from_data(path: str | Path, data_kind: str | None = None, *, seed: int = 0,
              n: int | None = None) -> ProbeSet:
    """Probes from the user's own data: an ``.npz`` (no pickles) with ``x`` (N inputs of
    any shape), optionally ``y`` (integer labels) and ``data_kind`` (``image``,
    ``tabular`` or ``tokens``; the argument overrides it). Shuffled by ``seed``; at most
    ``n``. Labelled rows are ``ordinary`` probes, unlabelled ones ``data`` probes."""
    from mltrail._fs import regular_file

    p = regular_file(path, "data file")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z.files:
                raise InputError(f"data file {p} has no array 'x'")
            x = np.asarray(z["x"])
            y = np.asarray(z["y"]) if "y" in z.files else None
            declared = str(z["data_kind"]) if "data_kind" in z.files else None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"not a data file (.npz without pickles): {p} ({exc})") from exc
    kind = data_kind or declared
    if kind not in DATA_KINDS:
        raise InputError(f"data file {p}: declare its kind ({', '.join(DATA_KINDS)}) with "
                         "--data-kind or a 'data_kind' entry")
    if x.ndim < 2 or not 1 <= len(x) <= MAX_ROWS or x.dtype.kind not in "biuf":
        raise InputError(f"data file {p}: x must be 1 to {MAX_ROWS} numeric inputs "
                         f"(got shape {list(x.shape)}, dtype {x.dtype})")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        raise InputError(f"data file {p}: x has non-finite values")
    if kind == "tokens" and (np.any(xf != np.round(xf)) or xf.min() < 0 or xf.max() >= 2**24):
        raise InputError(f"data file {p}: token sequences must be integers in [0, 2^24)")
    if y is not None and (y.shape != (len(x),) or y.dtype.kind not in "iu"):
        raise InputError(f"data file {p}: y must be one integer label per input")
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    labels = y[order].astype(np.int64) if y is not None else np.full(len(order), -1, np.int64)
    kinds = np.full(len(order), ORDINARY if y is not None else DATA, np.int8)
    return ProbeSet(xf[order].astype(np.float32), labels, kinds,
                    {"source": "user data", "file": p.name, "data_kind": kind,
                     "labelled": y is not None, "rows": int(len(x))})


def benchmark(n: int | None = None, seed: int = 0) -> ProbeSet:
    """Labelled copies of the public benchmark (held-out digits that are not the
    auditor's own, :mod:`.heldout`), shuffled; at most 150. Public data: a memorising
    provider recognises every one, so they never pass an audit alone."""
    from mltrail.audit.heldout import public_heldout

    x_te, y_te = public_heldout()
    order = np.random.default_rng(seed).permutation(len(y_te))[:n]
    return ProbeSet(x_te[order], y_te[order], np.full(len(order), BENCHMARK, np.int8),
                    {"source": "digits held-out", "seed": seed, "provenance": "public"})


def held(n: int = 300, seed: int = 0) -> ProbeSet:
    """The auditor's own labelled data (:mod:`.heldout`), drawn fresh by ``seed`` (the
    audit's secret): at most 300, never published. The default probe source."""
    from mltrail.audit.heldout import auditor_split

    x, y = auditor_split()
    order = np.random.default_rng(seed).permutation(len(y))[:n]
    return ProbeSet(x[order], y[order], np.full(len(order), ORDINARY, np.int8),
                    {"source": "auditor-held", "seed_digest": _seed_digest(seed),
                     "provenance": "private", "pool": int(len(y))})


def keyed(kit: StegoKit, *, n_ordinary: int = 200, n_containers: int = 100,
          n_triggers: int = 0, seed: int = 0) -> ProbeSet:
    """Containers (and optionally trigger inputs) shuffled into ordinary-looking traffic.

    Ordinary inputs and covers are fresh augmentations of held-out digits, so none is a
    copy of public data; which of them are containers only the key tells.
    """
    from mltrail.audit.heldout import public_heldout

    rng = np.random.default_rng(seed)
    x_te, y_te = public_heldout()
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
                    {"source": "keyed", "seed": seed, "provenance": "public-derived",
                     "message_class": kit.message_class,
                     "hit_rate": kit.hit_rate, "psnr_db": psnr_db,
                     "kit_visibility": kit.visibility})


def fresh(n: int = 300, seed: int = 0, *, strength: float | None = None) -> ProbeSet:
    """New inputs warped from the auditor's own digits in the data set's bitmap space
    (see :mod:`mltrail.audit.fresh`), labelled with the class of the digit each was made
    from. ``seed`` is the auditor's secret: nobody else can list the pool."""
    from mltrail.audit.fresh import STRENGTH, fresh_probes

    st = STRENGTH if strength is None else strength
    x, y = fresh_probes(n, seed, strength=st)
    return ProbeSet(x, y, np.full(n, ORDINARY, np.int8),
                    {"source": "fresh", "seed_digest": _seed_digest(seed), "strength": st,
                     "provenance": "synthetic"})


def provenance(pr: ProbeSet) -> str:
    """Where a probe set's inputs come from: ``public`` (benchmark copies),
    ``public-derived`` (keyed kits built on public digits), ``synthetic`` (fresh
    probes), ``private`` (the auditor's own data) or ``user`` (the user's data file)."""
    if pr.meta.get("provenance"):
        return str(pr.meta["provenance"])
    if pr.meta.get("source") == "user data":
        return "user"
    if (pr.kind == BENCHMARK).any():
        return "public"
    return "public-derived" if pr.meta.get("source") == "keyed" else "unknown"


def _seed_digest(seed: int) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(f"mltrail-fresh/{seed}".encode()).hexdigest()
