"""The data-parallel step's shared arithmetic (mltrail.pol.shards): the split a replay
makes of a recorded batch is the coordinator's split among its accepted workers, whatever
workers were excluded; the accumulation is order-sensitive and weighted by shard size;
a spec without shards serialises as before issue 22."""

from __future__ import annotations

import itertools

import pytest
import torch
from pydantic import ValidationError

from mltrail.distributed.coordinator import Options, plan
from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.shards import accumulate, split


def test_split_is_the_coordinators_split_under_any_exclusion() -> None:
    for n, workers, bs in ((100, 3, 16), (50, 4, 7), (9, 3, 4)):
        opts = Options(workers=workers, batch_size=bs, epochs=2, seed=5)
        for epoch in plan(n, opts):
            for step in epoch:
                for k in range(1, workers + 1):
                    for kept in itertools.combinations(range(workers), k):
                        accepted = [step[j] for j in kept if step[j]]
                        batch = [i for s in accepted for i in s]
                        assert split(batch, bs) == accepted


def test_accumulate_weights_by_shard_size_and_clips() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    parts = [(2, {"w": torch.tensor([1.0, 0.0, 3.0])}), (1, {"w": torch.tensor([4.0, 3.0, 0.0])})]
    accumulate([("w", p)], parts)
    assert p.grad is not None
    assert torch.allclose(p.grad, torch.tensor([2.0, 1.0, 2.0]))
    accumulate([("w", p)], parts, grad_clip=1.0)
    assert float(p.grad.norm()) == pytest.approx(1.0)
    # the exact arithmetic: zeros, then add_ with alpha = size / total, in shard order
    g = [torch.randn(257, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    want = torch.zeros(257)
    for t, n in zip(g, (5, 7, 3), strict=True):
        want.add_(t, alpha=n / 15)
    accumulate([("w", p := torch.nn.Parameter(torch.zeros(257)))],
               [(n, {"w": t}) for t, n in zip(g, (5, 7, 3), strict=True)])
    assert p.grad is not None and torch.equal(p.grad, want)
    with pytest.raises(Exception, match="lacks 'w'"):
        accumulate([("w", p)], [(1, {"v": g[0]})])


def test_spec_without_shards_serialises_as_before() -> None:
    base = {"optimizer": {"name": "SGD", "groups": [{"params": ["w"], "options": {}}]},
            "data": {"kind": "tensors", "digest": "sha256:" + "0" * 64, "n": 10, "names": ["x"],
                     "shapes": {"x": [10]}, "dtypes": {"x": "float32"}},
            "epochs": 1, "steps_per_epoch": 1, "batch_size": 8}
    assert "shard_size" not in LoopSpec.model_validate(base).model_dump()
    assert LoopSpec.model_validate({**base, "shard_size": 4}).model_dump()["shard_size"] == 4
    with pytest.raises(ValidationError):
        LoopSpec.model_validate({**base, "shard_size": 9})
    with pytest.raises(ValidationError):
        LoopSpec.model_validate({**base, "shard_size": 0})
