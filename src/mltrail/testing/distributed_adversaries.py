"""Byzantine workers for data-parallel training, written against mltrail's own check.

Each class is a :class:`mltrail.distributed.worker.Behaviour`: given the honest gradient
of the worker's shard, it returns what the worker sends, with a record that claims the
round's real state, indices and the digest of what it sends (so no bookkeeping check
catches it: only a replay can). What each one exploits:

* :class:`RandomUpdate` — noise with exactly the honest gradient's per-tensor norms
  (defeats norm and magnitude filters);
* :class:`ScaledUpdate` — the honest gradient times ``1 + 1e-4`` by default (defeats any
  tolerance-based comparison; only an exact one sees it);
* :class:`StaleUpdate` — its previous round's gradient, computed on an older state
  (a lazy worker that computes every other round);
* :class:`ZeroUpdate` — zeros, computing nothing (a lazy worker; what it sends, and so
  the coordinator's draw for it under a given secret, is the same on every machine);
* :class:`FreeRider` — another worker's update (bit-identical to what the victim sends:
  the shards are public, so it recomputes the victim's instead of its own);
* :class:`RareCheater` — honest except on a few rounds (a share ``rate``, chosen from its
  own secret seed), where it sends the negated gradient;
* :class:`Colluder` — two (or more) workers sharing a seed: they cheat on the same rounds
  by the same poisoned direction, so their updates agree with each other (defeats
  cross-worker consistency filters, median or Krum).

None can see the coordinator's challenge secret; the module never touches Ray itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from mltrail.distributed.worker import Context

State = dict[str, torch.Tensor]


def _u(seed: int, round_: int, tag: str) -> float:
    raw = hashlib.sha256(f"{tag}:{seed}:{round_}".encode()).digest()
    return int.from_bytes(raw[:8], "big") / float(1 << 64)


class RandomUpdate:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        g = torch.Generator().manual_seed(self.seed * 7919 + round_)
        out = {}
        for n, t in honest.items():
            r = torch.randn(t.shape, generator=g, dtype=t.dtype)
            out[n] = r * (t.norm() / r.norm().clamp_min(1e-30))
        return out


class ScaledUpdate:
    def __init__(self, scale: float = 1.0 + 1e-4) -> None:
        self.scale = scale

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        return {n: t * self.scale for n, t in honest.items()}


class ZeroUpdate:
    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        return {n: torch.zeros_like(t) for n, t in honest.items()}


class StaleUpdate:
    """Sends last round's gradient (its very first round is honest)."""

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        prev = ctx.memory.get("prev")
        ctx.memory["prev"] = honest
        return prev if prev is not None else honest


class FreeRider:
    """Sends the update of worker ``victim``, whose shard ``shards(round_)`` names."""

    def __init__(self, shards: Sequence[Sequence[Sequence[int]]], victim: int) -> None:
        self.shards = [list(map(list, s)) for s in shards]  # [round][worker] -> indices
        self.victim = victim

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        theirs = self.shards[round_][self.victim]
        return ctx.gradient(state, theirs) if theirs else honest


class RareCheater:
    def __init__(self, seed: int = 0, rate: float = 0.05) -> None:
        self.seed, self.rate = seed, rate

    def cheats(self, round_: int) -> bool:
        return _u(self.seed, round_, "rare") < self.rate

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        return {n: -t for n, t in honest.items()} if self.cheats(round_) else honest


class Colluder:
    """One of a group sharing ``seed``: on the same rounds (share ``rate``) each adds the
    same poisoned direction, as large as its honest gradient."""

    def __init__(self, seed: int = 0, rate: float = 0.2) -> None:
        self.seed, self.rate = seed, rate

    def cheats(self, round_: int) -> bool:
        return _u(self.seed, round_, "collude") < self.rate

    def update(self, ctx: Context, round_: int, indices: Sequence[int], state: State,
               honest: State) -> State:
        if not self.cheats(round_):
            return honest
        g = torch.Generator().manual_seed(self.seed * 104729 + round_)
        out = {}
        for n, t in honest.items():
            d = torch.randn(t.shape, generator=g, dtype=t.dtype)
            out[n] = t + d * (t.norm() / d.norm().clamp_min(1e-30))
        return out


def cheating_rounds(behaviour: Any, rounds: int) -> list[int]:
    """The rounds on which ``behaviour`` departs from the honest gradient (for those that
    cheat on chosen rounds; every round but the first for the others)."""
    if isinstance(behaviour, RareCheater | Colluder):
        return [r for r in range(rounds) if behaviour.cheats(r)]
    if isinstance(behaviour, StaleUpdate):
        return list(range(1, rounds))
    return list(range(rounds))
