"""Which segments the verifier replays, and from what randomness: the challenge.

Owns the selection rule, the formula that turns a stated miss rate into a number of
random segments R, and the derivation of seeds from ledger values:

* **selection** (:func:`choose_segments`): the top-Q segments of each epoch by the change
  of the *whole* training state (weights and optimizer state, each part scaled by its
  median over the proof), the final segment, R segments drawn at random from the rest,
  and the predecessor of every chosen segment (so a forged *input* state is compared with
  the state that produced it);
* **R** (:func:`random_count`): the smallest R for which a proof with a fraction ``forged``
  of fake segments escapes R draws without replacement with probability at most
  ``miss_rate`` (hypergeometric, :func:`miss_probability`);
* **public challenge** (:func:`challenge_seed`): a seed from the hash of a ledger block
  mined after the proof was published, optionally mixed with a verifier secret that the
  report reveals, so anyone can recompute the selection;
* **ledger init seed** (:func:`start_root`, :func:`init_seed_from`): the root a prover
  anchors before step 0 and the seed derived from the block that holds it.

Pure functions: no I/O, no ledger calls (:mod:`mltrail.pol.onchain` reads the blocks).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_json

State = dict[str, torch.Tensor]
Why = Literal["top-q", "random", "final", "predecessor"]

DEFAULT_MISS_RATE = 0.01
DEFAULT_FORGED = 0.1
DEFAULT_DELAY = 2  # registration + 1 is normally the prover's own "trained" transition


def forged_count(segments: int, forged: float) -> int:
    """Fewest fake segments that make a fraction of at least ``forged`` (at least one)."""
    return max(1, math.ceil(forged * segments - 1e-9))


def miss_probability(pool: int, bad: int, draws: int) -> float:
    """P(``draws`` distinct segments from ``pool`` avoid all ``bad`` of them) =
    C(pool − bad, draws) / C(pool, draws)."""
    if bad <= 0:
        return 1.0
    if draws > pool - bad:
        return 0.0
    p = 1.0
    for t in range(draws):
        p *= (pool - bad - t) / (pool - t)
    return p


def random_count(pool: int, segments: int, miss_rate: float, forged: float) -> int:
    """Smallest R with ``miss_probability(pool, F, R) <= miss_rate``, where
    ``F = forged_count(segments, forged)`` and every fake sits in the random pool (the
    prover's best case: top-Q and the final segment are replayed anyway)."""
    if not 0.0 < miss_rate < 1.0:
        raise InputError("--miss-rate must be in (0, 1)")
    if not 0.0 < forged <= 1.0:
        raise InputError("--forged must be in (0, 1]")
    bad = min(forged_count(segments, forged), pool)
    if bad <= 0:  # nothing left to draw: every segment is replayed anyway
        return 0
    p = 1.0  # miss_probability(pool, bad, r), updated term by term
    for r in range(pool + 1):
        if p <= miss_rate or r > pool - bad:
            return r
        p *= (pool - bad - r) / (pool - r)
    return pool


def _flat(state: Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor] | None = None
          ) -> torch.Tensor:
    keys = sorted(set(state) | set(like or {}))
    parts = []
    for k in keys:
        v = state.get(k)
        if v is None and like is not None:
            v = torch.zeros_like(like[k])
        if v is not None and v.is_floating_point():
            parts.append(v.detach().reshape(-1).to(torch.float64))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def state_changes(states: Sequence[tuple[State, State]]) -> list[tuple[float, float]]:
    """``(‖ΔW‖, ‖Δoptimizer state‖)`` of every segment (missing optimizer entries are 0)."""
    out = []
    for (m0, o0), (m1, o1) in zip(states, states[1:], strict=False):
        dw = float((_flat(m1) - _flat(m0)).norm())
        do = float((_flat(o1, o0) - _flat(o0, o1)).norm()) if (o0 or o1) else 0.0
        out.append((dw, do))
    return out


def scores(changes: Sequence[tuple[float, float]]) -> list[float]:
    """Change of the whole state, each part divided by its median over the proof."""
    def med(xs: list[float]) -> float:
        xs = sorted(x for x in xs if x > 0 and math.isfinite(x))
        return xs[len(xs) // 2] if xs else 1.0

    mw, mo = med([c[0] for c in changes]), med([c[1] for c in changes])
    return [(w / mw if math.isfinite(w) else math.inf) + (o / mo if math.isfinite(o) else math.inf)
            for w, o in changes]


def choose_segments(epochs_of: Sequence[int], score: Sequence[float], q: int, r: int,
                    seed: int) -> list[tuple[int, Why]]:
    """Segments to replay, in order: top-``q`` per epoch by ``score``, the final one,
    ``r`` random ones from the rest, then every chosen segment's predecessor."""
    n = len(score)
    chosen: dict[int, Why] = {}
    by_epoch: dict[int, list[int]] = {}
    for i, e in enumerate(epochs_of):
        by_epoch.setdefault(e, []).append(i)
    for idxs in by_epoch.values():
        for i in sorted(idxs, key=lambda j: (-score[j], j))[:q]:
            chosen[i] = "top-q"
    if n:
        chosen.setdefault(n - 1, "final")
    rest = [i for i in range(n) if i not in chosen]
    for i in random.Random(seed).sample(rest, min(r, len(rest))):
        chosen[i] = "random"
    for i in list(chosen):
        if i > 0:
            chosen.setdefault(i - 1, "predecessor")
    return sorted(chosen.items())


def pool_size(epochs_of: Sequence[int], score: Sequence[float], q: int) -> int:
    """Segments left for random draws after top-Q and the final segment."""
    fixed = [i for i, why in choose_segments(epochs_of, score, q, 0, 0)
             if why != "predecessor"]
    return len(score) - len(fixed)


def _h(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def challenge_seed(model_id: str, bundle_digest: str, block_hash: bytes,
                   secret: bytes | None = None) -> int:
    """The public challenge: from the model, its bundle, the hash of a block mined after
    publication and an optional verifier secret. Anyone holding the four recomputes it."""
    raw = _h("mltrail-pol-challenge/1", model_id.lower(), bundle_digest, block_hash.hex(),
             (secret or b"").hex())
    return int.from_bytes(raw[:8], "little") >> 1


def start_root(data_digest: str, prover: str | None, data_seed: int,
               arch: Mapping[str, Any], scheme: str) -> bytes:
    """The root a prover anchors before step 0: binds data, prover, data order,
    architecture and init scheme (a verifier recomputes it from the header)."""
    return bytes.fromhex(digest_json({
        "purpose": "mltrail-pol-start/1", "data": data_digest,
        "prover": (prover or "").lower(), "data_seed": data_seed, "arch": dict(arch),
        "scheme": scheme}).split(":")[-1])


def init_seed_from(block_hash: bytes, root: bytes) -> int:
    """The init seed fixed by the block holding the start anchor: nobody knew it before
    that block was mined, so the initial weights did not exist earlier either."""
    raw = _h("mltrail-pol-init/1", block_hash.hex(), root.hex())
    return int.from_bytes(raw[:8], "little") >> 1
