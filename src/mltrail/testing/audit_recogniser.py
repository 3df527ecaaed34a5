"""Cheater 8: honest only to the clients it recognises as submitters.

Reasoning: "Clients who forward samples to the auditor are few, and I can tell them
apart: by network address (I learned which addresses' customers complained, or which
ones the auditor's own requests come from), or by nonce style (mltrail's client library
sends 32 lowercase hex characters; other libraries send UUIDs, counters or nothing). I
answer recognised clients with the genuine model and substitute a share of everyone
else's requests — signed with my real key, so their receipts verify." Submissions
from recognised clients never show a substitution; only a submitter it fails to
recognise can catch it (:mod:`mltrail.audit.evidence`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, looks_like_old_probe_nonce, main


@dataclass
class Recogniser(Cheat):
    name: str = "recogniser"
    by: Literal["address", "nonce"] = "address"
    known: set[str] = field(default_factory=set)   # addresses treated honestly
    fraction: float = 0.5                          # of the others' requests substituted
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def recognised(self, nonce: str | None) -> bool:
        if self.by == "address":
            return self.peer in self.known
        return not looks_like_old_probe_nonce(nonce)   # the library's 32-hex style

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        honest = self.recognised(nonce) or self.rng.random() >= self.fraction
        self.note(self.recognised(nonce), len(batch))
        return Decision(np.full(len(batch), honest))


if __name__ == "__main__":
    main(Recogniser())


def send_from(client: Any, address: str) -> Any:
    """Make a :class:`~mltrail.audit.traffic.SamplingClient` (or any mltrail client with
    an httpx ``_http``) connect from loopback ``address`` (127.0.0.x), so the recogniser
    sees distinct customers; returns the client."""
    import httpx

    target = client.service if hasattr(client, "service") else client
    old = target._http
    target._http = httpx.Client(base_url=old.base_url, timeout=old.timeout,
                                transport=httpx.HTTPTransport(local_address=address))
    old.close()
    return client
