"""The prover's side for a user's own PyTorch loop: a recorder that wraps it.

Owns :class:`LoopRecorder` (also :func:`record_loop`): a context manager around an
ordinary loop. It takes any ``nn.Module``, any ``torch.optim`` optimizer with any number
of parameter groups, any ``torch.optim.lr_scheduler`` it can rebuild from its state, a
loss function and a ``DataLoader`` over a map-style dataset whose bytes it can pin
(:mod:`mltrail.pol.loopdata`). It records the batch indices each step consumed (the
loader's batch sampler is wrapped), the RNG state before each step when the model draws
random numbers (dropout), and every ``k`` steps the model, optimizer and scheduler
state. The model factory, loss and transform are named by import path with the digest
of their source. Usage::

    with mltrail.record_loop("proof", model, opt, loader, model_factory=make_model,
                             loss=my_loss, scheduler=sched, epochs=3, k=100) as rec:
        for epoch in range(3):
            for xb, yb in rec.loader:
                opt.zero_grad(); my_loss(model(xb), yb).backward(); opt.step(); sched.step()
                rec.step()

It never judges a proof and never runs the verifier.
"""

from __future__ import annotations

import copy
import datetime as _dt
import inspect
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mltrail._fs import atomic_write
from mltrail.errors import InputError
from mltrail.pol.bundle import (
    Header,
    InitCommitment,
    InitOrigin,
    Manifest,
)
from mltrail.pol.loopdata import commit
from mltrail.pol.loopexport import INIT_SCHEME, loss_name_of, reinit
from mltrail.pol.loopprogram import export_programs
from mltrail.pol.loopspec import (
    CodeRef,
    FolderData,
    LoopSpec,
    LossSpec,
    OptimizerSpec,
    ParamGroup,
    SchedulerSpec,
    plain,
    ref_of,
)
from mltrail.pol.writer import AnchorFn, BundleWriter
from mltrail.provenance.digest import canonical_json, digest_bytes, digest_json, digest_state_dict

SKIP_ARGS = {"self", "optimizer", "last_epoch", "verbose"}


def optimizer_spec(model: nn.Module, opt: torch.optim.Optimizer) -> OptimizerSpec:
    """The manifest form of a live optimizer: class and groups by parameter name."""
    if type(opt).__module__.split(".")[:2] != ["torch", "optim"] or \
            getattr(torch.optim, type(opt).__name__, None) is not type(opt):
        raise InputError(f"the recorder replays torch.optim optimizers, not {type(opt).__name__}")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    seen: set[int] = set()
    for g in opt.param_groups:
        params = []
        for p in g["params"]:
            if id(p) not in names:
                raise InputError("the optimizer holds a tensor that is not a parameter of "
                                 "the model")
            params.append(names[id(p)])
            seen.add(id(p))
        opts: dict[str, Any] = {}
        for key, val in g.items():
            if key in ("params", "initial_lr"):
                continue
            try:
                opts[key] = plain(val)
            except ValueError as exc:
                raise InputError(f"optimizer setting {key!r} cannot be recorded: {exc}") from exc
        if "initial_lr" in g:
            opts["lr"] = plain(g["initial_lr"])
        if opts.get("differentiable") or opts.get("fused"):
            raise InputError("the recorder cannot replay differentiable or fused optimizers")
        groups.append(ParamGroup(params=params, options=opts))
    return OptimizerSpec(name=type(opt).__name__, groups=groups)


def scheduler_spec(sched: Any, every: str) -> SchedulerSpec:
    """The manifest form of a live ``torch.optim.lr_scheduler``: its class and the
    constructor arguments read back from its state (refused when they cannot be)."""
    from torch.optim import lr_scheduler

    cls = type(sched)
    if getattr(lr_scheduler, cls.__name__, None) is not cls:
        raise InputError(f"the recorder replays torch.optim.lr_scheduler classes, not "
                         f"{cls.__name__}")
    if cls.__name__ in ("LambdaLR", "MultiplicativeLR"):
        raise InputError(f"{cls.__name__} cannot be rebuilt from its state: its schedule is a "
                         "Python function a verifier would have to run. Use a named schedule: "
                         f"{', '.join(NAMED_SCHEDULES)}")
    if cls is lr_scheduler.OneCycleLR:
        return SchedulerSpec(name=cls.__name__, kwargs=_one_cycle(sched),
                             every=every)  # type: ignore[arg-type]
    state = sched.state_dict()
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in SKIP_ARGS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in state:
            try:
                kwargs[name] = plain(state[name])
            except ValueError as exc:
                raise InputError(f"{cls.__name__}({name}=…) cannot be recorded: {exc}") from exc
        elif param.default is param.empty:
            raise InputError(f"{cls.__name__} cannot be rebuilt from its state (no {name!r})")
    return SchedulerSpec(name=cls.__name__, kwargs=kwargs, every=every)  # type: ignore[arg-type]


