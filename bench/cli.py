"""CLI latency: the installed ``mltrail`` command, read and write commands, as a user runs them.

Each command runs as a fresh process in place (``--repeat`` times, interleaved with
``python -c pass`` so a loaded machine slows both alike) on an embedded home holding a few
artefacts. Prints JSON: median wall and CPU (user + sys) milliseconds per command, each
also as a ratio to the median of ``python -c pass`` in the same run, and the load average
(wall times on a shared machine follow its load; CPU times much less). Targets (issue 20,
on an idle 2-core machine): reads <= 150 ms, writes (``register``, ``transition``)
<= 600 ms; ``targets_met`` compares the wall medians with them, and
``targets_met_cpu`` the CPU medians (what an idle machine's wall time comes close to).
``import_ms_one_run`` shows where a read's and a write's start-up goes: one run each under
``python -X importtime``, import milliseconds summed by top-level package. Bytecode is
cached (in the run's temporary folder) as in an installed copy; the set-up commands warm
it. The script drives the ``mltrail`` next to the Python running it; ``--baseline PYTHON``
also runs another installation's, interleaved in the same rounds on its own home (with
``MLTRAIL_AGENT=off``, for checkouts that still had the warm agent), so a before/after
comes from one run under one load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXE = str(Path(sys.executable).with_name("mltrail"))
READS = [["show", "ds"], ["history", "ds"], ["lineage", "ds"], ["list"], ["roles", "list"],
         ["ledger", "status"], ["show", "ds", "--json"], ["list", "--json"]]
READ_TARGET_MS, WRITE_TARGET_MS = 150.0, 600.0


CPU: dict[str, list[float]] = {}


def _run(cmd: list[str], env: dict[str, str], cwd: Path, label: str | None = None) -> float:
    """Wall milliseconds of one run; its CPU milliseconds (user + sys) go to CPU[label]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    dt = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    if label is not None:
        CPU.setdefault(label, []).append(1000 * (after.ru_utime - before.ru_utime
                                                 + after.ru_stime - before.ru_stime))
    return dt


def import_ms(cmd: list[str], env: dict[str, str], cwd: Path, top: int = 8) -> dict[str, Any]:
    """One run under ``python -X importtime``: import milliseconds by top-level package
    (self times summed), the ``top`` largest, and the total."""
    p = subprocess.run([sys.executable, "-X", "importtime", EXE, *cmd], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    by: dict[str, float] = {}
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| \s*(\S+)", line)
        if m:
            name = m.group(2).split(".")[0]
            by[name] = by.get(name, 0.0) + int(m.group(1)) / 1000
    largest = dict(sorted(by.items(), key=lambda kv: -kv[1])[:top])
    return {"total": round(sum(by.values()), 1), "modules_by_package": len(by),
            "largest": {k: round(v, 1) for k, v in largest.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--baseline", metavar="PYTHON",
                    help="another installation's Python: its mltrail runs too, interleaved, "
                         "on its own home with MLTRAIL_AGENT=off (a before/after in one run)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [("", EXE, _setup(EXE, root / "home"))]
        if args.baseline:
            exe = str(Path(args.baseline).with_name("mltrail"))
            runs.append(("baseline: ", exe, _setup(exe, root / "baseline", MLTRAIL_AGENT="off")))
        times = _rounds(args.repeat, runs)
        env = runs[0][2]
        f = root / "imports.bin"
        f.write_bytes(os.urandom(64))
        imports = {"show ds --json": import_ms(["show", "ds", "--json"], env, root),
                   "register (write)": import_ms(["--as", "alice", "register", str(f), "-k",
                                                  "model"], env, root)}
    base = statistics.median(times["python -c pass"])
    medians = {k: round(statistics.median(v), 1) for k, v in times.items()}
    cpu = {k: round(statistics.median(v), 1) for k, v in CPU.items()}
    cpu_base = max(cpu["python -c pass"], 1.0)
    out = {
        "bench": "cli", "repeat": args.repeat, "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "baseline": args.baseline,
        "median_ms": medians,
        "ratio_to_python_c_pass": {k: round(v / base, 1) for k, v in medians.items()},
        "median_cpu_ms": cpu,
        "cpu_ratio_to_python_c_pass": {k: round(v / cpu_base, 1) for k, v in cpu.items()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "import_ms_one_run": imports,
        "targets_ms": {"read": READ_TARGET_MS, "write": WRITE_TARGET_MS},
        "targets_met": _met(medians),
        "targets_met_cpu": _met(cpu),
    }
    print(json.dumps(out, indent=2))


def _setup(exe: str, root: Path, **extra: str) -> dict[str, str]:
    """A home in ``root`` (alice holds both roles; dataset ``ds`` and three models derived
    from it) made with ``exe``; returns the environment that selects it."""
    root.mkdir()
    env = dict(os.environ, MLTRAIL_HOME=str(root / ".mltrail"), MLTRAIL_PASSWORD="bench",
               **extra)
    env.pop("MLTRAIL_SCRYPT_N", None)
    # bytecode cached as in any installed copy (pip compiles it; a source tree writes
    # __pycache__ on first run): without this, PYTHONDONTWRITEBYTECODE (set on the
    # shared VM) makes every run compile mltrail's own modules from source again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    for cmd in ([exe, "init"], [exe, "id", "create", "alice"],
                [exe, "roles", "grant", "alice", "data_steward"],
                [exe, "roles", "grant", "alice", "model_developer"]):
        _run(cmd, env, root)
    (root / "data.csv").write_text("x,y\n1,2\n")
    _run([exe, "--as", "alice", "register", "data.csv", "-k", "dataset", "--name", "ds"],
         env, root)
    for i in range(3):
        (root / f"m{i}.bin").write_bytes(os.urandom(64))
        _run([exe, "--as", "alice", "register", f"m{i}.bin", "-k", "model", "--parent", "ds",
              "--name", f"m{i}"], env, root)
    return env


def _met(medians: dict[str, float]) -> dict[str, bool]:
    mine = {k: v for k, v in medians.items() if not k.startswith("baseline")}
    reads = [v for k, v in mine.items() if k != "python -c pass" and "write" not in k]
    writes = [v for k, v in mine.items() if "write" in k]
    return {"reads": max(reads) <= READ_TARGET_MS, "writes": max(writes) <= WRITE_TARGET_MS}


def _rounds(repeat: int, runs: list[tuple[str, str, dict[str, str]]]) -> dict[str, list[float]]:
    """``repeat`` rounds of: python -c pass, then for each installation (label prefix,
    ``mltrail``, environment) every read, a register and a transition."""
    times: dict[str, list[float]] = {"python -c pass": []}
    for r in range(repeat):
        times["python -c pass"].append(_run([sys.executable, "-c", "pass"], runs[0][2],
                                            Path(runs[0][2]["MLTRAIL_HOME"]).parent,
                                            "python -c pass"))
        for prefix, exe, env in runs:
            root = Path(env["MLTRAIL_HOME"]).parent
            for cmd in READS:
                label = prefix + " ".join(cmd)
                times.setdefault(label, []).append(_run([exe, *cmd], env, root, label))
            f = root / f"w{r}.bin"
            f.write_bytes(os.urandom(64))
            for label, cmd in (
                    ("register (write)", ["register", str(f), "-k", "model", "--name", f"w{r}"]),
                    ("transition (write)", ["transition", f"w{r}", "trained"])):
                times.setdefault(prefix + label, []).append(
                    _run([exe, "--as", "alice", *cmd], env, root, prefix + label))
    return times


if __name__ == "__main__":
    main()
