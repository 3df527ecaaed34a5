"""Helpers of the distributed-training tests: digits as flat tensors, a small MLP."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from mltrail.provenance.digest import save_state_dict
from mltrail.reference import load_digits_tensors


def digits_dataset(n: int | None = None) -> TensorDataset:
    d = load_digits_tensors()
    x = d.x_train.reshape(len(d.x_train), -1).contiguous()
    return TensorDataset(x[:n], d.y_train[:n]) if n else TensorDataset(x, d.y_train)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def save_data(ds: TensorDataset, path: Path) -> Path:
    save_state_dict({"x": ds.tensors[0], "y": ds.tensors[1]}, path)
    return path