NAMED_SCHEDULES = ("LinearLR", "ExponentialLR", "StepLR", "MultiStepLR", "CosineAnnealingLR",
                   "PolynomialLR", "OneCycleLR", "CosineAnnealingWarmRestarts")


def _nice(x: float) -> float:
    """A ratio recomputed from floats, back to the value the user most likely typed."""
    return float(f"{x:.12g}")


def _one_cycle(sched: Any) -> dict[str, Any]:
    """``OneCycleLR``'s constructor arguments, read back from its state and the optimizer's
    parameter groups (the recorder then rebuilds it and compares states exactly)."""
    groups = sched.optimizer.param_groups
    phases = sched._schedule_phases
    total = int(sched.total_steps)
    return {"max_lr": [plain(g["max_lr"]) for g in groups], "total_steps": total,
            "pct_start": _nice((phases[0]["end_step"] + 1) / total),
            "anneal_strategy": str(getattr(sched, "_anneal_func_type", "cos")),
            "cycle_momentum": bool(sched.cycle_momentum),
            "base_momentum": [plain(g.get("base_momentum", 0.85)) for g in groups],
            "max_momentum": [plain(g.get("max_momentum", 0.95)) for g in groups],
            "div_factor": _nice(groups[0]["max_lr"] / groups[0]["initial_lr"]),
            "final_div_factor": _nice(groups[0]["initial_lr"] / groups[0]["min_lr"]),
            "three_phase": len(phases) == 3}


def scheduler_state(sched: Any) -> dict[str, Any]:
    """A scheduler's state as plain JSON (what checkpoints hold)."""
    out: dict[str, Any] = {}
    for key, val in sched.state_dict().items():
        try:
            out[key] = plain(val)
        except ValueError:
            out[key] = repr(val)
    return out


def _uses_rng(model: nn.Module) -> bool:
    from torch.nn.modules.dropout import _DropoutNd

    return any(isinstance(m, _DropoutNd) and m.p > 0 for m in model.modules()) or any(
        isinstance(m, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer | nn.Transformer)
        for m in model.modules())


class _Tracked:
    """A batch sampler that hands every batch's indices (and RNG state) to the recorder
    in the order the loader will return the batches."""

    def __init__(self, inner: Iterable[Sequence[int]], rec: LoopRecorder) -> None:
        self.inner, self.rec = inner, rec

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[int]]:
        queue, rng_on = self.rec._queue, self.rec.spec.rng
        for batch in self.inner:
            idx = batch if type(batch) is list else [int(i) for i in batch]
            queue.append((idx, torch.get_rng_state() if rng_on else None))
            yield idx


