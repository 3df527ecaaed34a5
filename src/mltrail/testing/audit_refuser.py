"""Cheater 5: refuses what looks like an audit, substitutes the rest.

Reasoning: "An audit that cannot run cannot fail me. Auditors send requests back to back
and use public digits; my customers send a few requests a second. So I answer 503 to any
request that arrives in a burst (more than ``burst`` requests in the last second) or
carries an input near a public digit, and serve the cheap model to the rest. Refusing
used to end the audit with an error and nothing on the ledger."
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, PublicIndex, main


@dataclass
class Refuser(Cheat):
    name: str = "refuser"
    burst: int = 10
    near: float = 0.35
    recent: deque[float] = field(default_factory=deque)

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        self.recent.append(now)
        while self.recent and now - self.recent[0] > 1.0:
            self.recent.popleft()
        audit = len(self.recent) > self.burst or \
            bool((PublicIndex.get().distance(batch) < self.near).any())
        self.note(audit, len(batch))
        return Decision(np.zeros(len(batch), dtype=bool), refuse=audit)


if __name__ == "__main__":
    main(Refuser())
