"""Issue 18: exact replay in the declared environment, one tolerance decision, drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.errors import InputError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.environment import current, platform_key
from mltrail.pol.reftask import record_reference
from mltrail.pol.tolerance import decide
from mltrail.pol.verifier import verify_bundle
from mltrail.reference import build_model, init_weights, pinned_threads
from mltrail.testing.pol_drift import drift_proof, least_likely
from mltrail.testing.pol_forgeries import forge_bundle, load_states


def test_the_header_declares_the_environment_and_old_bundles_keep_their_digest(
        tmp_path: Path, honest_k1: Path, digits) -> None:
    man, states = load_states(honest_k1)
    env = man.header.env
    assert env is not None and env.threads == 1 and env.device == "cpu"
    assert env.dtype == "float32" and env.cpu_capability and env.blas
    # a bundle that declares no environment: same digest rule, still read; but no bound
    # is known to hold for it, so the verifier must choose one (--threshold)
    old = forge_bundle(tmp_path / "old", man.header.model_copy(update={"env": None}), states,
                       source=honest_k1)
    assert read_manifest(tmp_path / "old").header.env is None
    assert "env" not in (tmp_path / "old" / "manifest.json").read_text().split('"records"')[0]
    with pytest.raises(InputError, match="declares no environment"):
        verify_bundle(tmp_path / "old", digits, q=1, r=1)
    rep = verify_bundle(tmp_path / "old", digits, q=1, r=1, threshold=0.0)
    assert rep.accepted, rep.reasons  # this machine, this thread count: exact
    assert rep.tolerance is not None and rep.tolerance["basis"] == "given"
    assert old.header_digest != man.header_digest


def test_a_declared_thread_count_is_reproduced_exactly(tmp_path: Path, digits) -> None:
    b = tmp_path / "t2"
    with pinned_threads(2):
        record_reference(b, *digits, arch={"type": "mlp", "hidden": [32]}, k=20, epochs=1,
                         batch_size=32, seed=5, optimizer={"name": "sgd", "lr": 0.1,
                                                           "momentum": 0.9})
    assert read_manifest(b).header.env.threads == 2  # type: ignore[union-attr]
    rep = verify_bundle(b, digits, q=1, r=1)  # the caller runs one thread
    assert rep.accepted and rep.torch_threads == 2 and rep.max_error == 0.0


def test_another_platform_needs_a_measured_threshold(tmp_path: Path, honest_k1: Path,
                                                     digits) -> None:
    man, states = load_states(honest_k1)
    assert man.header.env is not None
    other = man.header.env.model_copy(update={"cpu_capability": "NEON", "blas": "open"})
    forge_bundle(tmp_path / "arm", man.header.model_copy(update={"env": other}), states,
                 source=honest_k1)
    with pytest.raises(InputError, match="no calibration for that pair"):
        verify_bundle(tmp_path / "arm", digits, q=1, r=1)
    row = {"recorded": platform_key(other), "replayed": platform_key(current()),
           "threshold": 2e-3, "optim_threshold": 4e-3, "replays": 40}
    rep = verify_bundle(tmp_path / "arm", digits, q=1, r=1, calibration=[row])
    assert rep.accepted and rep.tolerance is not None
    assert rep.tolerance["basis"] == "calibrated" and rep.threshold == 2e-3
    given = decide(other, current(), override=0.05)
    assert given.basis == "given" and given.threshold == 0.05
    with pytest.raises(InputError):
        decide(other, current(), calibration=[{**row, "threshold": "x"}])


def test_drift_inside_the_old_tolerance_is_rejected(tmp_path: Path, honest_k1: Path,
                                                    digits) -> None:
    """The issue's forgery: every segment nudged towards a stolen model by a fraction of
    its update (5 %; optimizer state 15 %). The old 0.1 / 0.3 tolerance accepted it;
    replayed in the declared environment any drift at all rejects."""
    x, y = digits
    arch = {"type": "mlp", "hidden": [32]}  # conftest's MLP_K1
    stolen = init_weights(build_model(arch), "uniform_fan_in", 99).state_dict()
    drift_proof(tmp_path / "d", honest_k1, stolen, x, y, weight_frac=0.05, optim_frac=0.15)
    assert verify_bundle(tmp_path / "d", digits, q=1, r=2, threshold=0.1).accepted  # old
    rep = verify_bundle(tmp_path / "d", digits, q=1, r=2)
    assert not rep.accepted and all(not s.ok for s in rep.segments)
    # the same drift with the environment stripped (anyone can): refused, never held to
    # the old bound; a verifier who chooses the exact bound rejects it
    man, states = load_states(tmp_path / "d")
    forge_bundle(tmp_path / "bare", man.header.model_copy(update={"env": None}), states,
                 source=tmp_path / "d")
    with pytest.raises(InputError, match="declares no environment"):
        verify_bundle(tmp_path / "bare", digits, q=1, r=2)
    assert not verify_bundle(tmp_path / "bare", digits, q=1, r=2, threshold=0.0).accepted
    # a drift of 0.1 % of the update, only where a random draw alone can reach
    quiet = least_likely(honest_k1, 3)
    drift_proof(tmp_path / "q", honest_k1, stolen, x, y, weight_frac=0.001, segments=quiet)
    caught = [not verify_bundle(tmp_path / "q", digits, q=1, r=None, seed=s).accepted
              for s in range(5)]
    assert all(caught)
