"""Deterministic benchmarking: rebuild the claimed model from its published seed config.

When a supplier publishes the :class:`~mltrail.reference.TrainConfig` it trained
with, the auditor re-runs Proof-of-Learning's seeded training (bit-reproducible on CPU),
checks that the digest equals the claimed model digest, and then uses the rebuilt model
as an exact local reference: every output of the service must match it label for label
and within :data:`PROB_TOLERANCE` per probability. The tolerance covers float32 softmax
differences between BLAS kernels, batch sizes and CPUs; it is far below what any other
model produces. This module never talks to the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from mltrail.audit.models import predict
from mltrail.errors import InputError

PROB_TOLERANCE = 1e-4


@dataclass
class Rebuild:
    """The outcome of a seeded rebuild."""

    model: nn.Module | None
    digest: str | None
    claimed: str
    error: str | None = None

    @property
    def matches(self) -> bool:
        return self.digest == self.claimed

    def summary(self) -> dict[str, Any]:
        return {"claimed_digest": self.claimed, "rebuilt_digest": self.digest,
                "digest_matches": self.matches, "error": self.error}


def rebuild(seed_config: dict[str, Any], claimed_digest: str) -> Rebuild:
    """Train the published config again and compare digests."""
    from pydantic import ValidationError

    from mltrail.reference import train_seeded

    try:
        model, digest = train_seeded(seed_config)
    except (ValidationError, InputError) as exc:
        return Rebuild(None, None, claimed_digest, f"unusable seed config: {exc}")
    model.eval()
    return Rebuild(model, digest, claimed_digest)


@dataclass
class ExactComparison:
    """Running exact comparison of service outputs with a local model."""

    model: nn.Module
    tolerance: float = PROB_TOLERANCE
    n: int = 0
    label_mismatches: int = 0
    prob_mismatches: int = 0
    max_abs_diff: float = 0.0
    first_mismatch: int | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batch: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> None:
        local = predict(self.model, batch)
        for i in range(len(batch)):
            self.n += 1
            diff = float(np.abs(local[i] - probs[i]).max()) if probs.shape == local.shape \
                else float("inf")
            self.max_abs_diff = max(self.max_abs_diff, diff)
            bad_label = int(local[i].argmax()) != int(labels[i])
            bad_prob = diff > self.tolerance
            self.label_mismatches += bad_label
            self.prob_mismatches += bad_prob
            if (bad_label or bad_prob) and self.first_mismatch is None:
                self.first_mismatch = self.n
            if (bad_label or bad_prob) and len(self.examples) < 5:
                self.examples.append({"query": self.n, "expected": int(local[i].argmax()),
                                      "got": int(labels[i]), "max_abs_diff": diff})

    @property
    def ok(self) -> bool:
        return self.label_mismatches == 0 and self.prob_mismatches == 0

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "tolerance": self.tolerance, "label_mismatches": self.label_mismatches,
                "prob_mismatches": self.prob_mismatches, "max_abs_diff": self.max_abs_diff,
                "first_mismatch": self.first_mismatch, "examples": self.examples,
                "passed": self.ok}
