"""The built-in reference task: digits data, small models from a spec, seeded training.

Owns three things that several packages share and that must stay stable by name:

* :func:`load_digits_tensors` — scikit-learn's ``load_digits`` as float32 in [0, 1],
  shape N×1×8×8, with a fixed train / held-out split;
* :func:`build_model` / :func:`init_weights` — a small CNN, an MLP and a ResNet-20-sized
  net built from a JSON spec, initialised exactly from a seed and a named scheme;
* :func:`train_seeded` — deterministic training from a :class:`TrainConfig`; it pins
  PyTorch to one thread while it runs, so the same config gives bit-identical weights
  (and the same digest) on a CPU whatever thread count the caller uses.

The seeded run's step is :mod:`mltrail.reference.seeded`'s (``pol train`` records the
same task as a loop spec, :mod:`mltrail.pol.reftask`). This module never touches the
ledger or the file system (except scikit-learn's bundled data).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from torch import nn

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_state_dict

INIT_SCHEMES = ("uniform_fan_in", "kaiming_normal", "xavier_uniform")
HELD_OUT = 450  # digits samples kept out of training (fixed split)
SPLIT_SEED = 20240517


class Digits(NamedTuple):
    """The fixed split of the digits data set."""

    x_train: torch.Tensor  # float32, N×1×8×8 in [0, 1]
    y_train: torch.Tensor  # int64, N
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_tensors() -> Digits:
    """Digits as float32 in [0, 1] (N×1×8×8) and int64 labels, split train / held-out.

    The split is a fixed permutation (seed ``SPLIT_SEED``): the last ``HELD_OUT`` samples
    of it are held out. Same bytes on every machine.
    """
    raw = _digits_array()
    x = np.asarray(raw[:, :-1], dtype=np.float32).reshape(-1, 1, 8, 8) / np.float32(16.0)
    y = np.asarray(raw[:, -1], dtype=np.int64)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(y))
    tr, te = order[:-HELD_OUT], order[-HELD_OUT:]
    return Digits(torch.from_numpy(np.ascontiguousarray(x[tr])),
                  torch.from_numpy(np.ascontiguousarray(y[tr])),
                  torch.from_numpy(np.ascontiguousarray(x[te])),
                  torch.from_numpy(np.ascontiguousarray(y[te])))


def _digits_array() -> np.ndarray:
    """The rows of scikit-learn's bundled ``digits.csv.gz`` (64 pixels + label).

    Read straight from the installed package (what ``load_digits`` reads) so the CLI
    does not pay for importing scikit-learn; falls back to ``load_digits``.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return np.loadtxt(path, delimiter=",")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target])


# --------------------------------------------------------------------------- models


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


