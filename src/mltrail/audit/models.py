"""Model files, model cards and the small models the audit code trains.

A served model is two files: ``NAME.safetensors`` (its state dict; the model's digest is
the SHA-256 of these bytes, as everywhere in mltrail) and ``NAME.json``, the *card*: the
architecture spec understood by :func:`mltrail.reference.build_model`, the class
count, the supplier's claims (accuracy, robustness, latency) and, when the supplier
offers seeded reproduction, the :class:`~mltrail.reference.TrainConfig` it used.
This module never serves, signs or audits anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from mltrail._fs import atomic_write
from mltrail.errors import InputError, NotFoundError
from mltrail.provenance.digest import digest_file, save_state_dict

INPUT_SHAPE = (1, 8, 8)


class LatencyClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_qps: float = Field(gt=0)
    p95_ms: float = Field(gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)


class RobustnessClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eps: float = Field(gt=0)
    query_cap: int = Field(gt=0)
    score: float = Field(ge=0, le=1)


class Claims(BaseModel):
    """What the supplier promises about its model."""

    model_config = ConfigDict(extra="forbid")

    accuracy: float | None = Field(default=None, ge=0, le=1)
    robustness: RobustnessClaim | None = None
    latency: LatencyClaim | None = None
    availability: float | None = Field(default=None, gt=0, le=1)  # share of requests answered


class ModelCard(BaseModel):
    """The JSON file beside a served model."""

    model_config = ConfigDict(extra="forbid")

    name: str = "model"
    arch: dict[str, Any]
    classes: int = Field(ge=2)
    input_shape: list[int] = Field(default_factory=lambda: list(INPUT_SHAPE))
    message_class: int | None = None
    claims: Claims = Field(default_factory=Claims)
    seed_config: dict[str, Any] | None = None


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def save_model(model: nn.Module, card: ModelCard, path: str | Path) -> str:
    """Write ``path`` (safetensors) and its card; return the model digest."""
    p = Path(path)
    digest = save_state_dict(model.state_dict(), p)
    atomic_write(card_path(p), (card.model_dump_json(indent=2) + "\n").encode())
    return digest


def load_card(path: str | Path) -> ModelCard:
    p = card_path(Path(path))
    if not p.exists():
        raise NotFoundError(f"model card not found: {p}")
    try:
        return ModelCard.model_validate_json(p.read_text())
    except ValidationError as exc:
        raise InputError(f"malformed model card {p}: {exc.errors()[0]['msg']}") from exc


def load_model(path: str | Path) -> tuple[nn.Module, ModelCard, str]:
    """The model in eval mode, its card and its digest."""
    from safetensors.torch import load_file

    from mltrail.reference import build_model

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"model file not found: {p}")
    card = load_card(p)
    model = build_model(card.arch)
    try:
        model.load_state_dict(load_file(str(p)))
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"model file {p} does not fit its card: {exc}") from exc
    model.eval()
    return model, card, digest_file(p)


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed digits split (same as Proof-of-Learning's) as numpy, N×1×8×8 in [0, 1]."""
    from mltrail.reference import load_digits_tensors

    d = load_digits_tensors()
    return d.x_train.numpy(), d.y_train.numpy(), d.x_test.numpy(), d.y_test.numpy()


def augment(x: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    """Ordinary-looking traffic: random one-pixel shifts plus small Gaussian noise."""
    out = np.empty_like(x)
    for i in range(len(x)):
        dy, dx = rng.integers(-1, 2, size=2)
        out[i] = np.roll(x[i], (int(dy), int(dx)), axis=(-2, -1))
    out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float = 0.01,
        seed: int = 0, batch: int = 128) -> nn.Module:
    """Plain minibatch Adam training (not bit-reproducible across machines; see pol)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (min(batch, len(y)),), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()
    return model


def train_plain(arch: dict[str, Any], *, steps: int = 400, seed: int = 0,
                n_train: int | None = None) -> nn.Module:
    """A quick classifier on the digits training split (``n_train`` samples if given)."""
    from mltrail.reference import build_model

    torch.manual_seed(seed)
    x, y, _, _ = digits()
    if n_train is not None:
        x, y = x[:n_train], y[:n_train]
    return fit(build_model(arch), torch.from_numpy(x), torch.from_numpy(y), steps=steps,
               seed=seed)


def cheap_model(seed: int = 1) -> tuple[nn.Module, ModelCard]:
    """A cheaper substitute: a linear model trained briefly on a small subset."""
    arch = {"type": "mlp", "hidden": [], "classes": 10}
    model = train_plain(arch, steps=60, seed=seed, n_train=300)
    return model, ModelCard(name="cheap", arch=arch, classes=10)


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Class probabilities (float64) for a batch."""
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return torch.softmax(logits, dim=1).double().numpy()


def accuracy_of(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x).argmax(1) == y).mean())


def card_json(card: ModelCard) -> str:
    return json.dumps(card.model_dump(), sort_keys=True)
