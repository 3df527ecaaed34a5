"""The spot-check fraction, the challenge draw, the public plan, and the adversaries
(each departs from the honest update on the rounds it says, with a record that claims the
real state), all in-process: no Ray here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dpkit import digits_dataset, mlp, sgd
from mltrail.distributed import polapi
from mltrail.distributed.coordinator import Options, plan
from mltrail.distributed.spotcheck import Challenger, fraction, miss_probability
from mltrail.distributed.worker import Worker
from mltrail.errors import InputError
from mltrail.testing import distributed_adversaries as adv


def test_fraction_meets_the_stated_miss_rate() -> None:
    for rounds in (1, 10, 38, 200):
        for m in (0.5, 0.05, 0.01, 1e-6):
            for share in (0.02, 0.1, 1.0):
                f = fraction(rounds, m, share)
                c = max(1, math.ceil(share * rounds))
                assert 0 < f <= 1
                assert miss_probability(f, c) <= m * (1 + 1e-9)
                if c > 1:  # the smallest such fraction: a bit less misses too often
                    assert miss_probability(f * 0.99, c) > m
    assert fraction(38, 0.01, 0.1) == pytest.approx(1 - 0.01 ** 0.25)
    for bad in ((10, 0.0, 0.1), (10, 1.0, 0.1), (10, 0.01, 0.0), (0, 0.01, 0.1)):
        with pytest.raises(InputError):
            fraction(*bad)


def test_draws_are_keyed_by_secret_and_update() -> None:
    a, b = Challenger(b"k" * 32), Challenger(b"j" * 32)
    assert a.draw(3, 1, "sha256:aa") == a.draw(3, 1, "sha256:aa")
    assert a.draw(3, 1, "sha256:aa") != a.draw(3, 1, "sha256:ab")
    assert a.draw(3, 1, "sha256:aa") != b.draw(3, 1, "sha256:aa")
    draws = [a.draw(r, 0, "sha256:x") for r in range(4000)]
    assert abs(sum(d < 0.2 for d in draws) / 4000 - 0.2) < 0.03  # uniform enough
    assert Challenger().secret != Challenger().secret
    with pytest.raises(InputError):
        Challenger(b"short")


def test_plan_is_fixed_by_the_seed_and_covers_each_epoch() -> None:
    opts = Options(workers=3, batch_size=8, epochs=2, seed=5)
    p = plan(100, opts)
    assert p == plan(100, opts) and p != plan(100, Options(workers=3, batch_size=8,
                                                              epochs=2, seed=6))
    for epoch in p:
        flat = [i for step in epoch for shard in step for i in shard]
        assert sorted(flat) == list(range(100))
    assert p[0] != p[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The programs of a recorded loop and the data, as a worker gets them."""
    from torch.utils.data import DataLoader

    ds = digits_dataset(96)
    model = mlp()
    out = tmp_path_factory.mktemp("dp") / "proof"
    loader = DataLoader(ds, batch_size=32)
    rec = polapi.start_recording(out, model, sgd(model), loader, shard_size=16,
                                 loss="cross_entropy", epochs=1, k=1, init_seed=0)
    spec = polapi.spec_json(rec)
    files = polapi.program_files(out, spec)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return spec, files, polapi.tensors_of(ds), state


def _worker(world, behaviour=None) -> Worker:
    spec, files, tensors, state = world
    w = Worker()
    w.load(0, spec, files, tensors, state, behaviour)
    return w


@pytest.mark.parametrize("make", [
    lambda: adv.RandomUpdate(1), lambda: adv.ScaledUpdate(), lambda: adv.StaleUpdate(),
    lambda: adv.FreeRider([[[0, 1], list(range(32, 64))]] * 4, victim=1),
    lambda: adv.RareCheater(seed=3, rate=0.5), lambda: adv.Colluder(seed=3, rate=0.5)])
def test_each_adversary_departs_only_where_it_says(world, make) -> None:
    honest, bad = _worker(world), _worker(world, make())
    state = world[3]
    rounds = 4
    cheats = adv.cheating_rounds(bad.behaviour, rounds)
    assert cheats, "the adversary must cheat at least once in the test's rounds"
    for r in range(rounds):
        s = {k: v + 0.01 * r for k, v in state.items()}  # the state moves every round
        idx = list(range(32))
        rh, gh = honest.compute(r, s, idx)
        rb, gb = bad.compute(r, s, idx)
        assert rb["state"] == rh["state"] and rb["indices"] == idx  # claims the real state
        assert rb["update"] == polapi.digest_state_dict(gb)  # and the digest of what it sent
        same = polapi.compare(gh, gb, 0.0) == 0.0
        assert same == (r not in cheats), (r, cheats)


def test_exported_replay_is_exact_and_sees_a_scale_of_1e_4(world) -> None:
    w = _worker(world)
    spec, files, tensors, state = world
    code = polapi.program_code(spec, files, state)
    mine = polapi.gradient(code.model(), code.loss, polapi.dataset_of(tensors), state,
                           list(range(32)))
    _, theirs = w.compute(0, state, list(range(32)))
    assert polapi.compare(mine, theirs, 0.0) == 0.0
    scaled = {n: t * (1 + 1e-4) for n, t in theirs.items()}
    assert polapi.compare(mine, scaled, 0.0) > 0.0
    assert polapi.compare(mine, {"x": torch.zeros(1)}, 0.0) == math.inf


def test_refuses_what_shards_cannot_add_up_to(tmp_path: Path) -> None:
    from mltrail.distributed.coordinator import train_distributed

    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8))
    with pytest.raises(InputError, match="BatchNorm"):
        train_distributed(tmp_path / "p", model, sgd(model), digits_dataset(64),
                          loss="cross_entropy", opts=Options())
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Dropout(0.1))
    with pytest.raises(InputError, match="dropout"):
        train_distributed(tmp_path / "p", model, sgd(model), digits_dataset(64),
                          loss="cross_entropy", opts=Options())
    with pytest.raises(InputError, match="workers"):
        train_distributed(tmp_path / "p", mlp(), sgd(mlp()), digits_dataset(64),
                          loss="cross_entropy", opts=Options(workers=0))