def _resnet(in_ch: int, classes: int, depth: int, width: int) -> nn.Module:
    if (depth - 2) % 6:
        raise InputError(f"resnet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for stage, cout in enumerate((width, 2 * width, 4 * width)):
        for i in range(n):
            layers.append(_BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def build_model(arch: Mapping[str, Any]) -> nn.Module:
    """A model from a JSON spec. Weights are whatever PyTorch gives; see :func:`init_weights`.

    Specs (defaults in brackets):

    * ``{"type": "cnn", "in_channels": [1], "channels": [[8, 16]], "hidden": [32],
      "classes": [10]}`` — 3×3 convs + ReLU, one 2×2 max-pool, global size-agnostic
      pooling to 4×4, a hidden linear layer;
    * ``{"type": "mlp", "in_features": [64], "hidden": [[64]], "classes": [10]}``;
    * ``{"type": "resnet", "in_channels": [3], "depth": [20], "width": [16],
      "classes": [10]}`` — the CIFAR ResNet of He et al. (ResNet-20: 0.27 M params).
    """
    from mltrail.reference.specs import CnnArch, MlpArch, arch_of

    spec = arch_of(arch)
    if isinstance(spec, CnnArch):
        cin = spec.in_channels
        layers: list[nn.Module] = []
        for c in spec.channels:
            layers += [nn.Conv2d(cin, c, 3, 1, 1), nn.ReLU()]
            cin = c
        layers += [nn.AdaptiveMaxPool2d(4), nn.Flatten(), nn.Linear(cin * 16, spec.hidden),
                   nn.ReLU(), nn.Linear(spec.hidden, spec.classes)]
        return nn.Sequential(*layers)
    if isinstance(spec, MlpArch):
        fin = spec.in_features
        mlp: list[nn.Module] = [nn.Flatten()]
        for h in spec.hidden:
            mlp += [nn.Linear(fin, h), nn.ReLU()]
            fin = h
        mlp.append(nn.Linear(fin, spec.classes))
        return nn.Sequential(*mlp)
    try:
        return _resnet(spec.in_channels, spec.classes, spec.depth, spec.width)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad architecture spec {dict(arch)!r}: {exc}") from exc


def _fan_in(p: torch.Tensor) -> int:
    return int(p[0].numel()) if p.dim() > 1 else int(p.numel())


def init_bounds(model: nn.Module, scheme: str) -> dict[str, tuple[str, float]]:
    """For each initialised parameter: the distribution family and its scale.

    ``("uniform", b)`` means U(-b, b); ``("normal", s)`` means N(0, s²);
    ``("const", c)`` a constant. Used by :func:`init_weights` and by the verifier's
    statistical init test.
    """
    if scheme not in INIT_SCHEMES:
        raise InputError(f"unknown init scheme {scheme!r} (one of {', '.join(INIT_SCHEMES)})")
    out: dict[str, tuple[str, float]] = {}
    for mname, mod in model.named_modules():
        pre = f"{mname}." if mname else ""
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight
            fan_in = _fan_in(w)
            fan_out = int(w.shape[0]) * (int(w[0][0].numel()) if w.dim() > 2 else 1)
            if scheme == "uniform_fan_in":
                out[pre + "weight"] = ("uniform", 1.0 / math.sqrt(fan_in))
            elif scheme == "kaiming_normal":
                out[pre + "weight"] = ("normal", math.sqrt(2.0 / fan_in))
            else:
                out[pre + "weight"] = ("uniform", math.sqrt(6.0 / (fan_in + fan_out)))
            if mod.bias is not None:
                out[pre + "bias"] = (("uniform", 1.0 / math.sqrt(fan_in))
                                     if scheme == "uniform_fan_in" else ("const", 0.0))
        elif isinstance(mod, nn.BatchNorm2d):
            out[pre + "weight"] = ("const", 1.0)
            out[pre + "bias"] = ("const", 0.0)
    return out


def init_weights(model: nn.Module, scheme: str, seed: int) -> nn.Module:
    """Initialise ``model`` in place from ``seed`` with a named scheme; returns it.

    Parameters are drawn in ``named_parameters`` order from one CPU ``torch.Generator``
    (so the global RNG is untouched and the result is the same on any machine).
    BatchNorm buffers are reset.
    """
    bounds = init_bounds(model, scheme)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in model.named_parameters():
            fam, scale = bounds.get(name, ("const", 0.0))
            if fam == "uniform":
                val = torch.rand(p.shape, generator=gen, dtype=torch.float32) * (2 * scale) - scale
            elif fam == "normal":
                val = torch.randn(p.shape, generator=gen, dtype=torch.float32) * scale
            else:
                val = torch.full(p.shape, scale, dtype=torch.float32)
            p.copy_(val.to(p.device, p.dtype))
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.reset_running_stats()
    return model


# --------------------------------------------------------------------------- training


class TrainConfig(BaseModel):
    """Everything that determines a seeded training run on the reference task."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    arch: dict[str, Any] = Field(default_factory=lambda: {"type": "cnn"})
    init_scheme: str = "uniform_fan_in"
    optimizer: dict[str, Any] = Field(
        default_factory=lambda: {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    schedule: dict[str, Any] = Field(default_factory=lambda: {"name": "constant"})
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=1)

    @field_validator("arch", "optimizer", "schedule")
    @classmethod
    def _typed(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Each part must parse as its typed union (:mod:`mltrail.reference.specs`)."""
        from mltrail.reference.specs import arch_of, optimizer_of, schedule_of

        {"arch": arch_of, "optimizer": optimizer_of, "schedule": schedule_of}[
            str(info.field_name)](v)
        return v

    @property
    def init_seed(self) -> int:
        return self.seed

    @property
    def data_seed(self) -> int:
        return self.seed + 1


@contextmanager
def pinned_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; restore the old count after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` (eval mode, restored after)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    model.train(was)
    return acc


def train_seeded(config: TrainConfig | Mapping[str, Any],
                 data: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[nn.Module, str]:
    """Train on the digits training split (or ``data``) exactly as ``config`` says.

    Returns the trained model (CPU, train mode) and the digest of its state dict
    (SHA-256 of its safetensors bytes, equal to the model artefact's content digest).
    Bit-reproducible on CPU: the run is pinned to one thread.
    """
    from mltrail.reference.seeded import SeededRun, run_steps

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config)
    if data is None:
        d = load_digits_tensors()
        data = (d.x_train, d.y_train)
    spec = SeededRun.from_config(cfg, n_samples=len(data[1]))
    with pinned_threads(1):
        model = init_weights(build_model(cfg.arch), cfg.init_scheme, cfg.init_seed)
        opt = spec.make_optimizer(model)
        run_steps(spec, model, opt, data[0], data[1], 0, spec.total_steps)
    return model, digest_state_dict(model.state_dict())
