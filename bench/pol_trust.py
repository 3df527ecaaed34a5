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
* ``foreign_cpu``: a proof recorded, and drifted, in a process running the kernels of
  the CPU level below this machine's, verified here with the default emulation and,
  for contrast, with emulation off and a ``pol calibrate`` row at its 1e-3 floor;
* ``grinding``: the three re-publication routes of :mod:`mltrail.testing.pol_grinding`
  on the embedded ledger, against the default verifier (secret, publications counted)
  and, for contrast, the public rule alone; and re-forging other weights after each
  rejection, against the default verifier (the publisher's rejections counted) and,
  for contrast, counting the same weights only. Each campaign has an identity of its own;
* ``patching``: a poisoned final model with code that patches the replay
  (:mod:`mltrail.testing.pol_patching`: in the pinned module, or in the ``--code``
  folder's start-up hooks), exported and in trusted-code mode, and whether an accepted
  verdict moves the model to ``verified`` on chain.

``--sections`` (``bench/pol.py``) picks some of them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


FOREIGN = """
import sys, torch
from pathlib import Path
from mltrail.pol.reftask import record_reference
from mltrail.reference import load_digits_tensors
from mltrail.testing.pol_drift import drift_proof
from mltrail.testing.pol_forgeries import load_states

torch.set_num_threads(1)
run, fracs, tmp = eval(sys.argv[1]), eval(sys.argv[2]), Path(sys.argv[3])
d = load_digits_tensors()
x, y = d.x_train, d.y_train
record_reference(tmp / "foreign-honest", x, y, k=1, seed=100, **run)
record_reference(tmp / "foreign-stolen", x, y, k=22, seed=200, **run)
stolen = load_states(tmp / "foreign-stolen")[1][-1][0]
for w in fracs:
    drift_proof(tmp / f"foreign-drift-{w:g}", tmp / "foreign-honest", stolen, x, y,
                weight_frac=w, optim_frac=3 * w)
"""
FOREIGN_FRACS = (1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2)


def bench_foreign_cpu(seeds: int, x: torch.Tensor, y: torch.Tensor, tmp: Path
                      ) -> dict[str, Any]:
    """A proof recorded (and drifted, by a forger at the same level) in a process running
    the kernels of the CPU level below this machine's, verified here: with the
    verifier's emulation (the default), and with it switched off and a ``pol calibrate``
    row at its floor (1e-3 weights, 3e-3 optimizer) for the pair instead."""
    import os
    import subprocess
    import sys

    from mltrail.pol import environment
    from mltrail.pol.bundle import read_manifest
    from mltrail.pol.environment import CPU_LEVELS, current, platform_key

    mine = str(torch.backends.cpu.get_cpu_capability())
    if mine not in CPU_LEVELS[1:]:
        return {"skipped": f"CPU {mine}: no lower x86 level to record in"}
    lower = CPU_LEVELS[CPU_LEVELS.index(mine) - 1]
    env = {**os.environ, "ATEN_CPU_CAPABILITY": lower.lower(), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", FOREIGN, repr(RUN), repr(FOREIGN_FRACS), str(tmp)],
                   check=True, env=env)
    honest = tmp / "foreign-honest"
    declared = read_manifest(honest).header.env
    assert declared is not None and declared.cpu_capability == lower
    row = {"recorded": platform_key(declared), "replayed": platform_key(current()),
           "threshold": 1e-3, "optim_threshold": 3e-3, "replays": 0}
    stolen = load_states(tmp / "foreign-stolen")[1][-1][0]
    hfinal = load_states(honest)[1][-1][0]
    real = environment.emulation
    cases: dict[str, Any] = {}
    for name, b in [("honest", honest)] + [(f"drift w={w:g}, optimizer {3 * w:g}",
                                            tmp / f"foreign-drift-{w:g}")
                                           for w in FOREIGN_FRACS]:
        now = [verify_bundle(b, (x, y), seed=s) for s in range(seeds)]
        try:
            environment.emulation = lambda *_a, **_k: None  # a verifier without it
            off = [verify_bundle(b, (x, y), seed=s, calibration=[row])
                   for s in range(seeds)]
        finally:
            environment.emulation = real
        cases[name] = {
            "accepted_emulated": _rate([r.accepted for r in now]),
            "max_error_emulated": max(r.max_error for r in now),
            "accepted_calibrated_1e-3": _rate([r.accepted for r in off]),
            "max_error_calibrated": max(r.max_error for r in off),
            "reached": closeness(load_states(b)[1][-1][0], stolen, hfinal, ARCH, x)}
    return {"recorded_at": lower, "verifier": mine, "seeds": seeds,
            "segments": len(read_manifest(honest).checkpoints()) - 1, "cases": cases}


def _chain(tmp: Path) -> tuple[Any, Any]:
    """An embedded ledger with a prover (data steward, model developer) and a verifier."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    home = init_home(tmp / "chain" / ".mltrail", password="pw")
    with Ledger.open(home, identity="admin", password="pw") as admin:
        for name, roles in {"mallory": ["data_steward", "model_developer"],
                            "victor": ["verifier"]}.items():
            addr = create_identity(home, name, "pw")
            for role in roles:
                admin.grant_role(addr, role)
    return (Ledger.open(home, identity="mallory", password="pw"),
            Ledger.open(home, identity="victor", password="pw"))


def bench_patching(seeds: int, mallory: Any, victor: Any, tmp: Path,
                   provers: int = 5) -> dict[str, Any]:
    """Issue 18's third attack: a poisoned final model with code that patches the replay
    (:mod:`mltrail.testing.pol_patching`), in the pinned module or in the ``--code``
    folder's start-up hooks, recorded exported and in trusted-code mode; ``seeds``
    verifications per case (``provers`` proofs, the rest verifier seeds). Trusted-code
    proofs are published, and every accepted verdict goes through ``record_verdict``."""
    from mltrail.pol.loopdata import tensors_of
    from mltrail.pol.onchain import publish_model, record_verdict
    from mltrail.testing import pol_patching as pp
    from mltrail.testing.pol_userloops import tabular_data

    per = -(-seeds // provers)
    rows: dict[str, dict[str, Any]] = {}
    for p in range(provers):
        data = tensors_of(tabular_data(n=64, seed=p))
        assert data is not None
        for where in ("module", "folder"):
            for trusted in (False, True):
                case = f"{where}, {'trusted code' if trusted else 'exported'}"
                row = rows.setdefault(case, {"accepted": [], "verified": [], "ran": [],
                                             "seconds": 0.0})
                canary, tag = tmp / f"canary-{where}-{trusted}-{p}", f"{where}-{trusted}-{p}"
                if where == "module":
                    folder = tmp / f"patch-code-{tag}"
                    b = pp.patched_module(tmp / f"patch-{tag}", folder, p, canary,
                                          trusted_code=trusted)
                else:
                    b, folder = pp.patched_folder(tmp / f"patch-{tag}",
                                                  tmp / f"patch-code-{tag}", p, canary,
                                                  trusted_code=trusted)
                model_id = publish_model(mallory, b, name=f"patched-{tag}")["model_id"]
                t0 = time.perf_counter()
                for s in range(per):
                    rep = verify_bundle(b, data, code_paths=[str(folder)], seed=1000 * p + s,
                                        trusted_code=trusted)
                    row["accepted"].append(rep.accepted)
                    row["ran"].append(canary.exists())
                    if rep.accepted:  # what pol verify --model would record (no override)
                        rec = record_verdict(victor, model_id, rep, allow_unseeded=True)
                        row["verified"].append(bool(rec["recorded"]))
                    else:
                        row["verified"].append(False)
                row["seconds"] += time.perf_counter() - t0
    return {"provers": provers, "verifications_per_case": per * provers,
            "note": "final model poisoned; the patch returns the bundle's next checkpoint "
                    "as every replay; 'verified' = moved to verified on chain without "
                    "--accept-trusted-code (--allow-unseeded given)",
            "cases": {case: {"accepted": _rate(r["accepted"]),
                             "moved_to_verified": _rate(r["verified"]),
                             "patch_ran": _rate(r["ran"]), "n": len(r["accepted"]),
                             "seconds": round(r["seconds"], 1)}
                      for case, r in rows.items()}}


def bench_grinding(seeds: int, x: torch.Tensor, y: torch.Tensor, tmp: Path,
                   mallory: Any, victor: Any) -> dict[str, Any]:
    from mltrail.pol.loop import ledger_init
    from mltrail.pol.loopdata import ArrayDataset, commit
    from mltrail.pol.onchain import ledger_anchor
    from mltrail.pol.workflows import TrainRequest, _register_data
    from mltrail.reference import build_model
    from mltrail.testing.pol_grinding import ROUTES, grind, reforge

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
                                   "slightly different drift) and publishes from an "
                                   "identity of its own, so campaigns do not count "
                                   "against each other"}
    n_forged = 0

    def forge(_a: int, folder: Path) -> Path:
        nonlocal n_forged
        drift_proof(folder, honest, stolen, x, y, weight_frac=0.05 + 1e-4 * n_forged,
                    segments=fakes)
        n_forged += 1
        return folder

    # every campaign by an identity of its own (a forger with many accounts: the worst
    # case for counting a publisher's rejections; campaigns stay independent)
    cases = [(r, {"secret": s}, "" if s else " (public rule only, old)")
             for r in ROUTES for s in (True, False)]
    cases += [("reforge", {"by_prover": b}, "" if b else " (same weights only, old)")
              for b in (True, False)]
    for route, how, label in cases:
        t0 = time.perf_counter()
        res = []
        for _ in range(seeds):
            with _prover(mallory, victor, f"g{n_forged}") as prover:
                work = tmp / f"g-{n_forged}"
                if route == "reforge":
                    res.append(reforge(prover, victor, forge, (x, y), ds, work,
                                       attempts=ATTEMPTS, miss_rate=MISS, **how))
                else:
                    res.append(grind(prover, victor, forge(0, tmp / f"gf-{n_forged}"),
                                     fakes, (x, y), ds, work, route=route,
                                     attempts=ATTEMPTS, miss_rate=MISS, **how))
        out["routes"][route + label] = {
            "accepted": _rate([r["accepted"] for r in res]), "campaigns": seeds,
            "mean_publications": round(sum(r["publications"] for r in res) / seeds, 2),
            "seconds": round(time.perf_counter() - t0, 1)}
    return out


@contextmanager
def _prover(mallory: Any, victor: Any, name: str) -> Iterator[Any]:
    """A new identity with the model developer role, open as a ledger."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger

    addr = create_identity(mallory.home, name, "pw")
    with Ledger.open(mallory.home, identity="admin", password="pw") as admin:
        admin.grant_role(addr, "model_developer")
    with Ledger.open(mallory.home, identity=name, password="pw") as led:
        yield led


SECTIONS = ("noise_floor", "honest", "drift", "foreign_cpu", "grinding", "patching")


def bench_trust(seeds: int, sections: tuple[str, ...] = SECTIONS) -> dict[str, Any]:
    d = load_digits_tensors()
    x, y = d.x_train, d.y_train
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name, pinned_threads(1):
        tmp = Path(tmp_name)
        for name, fn in (("noise_floor", lambda: bench_noise(x, y, tmp)),
                         ("honest", lambda: bench_honest(seeds, x, y, tmp)),
                         ("drift", lambda: bench_drift(seeds, x, y, tmp)),
                         ("foreign_cpu", lambda: bench_foreign_cpu(seeds, x, y, tmp))):
            if name in sections:
                out[name] = fn()
        if {"grinding", "patching"} & set(sections):
            mallory, victor = _chain(tmp)
            try:
                if "grinding" in sections:
                    out["grinding"] = bench_grinding(seeds, x, y, tmp, mallory, victor)
                if "patching" in sections:
                    out["patching"] = bench_patching(seeds, mallory, victor, tmp)
            finally:
                mallory.close()
                victor.close()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
