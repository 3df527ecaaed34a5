"""The one place :mod:`mltrail.distributed` touches :mod:`mltrail.pol` (an adapter).

Owns the calls into the loop-proof API — :func:`mltrail.pol.loop.record_loop` (the
coordinator's recorder of the global trajectory), :class:`mltrail.pol.loopprogram.ProgramCode`
(the model and loss as exported programs: what workers compute with and what the
coordinator replays with, never a worker's code), :func:`mltrail.pol.tolerance.decide`,
:func:`mltrail.pol.environment.current` and the dataset and digest helpers — so that a
change in :mod:`mltrail.pol` is fixed here only. It never talks to Ray or the ledger.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_json, digest_state_dict

State = dict[str, torch.Tensor]

__all__ = ["State", "digest_state_dict", "start_recording", "declare_environment", "split",
           "accumulate", "spec_json", "program_files",
           "program_code", "dataset_of", "gradient", "tolerance", "environment",
           "compare", "replaying", "tensors_of",
           "ledger_anchoring", "load_tensors_file"]


def start_recording(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    loader: DataLoader[Any], *, shard_size: int, **options: Any) -> Any:
    """A :class:`~mltrail.pol.loop.LoopRecorder` of the global trajectory whose spec
    declares the data-parallel arithmetic it really runs: ``shard_size`` samples per
    worker, each step's gradient accumulated from per-shard gradients
    (:func:`accumulate`), which the verifier's replay runs the same way, bit for bit."""
    from mltrail.pol.loop import record_loop

    return record_loop(out, model, opt, loader, shard_size=shard_size, **options)


def declare_environment(rec: Any, worker_envs: Sequence[Mapping[str, Any]]) -> Any:
    """Declare in ``rec``'s header (before its first step) the environment the workers
    computed in — their thread count and deterministic mode, which the coordinator then
    steps in too (:func:`replaying`) — so that a verifier replays every shard's gradient
    as the workers computed it. Workers that declare different environments are refused
    (no replay could reproduce both). Returns the context to train in."""
    from mltrail.pol.bundle import link_of
    from mltrail.pol.environment import Environment

    envs = [Environment.model_validate(dict(e)) for e in worker_envs]
    if not envs or any(e != envs[0] for e in envs):
        raise InputError("the workers declare different environments (threads, "
                         "deterministic mode or platform): the proof's replay could not "
                         "reproduce them all")
    man = rec.manifest
    if len(man.records) != 1:  # pragma: no cover - called right after start_recording
        raise InputError("the environment is declared before the first step")
    man.header = man.header.model_copy(update={"env": envs[0]})
    man.header_digest = digest_json(man.header.model_dump())
    first = man.records[0]
    first.prev = man.header_digest
    first.link = link_of(first)
    return replaying(worker_envs[0])


def split(batch: Sequence[int], shard_size: int) -> list[list[int]]:
    """:func:`mltrail.pol.shards.split`: the shards a replay cuts a recorded batch into."""
    from mltrail.pol.shards import split as _split

    return _split(batch, shard_size)


def accumulate(params: Sequence[tuple[str, torch.nn.Parameter]],
               parts: Sequence[tuple[int, Mapping[str, torch.Tensor]]],
               grad_clip: float | None) -> None:
    """:func:`mltrail.pol.shards.accumulate`: the step's gradient from the accepted
    shards' (the same function the proof's replay runs)."""
    from mltrail.pol.shards import accumulate as _accumulate

    _accumulate(params, parts, grad_clip)


def ledger_anchoring(ledger: Any, dataset_id: str) -> dict[str, Any]:
    """The recorder options that anchor each epoch root on ``dataset_id`` (as ``pol
    train`` does): :func:`mltrail.pol.onchain.ledger_anchor`."""
    from mltrail.pol.onchain import ledger_anchor

    return {"anchor": ledger_anchor(ledger, dataset_id), "prover": ledger.address,
            "anchor_artefact": ledger.resolve(dataset_id)}


def spec_json(rec: Any) -> dict[str, Any]:
    out: dict[str, Any] = rec.spec.model_dump()
    return out


