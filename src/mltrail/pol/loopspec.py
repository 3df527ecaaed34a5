"""The training spec of a proof recorded from a user's own PyTorch loop (typed).

Owns :class:`LoopSpec` — the ``training`` part of a manifest whose ``kind`` is
``"loop"`` — and its pieces: :class:`CodeRef` (a ``package.module:function`` with the
digest of its source file), :class:`OptimizerSpec` (a ``torch.optim`` class and its
parameter groups by parameter name), :class:`SchedulerSpec` (a
``torch.optim.lr_scheduler`` class and the constructor arguments read from its state),
and :class:`TensorData` / :class:`FolderData` (what the loop consumed, by digest).

It also owns :func:`source_digest`, which finds a module's source file *without
importing it* (the verifier checks digests before any of the prover's code runs).
:class:`Programs` and :class:`LossSpec` are the exported mode's: the model (and a loss of
the user's own, and a transform) as ``torch.export`` programs in the bundle, or a torch
loss from a closed vocabulary. Nothing here imports or runs the prover's code; in
trusted-code mode that is :mod:`mltrail.pol.loopreplay`'s, in a separate process.
"""

from __future__ import annotations

import importlib.machinery
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_file

JsonValue = Any
REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
MAX_GROUPS = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeRef(_Strict):
    """A callable named by import path, pinned by the SHA-256 of its module's source."""

    ref: str = Field(pattern=REF.pattern, max_length=300)
    source: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.ref.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.ref.partition(":")[2]


class ParamGroup(_Strict):
    """One parameter group: the parameters by name, and every hyperparameter but ``params``."""

    params: list[str]
    options: dict[str, JsonValue]


class OptimizerSpec(_Strict):
    """A ``torch.optim`` optimizer: class name and its parameter groups (at step 0)."""

    name: str = Field(pattern=r"^[A-Za-z]\w*$", max_length=64)
    groups: list[ParamGroup] = Field(min_length=1, max_length=MAX_GROUPS)


class SchedulerSpec(_Strict):
    """A ``torch.optim.lr_scheduler`` class, its constructor arguments and when it steps."""

    name: str = Field(pattern=r"^[A-Za-z]\w*$", max_length=64)
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    every: Literal["step", "epoch"] = "step"


class TensorData(_Strict):
    """Named tensors (or numpy arrays) of equal length: item i is ``t[i]`` of each."""

    kind: Literal["tensors"] = "tensors"
    digest: str  # digest_state_dict(tensors): the safetensors bytes of all of them
    n: int = Field(ge=1)
    names: list[str] = Field(min_length=1, max_length=16)
    shapes: dict[str, list[int]]
    dtypes: dict[str, str]


class FolderData(_Strict):
    """A folder of files, sorted by relative path; item i is ``load(path_i)``."""

    kind: Literal["folder"] = "folder"
    digest: str  # digest of the per-file manifest (model-signing style; .git* ignored)
    n: int = Field(ge=1)
    load: CodeRef


LoopData = Annotated[TensorData | FolderData, Field(discriminator="kind")]


class LossSpec(_Strict):
    """A torch loss from the closed vocabulary (:data:`mltrail.pol.loopexport.LOSSES`)."""

    name: str = Field(pattern=r"^[a-z_0-9]+$", max_length=64)
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)


class ProgramFile(_Strict):
    """One exported program in the bundle: its JSON graph and lifted tensor constants."""

    file: str = Field(pattern=r"^program/[a-z]+\.json$")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    constants: str | None = Field(default=None, pattern=r"^program/[a-z]+\.safetensors$")
    constants_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")


class Programs(_Strict):
    """What crosses to the verifier instead of the prover's Python: ``torch.export``
    programs (JSON graphs of aten operators) of the model, of a loss outside the vocabulary
    and of the dataset's transform."""

    format: Literal["torch.export-json"] = "torch.export-json"
    torch: str = Field(max_length=64)  # the torch that exported them
    model: ProgramFile
    loss: ProgramFile | None = None  # the user's own loss(output, target)
    transform: ProgramFile | None = None  # applied to each item's inputs


