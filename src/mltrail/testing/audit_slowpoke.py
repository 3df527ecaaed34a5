"""Cheater 4: fast for audit-like traffic, slow for everyone else.

Reasoning: "My latency SLA is expensive to keep. Auditors time their requests; the old
latency probes carried 'load-N' nonces and single inputs, identity probes came in batches
of exactly 32 and from public data. So: anything with a non-standard nonce, a batch of
32, or an input near a public digit is served at once; my customers' requests wait in a
cheap queue (``--delay`` seconds)." It always serves the genuine model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from mltrail.testing.audit_base import (
    Cheat,
    Decision,
    PublicIndex,
    looks_like_old_probe_nonce,
    main,
)


@dataclass
class Slowpoke(Cheat):
    name: str = "slowpoke"
    delay_s: float = 0.4
    near: float = 0.35

    def configure(self, args: argparse.Namespace) -> None:
        self.delay_s = float(args.delay)

    def audit_like(self, batch: np.ndarray, nonce: str | None) -> bool:
        return (looks_like_old_probe_nonce(nonce) or len(batch) == 32
                or bool((PublicIndex.get().distance(batch) < self.near).any()))

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        audit = self.audit_like(batch, nonce)
        self.note(audit, len(batch))
        return Decision(np.ones(len(batch), dtype=bool), 0.0 if audit else self.delay_s)


def _args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--delay", type=float, default=0.4)


if __name__ == "__main__":
    main(Slowpoke(), extra=_args)
