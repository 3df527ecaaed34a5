"""Issue 7's adversaries, written as a cheater would: each is rejected, or caught by the
selection rule at every one of a few fixed verifier seeds (rates over 50+ seeds: bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.pol.bundle import read_manifest
from mltrail.pol.calibration import DEFAULT_THRESHOLD
from mltrail.pol.verifier import relative_error, verify_bundle
from mltrail.testing import pol_adversaries as adv
from mltrail.testing.pol_forgeries import Trainer, forge_bundle, load_states


def test_forged_optimizer_state_segment_is_caught_at_every_seed(tmp_path: Path, honest_k1: Path,
                                                                digits) -> None:
    """The segment's input momentum is solved so that its replay lands on poisoned weights:
    replaying the segment alone passes; its predecessor (always replayed) does not."""
    x, y = digits
    j = 20
    man = adv.forged_optimizer_segment(tmp_path / "f", honest_k1, x, y, j)
    _, states = load_states(tmp_path / "f")
    cks = man.checkpoints()
    mr, _ = Trainer(tmp_path / "f", x, y).replay(*states[j], cks[j].step, cks[j + 1].step)
    assert relative_error(mr, states[j][0], states[j + 1][0])[0] < DEFAULT_THRESHOLD / 10
    for seed in range(3):
        rep = verify_bundle(tmp_path / "f", digits, q=1, r=1, seed=seed)
        assert not rep.accepted
        assert any(s.index == j - 1 and not s.ok for s in rep.segments)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_small_update_fakes_are_caught_at_the_stated_miss_rate(tmp_path: Path, honest_k1: Path,
                                                               digits, count: int) -> None:
    man, fakes = adv.small_update_fakes(tmp_path / "s", honest_k1, count, seed=count)
    assert len(fakes) == count
    for seed in range(3):
        rep = verify_bundle(tmp_path / "s", digits, forged=count / 43, seed=seed)
        assert not rep.accepted, (count, seed, rep.r_rule)
        assert rep.r_rule["predicted_miss"] <= 0.01


def test_the_same_challenge_gives_the_same_selection(tmp_path: Path, honest: Path,
                                                     digits) -> None:
    """Re-asking with the same public challenge replays the same segments."""
    from mltrail.pol.report import Challenge

    ch = Challenge(seed=12345, source="ledger", block=7, block_hash="0x00")
    a = verify_bundle(honest, digits, challenge=ch, r=2)
    b = verify_bundle(honest, digits, challenge=ch, r=2)
    assert [s.index for s in a.segments] == [s.index for s in b.segments]
    assert a.challenge == b.challenge == ch


def test_declared_subset_is_rejected(tmp_path: Path, digits) -> None:
    """Trained on 400 samples, committed to all of them: the proof declares a shuffle of
    the whole data every epoch (pol train's DataLoader), and its recorded batches visit
    only the 400; the same bundle with the declaration removed is a loop over a subset,
    and the report says how much of the data the batches used."""
    x, y = digits
    run = {"arch": {"type": "mlp", "hidden": [16]}, "optimizer": {"name": "sgd", "lr": 0.1},
           "k": 5, "epochs": 1, "batch_size": 32, "seed": 5}
    man = adv.declared_subset(tmp_path / "sub", x, y, 400, **run)
    assert man.header.training.data.n == len(y)
    rep = verify_bundle(tmp_path / "sub", digits, q=1, r=0)
    assert not rep.accepted and "visit" in rep.reasons[0], rep.reasons
    _, states = load_states(tmp_path / "sub")
    spec = man.header.training.model_copy(update={"sampler": None})
    forge_bundle(tmp_path / "undeclared", man.header.model_copy(update={"training": spec}),
                 states, source=tmp_path / "sub")
    rep = verify_bundle(tmp_path / "undeclared", digits, q=1, r=0)
    tensors = next(c.detail for c in rep.checks if c.name == "tensors")
    assert f"400 of {len(y)} samples" in tensors, tensors


def test_init_laundering(tmp_path: Path, honest: Path, digits) -> None:
    """A genuine init draw reordered to a stolen model's ranks: without a committed seed
    the verdict stays 'accepted, unseeded init' (the initial weights are the prover's
    choice, said so); claiming the stolen proof's ledger-fixed seed for it is rejected by
    the init check (every parameter must be exactly the seed's draw)."""
    x, y = digits
    arch = {"type": "cnn"}
    man = adv.laundered_proof(tmp_path / "l", honest, x, y, arch=arch, copy_small=False)
    assert man.header.init.seed is None
    rep = verify_bundle(tmp_path / "l", digits, q=1, r=0)
    assert rep.accepted and rep.init_origin == "unseeded" and rep.qualifier == "unseeded init"
    adv.laundered_proof(tmp_path / "l2", honest, x, y, arch=arch, copy_small=True,
                        claim_seed=True)
    assert read_manifest(tmp_path / "l2").header.init == read_manifest(honest).header.init
    rep = verify_bundle(tmp_path / "l2", digits, q=1, r=0)
    assert not rep.accepted and rep.reasons[0].startswith("init:"), rep.reasons
