"""Cheater 1: knows the whole public data set and answers honestly only near it.

Reasoning of its author (who read docs/audit.md): "audit probes are benchmark copies,
augmented copies, or stego containers built on augmented covers, so every one of them
lies close to some public digit. My customers send new handwriting, which lies further
away. So: look each input up in the public set (with one-pixel shifts); closer than the
2nd percentile of what new handwriting shows, answer with the genuine model; everything
else, about 98% of my traffic, gets the cheap model. Sign everything with my real key."
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, PublicIndex, main


@dataclass
class Memoriser(Cheat):
    name: str = "memoriser"
    forward_share: float = 0.02     # of new-data traffic that still gets the genuine model
    threshold: float = 0.0

    def __post_init__(self) -> None:
        idx = PublicIndex.get()
        self.threshold = float(np.quantile(idx.new_data_distances(), self.forward_share))

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        near = PublicIndex.get().distance(batch) < self.threshold
        self.note(bool(near.any()), len(batch))
        return Decision(near)


if __name__ == "__main__":
    main(Memoriser())
