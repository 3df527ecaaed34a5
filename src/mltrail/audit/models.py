"""Model files, model cards and the small models the audit code trains.

A served model is two files: the model file (``NAME.safetensors``, its state dict, a
TorchScript archive ``NAME.pt``, an ONNX file ``NAME.onnx`` or a scikit-learn model saved
with skops, ``NAME.skops``: see :mod:`.references`; the model's digest is the SHA-256 of
these bytes, as everywhere in mltrail) and ``NAME.json``, the *card* (:class:`ModelCard`,
documented in docs/audit.md): the file format, the architecture (a spec understood by
:func:`mltrail.reference.build_model`, or a factory named by import path), input shape
and dtype, preprocessing, class count and names, the file's digest, the supplier's
claims (accuracy, robustness, latency) and, when the supplier offers seeded
reproduction, the :class:`~mltrail.reference.TrainConfig` it used. :func:`load_model`
returns a module that applies the card's preprocessing itself, so the served model and
the auditor's reference see the same thing. This module never serves, signs or audits
anything.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from mltrail._fs import atomic_write
from mltrail.audit.references import FOREIGN, load_foreign
from mltrail.errors import InputError, NotFoundError
from mltrail.provenance.digest import digest_bytes, digest_file, save_state_dict

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


class Preprocess(BaseModel):
    """``x -> (x * scale - mean) / std``, mean and std per channel (axis 1) or scalar."""

    model_config = ConfigDict(extra="forbid")

    scale: float = 1.0
    mean: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    std: list[float] = Field(default_factory=lambda: [1.0], min_length=1)

    @model_validator(mode="after")
    def _positive_std(self) -> Preprocess:
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")
        return self


class ModelCard(BaseModel):
    """The JSON file beside a served model (docs/audit.md, "The model card")."""

    model_config = ConfigDict(extra="forbid")

    name: str = "model"
    format: Literal["safetensors", "torchscript", "onnx", "skops"] = "safetensors"
    arch: dict[str, Any] | None = None
    factory: str | None = Field(default=None, pattern=r"^[\w.]+:[\w]+$")
    classes: int = Field(ge=2)
    labels: list[str] | None = None
    input_shape: list[int] = Field(default_factory=lambda: list(INPUT_SHAPE), min_length=1)
    input_dtype: Literal["float32", "int64"] = "float32"
    preprocess: Preprocess | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    message_class: int | None = None
    claims: Claims = Field(default_factory=Claims)
    seed_config: dict[str, Any] | None = None
    output: str | None = Field(default=None, min_length=1, max_length=200)  # ONNX output
    output_kind: Literal["logits", "probabilities"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.output is not None and self.format != "onnx":
            raise ValueError("output names an ONNX model's output (format onnx)")
        if self.output_kind == "probabilities" and self.format in ("safetensors",
                                                                   "torchscript"):
            raise ValueError("a PyTorch model's output is its logits")
        if self.format == "safetensors" and self.arch is None and self.factory is None:
            raise ValueError("arch or factory is required for a safetensors model")
        if self.labels is not None and len(self.labels) != self.classes:
            raise ValueError(f"labels names {len(self.labels)} classes, not {self.classes}")
        if any(d < 1 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive")
        return self


class CardModel(nn.Module):
    """The card's input handling around a model: integer inputs for token models, the
    preprocessing for the others."""

    def __init__(self, inner: nn.Module, card: ModelCard) -> None:
        super().__init__()
        self.inner = inner
        self.as_int = card.input_dtype == "int64"
        pre = card.preprocess
        self.scale = pre.scale if pre else 1.0
        shape = (1, -1) + (1,) * (len(card.input_shape) - 1)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(pre.mean if pre else [0.0]).reshape(shape))
        self.register_buffer("std", torch.tensor(pre.std if pre else [1.0]).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x.round().long()) if self.as_int else \
            self.inner((x * self.scale - self.mean) / self.std)
        return out


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


def _architecture(card: ModelCard) -> nn.Module:
    from mltrail.reference import build_model

    if card.factory is None:
        assert card.arch is not None
        return build_model(card.arch)
    module, _, fn = card.factory.partition(":")
    try:  # runs the card author's code, like any model import: see docs/audit.md
        made = getattr(importlib.import_module(module), fn)(**(card.arch or {}))
    except (ImportError, AttributeError, TypeError) as exc:
        raise InputError(f"cannot build {card.factory}: {exc}") from exc
    if not isinstance(made, nn.Module):
        raise InputError(f"{card.factory} did not return a torch.nn.Module")
    return made


def load_model(path: str | Path) -> tuple[nn.Module, ModelCard, str]:
    """The model in eval mode (wrapped in :class:`CardModel` when the card asks for
    integer inputs or preprocessing), its card and its digest. A card that records a
    digest must match the file."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"model file not found: {p}")
    card = load_card(p)
    raw = p.read_bytes() if card.format in FOREIGN else None  # digest and model: one read
    digest = digest_bytes(raw) if raw is not None else digest_file(p)
    if card.digest is not None and card.digest != digest:
        raise InputError(f"model file {p} is {digest[:19]}, its card says {card.digest[:19]}")
    if raw is not None:
        model: nn.Module = load_foreign(raw, card, p)
        if card.preprocess is not None or card.input_dtype != "float32":
            model = CardModel(model, card)
        return model.eval(), card, digest
    try:
        if card.format == "torchscript":
            with warnings.catch_warnings():  # deprecated in favour of torch.export, still read
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(  # type: ignore[no-untyped-call]
                    str(p), map_location="cpu")
        else:
            model = _architecture(card)
            model.load_state_dict(load_file(str(p)))
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"model file {p} does not fit its card: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    if card.preprocess is not None or card.input_dtype != "float32":
        model = CardModel(model, card)
    model.eval()
    return model, card, digest


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
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


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
        loss.backward()  # type: ignore[no-untyped-call]
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
