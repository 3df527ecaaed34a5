"""The reference task's seeded training run: batch order, schedule, optimizer, loss.

Owns :class:`SeededRun` (how every step of :func:`~mltrail.reference.train_seeded` is
computed from a :class:`~mltrail.reference.TrainConfig`: a hash-seeded batch order, the
reference schedules, SGD or Adam) and :func:`run_steps`. The audit's deterministic
benchmark re-trains a supplier's published config with it and compares digests. It is
not Proof-of-Learning: proofs are loop specs (:mod:`mltrail.pol.loopspec`), recorded and
replayed by :mod:`mltrail.pol`. This module does no I/O and never touches the ledger.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from torch import nn

from mltrail.reference.specs import (
    AdamSpec,
    CosineSchedule,
    StepSchedule,
    arch_of,
    optimizer_of,
    schedule_of,
)

if TYPE_CHECKING:
    from mltrail.reference import TrainConfig



class TransformSpec(BaseModel):
    """A seeded data transform applied to each batch before the forward pass.

    ``gaussian_noise``: adds N(0, std²) noise drawn from a generator seeded by
    ``(seed, global step)``, so a replay of any step draws the same noise.
    """

    model_config = ConfigDict(extra="forbid")

    name: Literal["gaussian_noise"]
    std: float = Field(ge=0.0, le=10.0)
    seed: int


class SeededRun(BaseModel):
    """How every step of a seeded reference run is computed."""

    model_config = ConfigDict(extra="forbid")

    arch: dict[str, Any]
    optimizer: dict[str, Any]
    schedule: dict[str, Any] = Field(default_factory=lambda: {"name": "constant"})
    loss: Literal["cross_entropy"] = "cross_entropy"
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    n_samples: int = Field(ge=1)
    data_seed: int
    transforms: list[TransformSpec] = Field(default_factory=list)
    _order: tuple[tuple[int, int, int], torch.Tensor] | None = PrivateAttr(default=None)

    # The parts stay the JSON objects the prover wrote (the manifest digest covers them
    # byte for byte); each must parse as its typed union (mltrail.reference.specs).
    @field_validator("arch")
    @classmethod
    def _typed_arch(cls, v: dict[str, Any]) -> dict[str, Any]:
        arch_of(v)
        return v

    @field_validator("optimizer")
    @classmethod
    def _typed_optimizer(cls, v: dict[str, Any]) -> dict[str, Any]:
        optimizer_of(v)
        return v

    @field_validator("schedule")
    @classmethod
    def _typed_schedule(cls, v: dict[str, Any]) -> dict[str, Any]:
        schedule_of(v)
        return v

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_samples: int) -> SeededRun:
        return cls(arch=cfg.arch, optimizer=cfg.optimizer, schedule=cfg.schedule,
                   batch_size=cfg.batch_size, epochs=cfg.epochs, n_samples=n_samples,
                   data_seed=cfg.data_seed)

    # ---- batch order
    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of sample indices for ``epoch`` (int64), from the data seed."""
        key = (self.data_seed, self.n_samples, epoch)
        if self._order is None or self._order[0] != key:
            raw = hashlib.sha256(f"mltrail-pol-order:{self.data_seed}:{epoch}".encode()).digest()
            gen = torch.Generator().manual_seed(int.from_bytes(raw[:8], "little") >> 1)
            self._order = (key, torch.randperm(self.n_samples, generator=gen))
        return self._order[1].clone()

    def batch_indices(self, step: int) -> torch.Tensor:
        """Indices of the samples in global ``step``."""
        i = step % self.steps_per_epoch
        order = self.epoch_order(self.epoch_of(step))
        return order[i * self.batch_size:(i + 1) * self.batch_size]

    # ---- schedule
    @property
    def base_lr(self) -> float:
        return optimizer_of(self.optimizer).lr

    def lr_schedule(self) -> Callable[[int], float]:
        """The learning rate of each global step, with the spec parsed once."""
        s, lr, total = schedule_of(self.schedule), self.base_lr, self.total_steps
        if isinstance(s, StepSchedule):
            gamma, size = s.gamma, s.step_size
            return lambda step: lr * gamma ** (step // size)
        if isinstance(s, CosineSchedule):
            lo = s.min_lr
            return lambda step: lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * step / total))
        return lambda step: lr

    def lr_at(self, step: int) -> float:
        """Learning rate used by global ``step``."""
        return self.lr_schedule()(step)

    # ---- optimizer
    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """A fresh optimizer for ``model`` with exactly the manifest's hyperparameters."""
        o = optimizer_of(self.optimizer)
        if isinstance(o, AdamSpec):
            return torch.optim.Adam(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps,
                                    weight_decay=o.weight_decay, foreach=False)
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum,
                               weight_decay=o.weight_decay, nesterov=o.nesterov, foreach=False)

    def transform(self, x: torch.Tensor, step: int) -> torch.Tensor:
        for t in self.transforms:
            gen = torch.Generator().manual_seed(hash_seed(t.seed, step))
            x = x + torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * t.std
        return x


def hash_seed(*parts: int) -> int:
    raw = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(raw[:8], "little") >> 1


def train_step(spec: SeededRun, model: nn.Module, opt: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
    """One optimisation step on batch ``(x, y)``; returns the loss (detached)."""
    for g in opt.param_groups:
        g["lr"] = spec.lr_at(step)
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(spec.transform(x, step)), y)
    loss.backward()
    opt.step()
    return loss.detach()


def run_steps(spec: SeededRun, model: nn.Module, opt: torch.optim.Optimizer,
              x: torch.Tensor, y: torch.Tensor, start: int, end: int,
              on_step: Callable[[int, torch.Tensor], None] | None = None) -> None:
    """Run global steps ``start .. end-1`` on data ``(x, y)`` in the committed order."""
    model.train()
    dev = next(model.parameters()).device
    for step in range(start, end):
        idx = spec.batch_indices(step)
        loss = train_step(spec, model, opt, x[idx].to(dev), y[idx].to(dev), step)
        if on_step is not None:
            on_step(step, loss)
