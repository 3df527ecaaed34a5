"""Calibration of the replay threshold from measured honest replay noise.

Owns :data:`DEFAULT_THRESHOLD` and :func:`calibrate`. Calibration records honest
proofs on the reference task and replays *every* segment under perturbed arithmetic:

* other CPU thread counts (different reduction orders in the BLAS / oneDNN kernels);
* float64 instead of float32 — a stand-in for other hardware (GPU kernels, TF32,
  fused ops), which changes every rounding, far more than a thread count does;
* a device (e.g. ``cuda``) when one is given.

The error of a segment is ‖W′−W_next‖ / ‖W_next−W‖ (see :mod:`mltrail.pol.verifier`).
The threshold is ``margin`` × the largest honest error measured, never below ``floor``,
overall and for each pair of platforms (``pairs``, what a verifier replaying on another
platform than the declared one uses: :mod:`mltrail.pol.tolerance`). In the declared
environment a replay is exact and no threshold applies. :data:`DEFAULT_THRESHOLD` is
no verifier's default any more (a proof that declares no environment is refused, not
held to it); it is reported as the old bound next to what calibration measures, and fixes
the optimizer/weights ratio. It never touches the ledger.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

DEFAULT_THRESHOLD = 0.1
"""Accept a segment when its weights' relative error is at most this (calibration doc)."""
DEFAULT_OPTIM_THRESHOLD = 0.3
"""... and its optimizer state's relative error at most this: 3× the worst honest value
(0.098); forged momentum buffers that make the weights replay exactly reach 0.58."""


def _pairs(rows: list[tuple[str, str, float, float]], *, margin: float,
           optim_margin: float, floor: float) -> list[dict[str, Any]]:
    """Calibration-file rows: per (recorded, replayed) platform pair that differ, the
    thresholds its honest replays imply (:func:`mltrail.pol.tolerance.decide` reads them)."""
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rec, rep, w, o in rows:
        if rec != rep:  # same platform: the verifier replays exactly (tolerance 0)
            by.setdefault((rec, rep), []).append((w, o))
    return [{"recorded": k[0], "replayed": k[1], "replays": len(v),
             "honest_max": max(w for w, _ in v),
             "threshold": max(floor, margin * max(w for w, _ in v)),
             "optim_threshold": max(floor, optim_margin * max(o for _, o in v))}
            for k, v in sorted(by.items())]


