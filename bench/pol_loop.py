"""Proof-of-Learning for a user's own loop: recording overhead and user-loop adversaries.

Prints one JSON document.

* ``overhead``: the same user loop (a small ResNet, Adam with two parameter groups and a
  cosine schedule, a ``DataLoader`` with a seeded ``RandomSampler``; and a tiny MLP, the
  worst case because its steps are cheapest) run bare and under ``record_loop`` at
  k = 100, interleaved ``--repeat`` times in the same process; the ratio recorded / bare
  (target ≤ 1.05 at k = 100);
* ``adversaries``: over ``--provers`` prover seeds and ``--seeds`` verifier seeds each:
  the pinned module swapped for a file with the same import path (refused by the source
  digest) and the same with the digest re-pinned and the manifest re-chained (only the
  replay can notice), a loss with hidden state (a call counter), one checkpoint's
  scheduler state edited, and one step trained at 3× the declared rate with honest-looking
  files. Replay-based detection is computed exactly from one full replay per proof (every
  segment, in the separate process, from freshly imported code as the verifier does): a
  verifier seed catches the proof when the segments its challenge picks include one that
  does not reproduce; a few proofs are also verified end to end as a cross-check.

* ``export``: per example loop (tabular MLP with a custom loss and a transform; small
  ResNet; tiny transformer with dropout) over ``--provers`` seeds: the time to record it
  exported (``torch.export`` of model, loss and transform, checked bitwise against eager)
  vs in trusted-code mode, the time to verify it from its programs in the verifier's
  process vs by running the prover's code in a separate process, the replay error of each;
  and, over the same seeds, the share of tampered programs
  (:mod:`mltrail.testing.pol_export_adversaries`) rejected and of canaries never written.

Runs on one CPU thread; about 10 minutes with the defaults on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from mltrail.errors import InputError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.calibration import DEFAULT_OPTIM_THRESHOLD, DEFAULT_THRESHOLD
from mltrail.pol.loop import record_loop
from mltrail.pol.loopdata import tensors_of
from mltrail.pol.loopverify import measure_loop
from mltrail.pol.verifier import plan, verify_bundle
from mltrail.testing import pol_loop_adversaries as adv
from mltrail.testing import pol_userloops as loops
from mltrail.testing.pol_forgeries import load_states


def _resnet_loop(recorded: bool, out: Path, k: int, epochs: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(512, 3, 16, 16, generator=gen),
                         torch.randint(0, 4, (512,), generator=gen))
    torch.manual_seed(0)
    model = loops.make_resnet(width=8)
    head = [p for n, p in model.named_parameters() if n.startswith("head")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head")]
    opt = torch.optim.Adam([{"params": body, "lr": 3e-3}, {"params": head, "lr": 1e-2}])
    loader = DataLoader(data, batch_size=32, sampler=RandomSampler(
        data, generator=torch.Generator().manual_seed(0)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    return _timed(recorded, out, k, epochs, model, opt, loader, sched,
                  factory=loops.make_resnet, kwargs={"width": 8})


def _mlp_loop(recorded: bool, out: Path, k: int, epochs: int) -> tuple[float, float]:
    data = loops.tabular_data(n=4096)
    torch.manual_seed(0)
    model = loops.make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(data, batch_size=32, shuffle=True)
    return _timed(recorded, out, k, epochs, model, opt, loader, None,
                  factory=loops.make_mlp, kwargs={})


def _timed(recorded: bool, out: Path, k: int, epochs: int, model: torch.nn.Module,
           opt: torch.optim.Optimizer, loader: DataLoader[Any], sched: Any, *, factory: Any,
           kwargs: dict[str, Any]) -> tuple[float, float]:
    loss_fn = loops.cross_entropy
    t, c = time.perf_counter(), time.process_time()
    if recorded:
        with record_loop(out, model, opt, loader, model_factory=factory,
                         factory_kwargs=kwargs, loss=loss_fn, scheduler=sched, epochs=epochs,
                         k=k) as rec:
            for _ in range(epochs):
                for xb, yb in rec.loader:
                    opt.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    rec.step()
    else:
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
                if sched is not None:
                    sched.step()
    return time.perf_counter() - t, time.process_time() - c


def bench_loop_overhead(repeat: int = 5, k: int = 100) -> list[dict[str, Any]]:
    """Bare vs recorded, interleaved in one process, for two user loops: wall time and
    the process's CPU time (less sensitive to other jobs on a shared machine)."""
    res = []
    for name, fn, epochs in (("resnet-adam-2groups-cosine", _resnet_loop, 20),
                             ("mlp-tabular", _mlp_loop, 3)):
        bare, rec = [], []
        with tempfile.TemporaryDirectory() as tmp:
            fn(False, Path(tmp) / "warm", k, 1)
            fn(True, Path(tmp) / "warm-rec", k, 1)  # imports, first file writes
            for r in range(repeat):
                bare.append(fn(False, Path(tmp) / f"b{r}", k, epochs))
                rec.append(fn(True, Path(tmp) / f"r{r}", k, epochs))
            steps = read_manifest(Path(tmp) / "r0").header.training.total_steps
        row: dict[str, Any] = {"loop": name, "k": k, "steps": steps, "repeat": repeat}
        for i, what in ((0, "wall"), (1, "cpu")):
            b, r_ = [t[i] for t in bare], [t[i] for t in rec]
            ratios = [y / x for x, y in zip(b, r_, strict=True)]
            row[what] = {"bare_s": [round(t, 3) for t in b],
                         "recorded_s": [round(t, 3) for t in r_],
                         "ratio_median_of_pairs": round(statistics.median(ratios), 4),
                         "ratio_of_medians": round(statistics.median(r_) /
                                                   statistics.median(b), 4),
                         "ratio_of_best": round(min(r_) / min(b), 4)}
        print(json.dumps(row), file=sys.stderr, flush=True)
        res.append(row)
    return res


