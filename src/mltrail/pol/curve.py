"""The training curve a verifier computes: loss and accuracy of each checkpoint.

Owns :func:`checkpoint_curve`, which evaluates the weights of a reference-task proof's
checkpoints (already loaded and checked by the verifier) on the verifier's own copy of
the training data, without augmentation. The numbers are the verifier's, marked
``source="verifier"``; they are for people reading the report and decide nothing about
the verdict. It never trusts a number the prover wrote and never trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mltrail.pol.bundle import Manifest
from mltrail.pol.report import CurvePoint
from mltrail.reference import build_model

MAX_POINTS = 200  # checkpoints evaluated at most (evenly spread, first and last kept)
MAX_SAMPLES = 2048  # training samples each checkpoint is evaluated on (evenly spread)


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def checkpoint_curve(man: Manifest, states: Sequence[Mapping[str, torch.Tensor]],
                     x: torch.Tensor, y: torch.Tensor, device: str = "cpu"
                     ) -> list[CurvePoint]:
    """Cross-entropy loss and top-1 accuracy of each checkpoint's weights (``states``, the
    model tensors in checkpoint order) on up to :data:`MAX_SAMPLES` training samples."""
    spec = man.header.ref_training
    cks = man.checkpoints()
    rows = torch.tensor(_spread(len(y), MAX_SAMPLES), dtype=torch.int64)
    xs, ys = x[rows].to(device), y[rows].to(device)
    model: nn.Module = build_model(spec.arch).to(device)
    model.eval()
    out: list[CurvePoint] = []
    with torch.no_grad():
        for i in _spread(min(len(states), len(cks)), MAX_POINTS):
            try:
                model.load_state_dict(dict(states[i]), strict=True)
                logits = model(xs)
            except RuntimeError:  # weights that do not run: the replay check says so
                break
            out.append(CurvePoint(
                step=cks[i].step, epoch=min(spec.epoch_of(cks[i].step), spec.epochs - 1),
                loss=_finite(nn.functional.cross_entropy(logits, ys)),
                accuracy=_finite((logits.argmax(1) == ys).float().mean()), source="verifier"))
    return out


def _finite(t: torch.Tensor) -> float | None:
    v = float(t)
    return v if math.isfinite(v) else None
