"""Dishonest coordinators of data-parallel training, written against the final proof.

The coordinator of :mod:`mltrail.distributed.coordinator` aggregates the accepted workers'
gradients and steps the optimizer itself; the one proof it writes is what the model's
readers verify. Its workers cannot check it: only that proof's replay can.

* :class:`ScaledAggregate` — multiplies the aggregate gradient by ``1 + eps`` at every
  step, just before the optimizer step (a step pre-hook on the run's own optimizer: the
  recorder sees a plain ``torch.optim`` optimizer, and the spec, the batches, the records
  and the workers are all honest; only the trajectory drifts, by a relative ``eps`` or so
  per step). Small enough, it hides inside a tolerance; only an exact replay sees it.
* :func:`as_before_issue_22` — the same bundle as the verifier saw it before the proof
  recorded its shards: the environment labelled ``<device>+dp<workers>`` and no
  ``shard_size`` (a full-batch replay), re-chained; with :func:`calibrated_floor`, the
  calibration a verifier then needed (``pol calibrate``'s floor, 0.001: the honest
  data-parallel rounding, 1e-7 or so, is far below it). Together they measure how often
  the drift passed then (``bench/distributed.py``).

Nothing here is used by the coordinator or the verifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mltrail.pol.bundle import Manifest, read_manifest
from mltrail.pol.environment import current, platform_key
from mltrail.pol.loopspec import LoopSpec
from mltrail.testing.pol_hostile import rewrite

OLD_FLOOR = 1e-3  # pol calibrate's floor: the threshold the +dp label led to


class ScaledAggregate:
    """Scales every parameter's aggregated gradient by ``1 + eps`` before each step."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def install(self, optimizer: torch.optim.Optimizer) -> Any:
        """Hook ``optimizer`` (before training); returns the hook's removable handle."""
        scale = 1.0 + self.eps

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            with torch.no_grad():
                for group in opt.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad.mul_(scale)

        return optimizer.register_step_pre_hook(hook)


def as_before_issue_22(out: str | Path, bundle: str | Path, workers: int) -> Manifest:
    """A copy of ``bundle`` at ``out`` as a coordinator wrote it before issue 22: device
    ``<device>+dp<workers>``, no shard size (every digest re-chained)."""
    def edit(man: Manifest, folder: Path) -> None:
        env = man.header.env
        spec = man.header.training
        assert env is not None and isinstance(spec, LoopSpec)
        man.header = man.header.model_copy(update={
            "env": env.model_copy(update={"device": f"{env.device}+dp{workers}"}),
            "training": spec.model_copy(update={"shard_size": None})})
    return rewrite(out, bundle, edit)


def calibrated_floor(bundle: str | Path) -> list[dict[str, Any]]:
    """The calibration rows (``verify_bundle(calibration=...)``) that a ``+dp`` bundle's
    verifier had: the floor for the pair (its declared platform, this one)."""
    env = read_manifest(Path(bundle)).header.env
    assert env is not None
    return [{"recorded": platform_key(env), "replayed": platform_key(current("cpu")),
             "threshold": OLD_FLOOR, "optim_threshold": OLD_FLOOR, "replays": 0}]
