"""What every Proof-of-Learning recorder writes into a bundle, in one place.

Owns :class:`BundleWriter`: the chained records, the checkpoint files (weights and
optimizer state, plus any extra files a recorder adds), the per-epoch batch-index file
with its Merkle root anchored as the epoch closes, and the final manifest, for the loop recorder
(:mod:`.loop`, which ``pol train`` uses too); no record is written any other way. This
module never trains and never reads a bundle back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from mltrail.errors import InputError
from mltrail.pol.bundle import (
    Anchor,
    Manifest,
    Record,
    epoch_groups,
    epoch_root,
    link_of,
    save_tensors,
    write_manifest,
)
from mltrail.pol.optstate import optimizer_tensors

AnchorFn = Callable[[int, bytes, int, str], Anchor | None]
"""``anchor(epoch, root, count, header_digest)`` -> the receipt, or None if not anchored."""


class _Steps(Protocol):
    @property
    def total_steps(self) -> int: ...

    def epoch_of(self, step: int) -> int: ...


class BundleWriter:
    """Records of one bundle; subclasses set the attributes below in ``__init__``."""

    out: Path
    manifest: Manifest
    model: nn.Module
    opt: torch.optim.Optimizer
    anchor_fn: AnchorFn | None
    steps_done: int
    spec: _Steps  # the header's training spec: it numbers steps and epochs

    def finish(self) -> Manifest:
        """Write the final manifest; returns it. The last checkpoint is the model."""
        total = self.spec.total_steps
        if self.steps_done != total:
            raise InputError(f"training stopped at step {self.steps_done} of {total}; "
                             "the proof is incomplete")
        if self.manifest.complete:
            return self.manifest
        last = self.manifest.checkpoints()[-1]
        self.manifest.final_model = last.digests["model"]
        self.manifest.complete = True
        write_manifest(self.out, self.manifest)
        return self.manifest

    def _append(self, rec: Record) -> None:
        rec.link = link_of(rec)
        self.manifest.records.append(rec)

    def _extra_checkpoint_files(self, base: str) -> tuple[dict[str, str], dict[str, str]]:
        """Files (name -> path) and digests a recorder adds to each checkpoint."""
        return {}, {}

    def _checkpoint(self) -> None:
        s = self.steps_done
        base = f"checkpoints/{len(self.manifest.checkpoints()):06d}-step{s:07d}"
        files = {"model": f"{base}.model.safetensors", "optim": f"{base}.optim.safetensors"}
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        digests = {"model": save_tensors(self.out, files["model"], state),
                   "optim": save_tensors(self.out, files["optim"],
                                         optimizer_tensors(self.model, self.opt))}
        more_files, more_digests = self._extra_checkpoint_files(base)
        files |= more_files
        digests |= more_digests
        self._append(Record(type="checkpoint", seq=len(self.manifest.records),
                            epoch=self.spec.epoch_of(max(s - 1, 0)), step=s, files=files,
                            digests=digests, prev=self.manifest.chain_head))

    def _write_epoch(self, tensors: dict[str, torch.Tensor]) -> None:
        """Close the epoch just ended: its batch indices (``tensors``), its record, and its
        Merkle root, anchored on the ledger when the recorder has an anchor."""
        epoch = self.spec.epoch_of(self.steps_done - 1)
        rel = f"indices/epoch-{epoch:04d}.safetensors"
        dig = save_tensors(self.out, rel, tensors)
        self._append(Record(type="epoch", seq=len(self.manifest.records), epoch=epoch,
                            step=self.steps_done, files={"indices": rel},
                            digests={"indices": dig}, prev=self.manifest.chain_head))
        group = epoch_groups(self.manifest.records)[-1]
        root = epoch_root(group)
        receipt = None
        if self.anchor_fn is not None:
            receipt = self.anchor_fn(epoch, root, len(group), self.manifest.header_digest)
        self.manifest.anchors.append(receipt or Anchor(epoch=epoch, root=root.hex(),
                                                       count=len(group)))
        write_manifest(self.out, self.manifest, durable=False)