def calibrate(data: tuple[torch.Tensor, torch.Tensor], runs: Sequence[Mapping[str, Any]], *,
              threads: Sequence[int] = (2,), float64: bool = True,
              device: str | None = None, margin: float = 8.0, optim_margin: float = 3.0,
              floor: float = 1e-3, progress: Callable[[int], None] | None = None
              ) -> dict[str, Any]:
    """Record each run (kwargs of :func:`~mltrail.pol.reftask.record_reference`: the
    reference task as a loop spec) on one thread, replay all its segments (in the separate
    replay process) under each perturbation, return the statistics and the thresholds
    they imply (``margin`` × the worst honest error for the weights, ``optim_margin`` ×
    for the optimizer state, at least ``floor``), overall and per pair of platforms
    (``pairs``: what ``mltrail pol verify --calibration`` reads). ``progress(1)`` after
    each replay of a whole proof."""
    from mltrail.pol import environment
    from mltrail.pol.datafile import save_data
    from mltrail.pol.loopverify import measure_loop
    from mltrail.pol.reftask import record_reference
    from mltrail.reference import pinned_threads

    if device:
        environment.check_device(device)
    results: list[dict[str, Any]] = []
    weights: list[float] = []
    optim: list[float] = []
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "data.safetensors"
        save_data(data[0], data[1], where)
        for n, run in enumerate(runs):
            folder = Path(tmp) / f"run{n}"
            with pinned_threads(1):  # recorded on one thread, replayed under each mode
                record_reference(folder, data[0], data[1], **run)
            modes: list[tuple[str, int, torch.dtype, str]] = [
                (f"threads={t}", t, torch.float32, "cpu") for t in threads]
            if float64:
                modes.append(("float64", 1, torch.float64, "cpu"))
            if device:
                modes.append((device, 1, torch.float32, device))
            recorded = environment.platform_key(environment.current("cpu", torch.float32))
            for label, t, dt, dev in modes:
                errs = measure_loop(folder, str(where), threads=t, device=dev,
                                    dtype="float64" if dt == torch.float64 else "float32")
                w, o = [e[0] for e in errs], [e[1] for e in errs]
                weights += w
                optim += o
                here = environment.platform_key(environment.current(dev.split(":")[0], dt))
                rows += [(recorded, here, a, b) for a, b in errs]
                if progress is not None:
                    progress(1)
                results.append({"run": n, "arch": run["arch"].get("type"), "k": run["k"],
                                "seed": run["seed"], "optimizer": run["optimizer"].get("name"),
                                "mode": label, "segments": len(errs), "max": max(w),
                                "median": sorted(w)[len(w) // 2], "optim_max": max(o)})
    out = _summary(results, weights, optim, margin=margin, floor=floor,
                   optim_margin=optim_margin)
    out["pairs"] = _pairs(rows, margin=margin, optim_margin=optim_margin, floor=floor)
    return out


def reference_runs(seeds: int = 8) -> list[dict[str, Any]]:
    """The runs behind the defaults (``mltrail pol calibrate`` repeats them): the digits
    CNN with SGD+momentum at lr 0.05 (the CLI default) for k = 10, 43 (an epoch) and 86,
    the same at lr 0.1 (a less stable regime) for k = 10 and 43, and an MLP with Adam."""
    runs: list[dict[str, Any]] = []
    for seed in range(seeds):
        for lr, ks in ((0.05, (10, 43, 86)), (0.1, (10, 43))):
            for k in ks:
                runs.append({"arch": {"type": "cnn"}, "k": k, "epochs": 2, "batch_size": 32,
                             "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9},
                             "seed": seed})
        runs.append({"arch": {"type": "mlp", "hidden": [64]},
                     "optimizer": {"name": "adam", "lr": 0.003}, "k": 20, "epochs": 2,
                     "batch_size": 32, "seed": seed})
    return runs


def calibrate_loop(bundles: Sequence[str | Path], data: Any, *, code_paths: Sequence[str] = (),
                   threads: Sequence[int] = (2,), float64: bool = True,
                   device: str | None = None, margin: float = 8.0, optim_margin: float = 3.0,
                   floor: float = 1e-3, progress: Callable[[int], None] | None = None
                   ) -> dict[str, Any]:
    """Calibrate on the user's own set-up: replay every segment of honest proofs of the
    user's loop (in the separate replay process) under other thread counts, in float64
    and on ``device``; thresholds as in :func:`calibrate`."""
    from mltrail.pol import environment
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.loopverify import measure_loop

    if device:
        environment.check_device(device)
    rows: list[tuple[str, str, float, float]] = []
    results: list[dict[str, Any]] = []
    weights: list[float] = []
    optim: list[float] = []
    modes: list[tuple[str, int, str, str]] = [(f"threads={t}", t, "float32", "cpu")
                                              for t in threads]
    if float64:
        modes.append(("float64", 1, "float64", "cpu"))
    if device:
        modes.append((device, 1, "float32", device))
    for n, bundle in enumerate(bundles):
        for label, t, dt, dev in modes:
            errs = measure_loop(bundle, data, code_paths=code_paths, threads=t, dtype=dt,
                                device=dev)
            w, o = [e[0] for e in errs], [e[1] for e in errs]
            env = read_manifest(bundle).header.env
            if env is not None:
                here = environment.platform_key(environment.current(
                    dev.split(":")[0], getattr(torch, dt)))
                rows += [(environment.platform_key(env), here, a, b) for a, b in errs]
            if progress is not None:
                progress(1)
            weights += w
            optim += o
            results.append({"run": n, "bundle": str(bundle), "mode": label,
                            "segments": len(errs), "max": max(w),
                            "median": sorted(w)[len(w) // 2], "optim_max": max(o)})
    out = _summary(results, weights, optim, margin=margin, floor=floor,
                   optim_margin=optim_margin)
    out["pairs"] = _pairs(rows, margin=margin, optim_margin=optim_margin, floor=floor)
    return out


def _summary(results: list[dict[str, Any]], weights: list[float], optim: list[float], *,
             margin: float, floor: float, optim_margin: float) -> dict[str, Any]:
    """The thresholds from honest replay errors: ``margin`` × the worst, at least ``floor``."""
    worst, worst_o = max(weights), max(optim)
    weights = sorted(weights)
    return {"measurements": results, "replays": len(weights), "honest_max": worst,
            "honest_p99": weights[int(0.99 * (len(weights) - 1))],
            "honest_median": weights[len(weights) // 2], "honest_optim_max": worst_o,
            "margin": margin, "threshold": max(floor, margin * worst),
            "optim_margin": optim_margin,
            "optim_threshold": max(floor, optim_margin * worst_o),
            "default_threshold": DEFAULT_THRESHOLD,
            "default_optim_threshold": DEFAULT_OPTIM_THRESHOLD}
