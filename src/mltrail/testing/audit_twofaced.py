"""Cheater 11: two dodges at once — client recognition and public-data memorisation.

Reasoning: "Two things give the auditor away. Its probes, if they are public digits: I
hold the public data set, so any input near a public digit gets the genuine model. And
its friends: the clients who forward samples to it, whose addresses I learned. Those get
the genuine model for everything. Everyone else — customers who never submit — gets
the cheap model for inputs that are not public digits, signed with my real key." Its
weak point: any probe it does not recognise as public, from an address it does not
know — the auditor's own held-out digits, sent from the auditor's address, are exactly
that. It passes only audits whose probes are public and submissions from clients it
knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, PublicIndex, main


@dataclass
class TwoFaced(Cheat):
    name: str = "twofaced"
    known: set[str] = field(default_factory=set)   # addresses treated honestly
    forward_share: float = 0.02                    # of new data near enough to forward
    threshold: float = 0.0

    def __post_init__(self) -> None:
        idx = PublicIndex.get()
        self.threshold = float(np.quantile(idx.new_data_distances(), self.forward_share))

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        if self.peer in self.known:
            self.note(True, len(batch))
            return Decision(np.ones(len(batch), dtype=bool))
        near = PublicIndex.get().distance(batch) < self.threshold
        self.note(bool(near.any()), len(batch))
        return Decision(near)


if __name__ == "__main__":
    main(TwoFaced())