class LoopRecorder(BundleWriter):
    """Records a proof of learning while the caller's own loop trains (see module doc)."""

    spec: LoopSpec

    def __init__(self, out: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loader: DataLoader[Any], *, loss: Any, epochs: int, k: int = 100,
                 model_factory: Callable[..., nn.Module] | str | None = None,
                 trusted_code: bool = False,
                 scheduler: Any = None, scheduler_every: str = "step",
                 factory_kwargs: dict[str, Any] | None = None, forward: str = "xy",
                 rng: bool | None = None, init_seed: int | None = None,
                 grad_clip: float | None = None, code: Sequence[str] = (),
                 code_paths: Sequence[str] = (), anchor: AnchorFn | None = None,
                 prover: str | None = None, anchor_artefact: str | None = None,
                 note: str | None = None, init_origin: InitOrigin | None = None,
                 shard_size: int | None = None) -> None:
        self.out = Path(out)
        if (self.out / "manifest.json").exists():
            raise InputError(f"{self.out} already holds a proof bundle; choose a new folder")
        if init_origin is not None and (trusted_code or init_seed is None):
            raise InputError("a ledger init origin goes with init_seed, in exported mode")
        if k < 1 or epochs < 1:
            raise InputError("k and epochs must be at least 1")
        if forward not in ("xy", "batch") or scheduler_every not in ("step", "epoch"):
            raise InputError("forward is 'xy' or 'batch'; scheduler_every 'step' or 'epoch'")
        self.model, self.opt, self.sched = model, optimizer, scheduler
        paths = list(code_paths)
        use_rng = _uses_rng(model) if rng is None else bool(rng)
        if use_rng and loader.num_workers > 0:
            raise InputError("a loop that draws random numbers must load on the main process "
                             "(num_workers=0) to be replayed")
        from torch.utils.data import default_collate

        if loader.collate_fn is not default_collate:
            raise InputError("the replay rebuilds batches with torch's default_collate; a "
                             "custom collate_fn belongs in the dataset or the loss")
        if loader.batch_sampler is None:
            raise InputError("the loader needs a batch size (batch_size=None is not a loop)")
        data, transform = commit(loader.dataset, paths, pin_transform=trusted_code)
        self.trusted_code = trusted_code
        factory: CodeRef | None = None
        loss_ref: CodeRef | LossSpec | None = None
        if trusted_code:
            if model_factory is None:
                raise InputError("trusted_code=True replays your model factory: pass "
                                 "model_factory")
            factory, loss_ref = ref_of(model_factory, factory_kwargs, paths), \
                ref_of(loss, None, paths)
        else:
            if forward != "xy":
                raise InputError("an exported proof replays loss(model(inputs), targets); "
                                 "forward='batch' needs trusted_code=True")
            if isinstance(data, FolderData):
                raise InputError("a FolderDataset's load function is Python: load the files "
                                 "into an ArrayDataset (the bytes are then committed), or "
                                 "record with trusted_code=True")
            named = loss_name_of(loss)
            loss_ref = LossSpec(name=named[0], kwargs=named[1]) if named else None
            transform = None
            if init_seed is not None:  # mltrail's own init: checkable with no code
                fresh = reinit(dict(model.named_parameters()), init_seed)
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        p.copy_(fresh[name])
        self.spec = LoopSpec(
            model=factory, loss=loss_ref, transform=transform,
            code=[ref_of(f"{c}:__name__", None, paths) for c in code],
            optimizer=optimizer_spec(model, optimizer),
            scheduler=scheduler_spec(scheduler, scheduler_every) if scheduler is not None
            else None, forward=forward, data=data,  # type: ignore[arg-type]
            epochs=epochs, steps_per_epoch=len(loader.batch_sampler),  # type: ignore[arg-type]
            batch_size=int(getattr(loader.batch_sampler, "batch_size", None) or 1),
            rng=use_rng, grad_clip=grad_clip, shard_size=shard_size,
            sampler="permutation" if whole_data(loader) else None)
        if not trusted_code:
            self.out.mkdir(parents=True, exist_ok=True)
            self.spec.program = export_programs(self.out, model, loss, loader.dataset,
                                                loss_ref is None,
                                                loader.batch_sampler)  # type: ignore[arg-type]
        self._check_rebuild(init_seed, paths)
        self._queue: deque[tuple[list[int], torch.Tensor | None]] = deque()
        self.loader: DataLoader[Any] = DataLoader(
            loader.dataset, batch_sampler=_Tracked(loader.batch_sampler, self),
            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=loader.persistent_workers)
        dev = next(model.parameters()).device
        header = Header(training=self.spec, k=k, data=data,
                        init=InitCommitment(scheme="factory" if trusted_code else
                                            INIT_SCHEME if init_seed is not None else "prover",
                                            seed=init_seed, origin=init_origin),
                        torch=torch.__version__, device=str(dev.type), prover=prover,
                        anchor_artefact=anchor_artefact,
                        note=note or f"recorded {_dt.datetime.now(_dt.UTC).isoformat()}")
        self.k = k
        # plain ints for the per-step path (the spec's properties are computed each call)
        self._total, self._spe = self.spec.total_steps, self.spec.steps_per_epoch
        self._sched_every_step = self.spec.scheduler is None or \
            self.spec.scheduler.every == "step"
        self.manifest = Manifest(header=header, header_digest=digest_json(header.model_dump()))
        self.anchor_fn = anchor
        self.steps_done = 0
        self._indices: list[list[int]] = []
        self._rng: list[torch.Tensor] = []
        self._checkpoint()

    # ---- set-up checks
    def _check_rebuild(self, init_seed: int | None, paths: list[str]) -> None:
        """The verifier must be able to rebuild model, optimizer and scheduler from the
        spec: try it now (on a forked RNG, so the caller's random stream is untouched)."""
        from mltrail.pol.loopreplay import build_optimizer, build_scheduler, import_ref

        if self.spec.model is None:  # exported: the program was checked against the model
            twin = copy.deepcopy(self.model)
        else:
            with torch.random.fork_rng(devices=[]):
                if init_seed is not None:
                    torch.manual_seed(init_seed)
                twin = import_ref(self.spec.model, paths)(**self.spec.model.kwargs)
            mine = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            if [(n, tuple(t.shape)) for n, t in twin.state_dict().items()] != \
                    [(n, tuple(t.shape)) for n, t in mine.items()]:
                raise InputError(f"the model is not what {self.spec.model.ref} builds (its "
                                 "parameters and buffers differ)")
            if init_seed is not None and digest_state_dict(twin.state_dict()) != \
                    digest_state_dict(mine):
                raise InputError(f"the model's weights are not {self.spec.model.ref}() after "
                                 f"torch.manual_seed({init_seed})")
        if any(self.opt.state.get(p) for p in self.model.parameters()):
            raise InputError("the optimizer has already stepped; record from step 0")
        opt2 = build_optimizer(self.spec, twin)
        if self.sched is not None:
            if getattr(self.sched, "last_epoch", 0) != 0:
                raise InputError("the scheduler has already stepped; record from step 0")
            sched2 = build_scheduler(self.spec, opt2)
            if scheduler_state(sched2) != scheduler_state(self.sched):
                raise InputError(f"{type(self.sched).__name__} cannot be rebuilt from its "
                                 "state; use a scheduler whose settings are in its state_dict")
        want = [g.options for g in self.spec.optimizer.groups]
        got = optimizer_spec(twin, opt2)
        if [g.options for g in got.groups] != want:
            raise InputError(f"{type(self.opt).__name__} cannot be rebuilt from its groups")

    # ---- the loop
    def __enter__(self) -> LoopRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish()

    def step(self) -> None:
        """Note that the optimizer (and scheduler) stepped on the last batch."""
        if not self._queue:
            raise InputError("recorder.step() without a batch from recorder.loader")
        idx, rng = self._queue.popleft()
        self._indices.append(idx)
        if rng is not None:
            self._rng.append(rng)
        self.steps_done += 1
        s = self.steps_done
        if s > self._total:
            raise InputError(f"more steps than the {self._total} declared "
                             f"({self.spec.epochs} epochs of {self._spe})")
        if self.sched is not None:
            want = s if self._sched_every_step else (s - 1) // self._spe
            if self.sched.last_epoch != want:
                every = "step" if self._sched_every_step else "epoch"
                raise InputError(f"the scheduler has stepped {self.sched.last_epoch} times at "
                                 f"step {s}; scheduler_every={every!r} expects {want} (call "
                                 "sched.step() then rec.step())")
        if s % self.k == 0 or s == self._total:
            self._checkpoint()
        if s % self._spe == 0:
            self._close_epoch()

    def _extra_checkpoint_files(self, base: str) -> tuple[dict[str, str], dict[str, str]]:
        """The scheduler's state beside each checkpoint (when there is a scheduler)."""
        if self.sched is None:
            return {}, {}
        rel = f"{base}.sched.json"
        raw = canonical_json(scheduler_state(self.sched))
        atomic_write(self.out / rel, raw, durable=False)
        return {"sched": rel}, {"sched": digest_bytes(raw)}

    def _close_epoch(self) -> None:
        tensors = {"indices": torch.tensor([i for b in self._indices for i in b],
                                           dtype=torch.int64),
                   "sizes": torch.tensor([len(b) for b in self._indices], dtype=torch.int64)}
        if self._rng:
            tensors["rng"] = torch.stack(self._rng)
        self._indices, self._rng = [], []
        self._write_epoch(tensors)


