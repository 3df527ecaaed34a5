"""The one training step: batch order, learning-rate schedule, optimizer, loss, replay.

Owns :class:`TrainingSpec`, the part of a proof manifest that fixes how a step is
computed, and :func:`run_steps`, the loop that both the prover (through the recorder or
:func:`~mltrail.reference.train_seeded`) and the verifier run. Everything a step
needs comes from the spec; nothing is read from checkpoint files except tensors.
This module does no I/O and never touches the ledger.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from torch import nn

from mltrail.errors import InputError
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


class TrainingSpec(BaseModel):
    """How every step of a run is computed. Stored verbatim in the proof manifest."""

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
    def from_config(cls, cfg: TrainConfig, n_samples: int) -> TrainingSpec:
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


def optimizer_from_spec(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The manifest form of a live optimizer's hyperparameters (read, not claimed)."""
    g = optimizer.param_groups[0]
    if len(optimizer.param_groups) != 1:
        raise InputError("the recorder supports one parameter group")
    odd = [k for k in ("dampening", "maximize", "amsgrad", "differentiable")
           if g.get(k) not in (None, False, 0, 0.0)]
    if odd:
        raise InputError(f"the recorder cannot replay optimizer settings: {', '.join(odd)}")
    if isinstance(optimizer, torch.optim.SGD):
        return {"name": "sgd", "lr": float(g["lr"]), "momentum": float(g["momentum"]),
                "weight_decay": float(g["weight_decay"]), "nesterov": bool(g["nesterov"])}
    if isinstance(optimizer, torch.optim.Adam):
        return {"name": "adam", "lr": float(g["lr"]), "betas": [float(b) for b in g["betas"]],
                "eps": float(g["eps"]), "weight_decay": float(g["weight_decay"])}
    raise InputError(f"the recorder supports SGD and Adam, not {type(optimizer).__name__}")


def train_step(spec: TrainingSpec, model: nn.Module, opt: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
    """One optimisation step on batch ``(x, y)``; returns the loss (detached)."""
    for g in opt.param_groups:
        g["lr"] = spec.lr_at(step)
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(spec.transform(x, step)), y)
    loss.backward()
    opt.step()
    return loss.detach()


def run_steps(spec: TrainingSpec, model: nn.Module, opt: torch.optim.Optimizer,
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


# --------------------------------------------------------------------------- state I/O


def optimizer_tensors(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state keyed ``<param name>.<state key>``."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        for key, val in opt.state.get(p, {}).items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(float(val))
            out[f"{name}.{key}"] = t.detach().to("cpu").contiguous().clone()
    return out


def load_optimizer_tensors(model: nn.Module, opt: torch.optim.Optimizer,
                           tensors: Mapping[str, torch.Tensor]) -> None:
    """Inverse of :func:`optimizer_tensors` (unknown keys are an error)."""
    params = dict(model.named_parameters())
    used = 0
    for name, p in params.items():
        state: dict[str, Any] = {}
        for key, val in tensors.items():
            pname, _, skey = key.rpartition(".")
            if pname == name:
                state[skey] = val.clone().to(p.device)
                used += 1
        if state:
            opt.state[p] = state
    if used != len(tensors):
        raise InputError("optimizer state names parameters the model does not have")
