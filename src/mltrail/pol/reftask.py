"""The reference task (digits, :func:`mltrail.reference.build_model`) as a loop spec.

It owns how ``mltrail pol train``'s options become a user loop: named tensors for the
data, the reference model (exported, so the replay runs no prover code), the
closed-vocabulary ``cross_entropy`` loss, a named ``torch.optim`` optimizer and
scheduler, and a seeded shuffle. The init is mltrail's own draw from ``init_seed``
(fixed by the ledger through :func:`mltrail.pol.loop.ledger_init`, or the run's seed
off-ledger). It never verifies anything: proofs it records are verified like any
user's loop.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mltrail.errors import InputError
from mltrail.pol.bundle import Manifest

OnLoss = Callable[[int, float, float | None], None]


def digits_file() -> Path:
    """The built-in digits training split as a tensors file (``x``, ``y``), written once
    per machine: a verifier's ``--data digits`` for a reference-task loop proof."""
    from mltrail.pol.datafile import BUILTIN, load_data, save_data

    path = Path(tempfile.gettempdir()) / "mltrail-digits-train.safetensors"
    if not path.is_file():
        x, y = load_data(BUILTIN)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        save_data(x, y, name)  # the same bytes from any writer: the last rename wins
        Path(name).replace(path)
    return path


def _optimizer(model: torch.nn.Module, opt: Mapping[str, Any]) -> torch.optim.Optimizer:
    name, lr = opt.get("name"), float(opt.get("lr", 0.05))
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=float(opt.get("momentum", 0)),
                               foreach=False)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    raise InputError(f"--optimizer must be sgd or adam, not {name!r}")


def _scheduler(opt: torch.optim.Optimizer, schedule: str, total: int) -> Any:
    if schedule == "constant":
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    raise InputError(f"--schedule must be constant or cosine, not {schedule!r}")


def record_reference(out: Path, x: torch.Tensor, y: torch.Tensor, *, arch: Mapping[str, Any],
                     optimizer: Mapping[str, Any], schedule: str = "constant", epochs: int = 1,
                     batch_size: int = 32, k: int = 10, seed: int = 0,
                     ledger_args: Mapping[str, Any] | None = None,
                     anchor: Any = None, on_step: Callable[[int], None] | None = None,
                     on_loss: OnLoss | None = None) -> Manifest:
    """Train the reference task under the loop recorder into ``out`` and return its
    manifest, on the caller's torch thread count (the proof declares it, the verifier
    reproduces it: ``pol train --threads``). ``ledger_args`` are
    :func:`mltrail.pol.loop.ledger_init`'s; without them the init is drawn from
    ``seed``."""
    from mltrail.pol.loop import record_loop
    from mltrail.pol.loopdata import ArrayDataset
    from mltrail.reference import build_model

    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    torch.manual_seed(seed)
    model = build_model(arch)
    opt = _optimizer(model, optimizer)
    data = ArrayDataset.of({"x": x, "y": y})
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed + 1))
    sched = _scheduler(opt, schedule, epochs * len(loader))
    extra = dict(ledger_args) if ledger_args is not None else {"init_seed": seed}
    step = 0
    with record_loop(out, model, opt, loader, loss="cross_entropy", epochs=epochs, k=k,
                     scheduler=sched, anchor=anchor, **extra) as rec:  # the caller's threads
        for _ in range(epochs):
            right = seen = 0
            for i, (xb, yb) in enumerate(rec.loader):
                opt.zero_grad()
                logits = model(xb)
                loss = torch.nn.functional.cross_entropy(logits, yb)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                rec.step()
                right += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                if on_step is not None:
                    on_step(step)
                if on_loss is not None:
                    last = i + 1 == len(loader)
                    on_loss(step, float(loss.detach()), right / seen if last else None)
                step += 1
    return rec.manifest
