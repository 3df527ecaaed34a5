"""The prover's side: record a proof of learning while an ordinary PyTorch loop trains.

Owns :class:`ProofRecorder` and :func:`record_training`. The recorder fixes the batch
order from a seed committed in the header before the first step, sets the learning rate
of each step from the committed schedule, saves model and optimizer state as safetensors
every ``k`` steps (and at the end), chains every record's digest to the previous one, and
at the end of each epoch hands the Merkle root of that epoch's records to an optional
anchor callback (the ledger, see :mod:`mltrail.pol.onchain`). It works without a ledger.
It never judges a proof.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrail.errors import InputError
from mltrail.pol.bundle import (
    Header,
    InitCommitment,
    InitOrigin,
    Manifest,
    data_commitment,
)
from mltrail.pol.replay import (
    TrainingSpec,
    TransformSpec,
    optimizer_from_spec,
    train_step,
)
from mltrail.pol.writer import AnchorFn, BundleWriter
from mltrail.provenance.digest import digest_json, digest_state_dict
from mltrail.reference import accuracy, build_model, init_weights


class ProofRecorder(BundleWriter):
    """Wraps a training loop so that it leaves a proof bundle in ``out``.

    Usage::

        rec = ProofRecorder(out, model, opt, (x, y), arch=spec, k=50, epochs=3,
                            batch_size=32, data_seed=1, init_seed=0)
        for xb, yb in rec.batches():
            opt.zero_grad(); F.cross_entropy(model(xb), yb).backward(); opt.step()
            rec.step()
        rec.finish()

    ``batches`` yields the batches in the committed order (transforms applied) and sets
    the optimizer's learning rate from the committed schedule before each step. The
    model must be freshly initialised with ``init_weights(build_model(arch), scheme,
    init_seed)`` (checked) or, with ``init_seed=None``, by ``scheme`` from any seed.
    """

    spec: TrainingSpec

    def __init__(self, out: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 data: tuple[torch.Tensor, torch.Tensor], *, arch: dict[str, Any], k: int,
                 epochs: int, batch_size: int, data_seed: int, init_seed: int | None,
                 init_scheme: str = "uniform_fan_in", schedule: dict[str, Any] | None = None,
                 transforms: list[dict[str, Any]] | None = None, anchor: AnchorFn | None = None,
                 prover: str | None = None, anchor_artefact: str | None = None,
                 note: str | None = None, init_origin: InitOrigin | None = None) -> None:
        self.out = Path(out)
        if (self.out / "manifest.json").exists():
            raise InputError(f"{self.out} already holds a proof bundle; choose a new folder")
        self.model, self.opt = model, optimizer
        self.x, self.y = data
        if len(self.x) != len(self.y):
            raise InputError("inputs and labels differ in length")
        self.spec = TrainingSpec(arch=dict(arch), optimizer=optimizer_from_spec(optimizer),
                                 schedule=schedule or {"name": "constant"}, batch_size=batch_size,
                                 epochs=epochs, n_samples=len(self.y), data_seed=data_seed,
                                 transforms=[TransformSpec(**t) for t in transforms or []])
        ref = build_model(arch)
        if [(n, tuple(t.shape)) for n, t in ref.state_dict().items()] != \
                [(n, tuple(t.shape)) for n, t in model.state_dict().items()]:
            raise InputError("the model does not match its architecture spec")
        if init_seed is not None:
            want = digest_state_dict(init_weights(ref, init_scheme, init_seed).state_dict())
            if digest_state_dict(model.state_dict()) != want:
                raise InputError("the model's weights are not init_weights(arch, scheme, seed); "
                                 "initialise it with mltrail.reference.init_weights")
        dev = next(model.parameters()).device
        header = Header(training=self.spec, k=k, data=data_commitment(self.x, self.y),
                        init=InitCommitment(scheme=init_scheme, seed=init_seed,
                                            origin=init_origin if init_seed is not None
                                            else None),
                        torch=torch.__version__, device=str(dev.type), prover=prover,
                        anchor_artefact=anchor_artefact,
                        note=note or f"recorded {_dt.datetime.now(_dt.UTC).isoformat()}")
        self.k = k
        self.manifest = Manifest(header=header, header_digest=digest_json(header.model_dump()))
        self.anchor_fn = anchor
        self.steps_done = 0
        self._epoch_indices: list[torch.Tensor] = []
        self._in_batch = False
        self._checkpoint()

    # ---- the loop
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield every training batch in the committed order; call :meth:`step` after each."""
        dev = next(self.model.parameters()).device
        self.model.train()
        while self.steps_done < self.spec.total_steps:
            step = self.steps_done
            idx = self.spec.batch_indices(step)
            for g in self.opt.param_groups:
                g["lr"] = self.spec.lr_at(step)
            self._epoch_indices.append(idx)
            self._in_batch = True
            yield self.spec.transform(self.x[idx].to(dev), step), self.y[idx].to(dev)
            if self._in_batch:
                raise InputError("call recorder.step() after each optimizer step")

    def step(self, loss: torch.Tensor | None = None) -> None:
        """Note that the optimizer stepped on the last batch; checkpoint when due."""
        if not self._in_batch:
            raise InputError("recorder.step() called without a batch from recorder.batches()")
        self._in_batch = False
        self.steps_done += 1
        s = self.steps_done
        end_of_epoch = s % self.spec.steps_per_epoch == 0
        if s % self.k == 0 or s == self.spec.total_steps:
            self._checkpoint()
        if end_of_epoch:
            self._close_epoch()

    def _close_epoch(self) -> None:
        flat = torch.cat(self._epoch_indices).to(torch.int64)
        sizes = torch.tensor([len(i) for i in self._epoch_indices], dtype=torch.int64)
        self._epoch_indices = []
        self._write_epoch({"indices": flat, "sizes": sizes})


