"""Proof-of-Learning benchmark: trust rates; recording overhead, proof size, verification.

Prints one JSON document. By default (``--only trust``, ``bench/pol_trust.py``; about
3 minutes for the first four sections and 20 in all on the shared 2-core machine of
2026-12-05): issue 18's rates over ``--seeds`` seeds — honest acceptance at 1, 2 and 4
threads, drift at fractions of the old tolerance, drift under a foreign CPU level,
grinding the challenge by re-publication, replay-patching code, and verification cost
as a ratio of Q·E + R (``--sections`` picks some). ``--only all`` runs the older
sections below. Two tasks: the reference CNN on digits, and a ResNet-20 on synthetic
32×32×3 data for a few hundred steps. For each:

* ``overhead``: wall time of the recorded loop vs the same loop without the recorder,
  at k ∈ {10, 100, steps-per-epoch}; best of ``--repeat`` runs each (target ≤ 10% at
  k = 100);
* ``size``: bytes per checkpoint (model + optimizer safetensors) vs the raw state
  (float32 parameters and buffers), and the whole bundle;
* ``verify``: verification time at the default miss rate (Q = 1 per epoch, R from
  ``--miss-rate 0.01 --forged 0.1``, plus the final segment and predecessors) as a
  fraction of training time, and as a multiple of the ideal (Q·E + R)·k / total steps;
* ``detection`` (issue 7): one forged segment out of N (N = 10, 100, 1,000; tiny MLP,
  k = 1) over ``--seeds`` verifier seeds: measured detection vs the hypergeometric
  prediction, for R from the stated target, the default R and R = pool/10;
* ``loop_overhead`` (issue 10): a user's own loop (small ResNet, Adam with two parameter
  groups, cosine schedule; and a tiny tabular MLP) bare vs under ``record_loop`` at
  k = 100, interleaved in the same run (``bench/pol_loop.py`` has it and the user-loop
  adversaries);
* ``adversaries``: the forged optimizer-state segment and small-update fakes at 1, 2 and
  5 of 43 segments (digits MLP, k = 1) over the same seeds, and re-submission shopping
  (5 attempts, with and without the prior-rejection rule).

Runs on one CPU thread unless ``--threads``; about 10 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mltrail.pol.reftask import record_reference
from mltrail.pol.verifier import verify_bundle
from mltrail.reference import build_model, load_digits_tensors


def _baseline(x: torch.Tensor, y: torch.Tensor, run: dict[str, Any]) -> float:
    """The same loop as :func:`record_reference` runs, without the recorder."""
    from torch.utils.data import DataLoader

    from mltrail.pol.loopdata import ArrayDataset
    from mltrail.pol.reftask import _optimizer

    torch.manual_seed(run["seed"])
    model = build_model(run["arch"])
    opt = _optimizer(model, run["optimizer"])
    loader = DataLoader(ArrayDataset.of({"x": x, "y": y}), batch_size=run["batch_size"],
                        shuffle=True, generator=torch.Generator().manual_seed(run["seed"] + 1))
    t = time.perf_counter()
    for _ in range(run["epochs"]):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return time.perf_counter() - t


def _recorded(x: torch.Tensor, y: torch.Tensor, run: dict[str, Any], k: int, out: Path
              ) -> float:
    t = time.perf_counter()
    record_reference(out, x, y, k=k, **run)  # pol train's loop spec (exported program)
    return time.perf_counter() - t


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def bench_task(name: str, x: torch.Tensor, y: torch.Tensor, run: dict[str, Any],
               repeat: int) -> dict[str, Any]:
    spe = -(-len(y) // run["batch_size"])
    steps = spe * run["epochs"]
    _baseline(x[:run["batch_size"] * 4], y[:run["batch_size"] * 4], run)  # warm the kernels
    base = min(_baseline(x, y, run) for _ in range(repeat))
    res: dict[str, Any] = {"task": name, "samples": len(y), "steps_per_epoch": spe,
                           "epochs": run["epochs"], "steps": steps,
                           "baseline_s": round(base, 3), "overhead": [], "verify": []}
    model = build_model(run["arch"])
    raw = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    res["params"] = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        for k in sorted({10, 100, spe}):
            times = []
            for r in range(repeat):
                out = Path(tmp) / f"k{k}-{r}"
                times.append(_recorded(x, y, run, k, out))
            best = min(times)
            res["overhead"].append({"k": k, "recorded_s": round(best, 3),
                                    "overhead_pct": round(100 * (best - base) / base, 1)})
            out = Path(tmp) / f"k{k}-0"
            man = verify_bundle(out, (x, y), q=1, seed=0)  # R from the default miss rate
            cks = len(list((out / "checkpoints").glob("*.model.safetensors")))
            per_ck = _dir_size(out / "checkpoints") / cks
            segs = len(man.segments)
            replayed = sum(s.end_step - s.start_step for s in man.segments) / steps
            ideal = min(1.0, (run["epochs"] + man.r) * k / steps)  # (Q·E + R)·k / steps
            res["verify"].append({
                "k": k, "verdict": man.verdict, "segments": segs, "r": man.r,
                "r_rule": man.r_rule,
                "replay_s": round(man.replay_seconds, 3),
                "total_s": round(man.total_seconds, 3),
                "replay_fraction": round(man.replay_seconds / base, 4),
                "total_fraction": round(man.total_seconds / base, 4),
                "replayed_steps_fraction": round(replayed, 4),
                "ideal_fraction": round(ideal, 4),
                "replay_vs_ideal": round(man.replay_seconds / base / ideal, 3),
                "total_vs_ideal": round(man.total_seconds / base / ideal, 3),
                "max_error": man.max_error})
            if k == 100 or k == spe:
                res.setdefault("size", []).append({
                    "k": k, "checkpoints": cks, "bytes_per_checkpoint": int(per_ck),
                    "raw_state_bytes": raw, "ratio": round(per_ck / raw, 3),
                    "bundle_bytes": _dir_size(out),
                    "indices_bytes": _dir_size(out / "indices")})
    print(json.dumps(res), file=sys.stderr, flush=True)
    return res


def _tiny(n: int, out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An honest k = 1 proof of N = ``n`` segments: a 4-4-2 MLP, batch 1, one epoch."""
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, 1, 2, 2, generator=gen)
    y = (x.reshape(n, -1).sum(1) > 0).long()
    record_reference(out, x, y, arch={"type": "mlp", "in_features": 4, "hidden": [4],
                                      "classes": 2},
                     optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, k=1, epochs=1,
                     batch_size=1, seed=n)
    return x, y