def _failing(bundle: Path, data: dict[str, torch.Tensor], code: Path) -> set[int]:
    errs = measure_loop(bundle, data, code_paths=[str(code)])
    return {i for i, (w, o) in enumerate(errs)
            if not (w <= DEFAULT_THRESHOLD and o <= DEFAULT_OPTIM_THRESHOLD)}


def _catch_rate(bundle: Path, failing: set[int], seeds: int) -> tuple[float, int]:
    man, states = load_states(bundle)
    caught, r = 0, 0
    for s in range(seeds):
        chosen, _, rule = plan(man, states, 1, None, 0.01, 0.1, s)
        r = int(rule["r"])
        caught += any(i in failing for i, _ in chosen)
    return caught / seeds, r


def bench_loop_adversaries(provers: int, seeds: int) -> dict[str, Any]:
    n = 256  # 16 steps per epoch, 3 epochs, k = 1: 48 segments
    out: dict[str, Any] = {"provers": provers, "verifier_seeds": seeds,
                           "note": "tabular MLP, SGD+momentum, StepLR, k=1, 48 segments"}
    rows: dict[str, list[float]] = {"swap_refused": [], "swap_repinned": [],
                                    "hidden_state": [], "scheduler_edited": [],
                                    "lr_lie_3x": [], "lr_lie_1.2x": []}
    segs: dict[str, list[int]] = {k: [] for k in rows}
    checked = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for p in range(provers):
            code = base / f"code{p}"
            data = tensors_of(loops.tabular_data(n=n, seed=p))
            assert data is not None
            honest = adv.honest(base / f"h{p}", code, p, n=n)
            b, folder = adv.swap_source(base / f"s{p}", code, p, repin=False, n=n)
            try:  # refused as the verifier's input (exit 2) before any of it runs
                verify_bundle(b, data, code_paths=[str(folder)], seed=p, trusted_code=True)
                rows["swap_refused"].append(0.0)
            except InputError:
                rows["swap_refused"].append(1.0)
            adv.edit_scheduler_state(base / f"e{p}", honest, p)
            rep = verify_bundle(base / f"e{p}", data, code_paths=[str(code)], seed=p,
                                 trusted_code=True)
            rows["scheduler_edited"].append(float(rep.verdict == "rejected"))
            replayed = {"swap_repinned": adv.swap_source(base / f"r{p}", code, 1000 + p,
                                                         repin=True, n=n)[0],
                        "hidden_state": adv.hidden_state(base / f"x{p}", code, p, n=n),
                        "lr_lie_3x": adv.lr_lie(base / f"l{p}", code, p, n=n)[0],
                        "lr_lie_1.2x": adv.lr_lie(base / f"m{p}", code, p, boost=1.2,
                                                  n=n)[0]}
            for name, bundle in replayed.items():
                d = data if name != "swap_repinned" else tensors_of(
                    loops.tabular_data(n=n, seed=1000 + p))
                assert d is not None
                bad = _failing(bundle, d, code)
                rate, r = _catch_rate(bundle, bad, seeds)
                rows[name].append(rate)
                segs[name].append(len(bad))
                if p < 1:  # end-to-end cross-check of the exact computation
                    rep = verify_bundle(bundle, d, code_paths=[str(code)], seed=0,
                                         trusted_code=True)
                    predicted = _catch_rate(bundle, bad, 1)[0]
                    checked.append({"adversary": name, "prover": p,
                                    "verified": rep.verdict, "predicted_caught": predicted,
                                    "agree": (rep.verdict == "rejected") == bool(predicted)})
            print(json.dumps({"prover": p, **{k: v[-1] for k, v in rows.items()}}),
                  file=sys.stderr, flush=True)
    out["detection"] = {k: round(statistics.mean(v), 4) for k, v in rows.items()}
    out["detection_min_over_provers"] = {k: round(min(v), 4) for k, v in rows.items()}
    out["failing_segments_of_48"] = {k: (min(v), max(v)) for k, v in segs.items() if v}
    out["end_to_end_checks"] = checked
    return out


