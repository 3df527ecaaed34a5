"""The reference task recorded as a loop spec (``mltrail pol train``'s engine): an honest
proof replays from its exported program and is accepted with the init drawn from the
run's seed; the cosine schedule is a named torch scheduler; a tampered checkpoint is
rejected; an optimizer the spec cannot name is the caller's input error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mltrail.errors import InputError
from mltrail.pol.datafile import load_data
from mltrail.pol.loopspec import LoopSpec
from mltrail.pol.reftask import digits_file, record_reference
from mltrail.pol.verifier import verify_bundle
from mltrail.pol.workflows import parse_arch
from mltrail.testing.pol_forgeries import load_states, tamper_states

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9}


def test_reference_task_is_a_loop_proof(tmp_path: Path) -> None:
    x, y = load_data("digits")
    man = record_reference(tmp_path / "p", x, y, arch=parse_arch("mlp"), optimizer=SGD,
                           schedule="cosine", epochs=1, k=20, seed=3)
    spec = man.header.training
    assert isinstance(spec, LoopSpec) and spec.program is not None
    assert spec.scheduler is not None and spec.scheduler.name == "CosineAnnealingLR"
    assert man.header.init.seed == 3 and (tmp_path / "p" / "program").is_dir()
    rep = verify_bundle(tmp_path / "p", str(digits_file()), q=1, r=1, seed=0)
    assert rep.accepted, rep.reasons
    assert rep.init_origin == "seed"
    _, states = load_states(tmp_path / "p")
    assert len(states) == len(man.checkpoints())
    tamper_states(tmp_path / "t", tmp_path / "p", "reorder", rechain=True)
    bad = verify_bundle(tmp_path / "t", str(digits_file()), q=len(states), seed=0)
    assert not bad.accepted


def test_unnamed_optimizer_is_input_error(tmp_path: Path) -> None:
    x, y = load_data("digits")
    with pytest.raises(InputError, match="sgd or adam"):
        record_reference(tmp_path / "p", x[:64], y[:64], arch=parse_arch("mlp"),
                         optimizer={"name": "rmsprop", "lr": 0.1})
    assert torch.equal(load_data("digits")[1], y)
