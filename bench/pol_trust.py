"""Issue 18's measurements: honest acceptance per thread count, drift, grinding, cost.

``bench_trust(seeds)`` returns one JSON-able dict (``bench/pol.py --only trust``, the
default, prints it). Small, fast configurations (a digits MLP, k = 1), so that every
rate is over ``seeds`` seeds on a loaded 2-core machine in a few minutes:

* ``noise_floor``: every segment of proofs recorded at 1, 2 and 4 threads replayed at
  1, 2 and 4 threads and in float64 (the largest relative error of each);
* ``honest``: one proof recorded per seed at 1, 2 and 4 torch threads, verified with the
  defaults (replayed in the declared environment, exact): acceptance (target >= 99 %);
* ``cost``: segments replayed per verification as a ratio of the ideal Q·E + R;
* ``drift``: drift towards a stolen model at fractions of the old tolerance (weights
  c·0.1 and optimizer state c·0.3 of each segment's update), weights only, optimizer
  only, and only in the segments least likely to be drawn; acceptance over verifier
  seeds now, and under the old 0.1 threshold for contrast; how close each got;
* ``grinding``: the three re-publication routes of :mod:`mltrail.testing.pol_grinding`
  on the embedded ledger, against the default verifier (secret, publications counted)
  and, for contrast, the public rule alone.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mltrail.pol.reftask import record_reference
from mltrail.pol.verifier import verify_bundle
from mltrail.reference import load_digits_tensors, pinned_threads
from mltrail.testing.pol_drift import closeness, drift_proof, least_likely
from mltrail.testing.pol_forgeries import load_states

ARCH = {"type": "mlp", "hidden": [16]}
RUN: dict[str, Any] = {"arch": ARCH, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                       "epochs": 1, "batch_size": 64}


MISS = 0.25  # the stated miss rate of the grinding runs: large enough to measure
ATTEMPTS = 3  # publications a grinding prover makes at most


def _rate(flags: list[bool]) -> float:
    return round(sum(flags) / max(len(flags), 1), 4)


def bench_noise(x: torch.Tensor, y: torch.Tensor, tmp: Path) -> dict[str, Any]:
    """Largest (weights, optimizer) replay error of every segment of a proof recorded at
    1, 2 and 4 threads, replayed at 1, 2 and 4 threads and in float64 (one epoch)."""
    from mltrail.pol.datafile import save_data
    from mltrail.pol.loopverify import measure_loop

    where = tmp / "noise-data.safetensors"
    save_data(x, y, where)
    out: dict[str, Any] = {}
    for name, run in (("cnn sgd k=10", {"arch": {"type": "cnn"}, "k": 10, "epochs": 1,
                                        "batch_size": 32, "optimizer": {
                                            "name": "sgd", "lr": 0.05, "momentum": 0.9}}),
                      ("mlp adam k=10", {"arch": {"type": "mlp", "hidden": [64]}, "k": 10,
                                         "epochs": 1, "batch_size": 32,
                                         "optimizer": {"name": "adam", "lr": 0.003}})):
        for rec in (1, 2, 4):
            b = tmp / f"noise-{name.split()[0]}-{rec}"
            with pinned_threads(rec):
                record_reference(b, x, y, seed=rec, **run)
            for label, threads, dtype in (("threads=1", 1, torch.float32),
                                          ("threads=2", 2, torch.float32),
                                          ("threads=4", 4, torch.float32),
                                          ("float64", rec, torch.float64)):
                errs = measure_loop(b, str(where), threads=threads,
                                    dtype="float64" if dtype == torch.float64 else "float32")
                out[f"{name}, recorded on {rec}, replayed {label}"] = {
                    "max": max(e[0] for e in errs), "optim_max": max(e[1] for e in errs),
                    "segments": len(errs)}
    return out


def bench_honest(seeds: int, x: torch.Tensor, y: torch.Tensor, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ratios: list[float] = []
    for threads in (1, 2, 4):
        ok: list[bool] = []
        t0 = time.perf_counter()
        for s in range(seeds):
            b = tmp / f"h{threads}-{s}"
            with pinned_threads(threads):
                record_reference(b, x, y, k=2, seed=s, **{**RUN, "batch_size": 128})
            rep = verify_bundle(b, (x, y), seed=s)
            ok.append(rep.accepted and rep.max_error == 0.0)
            ideal = rep.q * len(load_states(b)[0].epoch_records()) + rep.r
            ratios.append(len(rep.segments) / max(ideal, 1))
        out[f"threads_{threads}"] = {"accepted": _rate(ok), "proofs": seeds,
                                     "seconds": round(time.perf_counter() - t0, 1)}
    ratios.sort()
    out["cost_vs_ideal_QE_plus_R"] = {"median": round(ratios[len(ratios) // 2], 3),
                                      "max": round(ratios[-1], 3),
                                      "note": "segments replayed / (Q·E + R); the rest are "
                                              "the final segment and predecessors"}
    return out


def bench_drift(seeds: int, x: torch.Tensor, y: torch.Tensor, tmp: Path) -> dict[str, Any]:
    honest = tmp / "drift-honest"
    record_reference(honest, x, y, k=1, seed=100, **RUN)
    thief = tmp / "drift-stolen"
    record_reference(thief, x, y, k=22, seed=200, **RUN)
    stolen = load_states(thief)[1][-1][0]
    hman, hstates = load_states(honest)
    hfinal = hstates[-1][0]
    segs = len(hman.checkpoints()) - 1
    quiet = least_likely(honest, -(-segs // 10))  # the stated 10 % of segments
    cases: list[tuple[str, float, float, list[int] | None]] = []
    for c in (0.01, 0.1, 0.5, 0.9):
        cases.append((f"both c={c}", 0.1 * c, 0.3 * c, None))
    cases += [("weights only c=0.9", 0.09, 0.0, None), ("optimizer only c=0.9", 0.0, 0.27, None),
              ("least likely 10% c=0.9", 0.09, 0.27, quiet),
              ("least likely 10% c=0.01", 0.001, 0.003, quiet)]
    out: dict[str, Any] = {"segments": segs, "least_likely": quiet, "cases": []}
    for name, wf, of, only in cases:
        b = tmp / f"drift-{len(out['cases'])}"
        man = drift_proof(b, honest, stolen, x, y, weight_frac=wf, optim_frac=of, segments=only)
        final = load_states(b)[1][-1][0]
        now = [verify_bundle(b, (x, y), seed=s).accepted for s in range(seeds)]
        old = [verify_bundle(b, (x, y), seed=s, threshold=0.1).accepted
               for s in range(min(seeds, 10))]
        out["cases"].append({"case": name, "weight_frac": wf, "optim_frac": of,
                             "accepted_now": _rate(now), "seeds": seeds,
                             "accepted_old_threshold_0.1": _rate(old),
                             "reached": closeness(final, stolen, hfinal, ARCH, x),
                             "final_model": man.final_model[:19]})
    return out


def bench_grinding(seeds: int, x: torch.Tensor, y: torch.Tensor, tmp: Path) -> dict[str, Any]:
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home
    from mltrail.pol.onchain import ledger_anchor
    from mltrail.pol.workflows import TrainRequest, _register_data
    from mltrail.testing.pol_grinding import ROUTES, grind

    home = init_home(tmp / "chain" / ".mltrail", password="pw")
    with Ledger.open(home, identity="admin", password="pw") as admin:
        for name, roles in {"mallory": ["data_steward", "model_developer"],
                            "victor": ["verifier"]}.items():
            addr = create_identity(home, name, "pw")
            for role in roles:
                admin.grant_role(addr, role)
    mallory = Ledger.open(home, identity="mallory", password="pw")
    victor = Ledger.open(home, identity="victor", password="pw")
    try:
        from mltrail.pol.loop import ledger_init
        from mltrail.pol.loopdata import ArrayDataset, commit
        from mltrail.reference import build_model

        data = ArrayDataset.of({"x": x, "y": y})
        digest = commit(data, pin_transform=False)[0].digest
        ds = _register_data(mallory, TrainRequest(out=tmp, name="grind"), digest)
        honest = tmp / "grind-honest"
        record_reference(honest, x, y, k=1, seed=300, anchor=ledger_anchor(mallory, ds),
                         ledger_args=ledger_init(mallory, ds, build_model(ARCH), data), **RUN)
        segs = len(load_states(honest)[0].checkpoints()) - 1
        fakes = least_likely(honest, -(-segs // 10))
        stolen = {k: torch.zeros_like(v) for k, v in load_states(honest)[1][-1][0].items()}
        out: dict[str, Any] = {"segments": segs, "fakes": fakes, "miss_rate": MISS,
                               "forged": 0.1, "max_publications": ATTEMPTS, "routes": {},
                               "note": "each campaign forges its own final weights (a "
                                       "slightly different drift), so campaigns do not "
                                       "count as publications of each other's weights"}
        n_forged = 0
        for route in ROUTES:
            for secret, n in ((True, seeds), (False, min(seeds, 10))):
                t0 = time.perf_counter()
                res = []
                for _ in range(n):
                    forged = tmp / f"grind-forged-{n_forged}"
                    drift_proof(forged, honest, stolen, x, y,
                                weight_frac=0.05 + 1e-4 * n_forged, segments=fakes)
                    n_forged += 1
                    res.append(grind(mallory, victor, forged, fakes, (x, y), ds,
                                     tmp / f"g-{n_forged}", route=route, attempts=ATTEMPTS,
                                     secret=secret, miss_rate=MISS))
                key = f"{route}{'' if secret else ' (public rule only, old)'}"
                out["routes"][key] = {
                    "accepted": _rate([r["accepted"] for r in res]), "campaigns": n,
                    "mean_publications": round(sum(r["publications"] for r in res) / n, 2),
                    "seconds": round(time.perf_counter() - t0, 1)}
        return out
    finally:
        mallory.close()
        victor.close()


def bench_trust(seeds: int) -> dict[str, Any]:
    d = load_digits_tensors()
    x, y = d.x_train, d.y_train
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name, pinned_threads(1):
        tmp = Path(tmp_name)
        out["noise_floor"] = bench_noise(x, y, tmp)
        out["honest"] = bench_honest(seeds, x, y, tmp)
        out["drift"] = bench_drift(seeds, x, y, tmp)
        out["grinding"] = bench_grinding(seeds, x, y, tmp)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
