"""Shared proofs for the PoL tests: recorded once per test session (per xdist worker),
each the reference task as ``mltrail pol train`` records it (a loop spec: the exported
reference model, cross_entropy, a named torch.optim optimizer, seeded init)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mltrail.pol.reftask import record_reference
from mltrail.reference import load_digits_tensors, pinned_threads

CNN: dict[str, Any] = {"arch": {"type": "cnn"},
                       "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                       "k": 10, "epochs": 2, "batch_size": 32}
MLP_K1: dict[str, Any] = {"arch": {"type": "mlp", "hidden": [32]},
                          "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                          "k": 1, "epochs": 1, "batch_size": 32}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test: ``make test`` runs two xdist workers on two cores, and
    oversubscribed OpenMP threads make torch crawl. Tests that need more threads (replay
    under another thread count) set them explicitly."""
    with pinned_threads(1):
        yield


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits_tensors()
    return d.x_train, d.y_train


def record(out: Path, data: tuple[torch.Tensor, torch.Tensor], seed: int,
           **overrides: Any) -> Path:
    with pinned_threads(1):
        record_reference(out, data[0], data[1], seed=seed, **{**CNN, **overrides})
    return out


@pytest.fixture(scope="session")
def honest(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    """An honest CNN proof: 2 epochs of 43 steps, checkpoints every 10 steps."""
    return record(tmp_path_factory.mktemp("pol") / "honest", digits, seed=1)


@pytest.fixture(scope="session")
def donor(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    """Another honest proof of the same spec (a different seed)."""
    return record(tmp_path_factory.mktemp("pol") / "donor", digits, seed=2)


@pytest.fixture(scope="session")
def honest_k1(tmp_path_factory: pytest.TempPathFactory, digits) -> Path:
    """An honest MLP proof with k = 1 over one epoch (the adversarial spoof's target)."""
    return record(tmp_path_factory.mktemp("pol") / "honest_k1", digits, seed=3, **MLP_K1)


@pytest.fixture(scope="session")
def record_proof():
    """``record_proof(out, data, seed, **overrides)`` records a CNN proof on one thread."""
    return record
