"""Data-parallel steps: how a step's batch splits into shards, and how the per-shard
gradients add up to the step's gradient.

Owns :func:`split` and :func:`accumulate`, the ONE arithmetic that both the distributed
coordinator (:mod:`mltrail.distributed.coordinator`, which aggregates its workers'
gradients) and the loop replay (:mod:`mltrail.pol.loopreplay`, for a spec with
``shard_size``) run, so that a replayed step equals the coordinator's bit for bit.
Floating-point addition is not associative: the order (shards in the order of the batch,
parameters in ``named_parameters`` order) and the weights (``len(shard) / len(batch)``, as
Python floats) are part of the arithmetic and never change. It never runs a model, never
talks to Ray and never judges anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mltrail.errors import MltrailError

__all__ = ["split", "accumulate"]


def split(batch: Sequence[int], shard_size: int) -> list[list[int]]:
    """``batch`` cut into consecutive shards of ``shard_size`` (the last may be shorter).

    This is the coordinator's split of a step among its accepted workers: each step of
    its plan is cut into one shard of ``batch_size`` per worker, only the last non-empty
    one can be shorter, and the recorded batch is the concatenation of the accepted
    shards in worker order — so excluded workers change the batch, never the rule."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    return [list(batch[i:i + shard_size]) for i in range(0, len(batch), shard_size)]


def accumulate(params: Sequence[tuple[str, torch.nn.Parameter]],
               parts: Sequence[tuple[int, Mapping[str, torch.Tensor]]],
               grad_clip: float | None = None) -> None:
    """Set each parameter's ``.grad`` to the shard-size-weighted mean of ``parts``
    (``(shard size, gradient by parameter name)``, in shard order): a zero tensor to which
    each shard's gradient is added with weight ``size / total``; then clip the total norm
    to ``grad_clip`` when given (``clip_grad_norm_`` over ``params`` in their order)."""
    total = sum(n for n, _ in parts)
    if not parts or total < 1:
        raise MltrailError("a data-parallel step needs at least one non-empty shard")
    for name, p in params:
        acc = torch.zeros_like(p)
        for n, grads in parts:
            g = grads.get(name)
            if g is None or g.shape != p.shape or g.dtype != p.dtype:
                raise MltrailError(f"a shard's gradient lacks {name!r} (or has another "
                                   "shape or dtype)")
            acc.add_(g, alpha=n / total)
        p.grad = acc
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for _, p in params], grad_clip)