def loop_arch(params: Iterable[tuple[str, Sequence[int]]]) -> dict[str, Any]:
    """What a loop proof's start anchor binds of the model: its parameters' names and
    shapes (the exported program is made after the init, from these weights)."""
    return {"loop_params": [[n, [int(d) for d in s]] for n, s in params]}


def ledger_init(ledger: Any, dataset_id: str, model: nn.Module, dataset: Any
                ) -> dict[str, Any]:
    """Anchor the start of a loop's training on ``dataset_id`` before step 0 and return
    the :func:`record_loop` arguments that go with it (``init_seed`` fixed by the anchor's
    block, ``init_origin``, ``prover``, ``anchor_artefact``): mltrail then draws every
    parameter from a seed nobody knew before that block, and a verifier with the ledger
    checks it (init origin ``ledger``). Usage: ``record_loop(..., **ledger_init(led, ds,
    model, loader.dataset))``."""
    from mltrail.pol.onchain import start_training

    data, _ = commit(dataset, pin_transform=False)
    seed, origin = start_training(ledger, dataset_id, data_digest=data.digest, data_seed=0,
                                  arch=loop_arch((n, p.shape)
                                                 for n, p in model.named_parameters()),
                                  scheme=INIT_SCHEME)
    return {"init_seed": seed, "init_origin": origin, "prover": ledger.address,
            "anchor_artefact": origin.artefact_id}


def whole_data(loader: DataLoader[Any]) -> bool:
    """True when every epoch of ``loader`` visits each sample exactly once: torch's own
    batch sampler, no dropped last batch, over a sequential or a shuffled (without
    replacement, every sample) sampler."""
    from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

    bs = loader.batch_sampler
    if type(bs) is not BatchSampler or bs.drop_last:
        return False
    s = bs.sampler
    return type(s) is SequentialSampler or (
        type(s) is RandomSampler and not s.replacement and s._num_samples is None)


def record_loop(out: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                loader: DataLoader[Any], **options: Any) -> LoopRecorder:
    """A :class:`LoopRecorder` (the same arguments); use it as a context manager."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return LoopRecorder(out, model, optimizer, loader, **options)

