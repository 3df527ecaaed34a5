"""The training curve a verifier computes: loss and accuracy of each checkpoint.

Owns :func:`curve_points` (evaluate checkpoint weights, at most :data:`MAX_POINTS` of
them, with an evaluator), :func:`evaluator` (loss, and top-1 accuracy for a classifier,
of one set of weights on a fixed sample of the verifier's own training data, without
augmentation) and :func:`loop_curve` (both, for a proof whose checkpoints the verifier's
replay has loaded and checked, evaluated with the replay's own code). The numbers are the
verifier's, marked ``source="verifier"``; they are for people reading the report and decide nothing
about the verdict. It never trusts a number the prover wrote and never trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.report import CurvePoint

MAX_POINTS = 100  # checkpoints evaluated at most (evenly spread, first and last kept)
MAX_SAMPLES = 512  # training samples each checkpoint is evaluated on (evenly spread)
State = Mapping[str, torch.Tensor]
Evaluate = Callable[[State], tuple[float | None, float | None]]


def spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _finite(t: torch.Tensor) -> float | None:
    v = float(t)
    return v if math.isfinite(v) else None


def evaluator(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
              = nn.functional.cross_entropy, set_eval: bool = True) -> Evaluate:
    """``evaluate(weights) -> (loss, accuracy)`` of ``model`` with those weights on up to
    :data:`MAX_SAMPLES` of ``(x, y)``; accuracy only for class scores against labels.
    ``set_eval=False`` leaves the model's mode alone (an exported program keeps the mode
    it was traced in)."""
    rows = torch.tensor(spread(len(y), MAX_SAMPLES), dtype=torch.int64)
    xs, ys = x[rows], y[rows]
    labels = ys.dim() == 1 and not ys.is_floating_point()

    def evaluate(state: State) -> tuple[float | None, float | None]:
        model.load_state_dict(dict(state), strict=True)
        if set_eval:
            model.eval()
        with torch.no_grad():
            out = model(xs)
            acc = _finite((out.argmax(1) == ys).float().mean()) \
                if labels and out.dim() == 2 else None
            return _finite(loss(out, ys)), acc

    return evaluate


def curve_points(steps: Sequence[int], epochs: Sequence[int], states: Sequence[State],
                 evaluate: Evaluate) -> list[CurvePoint]:
    """One point per checkpoint (at most :data:`MAX_POINTS`); stops at weights that do
    not run (the replay's checks say why)."""
    out: list[CurvePoint] = []
    for i in spread(min(len(steps), len(states)), MAX_POINTS):
        try:
            loss, acc = evaluate(states[i])
        except (RuntimeError, ValueError):
            break
        out.append(CurvePoint(step=steps[i], epoch=epochs[i], loss=loss, accuracy=acc,
                              source="verifier"))
    return out


def loop_curve(spec: LoopSpec, code: Any, dataset: Any, steps: Sequence[int],
               states: Sequence[State], device: str = "cpu") -> list[CurvePoint]:
    """The curve of a loop proof from the checkpoints the verifier loaded: the proof's
    own loss (``cross_entropy`` for the reference task) and, for class scores against
    labels, top-1 accuracy, of each checkpoint's weights on up to :data:`MAX_SAMPLES`
    items of the committed data. ``code`` is the replay's (the exported programs, or in
    trusted-code mode the pinned code, only ever in the replay process)."""
    from torch.utils.data import default_collate

    rows = spread(len(dataset), MAX_SAMPLES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a transform that draws gets the same draws every time
        batch = default_collate([dataset[i] for i in rows])
        model = code.model().to(device)
    batch = [b.to(device) if isinstance(b, torch.Tensor) else b for b in batch] \
        if isinstance(batch, list | tuple) else batch
    epochs = [min(spec.epoch_of(s), spec.epochs - 1) for s in steps]
    if spec.forward == "xy":
        inner = evaluator(model, batch[0], batch[1], code.loss, set_eval=spec.program is None)
    else:
        def inner(state: State) -> tuple[float | None, float | None]:
            model.load_state_dict(dict(state), strict=True)
            with torch.no_grad():
                return _finite(code.loss(model, batch)), None

    def evaluate(state: State) -> tuple[float | None, float | None]:
        torch.manual_seed(0)  # dropout in a traced training-mode program: the same draws
        return inner(state)   # for every checkpoint and every verifier

    return curve_points(steps, epochs, states, evaluate)