def _timed_call(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench_export(provers: int) -> dict[str, Any]:
    """Exported vs trusted-code recording and verification; program adversaries."""
    from mltrail.testing import pol_export_adversaries as xadv

    rows: dict[str, dict[str, list[float]]] = {}
    caught: dict[str, list[float]] = {k: [] for k in (*xadv.KINDS, "foreign_loss")}
    canaries = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for p in range(provers):
            for name, rec in (("mlp-custom-loss-transform", loops.record_mlp),
                              ("resnet-bn-adam-cosine", loops.record_resnet),
                              ("transformer-dropout", loops.record_transformer)):
                row = rows.setdefault(name, {k: [] for k in (
                    "record_exported_s", "record_trusted_s", "verify_exported_s",
                    "verify_trusted_s", "max_error_exported", "max_error_trusted")})
                ex, t_ex = _timed_call(rec, base / f"{name}-x{p}", seed=p)
                tr, t_tr = _timed_call(rec, base / f"{name}-t{p}", seed=p, trusted_code=True)
                data = loops.loop_data(ex)
                rx, v_ex = _timed_call(verify_bundle, ex, data, seed=p)
                rt, v_tr = _timed_call(verify_bundle, tr, loops.loop_data(tr), seed=p,
                                       trusted_code=True)
                assert rx.verdict == rt.verdict == "accepted", (rx.reasons, rt.reasons)
                for key, val in (("record_exported_s", t_ex), ("record_trusted_s", t_tr),
                                 ("verify_exported_s", v_ex), ("verify_trusted_s", v_tr),
                                 ("max_error_exported", rx.max_error),
                                 ("max_error_trusted", rt.max_error)):
                    row[key].append(val)
            honest = base / f"mlp-custom-loss-transform-x{p}"
            data = loops.loop_data(honest)
            for kind in xadv.KINDS:
                canary = base / f"canary-{kind}-{p}"
                rep = verify_bundle(xadv.tamper_program(base / f"{kind}-{p}", honest, kind,
                                                        canary), data, seed=p)
                caught[kind].append(float(rep.verdict == "rejected"))
                canaries += canary.exists()
            rep = verify_bundle(xadv.foreign_loss(base / f"loss-{p}", honest), data, seed=p)
            caught["foreign_loss"].append(float(rep.verdict == "rejected"))
            print(json.dumps({"prover": p, **{k: v[-1] for k, v in caught.items()}}),
                  file=sys.stderr, flush=True)
    summary = {name: {k: round(statistics.median(v), 4) if "error" not in k else max(v)
                      for k, v in row.items()} for name, row in rows.items()}
    for row in summary.values():
        row["verify_ratio_exported_over_trusted"] = round(
            row["verify_exported_s"] / row["verify_trusted_s"], 3)
        row["record_ratio_exported_over_trusted"] = round(
            row["record_exported_s"] / row["record_trusted_s"], 3)
    return {"provers": provers, "loops": summary,
            "rejected": {k: round(statistics.mean(v), 4) for k, v in caught.items()},
            "canaries_written": canaries,
            "note": "guards code is dropped, never run: that program is otherwise honest, "
                    "so it is accepted (the canary is what matters)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--provers", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--only", choices=["all", "overhead", "adversaries", "export"],
                    default="all")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "torch": torch.__version__, "threads": 1,
                           "machine": platform.machine(), "python": sys.version.split()[0]}
    if args.only in ("all", "overhead"):
        out["overhead"] = bench_loop_overhead(args.repeat)
    if args.only in ("all", "adversaries"):
        out["adversaries"] = bench_loop_adversaries(args.provers, args.seeds)
    if args.only in ("all", "export"):
        out["export"] = bench_export(args.provers)
    out["bench_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
