"""Training across untrusted workers on Ray: detection rates and the cost of spot checks.

Prints one JSON document; each section is a function of the pool of worker actors (one
local Ray cluster for the whole run) and returns its part of the document:

* ``detection``: per adversary (:mod:`mltrail.testing.distributed_adversaries`), over
  ``--seeds`` seeds, 3 workers of which worker 2 (and, for colluders, worker 1 too) is
  dishonest, an MLP on the digits (2 epochs, 30 rounds). Each run replays EVERY update
  (spot-check fraction 1, nothing excluded) and keeps each update's challenge draw u (from
  a fresh secret per seed); at fraction f a cheating worker is caught iff one of its
  corrupted updates has u < f — exactly what a run at fraction f does up to the catch,
  because the draws do not depend on f and nothing changes before a catch. Rates for
  several f, the default fraction included, beside the formula's 1 - (1 - f)^c averaged
  over the runs' numbers c of corrupted updates; honest workers' false positives too;
* ``coordinator``: a dishonest coordinator (honest workers) that scales every step's
  aggregate gradient by ``1 + eps`` (:mod:`mltrail.testing.distributed_coordinators`),
  over ``--seeds`` seeds per eps (eps = 0 is the honest control): how often the ordinary
  verifier (``verify_bundle``, its segment seed = the run's) rejects the proof now (the
  recorded shards replayed exactly, same-environment tolerance 0) and before issue 22 (the
  same bundle labelled as then, ``+dp3`` and a full-batch replay, under the calibrated
  floor 0.001);
* ``overhead``: the same honest run with spot checks at the default fraction and with
  none, interleaved ``--repeat`` times in this process; the ratio of the median training
  times (target <= 1.15), and the share of the time spent replaying;
* ``overhead_long``: the same for a 300-round run (20 epochs), whose default fraction for
  the same guarantee is 0.142 instead of 0.785.

Runs on one torch thread per process; a few minutes with the defaults.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from mltrail.distributed.coordinator import Options, plan, start_workers, train_distributed
from mltrail.distributed.spotcheck import fraction
from mltrail.reference import load_digits_tensors, pinned_threads
from mltrail.testing import distributed_adversaries as adv

FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
WORKERS, BATCH, EPOCHS = 3, 32, 2
EPSILONS = (1e-3, 1e-4, 1e-5)
LONG_EPOCHS = 20  # 300 rounds: the default fraction for them is 0.142, not 0.785
SECTIONS = ("detection", "coordinator", "overhead", "overhead_long")


def _data() -> TensorDataset:
    d = load_digits_tensors()
    return TensorDataset(d.x_train.reshape(len(d.x_train), -1).contiguous(), d.y_train)


def _opts(seed: int, **kw: Any) -> Options:
    base: dict[str, Any] = {"workers": WORKERS, "batch_size": BATCH, "epochs": EPOCHS, "k": 10}
    return Options(seed=seed, **{**base, **kw})


def _train(pool: list[Any], tmp: Path, seed: int, behaviours: dict[int, Any],
           coordinator: Any = None, **kw: Any) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if coordinator is not None:
        coordinator.install(opt)
    out = Path(tempfile.mkdtemp(dir=tmp))
    secret = hashlib.sha256(f"bench-secret:{seed}".encode()).digest()
    return train_distributed(out / "proof", model, opt, _data(), loss="cross_entropy",
                             opts=_opts(seed, **kw), behaviours=behaviours, pool=pool,
                             secret=secret)


def adversaries(seed: int, shards: list[list[list[int]]]) -> dict[str, dict[int, Any]]:
    """name -> {worker: behaviour}; worker 2 is the cheater (and 1, for colluders)."""
    return {"random": {2: adv.RandomUpdate(seed)}, "scaled": {2: adv.ScaledUpdate()},
            "stale": {2: adv.StaleUpdate()}, "free-rider": {2: adv.FreeRider(shards, 0)},
            "rare": {2: adv.RareCheater(seed, 0.05)},
            "collude": {1: adv.Colluder(seed, 0.1), 2: adv.Colluder(seed, 0.1)}}


def detection(pool: list[Any], tmp: Path, seeds: int,
              tick: Callable[[str], None]) -> dict[str, Any]:
    n = len(_data())
    rounds = EPOCHS * len(plan(n, _opts(0))[0])
    default = fraction(rounds)
    fs = sorted({*FRACTIONS, round(default, 4)})
    per: dict[str, dict[str, Any]] = {}
    honest_fp = 0
    honest_checks = 0
    for name in ("honest", "random", "scaled", "stale", "free-rider", "rare", "collude"):
        caught = {f: 0 for f in fs}
        any_pair = {f: 0 for f in fs}
        cheated_runs, corrupted = 0, []
        for s in range(seeds):
            shards = [st for e in plan(n, _opts(s)) for st in e]
            beh = {} if name == "honest" else adversaries(s, shards)[name]
            res = _train(pool, tmp, s, beh, spot_check=1.0, exclude=False, log=True)
            bad = [e for e in res["log"] if not e["ok"]]
            if name == "honest":
                honest_fp += len(bad)
                honest_checks += len(res["log"])
                continue
            cheaters = sorted(beh)
            corrupted.append(sum(1 for e in bad if e["worker"] == cheaters[-1]))
            cheated_runs += bool(bad)
            for f in fs:
                hit = {w: any(e["worker"] == w and e["u"] < f for e in bad) for w in cheaters}
                caught[f] += hit[cheaters[-1]]
                any_pair[f] += any(hit.values())
            tick(name)
        if name == "honest":
            continue
        row: dict[str, Any] = {
            "seeds": seeds, "runs_with_cheating": cheated_runs,
            "corrupted_updates_per_run": {"min": min(corrupted), "median":
                                          statistics.median(corrupted), "max": max(corrupted)},
            "detection_rate": {f"{f:g}": caught[f] / seeds for f in fs},
            "formula_rate": {f"{f:g}": statistics.fmean(1 - (1 - f) ** c for c in corrupted)
                             for f in fs}}
        if name == "collude":
            row["either_caught_rate"] = {f"{f:g}": any_pair[f] / seeds for f in fs}
        per[name] = row
    return {"rounds": rounds, "workers": WORKERS, "default_fraction": default,
            "default_covers": "a worker corrupting >= 10% of its updates, missed with "
                              "probability <= 0.01",
            "honest_false_positives": honest_fp, "honest_updates_replayed": honest_checks,
            "adversaries": per}


def coordinator(pool: list[Any], tmp: Path, seeds: int,
                tick: Callable[[str], None]) -> dict[str, Any]:
    from mltrail.pol.verifier import verify_bundle
    from mltrail.testing import distributed_coordinators as dc

    d = _data()
    data = {"x": d.tensors[0], "y": d.tensors[1]}
    rows: dict[str, Any] = {}
    for eps in (0.0, *EPSILONS):
        now, before, bases = [], [], set()
        for s in range(seeds):
            res = _train(pool, tmp, s, {}, dc.ScaledAggregate(eps), spot_check=0.0)
            rep = verify_bundle(res["bundle"], data, seed=s)
            old_path = Path(res["bundle"]).with_name("before")
            dc.as_before_issue_22(old_path, res["bundle"], WORKERS)
            old = verify_bundle(old_path, data, seed=s,
                                calibration=dc.calibrated_floor(old_path))
            assert rep.tolerance is not None and old.tolerance is not None
            bases.add((rep.tolerance["basis"], old.tolerance["basis"]))
            now.append((not rep.accepted, rep.max_error))
            before.append((not old.accepted, old.max_error))
            tick("c")
        rows[f"{eps:g}"] = {
            "seeds": seeds, "bases": sorted(f"{a} / {b}" for a, b in bases),
            "rejected_rate_now": sum(r for r, _ in now) / seeds,
            "rejected_rate_before": sum(r for r, _ in before) / seeds,
            "max_error_now": {"min": min(e for _, e in now), "max": max(e for _, e in now)},
            "max_error_before": {"min": min(e for _, e in before),
                                 "max": max(e for _, e in before)}}
    return {"adversary": "scaled aggregate (1 + eps) at every step; eps 0: honest",
            "before": f"+dp{WORKERS} label, full-batch replay, calibrated floor "
                      f"{dc.OLD_FLOOR:g}", "now": "recorded shards replayed exactly",
            "eps": rows}


def overhead(pool: list[Any], tmp: Path, repeat: int, epochs: int = EPOCHS) -> dict[str, Any]:
    with_check, without, replay_share, fracs = [], [], [], []
    _train(pool, tmp, 0, {})  # warm-up: actors import and load once
    for r in range(repeat):
        a = _train(pool, tmp, r, {}, epochs=epochs)
        b = _train(pool, tmp, r, {}, spot_check=0.0, epochs=epochs)
        with_check.append(a["wall_s"])
        without.append(b["wall_s"])
        replay_share.append(a["replay_s"] / a["wall_s"])
        fracs.append(a["spot_check"])
    med_a, med_b = statistics.median(with_check), statistics.median(without)
    return {"repeat": repeat, "epochs": epochs, "rounds": a["rounds"], "fraction": fracs[0],
            "train_s_spot_checked_median": med_a, "train_s_unchecked_median": med_b,
            "slowdown_ratio": med_a / med_b, "target": 1.15,
            "replay_share_of_training": statistics.median(replay_share)}


def _tick(_: str) -> None:
    print(".", end="", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 seeds, 2 repeats")
    ap.add_argument("--only", action="append", choices=SECTIONS,
                    help="run only this section (repeatable; default: all)")
    args = ap.parse_args(argv)
    seeds, repeat = (3, 2) if args.quick else (args.seeds, args.repeat)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    import ray

    with pinned_threads(1), tempfile.TemporaryDirectory(prefix="bench-dp-") as t:
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        try:
            pool = start_workers(WORKERS)
            tmp = Path(t)
            doc: dict[str, Any] = {
                "bench": "distributed", "utc": started, "python": platform.python_version(),
                "torch": torch.__version__, "ray": ray.__version__,
                "cpus": __import__("os").cpu_count()}
            runs: dict[str, Callable[[], dict[str, Any]]] = {
                "detection": lambda: detection(pool, tmp, seeds, _tick),
                "coordinator": lambda: coordinator(pool, tmp, seeds, _tick),
                "overhead": lambda: overhead(pool, tmp, repeat),
                "overhead_long": lambda: overhead(pool, tmp, repeat, LONG_EPOCHS)}
            for name in SECTIONS:
                if not args.only or name in args.only:
                    doc[name] = runs[name]()
        finally:
            ray.shutdown()
    doc["finished_utc"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    print(file=sys.stderr)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
