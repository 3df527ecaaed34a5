"""Cheater 6: substitutes a small share of real traffic and never an audit request.

Reasoning: "I know the auditor by its network address, so every probe it sends, however
well disguised, goes to the genuine model. My customers get the cheap model on
``fraction`` of their requests (2%: too few to notice). Receipts are signed with my real
key, so they verify." Only clients' own sampled receipts can catch this (see
docs/receipts.md); here the auditor-facing and customer-facing sides are two listeners
of one supplier (:func:`pair`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, main


@dataclass
class Skimmer(Cheat):
    name: str = "skimmer"
    fraction: float = 0.02
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        return Decision(np.full(len(batch), self.rng.random() >= self.fraction))


if __name__ == "__main__":
    main(Skimmer())