def program_files(out: Path, spec: Mapping[str, Any]) -> dict[str, bytes]:
    """The program files a spec names (graphs and constants), read from the bundle."""
    prog = spec.get("program") or {}
    files: dict[str, bytes] = {}
    for role in ("model", "loss", "transform"):
        pf = prog.get(role)
        if pf:
            for key in ("file", "constants"):
                if pf.get(key):
                    files[pf[key]] = (out / pf[key]).read_bytes()
    return files


def program_code(spec: Mapping[str, Any], files: Mapping[str, bytes], state: State) -> Any:
    """The exported model and loss of ``spec`` (digests checked), from file bytes: what a
    worker computes with and what the coordinator replays with."""
    from mltrail.pol.loopprogram import ProgramCode
    from mltrail.pol.loopspec import LoopSpec

    ls = LoopSpec.model_validate(dict(spec))
    if ls.program is None:
        raise InputError("training across workers needs an exported loop (not trusted-code)")
    with tempfile.TemporaryDirectory(prefix="mltrail-dp-") as tmp:
        for rel, raw in files.items():
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(raw)
        return ProgramCode(ls, Path(tmp), state)


def dataset_of(tensors: Mapping[str, torch.Tensor], transform: Any = None) -> Any:
    from mltrail.pol.loopdata import ArrayDataset

    return ArrayDataset.of(dict(tensors), transform)


def load_tensors_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Named tensors from a data file (:func:`mltrail.pol.loopdata.load_tensors_file`)."""
    from mltrail.pol.loopdata import load_tensors_file as _load

    return _load(path)


def tensors_of(dataset: Any) -> dict[str, torch.Tensor]:
    """The named tensors of a tensor-backed dataset (what workers receive)."""
    from mltrail.pol.loopdata import tensors_of as _tensors_of

    got = _tensors_of(dataset)
    if got is None:
        raise InputError("training across workers needs a tensor dataset (TensorDataset or "
                         "mltrail.ArrayDataset)")
    return got


def gradient(model: torch.nn.Module, loss: Any, dataset: Any, state: State,
             indices: Sequence[int]) -> State:
    """The gradient of ``loss(model(x), y)`` at ``state`` on the batch ``indices``, built
    as the loop replay builds a batch (``default_collate``), by parameter name."""
    model.load_state_dict(state)
    model.train()
    batch = default_collate([dataset[i] for i in indices])
    for p in model.parameters():
        p.grad = None
    loss(model(batch[0]), batch[1]).backward()
    return {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters()}


def environment() -> Any:
    from mltrail.pol.environment import current

    return current("cpu")


def tolerance(worker_env: Mapping[str, Any] | None) -> Any:
    """The replay tolerance for an update computed in ``worker_env`` and replayed here:
    :func:`mltrail.pol.tolerance.decide` (same platform: exactly 0; another: refused
    unless calibrated, :class:`InputError`)."""
    from mltrail.pol.environment import Environment
    from mltrail.pol.tolerance import decide

    declared = Environment.model_validate(dict(worker_env)) if worker_env else None
    if declared is None:
        raise InputError("a worker declared no environment")
    return decide(declared, environment())


def replaying(worker_env: Mapping[str, Any]) -> Any:
    """A context in which this process replays with the worker's declared thread count
    and deterministic mode (:func:`mltrail.pol.environment.declared`)."""
    from mltrail.pol.environment import Environment, declared

    return declared(Environment.model_validate(dict(worker_env)))


def compare(replayed: State, claimed: Mapping[str, torch.Tensor], threshold: float) -> float:
    """Relative error ||claimed - replayed|| / ||replayed|| (inf on a shape or name
    mismatch); the update passes when it is at most ``threshold`` (0: bitwise equal)."""
    if set(replayed) != set(claimed):
        return math.inf
    num = den = 0.0
    for n, r in replayed.items():
        c = claimed[n]
        if not isinstance(c, torch.Tensor) or c.shape != r.shape or c.dtype != r.dtype:
            return math.inf
        if not bool(torch.isfinite(c).all()):
            return math.inf
        num += float((c.double() - r.double()).pow(2).sum())
        den += float(r.double().pow(2).sum())
    if num == 0.0:
        return 0.0
    return math.sqrt(num) / max(math.sqrt(den), 1e-300)