def record_training(out: str | Path, x: torch.Tensor, y: torch.Tensor, *,
                    arch: dict[str, Any], optimizer: dict[str, Any], k: int, epochs: int,
                    batch_size: int, seed: int, init_scheme: str = "uniform_fan_in",
                    commit_init_seed: bool = True, schedule: dict[str, Any] | None = None,
                    transforms: list[dict[str, Any]] | None = None,
                    anchor: AnchorFn | None = None, prover: str | None = None,
                    anchor_artefact: str | None = None, init_seed: int | None = None,
                    init_origin: InitOrigin | None = None,
                    on_step: Callable[[int], None] | None = None,
                    on_loss: Callable[[int, float, float | None], None] | None = None
                    ) -> tuple[nn.Module, Manifest]:
    """Train a model from a spec with the shared training step, under a recorder.

    Same seeds as :func:`mltrail.reference.train_seeded` (init ``seed``, data
    ``seed + 1``), so on one thread the final digest equals its digest. ``init_seed``
    (with its ``init_origin``, see :func:`mltrail.pol.onchain.start_training`) replaces
    ``seed`` for the initial weights. ``on_loss(step, loss, accuracy)`` sees each step's
    loss, and at the end of each epoch the training accuracy (else None): for progress
    displays; computing it changes no training arithmetic.
    """
    iseed = seed if init_seed is None else init_seed
    model = init_weights(build_model(arch), init_scheme, iseed)
    probe = TrainingSpec(arch=arch, optimizer=optimizer, batch_size=batch_size, epochs=epochs,
                         n_samples=len(y), data_seed=seed + 1)
    opt = probe.make_optimizer(model)
    rec = ProofRecorder(out, model, opt, (x, y), arch=arch, k=k, epochs=epochs,
                        batch_size=batch_size, data_seed=seed + 1,
                        init_seed=iseed if commit_init_seed else None, init_scheme=init_scheme,
                        schedule=schedule, transforms=transforms, anchor=anchor, prover=prover,
                        anchor_artefact=anchor_artefact, init_origin=init_origin)
    spec = rec.spec
    for xb, yb in rec.batches():
        step = rec.steps_done
        # the batch is already transformed; train_step would transform again, so undo:
        loss = _plain_step(spec, model, opt, xb, yb, step)
        rec.step()
        if on_step is not None:
            on_step(step)
        if on_loss is not None:
            acc = accuracy(model, x, y) if rec.steps_done % spec.steps_per_epoch == 0 else None
            on_loss(step, float(loss), acc)
    return model, rec.finish()


def _plain_step(spec: TrainingSpec, model: nn.Module, opt: torch.optim.Optimizer,
                xb: torch.Tensor, yb: torch.Tensor, step: int) -> torch.Tensor:
    """:func:`train_step` on an already transformed batch (same arithmetic); the loss."""
    if spec.transforms:
        bare = spec.model_copy(update={"transforms": []})
        return train_step(bare, model, opt, xb, yb, step)
    return train_step(spec, model, opt, xb, yb, step)
