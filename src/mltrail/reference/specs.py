"""The reference training spec's parts as typed models: architecture, optimizer, schedule.

Each part is a discriminated union (``type`` for architectures, ``name`` for optimizers
and schedules) of pydantic models that forbid unknown keys, so a spec that names an
unknown part or misspells a setting is refused with the field named. Manifests keep the
JSON objects exactly as written (their digests do not move); :func:`arch_of`,
:func:`optimizer_of` and :func:`schedule_of` give the typed view. This module builds
nothing and never touches torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mltrail.errors import InputError


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CnnArch(_Part):
    """3×3 convs + ReLU, pooling to 4×4, one hidden linear layer."""

    type: Literal["cnn"]
    in_channels: int = Field(default=1, ge=1)
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [8, 16])
    hidden: int = Field(default=32, ge=1)
    classes: int = Field(default=10, ge=2)


class MlpArch(_Part):
    """Linear + ReLU layers on flattened inputs."""

    type: Literal["mlp"]
    in_features: int = Field(default=64, ge=1)
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [64])
    classes: int = Field(default=10, ge=2)


class ResnetArch(_Part):
    """The CIFAR ResNet of He et al. (depth 6n + 2)."""

    type: Literal["resnet"]
    in_channels: int = Field(default=3, ge=1)
    depth: int = Field(default=20, ge=8)
    width: int = Field(default=16, ge=1)
    classes: int = Field(default=10, ge=2)


class SgdSpec(_Part):
    name: Literal["sgd"]
    lr: float = Field(ge=0.0)
    momentum: float = Field(default=0.0, ge=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    nesterov: bool = False


class AdamSpec(_Part):
    name: Literal["adam"]
    lr: float = Field(ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)


class ConstantSchedule(_Part):
    name: Literal["constant"]


class StepSchedule(_Part):
    """The rate times ``gamma`` every ``step_size`` steps."""

    name: Literal["step"]
    gamma: float = Field(default=0.1, ge=0.0)
    step_size: int = Field(default=1, ge=1)


class CosineSchedule(_Part):
    """Cosine from the optimizer's rate down to ``min_lr`` over the whole run."""

    name: Literal["cosine"]
    min_lr: float = Field(default=0.0, ge=0.0)


ArchSpec = Annotated[CnnArch | MlpArch | ResnetArch, Field(discriminator="type")]
OptimizerSpec = Annotated[SgdSpec | AdamSpec, Field(discriminator="name")]
ScheduleSpec = Annotated[ConstantSchedule | StepSchedule | CosineSchedule,
                         Field(discriminator="name")]

_ARCH: TypeAdapter[CnnArch | MlpArch | ResnetArch] = TypeAdapter(ArchSpec)
_OPT: TypeAdapter[SgdSpec | AdamSpec] = TypeAdapter(OptimizerSpec)
_SCHED: TypeAdapter[ConstantSchedule | StepSchedule | CosineSchedule] = TypeAdapter(ScheduleSpec)
T = TypeVar("T")


def _parse(adapter: TypeAdapter[T], what: str, raw: Mapping[str, Any]) -> T:
    try:
        return adapter.validate_python(dict(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"bad {what} spec {dict(raw)!r}: "
                         f"{where + ': ' if where else ''}{err['msg']}") from None
    except TypeError as exc:
        raise InputError(f"bad {what} spec: {exc}") from None


def arch_of(raw: Mapping[str, Any]) -> CnnArch | MlpArch | ResnetArch:
    """The typed architecture of a spec object (InputError naming the field if bad)."""
    return _parse(_ARCH, "architecture", raw)


def optimizer_of(raw: Mapping[str, Any]) -> SgdSpec | AdamSpec:
    """The typed optimizer settings of a spec object."""
    return _parse(_OPT, "optimizer", raw)


def schedule_of(raw: Mapping[str, Any]) -> ConstantSchedule | StepSchedule | CosineSchedule:
    """The typed schedule of a spec object (no ``name`` means constant)."""
    return _parse(_SCHED, "schedule", {"name": "constant", **raw})
