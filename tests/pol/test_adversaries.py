"""Issue 7's adversaries, written as a cheater would: each is rejected, or caught by the
selection rule at every one of a few fixed verifier seeds (rates over 50+ seeds: bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.pol.bundle import read_manifest
from mltrail.pol.calibration import DEFAULT_THRESHOLD
from mltrail.pol.checks import expected_layout
from mltrail.pol.verifier import relative_error, replay_segment, verify_bundle
from mltrail.testing import pol_adversaries as adv
from mltrail.testing.pol_forgeries import forge_bundle, load_states


def test_forged_optimizer_state_segment_is_caught_at_every_seed(tmp_path: Path, honest_k1: Path,
                                                                digits) -> None:
    """The segment's input momentum is solved so that its replay lands on poisoned weights:
    replaying the segment alone passes; its predecessor (always replayed) does not."""
    x, y = digits
    j = 20
    man = adv.forged_optimizer_segment(tmp_path / "f", honest_k1, x, y, j)
    _, states = load_states(tmp_path / "f")
    spec, cks = man.header.training, man.checkpoints()
    mr, _ = replay_segment(spec, *states[j], x, y, cks[j].step, cks[j + 1].step)
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


def test_declared_subset_and_oversized_n_samples_are_rejected(tmp_path: Path, digits) -> None:
    x, y = digits
    run = {"arch": {"type": "mlp", "hidden": [16]}, "optimizer": {"name": "sgd", "lr": 0.1},
           "k": 5, "epochs": 1, "batch_size": 32, "seed": 5}
    adv.declared_subset(tmp_path / "sub", x, y, 400, **run)
    rep = verify_bundle(tmp_path / "sub", digits, q=1, r=0)
    assert not rep.accepted and rep.reasons[0].startswith("declared: n_samples is 400")
    # more samples than the data holds: a rejection with a reason, not an internal error
    man, states = load_states(tmp_path / "sub")
    big = man.header.training.model_copy(update={"n_samples": len(y) + 500})
    need = sum(1 for r in expected_layout(big, man.header.k) if r[0] == "checkpoint")
    forge_bundle(tmp_path / "big", man.header.model_copy(update={"training": big}),
                 (states + [states[-1]] * need)[:need])
    rep = verify_bundle(tmp_path / "big", digits, q=1, r=0)
    assert not rep.accepted and rep.reasons[0].startswith("declared: n_samples is")


def test_init_laundering(tmp_path: Path, honest: Path, digits) -> None:
    """A genuine init draw reordered to a stolen model's ranks passes the distribution
    tests (it is one) but stays 'accepted, unseeded init'; copying the small tensors
    outright is caught by the support check or the pooled small-tensor test."""
    x, y = digits
    man = adv.laundered_proof(tmp_path / "l", honest, x, y, copy_small=False)
    assert man.header.init.seed is None
    rep = verify_bundle(tmp_path / "l", digits, q=1, r=0)
    assert rep.accepted and rep.init_origin == "unseeded" and rep.qualifier == "unseeded init"
    adv.laundered_proof(tmp_path / "l2", honest, x, y, copy_small=True)
    rep = verify_bundle(tmp_path / "l2", digits, q=1, r=0)
    assert not rep.accepted and rep.reasons[0].startswith("init:")
    # and claiming the honest proof's seed does not launder anything: the weights differ
    assert read_manifest(honest).header.init.seed is not None
