"""Parallel replay: wall time of ``mltrail pol verify --workers N`` against ``--workers 1``.

Prints one JSON document. One exported user-loop proof (the small ResNet of
``bench/pol_loop.py``: Adam with two groups, a cosine schedule) is recorded with
``--k`` steps per segment; then ``mltrail pol verify`` (a fresh process each time, as a
user runs it) replays ``--segments`` challenged segments with N = 1, 2, 4 workers
(local processes; ``--ray local`` adds a local Ray cluster), interleaved ``--repeat``
times so that the machine's other load falls on every N alike. For each N: the wall
times, the ratio to N = 1 (median of the per-round ratios), and whether every report is
the serial one byte for byte once the timing fields (``total_seconds``,
``replay_seconds``) are dropped.

The speed-up is bounded by the cores: the machine's CPU count is printed with the
result (on a shared 2-core machine N = 4 cannot beat N = 2). Each worker is a new
process that imports torch (a fixed cost of seconds), so parallel replay pays off when
the challenged segments take longer than that.

    python bench/parallel_verify.py [--k 32] [--epochs 16] [--segments 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pol_loop import _resnet_loop  # noqa: E402  (the same loop, not a copy)

TIMING = ("total_seconds", "replay_seconds")


def _mltrail() -> list[str]:
    exe = Path(sys.executable).with_name("mltrail")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mltrail.cli.main"]


def _untimed(path: Path) -> str:
    doc = json.loads(path.read_bytes())
    for k in TIMING:
        doc.pop(k, None)
    return json.dumps(doc, sort_keys=True)


def _verify_here(bundle: Path, data: Path, n: int, segments: int, report: Path,
                 ray: str | None) -> float:
    """The same verification through the library in this process (``--library``: where
    no ``mltrail`` command is installed); workers are started inside the timing."""
    from mltrail.pol.parallel import workers
    from mltrail.pol.verifier import verify_bundle

    t = time.perf_counter()
    with workers(n, ray if n > 1 else None):
        rep = verify_bundle(bundle, str(data), q=0, r=segments, seed=7)
    wall = time.perf_counter() - t
    report.write_bytes(rep.to_json())
    return wall


def _verify(bundle: Path, data: Path, n: int, segments: int, report: Path,
            ray: str | None) -> float:
    cmd = [*_mltrail(), "pol", "verify", str(bundle), "--data", str(data), "--seed", "7",
           "--q", "0", "--random", str(segments), "--workers", str(n), "--threads", "1",
           "--report", str(report), "--json"]
    if ray is not None and n > 1:
        cmd += ["--ray", ray]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"pol verify --workers {n} exited {proc.returncode}: "
                         f"{proc.stderr.strip()[-300:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=32, help="steps per segment")
    ap.add_argument("--epochs", type=int, default=16, help="epochs of 16 steps")
    ap.add_argument("--segments", type=int, default=8, help="challenged segments")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--ray", default=None, help="also through Ray at this address")
    ap.add_argument("--library", action="store_true",
                    help="verify through the library in this process, not the command")
    args = ap.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    import torch

    from mltrail.provenance.digest import save_state_dict
    from mltrail.reference import pinned_threads

    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp_name:
        tmp = Path(tmp_name)
        bundle = tmp / "proof"
        t = time.perf_counter()
        with pinned_threads(1):
            _resnet_loop(True, bundle, args.k, args.epochs)
        record_s = time.perf_counter() - t
        gen = torch.Generator().manual_seed(0)  # the loop's data, as _resnet_loop draws it
        x = torch.randn(512, 3, 16, 16, generator=gen)
        y = torch.randint(0, 4, (512,), generator=gen)
        data = tmp / "data.safetensors"
        save_state_dict({"x": x, "y": y}, data)
        modes = [(n, None) for n in args.workers] + \
            ([(n, args.ray) for n in args.workers if n > 1] if args.ray else [])
        walls: dict[str, list[float]] = {}
        reports: dict[str, list[str]] = {}
        for r in range(args.repeat):
            for n, ray in modes:
                key = f"{n}" + (f"@ray:{ray}" if ray else "")
                rep = tmp / f"r{r}-{key.replace(':', '_')}.json"
                run = _verify_here if args.library else _verify
                walls.setdefault(key, []).append(run(bundle, data, n, args.segments, rep, ray))
                reports.setdefault(key, []).append(_untimed(rep))
                print(json.dumps({"round": r, "workers": key,
                                  "wall_s": round(walls[key][-1], 3)}), file=sys.stderr,
                      flush=True)
        serial = reports["1"][0]
        rows = []
        for key, w in walls.items():
            ratios = [a / b for a, b in zip(w, walls["1"], strict=True)]
            rows.append({"workers": key, "wall_s": [round(v, 3) for v in w],
                         "ratio_to_serial_median": round(statistics.median(ratios), 3),
                         "speedup_median": round(1 / statistics.median(ratios), 3),
                         "report_identical_to_serial": all(rp == serial
                                                           for rp in reports[key])})
    print(json.dumps({
        "bench": "bench/parallel_verify.py", "started_utc": started,
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "loadavg_1min_at_end": round(os.getloadavg()[0], 2)},
        "proof": {"loop": "resnet-adam-2groups-cosine (bench/pol_loop.py)", "k": args.k,
                  "epochs": args.epochs, "record_s": round(record_s, 2),
                  "challenged_segments": args.segments, "threads_per_worker": 1},
        "how": "library (verify_bundle in one process)" if args.library else
               "mltrail pol verify, a fresh process per run",
        "timing_fields_excluded": list(TIMING),
        "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
