"""Calibration of the replay threshold from measured honest replay noise.

Owns :data:`DEFAULT_THRESHOLD` and :func:`calibrate`. Calibration records honest
proofs on the reference task and replays *every* segment under perturbed arithmetic:

* other CPU thread counts (different reduction orders in the BLAS / oneDNN kernels);
* float64 instead of float32 — a stand-in for other hardware (GPU kernels, TF32,
  fused ops), which changes every rounding, far more than a thread count does;
* a device (e.g. ``cuda``) when one is given.

The error of a segment is ‖W′−W_next‖ / ‖W_next−W‖ (see :mod:`mltrail.pol.verifier`).
The threshold is ``margin`` × the largest honest error measured, never below ``floor``;
``docs/pol-calibration.md`` gives the numbers behind :data:`DEFAULT_THRESHOLD`. It
never touches the ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

DEFAULT_THRESHOLD = 0.01
"""Accept a segment when its relative error is at most this (see the calibration doc)."""


def _replay(spec: Any, m0: Mapping[str, torch.Tensor], o0: Mapping[str, torch.Tensor],
            x: torch.Tensor, y: torch.Tensor, start: int, end: int, dtype: torch.dtype,
            device: str) -> dict[str, torch.Tensor]:
    from mltrail.pol.reference import build_model
    from mltrail.pol.replay import load_optimizer_tensors, run_steps

    model = build_model(spec.arch).to(device)
    model.load_state_dict(m0)
    model.to(dtype)
    opt = spec.make_optimizer(model)
    load_optimizer_tensors(model, opt, {k: v.to(dtype) if v.is_floating_point() else v
                                        for k, v in o0.items()})
    run_steps(spec, model, opt, x.to(dtype), y, start, end)
    return {k: v.detach().to("cpu", m0[k].dtype) for k, v in model.state_dict().items()}


def measure(bundle: str | Path, data: tuple[torch.Tensor, torch.Tensor], *, threads: int = 1,
            dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[float]:
    """Relative error of every segment of ``bundle`` replayed under the given arithmetic."""
    from mltrail.pol.attacks import load_states
    from mltrail.pol.verifier import relative_error

    man, states = load_states(bundle)
    cks = man.checkpoints()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = []
        for i in range(len(cks) - 1):
            mr = _replay(man.header.training, states[i][0], states[i][1], data[0], data[1],
                         cks[i].step, cks[i + 1].step, dtype, device)
            out.append(relative_error(mr, states[i][0], states[i + 1][0])[0])
        return out
    finally:
        torch.set_num_threads(old)


def calibrate(data: tuple[torch.Tensor, torch.Tensor], runs: Sequence[Mapping[str, Any]], *,
              threads: Sequence[int] = (2, 4), float64: bool = True,
              device: str | None = None, margin: float = 10.0, floor: float = 1e-3
              ) -> dict[str, Any]:
    """Record each run (kwargs of :func:`~mltrail.pol.recorder.record_training`) on one
    thread, replay all its segments under each perturbation, return the statistics and
    the threshold they imply."""
    from mltrail.pol.recorder import record_training
    from mltrail.pol.reference import pinned_threads

    results: list[dict[str, Any]] = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for n, run in enumerate(runs):
            folder = Path(tmp) / f"run{n}"
            with pinned_threads(1):
                record_training(folder, data[0], data[1], **run)
            modes: list[tuple[str, int, torch.dtype, str]] = [
                (f"threads={t}", t, torch.float32, "cpu") for t in threads]
            if float64:
                modes.append(("float64", 1, torch.float64, "cpu"))
            if device:
                modes.append((device, 1, torch.float32, device))
            for label, t, dt, dev in modes:
                errs = measure(folder, data, threads=t, dtype=dt, device=dev)
                worst = max(worst, *errs)
                results.append({"run": n, "arch": run["arch"].get("type"), "k": run["k"],
                                "optimizer": run["optimizer"].get("name"), "mode": label,
                                "segments": len(errs), "max": max(errs),
                                "median": sorted(errs)[len(errs) // 2]})
    return {"measurements": results, "honest_max": worst, "margin": margin, "floor": floor,
            "threshold": max(floor, margin * worst), "default_threshold": DEFAULT_THRESHOLD}


REFERENCE_RUNS: list[dict[str, Any]] = [
    {"arch": {"type": "cnn"}, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
     "k": 10, "epochs": 2, "batch_size": 32, "seed": 11},
    {"arch": {"type": "cnn"}, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
     "k": 43, "epochs": 2, "batch_size": 32, "seed": 12},
    {"arch": {"type": "mlp", "hidden": [64]},
     "optimizer": {"name": "adam", "lr": 0.003}, "k": 20, "epochs": 2, "batch_size": 32,
     "seed": 13},
]
"""The runs behind :data:`DEFAULT_THRESHOLD` (``mltrail pol calibrate`` repeats them)."""
