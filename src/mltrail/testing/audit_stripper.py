"""Cheater 3: strips the claims an auditor could test, then substitutes everything.

Reasoning: "The auditor decides what to test from my /v1/model. Without a seed config
it cannot rebuild my model, without an accuracy claim it has nothing to hold me to,
without a latency SLA nothing to time. So I advertise none of them and serve the cheap
model to everyone, with valid receipts." Against an audit of a registered service the
ledger's claims are compared with what it advertises; if its operator also registered
the stripped claims, no test can run and the audit must end inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, main


@dataclass
class Stripper(Cheat):
    name: str = "stripper"

    def advertise(self, info: dict[str, Any]) -> dict[str, Any]:
        claims = dict(info.get("claims") or {})
        for k in ("accuracy", "latency", "robustness", "availability"):
            claims[k] = None
        return {**info, "seed_config": None, "claims": claims}

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        return Decision(np.zeros(len(batch), dtype=bool))


if __name__ == "__main__":
    main(Stripper())
