"""An optimizer's per-parameter state as named tensors, and back.

Owns :func:`optimizer_tensors` (what a checkpoint's ``optim`` file holds, keyed
``<param name>.<state key>``) and :func:`load_optimizer_tensors` (its inverse), shared by
the recorder (:mod:`mltrail.pol.writer`) and the replay (:mod:`mltrail.pol.loopreplay`).
It does no I/O and judges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mltrail.errors import InputError


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
