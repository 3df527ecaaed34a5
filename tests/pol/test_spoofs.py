"""Every spoof of the issue, forged with real code, is rejected; for the right reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.errors import InputError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.calibration import DEFAULT_OPTIM_THRESHOLD, DEFAULT_THRESHOLD
from mltrail.pol.report import Report
from mltrail.pol.verifier import verify_bundle
from mltrail.testing import pol_forgeries as attacks


def _check(rep: Report, name: str) -> bool:
    return next(c.ok for c in rep.checks if c.name == name)


def test_a_zero_lr_interpolation_is_rejected_by_hyperparameters_and_replay(
        tmp_path: Path, honest: Path, digits) -> None:
    man = attacks.interpolation_spoof(tmp_path / "a", honest, lr=0.0)
    assert man.final_model == read_manifest(honest).final_model  # claims the stolen model
    rep = verify_bundle(tmp_path / "a", digits, q=100, r=0)
    assert not rep.accepted
    assert _check(rep, "chain") and _check(rep, "layout")
    assert not _check(rep, "hyperparameters")
    assert any("learning rate 0.0 is implausible" in r for r in rep.reasons)
    assert not rep.segments  # checks stop at the first failure: nothing is replayed


def test_b_interpolation_with_the_honest_lr_is_rejected_by_replay(
        tmp_path: Path, honest: Path, digits) -> None:
    attacks.interpolation_spoof(tmp_path / "b", honest, lr=None)
    rep = verify_bundle(tmp_path / "b", digits, q=1, r=1)
    assert not rep.accepted
    assert [c.name for c in rep.checks if not c.ok] == ["replay"]
    assert min(s.error for s in rep.segments) > 5 * DEFAULT_THRESHOLD


@pytest.mark.parametrize("how", ["reorder", "drop", "substitute"])
def test_c_tampered_checkpoints_naive_forger(tmp_path: Path, honest: Path, donor: Path,
                                             digits, how: str) -> None:
    attacks.tamper_states(tmp_path / how, honest, how, rechain=False, donor=donor)
    rep = verify_bundle(tmp_path / how, digits, q=1, r=1)
    assert not rep.accepted
    assert any("does not match its digest" in r for r in rep.reasons)


@pytest.mark.parametrize("how", ["reorder", "drop", "substitute"])
def test_c_tampered_checkpoints_rechained(tmp_path: Path, honest: Path, donor: Path, digits,
                                          how: str) -> None:
    """A forger who re-hashes and re-chains everything is still caught."""
    attacks.tamper_states(tmp_path / how, honest, how, rechain=True, donor=donor)
    rep = verify_bundle(tmp_path / how, digits, q=1, r=0)  # top-Q alone suffices
    assert not rep.accepted
    assert _check(rep, "chain")
    if how == "drop":
        assert not _check(rep, "layout")
    else:
        bad = [s for s in rep.segments if not s.ok]
        assert bad and all(s.chosen in ("top-q", "predecessor", "final") for s in bad)
        assert max(s.error for s in bad) > 5 * DEFAULT_THRESHOLD


def test_d_resigned_copy_verifies(tmp_path: Path, honest: Path, digits) -> None:
    """A copy is a valid proof; only the dispute (test_ledger) can tell who came first."""
    man = attacks.resign_copy(tmp_path / "d", honest, "mallory")
    assert man.header.prover == "mallory"
    assert man.header_digest != read_manifest(honest).header_digest
    assert verify_bundle(tmp_path / "d", digits, q=1, r=1).accepted


@pytest.mark.parametrize("changes", [{"lr": 0.02}, {"momentum": 0.5}])
def test_e_hyperparameters_edited_after_the_fact(tmp_path: Path, honest: Path, digits,
                                                 changes: dict) -> None:
    attacks.edit_hyperparameters(tmp_path / "naive", honest, changes, rechain=False)
    rep = verify_bundle(tmp_path / "naive", digits, q=1, r=0)
    assert not rep.accepted and any("header digest" in r for r in rep.reasons)
    attacks.edit_hyperparameters(tmp_path / "rechained", honest, changes, rechain=True)
    rep = verify_bundle(tmp_path / "rechained", digits, q=1, r=0)
    assert not rep.accepted and _check(rep, "chain") and _check(rep, "hyperparameters")
    assert not _check(rep, "replay")
    assert rep.max_error > 2 * DEFAULT_THRESHOLD


def test_e_schedule_breaking_hyperparameters(tmp_path: Path, honest: Path, digits) -> None:
    for changes, reason in (({"lr": 50.0}, "learning rate 50.0 is implausible"),
                            ({"momentum": 1.5}, "momentum must be in [0, 1)")):
        attacks.edit_hyperparameters(tmp_path / str(changes), honest, changes, rechain=True)
        rep = verify_bundle(tmp_path / str(changes), digits, q=1, r=0)
        assert not rep.accepted and any(reason in r for r in rep.reasons)
    from mltrail.pol.loopspec import SchedulerSpec

    man, states = attacks.load_states(honest)
    spec = man.header.training.model_copy(update={"scheduler": SchedulerSpec(
        name="StepLR", kwargs={"step_size": 20, "gamma": 0.0})})
    attacks.forge_bundle(tmp_path / "sched", man.header.model_copy(update={"training": spec}),
                         states, source=honest)
    rep = verify_bundle(tmp_path / "sched", digits, q=1, r=0)
    assert not rep.accepted and any("drives a learning rate to 0" in r for r in rep.reasons)


def test_f_adversarial_examples_spoof(tmp_path: Path, honest_k1: Path, digits) -> None:
    """Zhang et al.: perturbed batches make interpolated steps (nearly) reproduce, but the
    data digests bind the exact bytes and the verifier replays on the committed data."""
    x, y = digits
    plain = attacks.interpolation_spoof(tmp_path / "plain", honest_k1, lr=None)
    rep_plain = verify_bundle(tmp_path / "plain", digits, q=100, r=0)
    # 1) the forger commits the real data's digest: data check passes, replay fails
    man, xp = attacks.adversarial_spoof(tmp_path / "f1", honest_k1, x, y, iters=25)
    assert plain.final_model == man.final_model
    assert float((xp - x).abs().max()) > 0  # the attack really perturbed the data
    rep = verify_bundle(tmp_path / "f1", digits, q=100, r=0)
    assert not rep.accepted and _check(rep, "data") and not _check(rep, "replay")
    assert min(s.error for s in rep.segments) > 2 * DEFAULT_THRESHOLD
    # on the forger's own perturbed batches the forged steps reproduce better than plain
    # interpolation does: the attack works as designed, the binding defeats it
    with pytest.raises(InputError, match="is not the committed"):  # not its data (issue 18:
        verify_bundle(tmp_path / "f1", (xp, y), q=100, r=0)  # the verifier's input error)
    from mltrail.pol.verifier import relative_error

    tr = attacks.Trainer(tmp_path / "f1", x, y)
    _, states = attacks.load_states(tmp_path / "f1")
    cks = man.checkpoints()
    on_perturbed = [relative_error(tr.replay(*states[i], cks[i].step, cks[i + 1].step,
                                             tr.on(xp, y))[0], states[i][0],
                                   states[i + 1][0])[0] for i in range(len(cks) - 1)]
    assert sum(on_perturbed) < 0.95 * sum(s.error for s in rep_plain.segments)
    # 2) the forger commits the perturbed data's digest: it is not the training data
    attacks.adversarial_spoof(tmp_path / "f2", honest_k1, x, y, iters=5,
                              commit_perturbed=True)
    # issue 18: data other than the committed bytes are never a verdict (exit 2, nothing
    # recorded); such a proof can never reach verified with the real data
    with pytest.raises(InputError, match="is not the committed"):
        verify_bundle(tmp_path / "f2", digits, q=1, r=1)


def test_forged_optimizer_state_is_caught_by_the_optimizer_check(
        tmp_path: Path, honest_k1: Path, digits) -> None:
    """Forged momentum buffers make every replayed step land exactly on the interpolated
    weights; the replayed optimizer state cannot match the recorded one."""
    man = attacks.momentum_spoof(tmp_path / "m", honest_k1, *digits)
    assert man.final_model == read_manifest(honest_k1).final_model
    rep = verify_bundle(tmp_path / "m", digits, q=100, r=0)
    assert not rep.accepted and [c.name for c in rep.checks if not c.ok] == ["replay"]
    later = [s for s in rep.segments if s.start_step > 0]
    assert max(s.error for s in later) < DEFAULT_THRESHOLD / 100  # the weights reproduce
    *middle, last = later  # the last buffer has no successor to contradict
    assert all((s.optim_error or 0.0) > DEFAULT_OPTIM_THRESHOLD for s in middle)
    # issue 18: replayed in the declared environment, the weights must be exact, so even
    # the last segment (whose buffer nothing contradicts) fails: its weights are not exact
    assert not any(s.ok for s in rep.segments) and last.error > 0
