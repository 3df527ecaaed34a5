"""How many updates the coordinator replays, and which: the fraction and the draw.

Owns :func:`fraction` (the spot-check fraction from a stated miss rate) and
:class:`Challenger` (commit-then-challenge: a draw keyed by a secret the workers never
see, computed only after the update's digest has been received). Pure; never replays,
never touches Ray or the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os

from mltrail.errors import InputError

DEFAULT_MISS_RATE = 0.01
DEFAULT_CHEAT_SHARE = 0.1


def cheated_updates(rounds: int, share: float) -> int:
    """c = max(1, ceil(share * rounds)): the fewest corrupted updates the guarantee covers."""
    if rounds < 1:
        raise InputError("a run has at least one round")
    if not 0.0 < share <= 1.0:
        raise InputError("the cheating share must be in (0, 1]")
    return max(1, math.ceil(share * rounds - 1e-9))


def fraction(rounds: int, miss_rate: float = DEFAULT_MISS_RATE,
             share: float = DEFAULT_CHEAT_SHARE) -> float:
    """The spot-check fraction f such that a worker corrupting at least
    c = max(1, ceil(share * rounds)) of its ``rounds`` updates goes unchecked on all of them
    with probability (1 - f)^c <= ``miss_rate``: f = 1 - miss_rate^(1/c)."""
    if not 0.0 < miss_rate < 1.0:
        raise InputError("the miss rate must be in (0, 1)")
    c = cheated_updates(rounds, share)
    f: float = 1.0 - math.pow(miss_rate, 1.0 / c)
    return min(1.0, f)


def miss_probability(f: float, cheated: int) -> float:
    """Probability that ``cheated`` corrupted updates all go unchecked at fraction f."""
    return math.pow(1.0 - f, cheated)


class Challenger:
    """Draws u in [0, 1) per (round, worker, update digest) as HMAC-SHA256 under a secret;
    an update is replayed when u < f. The secret's digest (:attr:`commitment`) can be
    published before the run and the secret revealed after it, so anyone can recompute
    every draw; before the reveal a worker cannot predict its draw, and the digest it is
    keyed by is the update already received, so nothing can be changed after the draw."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret if secret is not None else os.urandom(32)
        if len(self.secret) < 16:
            raise InputError("the challenge secret must be at least 16 bytes")

    @property
    def commitment(self) -> str:
        return "sha256:" + hashlib.sha256(self.secret).hexdigest()

    def draw(self, round_: int, worker: int, update_digest: str) -> float:
        msg = f"{round_}:{worker}:{update_digest}".encode()
        raw = hmac.new(self.secret, msg, hashlib.sha256).digest()
        return int.from_bytes(raw[:8], "big") / float(1 << 64)

    def chosen(self, f: float, round_: int, worker: int, update_digest: str) -> bool:
        return self.draw(round_, worker, update_digest) < f