def _rate(bundle: Path, data: tuple[torch.Tensor, torch.Tensor], seeds: int,
          **kw: Any) -> tuple[float, dict[str, Any]]:
    caught, rule = 0, {}
    for s in range(seeds):
        rep = verify_bundle(bundle, data, seed=1_000_003 * s + 17, **kw)
        caught += not rep.accepted
        rule = rep.r_rule
    return caught / seeds, rule


def bench_detection(seeds: int) -> list[dict[str, Any]]:
    """One forged segment of N: measured over ``seeds`` verifier seeds vs predicted."""
    from mltrail.pol import challenge as ch
    from mltrail.testing.pol_adversaries import forged_segment
    from mltrail.testing.pol_forgeries import load_states

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (10, 100, 1000):
            honest = Path(tmp) / f"h{n}"
            x, y = _tiny(n, honest)
            man, states = load_states(honest)
            epochs = [0] * n
            score = ch.scores(ch.state_changes(states))
            fixed = {i for i, w in ch.choose_segments(epochs, score, 1, 0, 0)
                     if w != "predecessor"}
            order = sorted((i for i in range(1, n - 2) if i not in fixed and i + 1 not in fixed),
                           key=lambda i: score[i])
            j = order[len(order) // 2]  # a segment of median size, as a cheater would pick
            bad = Path(tmp) / f"f{n}"
            forged_segment(bad, honest, x, y, j)
            pool = ch.pool_size(epochs, score, 1)
            for label, kw in (("stated target: --forged 1/N --miss-rate 0.01",
                               {"forged": 1 / n, "miss_rate": 0.01}),
                              ("default (--forged 0.1 --miss-rate 0.01)", {}),
                              ("R = pool/10", {"r": max(1, pool // 10)})):
                rate, rule = _rate(bad, (x, y), seeds, **kw)
                r = int(rule.get("r", 0))
                out.append({
                    "N": n, "forged_segment": j, "mode": label, "pool": pool, "r": r,
                    "seeds": seeds, "measured_detection": rate,
                    "predicted_detection": round(1 - ch.miss_probability(pool, 1, r), 4),
                    "predicted_with_predecessors": round(
                        1 - ch.miss_probability(pool, 2, r), 4)})
                print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def bench_adversaries(seeds: int) -> dict[str, Any]:
    """Issue 7's adversaries on the digits MLP (k = 1, 43 segments) over ``seeds`` seeds."""
    from mltrail.pol import challenge as ch
    from mltrail.testing import pol_adversaries as adv

    d = load_digits_tensors()
    x, y = d.x_train, d.y_train
    res: dict[str, Any] = {"seeds": seeds}
    with tempfile.TemporaryDirectory() as tmp:
        honest = Path(tmp) / "honest"
        record_reference(honest, x, y, arch={"type": "mlp", "hidden": [32]},
                         optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}, k=1, epochs=1,
                         batch_size=32, seed=3)
        adv.forged_optimizer_segment(Path(tmp) / "opt", honest, x, y, 20)
        rate, rule = _rate(Path(tmp) / "opt", (x, y), seeds)
        res["forged_optimizer_state"] = {"measured_detection": rate, "r": rule.get("r"),
                                         "predicted_detection": 1.0}
        res["small_update_fakes"] = []
        for count in (1, 2, 5):
            _, fakes = adv.small_update_fakes(Path(tmp) / f"s{count}", honest, count, seed=count)
            rate, rule = _rate(Path(tmp) / f"s{count}", (x, y), seeds)
            pool, r = int(rule["pool"]), int(rule["r"])
            res["small_update_fakes"].append({
                "fakes": count, "of": 43, "r": r, "pool": pool, "measured_detection": rate,
                "predicted_detection_min": round(1 - ch.miss_probability(pool, 2 * count, r), 4)})
        _, _ = adv.small_update_fakes(Path(tmp) / "shop", honest, 1, seed=7)
        shop: dict[str, Any] = {"attempts": 5, "fakes": 1}
        for rule_on in (False, True):
            wins = 0
            for s in range(seeds):
                for attempt in range(5):
                    rep = verify_bundle(Path(tmp) / "shop", (x, y), seed=7919 * s + attempt,
                                        prior_rejections=["x"] * attempt if rule_on else [])
                    if rep.accepted:
                        wins += 1
                        break
            shop["cheater_success_with_rule" if rule_on else "cheater_success_without_rule"] \
                = wins / seeds
        res["resubmission_shopping"] = shop
    print(json.dumps(res), file=sys.stderr, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="digits only")
    ap.add_argument("--seeds", type=int, default=50, help="verifier seeds per rate")
    ap.add_argument("--only", choices=["trust", "all", "cost", "detection", "loop"],
                    default="trust", help="trust (default, issue 18: honest acceptance per "
                    "thread count, drift, grinding, cost; a few minutes) or the older sections")
    ap.add_argument("--sections", default="",
                    help="with --only trust: a comma list of noise_floor, honest, drift, "
                    "foreign_cpu, grinding, patching (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = load_digits_tensors()
    sgd = {"name": "sgd", "lr": 0.05, "momentum": 0.9}
    out: dict[str, Any] = {"torch": torch.__version__, "threads": args.threads,
                           "machine": platform.machine(), "python": sys.version.split()[0],
                           "tasks": []}
    t0 = time.perf_counter()
    if args.only == "trust":
        from pol_trust import SECTIONS, bench_trust  # bench/ is on the path as a script

        out["utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        picked = tuple(s for s in args.sections.split(",") if s) or SECTIONS
        if set(picked) - set(SECTIONS):
            ap.error(f"--sections: choose from {', '.join(SECTIONS)}")
        out["trust"] = bench_trust(args.seeds, picked)
        out["bench_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(out, indent=2))
        return
    if args.only in ("all", "loop"):
        from pol_loop import bench_loop_overhead  # bench/ is on the path when run as a script

        out["loop_overhead"] = bench_loop_overhead(max(args.repeat, 5))
        if args.only == "loop":
            print(json.dumps(out, indent=2))
            return
    if args.only in ("all", "detection"):
        out["detection"] = bench_detection(args.seeds)
        out["adversaries"] = bench_adversaries(args.seeds)
    if args.only == "detection":
        out["bench_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(out, indent=2))
        return
    out["tasks"].append(bench_task("digits-cnn", d.x_train, d.y_train,
                                   {"arch": {"type": "cnn"}, "optimizer": sgd, "epochs": 6,
                                    "batch_size": 32, "seed": 0}, args.repeat))
    if not args.quick:
        gen = torch.Generator().manual_seed(0)
        n = 1280
        x = torch.rand(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        out["tasks"].append(bench_task(
            "resnet20-synthetic32", x, y,
            {"arch": {"type": "resnet", "depth": 20}, "optimizer": sgd, "epochs": 2,
             "batch_size": 16, "seed": 0}, 1))
    out["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
