"""The command line's training task: an MLP on a tensor data file, trained across workers.

Owns :func:`run_task` (what ``mltrail pol train-distributed`` does: load the data —
the built-in digits or a safetensors file with ``x`` and ``y`` — build the MLP and its
SGD optimizer, optionally make some workers Byzantine for a demonstration, and call
:func:`mltrail.distributed.coordinator.train_distributed`) and :func:`parse_byzantine`.
Your own loop calls ``train_distributed`` from Python instead. Never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from mltrail.distributed.coordinator import Options, plan, train_distributed
from mltrail.errors import InputError

KINDS = ("random", "scaled", "stale", "free-rider", "rare", "collude")


def parse_byzantine(items: Sequence[str], workers: int) -> dict[int, str]:
    """``["2:scaled", ...]`` -> {2: "scaled"}; one line on a bad item."""
    out: dict[int, str] = {}
    for item in items:
        w, _, kind = item.partition(":")
        if not w.isdigit() or kind not in KINDS:
            raise InputError(f"--byzantine {item!r}: give WORKER:KIND with KIND one of "
                             f"{', '.join(KINDS)}")
        if int(w) >= workers:
            raise InputError(f"--byzantine {item!r}: workers are numbered 0 to {workers - 1}")
        out[int(w)] = kind
    return out


def load_data(data: str) -> TensorDataset:
    if data == "digits":
        from mltrail.reference import load_digits_tensors

        d = load_digits_tensors()
        return TensorDataset(d.x_train.reshape(len(d.x_train), -1).contiguous(), d.y_train)
    from mltrail.distributed.polapi import load_tensors_file

    if not Path(data).is_file():
        raise InputError(f"no such data file: {data} (a safetensors file with x and y, or "
                         "'digits')")
    t = load_tensors_file(data)
    x, y = t.get("x"), t.get("y")
    if x is None or y is None or len(x) != len(y) or len(x) == 0 or \
            not x.is_floating_point() or y.dtype != torch.int64:
        raise InputError(f"{data}: needs float 'x' and int64 'y' of the same length")
    return TensorDataset(x.reshape(len(x), -1).contiguous(), y)


def _behaviours(kinds: dict[int, str], shards: list[list[list[int]]], seed: int
                ) -> dict[int, Any]:
    from mltrail.testing import distributed_adversaries as adv

    make: dict[str, Callable[[int], Any]] = {
        "random": lambda w: adv.RandomUpdate(seed + w), "scaled": lambda w: adv.ScaledUpdate(),
        "stale": lambda w: adv.StaleUpdate(),
        "free-rider": lambda w: adv.FreeRider(shards, (w + 1) % len(shards[0])),
        "rare": lambda w: adv.RareCheater(seed + w, 0.1),
        "collude": lambda w: adv.Colluder(seed, 0.2)}
    return {w: make[k](w) for w, k in kinds.items()}


def run_task(out: Path, *, data: str, hidden: int, lr: float, momentum: float,
             opts: Options, byzantine: Sequence[str] = (), ledger: Any = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; choose a new folder for the proof")
    if hidden < 1 or not 0 < lr <= 10 or not 0 <= momentum < 1:
        raise InputError("--hidden >= 1, --lr in (0, 10], --momentum in [0, 1)")
    kinds = parse_byzantine(byzantine, opts.workers)
    ds = load_data(data)
    x, y = ds.tensors
    classes = int(y.max()) + 1
    torch.manual_seed(opts.seed)
    model = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, classes))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    shards = [s for e in plan(len(x), opts) for s in e]
    result = train_distributed(out, model, opt, ds, loss="cross_entropy", opts=opts,
                               behaviours=_behaviours(kinds, shards, opts.seed),
                               ledger=ledger, progress=progress)
    result["byzantine"] = {str(w): k for w, k in kinds.items()}
    return result
