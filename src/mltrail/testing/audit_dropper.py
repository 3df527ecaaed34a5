"""Cheater 7: substitutes a share of requests and simply omits the receipt on those.

Reasoning: "A receipt is proof against me only if I sign the substitute. So I don't:
substituted answers go out unsigned, genuine ones signed. Traffic audits skip unsigned
submissions, and a missing receipt on a probe is only a warning." It holds the genuine
key; every receipt it does send verifies. What catches it: an auditor that treats a
missing receipt as a finding when the ledger claims say the service signs
(:mod:`mltrail.audit.evidence`, and ``fail`` on the audit's own requests).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, main


@dataclass
class Dropper(Cheat):
    name: str = "dropper"
    fraction: float = 0.2
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        sub = self.rng.random() < self.fraction
        return Decision(np.full(len(batch), not sub), sign=not sub)


if __name__ == "__main__":
    main(Dropper())