class LoopSpec(_Strict):
    """How every step of a user's loop is computed, and with which code.

    A step is: set the recorded RNG state (when ``rng``), build the batch from the
    recorded indices with ``torch.utils.data.default_collate``, ``zero_grad``, forward
    and loss (``forward="xy"``: ``loss(model(batch[0]), batch[1])``; ``"batch"``:
    ``loss(model, batch)``), backward, optimizer step, then the scheduler step when due.
    With ``shard_size`` (a data-parallel run) the forward and backward run once per shard
    of the batch and the gradients are accumulated as :mod:`mltrail.pol.shards` does,
    then clipped; the rest of the step is the same.
    """

    kind: Literal["loop"] = "loop"
    model: CodeRef | None = None  # trusted-code mode: the factory; exported: None
    loss: CodeRef | LossSpec | None = None  # code, a vocabulary loss, or None (exported)
    program: Programs | None = None  # exported mode: the model (and loss) as data
    transform: CodeRef | None = None  # applied to each item's first tensor (inputs)
    code: list[CodeRef] = Field(default_factory=list, max_length=32)  # helper modules
    optimizer: OptimizerSpec
    scheduler: SchedulerSpec | None = None
    forward: Literal["xy", "batch"] = "xy"
    data: LoopData
    epochs: int = Field(ge=1)
    steps_per_epoch: int = Field(ge=1)
    batch_size: int = Field(ge=1)  # the largest batch
    rng: bool = False  # the global RNG state is recorded before every step
    grad_clip: float | None = Field(default=None, gt=0.0)  # clip_grad_norm_ before step
    # data-parallel: each batch is split into consecutive shards of this many samples
    # (mltrail.pol.shards.split) whose gradients are added as the coordinator adds them
    # (mltrail.pol.shards.accumulate); None: one backward over the whole batch
    shard_size: int | None = Field(default=None, ge=1)
    # "permutation": every epoch's batches visit each committed sample exactly once (the
    # loader was a shuffled or sequential DataLoader over the whole data; the verifier
    # checks the recorded indices); None: the loop's own sampling, nothing declared
    sampler: Literal["permutation"] | None = None

    @model_validator(mode="after")
    def _shards_fit(self) -> LoopSpec:
        if self.shard_size is not None and self.shard_size > self.batch_size:
            raise ValueError("shard_size exceeds the batch size")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent_program(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A spec without programs (or shards) serialises as before they existed (a
        trusted-code proof's header digest is what a verifier from before issue 18
        computes; a single-process loop's, what one from before issue 22 computes)."""
        out: dict[str, Any] = handler(self)
        for key in ("program", "shard_size", "sampler"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    @property
    def n_samples(self) -> int:
        return self.data.n

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    @property
    def trusted_code(self) -> bool:
        """True when replaying runs the prover's Python (no exported program)."""
        return self.program is None

    def refs(self) -> list[CodeRef]:
        """Every pinned piece of the prover's code (none in exported mode)."""
        out = [r for r in (self.model, self.loss) if isinstance(r, CodeRef)]
        out += self.code
        if self.transform is not None:
            out.append(self.transform)
        if isinstance(self.data, FolderData):
            out.append(self.data.load)
        return out


# --------------------------------------------------------------------------- code refs


def find_source(module: str, paths: list[str] | None = None) -> Path:
    """The source file of ``module`` found on ``paths`` (then ``sys.path``) without
    importing it or any package above it."""
    import sys

    search = [*(paths or []), *sys.path]
    locs: list[str] | None = search
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        spec = importlib.machinery.PathFinder.find_spec(name, locs)
        if spec is None:
            raise InputError(f"cannot find module {name!r} of the prover's code (give its "
                             "folder with --code)")
        locs = list(spec.submodule_search_locations or [])
    if spec is None or not spec.origin or not spec.has_location or \
            not spec.origin.endswith(".py"):
        raise InputError(f"module {module!r} has no Python source to pin")
    return Path(spec.origin)


def source_digest(module: str, paths: list[str] | None = None) -> str:
    """SHA-256 of the source file of ``module`` (found without importing it). The
    standard library is refused: a proof names the user's own code, never ``os:system``."""
    import sys

    if module.split(".")[0] in sys.stdlib_module_names:
        raise InputError(f"{module!r} is part of Python's standard library, not the user's "
                         "code a proof may name")
    return digest_file(find_source(module, paths))


def ref_of(obj: Any, kwargs: dict[str, Any] | None = None,
           paths: list[str] | None = None) -> CodeRef:
    """A :class:`CodeRef` for a function (or a ``"pkg.mod:name"`` string), pinned now."""
    if isinstance(obj, CodeRef):
        return obj
    if isinstance(obj, str):
        ref = obj
    else:
        mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not mod or not qual or "<" in qual or mod == "__main__":
            raise InputError(f"{obj!r} cannot be named by import path: define it as a "
                             "top-level function in an importable module, or pass "
                             "'package.module:function'")
        ref = f"{mod}:{qual}"
    if not REF.match(ref):
        raise InputError(f"{ref!r} is not 'package.module:function'")
    try:
        import json

        json.dumps(kwargs or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the arguments of {ref} must be plain JSON: {exc}") from exc
    return CodeRef(ref=ref, source=source_digest(ref.partition(":")[0], paths),
                   kwargs=dict(kwargs or {}))


def plain(value: Any) -> JsonValue:
    """A hyperparameter value as JSON (tuples become lists); ``ValueError`` if it is not."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not finite")
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    try:
        import torch

        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return plain(value.item())
    except ImportError:  # pragma: no cover
        pass
    raise ValueError(f"{type(value).__name__} is not a plain JSON value")
