"""Calibration: honest replay noise is measured, and it sits far below the threshold."""

from __future__ import annotations

from pathlib import Path

from mltrail.pol.calibration import (
    DEFAULT_OPTIM_THRESHOLD,
    DEFAULT_THRESHOLD,
    calibrate,
    reference_runs,
)
from mltrail.pol.loopverify import measure_loop
from mltrail.testing import pol_forgeries as attacks


def test_honest_noise_is_measured_and_below_the_default(digits) -> None:
    run = {**reference_runs(1)[0], "epochs": 1}  # the digits CNN, k = 10
    res = calibrate(digits, [run], threads=(2,), float64=True)
    modes = {m["mode"] for m in res["measurements"]}
    assert modes == {"threads=2", "float64"}
    assert all(m["segments"] == 5 for m in res["measurements"])
    assert 0.0 < res["honest_max"] < DEFAULT_THRESHOLD / 100  # perturbed, yet tiny
    assert res["honest_optim_max"] < DEFAULT_OPTIM_THRESHOLD / 100
    assert res["threshold"] <= DEFAULT_THRESHOLD
    # issue 18: per pair of platforms, what verify --calibration reads; a thread count is
    # not a platform (the verifier reproduces it), float64 is
    (pair,) = res["pairs"]
    assert "dtype=float32" in pair["recorded"] and "dtype=float64" in pair["replayed"]
    assert 0.0 < pair["threshold"] <= DEFAULT_THRESHOLD and pair["replays"] == 5


def test_spoof_errors_are_far_above_the_threshold(tmp_path: Path, honest: Path,
                                                  digits) -> None:
    attacks.interpolation_spoof(tmp_path / "b", honest, lr=None)
    errs = [w for w, _ in measure_loop(tmp_path / "b", digits)]
    assert min(errs) > 5 * DEFAULT_THRESHOLD
    honest_errs = [w for w, _ in measure_loop(honest, digits, threads=1)]
    assert max(honest_errs) == 0.0  # same arithmetic as the prover: bit-exact
