"""Detection rate of ``ledger check`` against each forgery family over many seeds (JSON).

Every family of :mod:`mltrail.testing.ledger_forgeries` (index, chain file, and the
py-evm rewrites of ``ledger_chain_forgeries``) is run over ``--seeds`` seeds, each on a
fresh copy of a populated embedded home (a few templates, each built from its own
scenario seed). Per family: forgeries made, detected, chain forgeries blamed on the index
(``misplaced``), undetected ones split into those the docs list as limits (the attacker
rewrote ``pins.json`` too) and findings, and the time ``check`` took (median, max).

    python bench/ledger_forgeries.py [--seeds 50] [--families a,b] [--templates 3]
                                     [--rpc-seeds 20] [--race-checks 0] [--race-kill 0]

``--race-checks N`` also runs N checks overlapping writer processes on a fresh home
(``mltrail.testing.ledger_check_race``; every alarm is false), and ``--race-kill M`` M
checks racing writers that are SIGKILLed at seeded moments (half the checks).

The node forgeries of ``ledger_rpc_forgeries`` (storage edited, node forked or reset)
run on an anvil started here, a fresh registry and home per seed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mltrail.testing.ledger_check_race import race  # noqa: E402
from mltrail.testing.ledger_forgeries import (  # noqa: E402
    FORGERS,
    PASSWORD,
    Outcome,
    attempt,
    fresh_copy,
    judge,
    populate,
)
from mltrail.testing.ledger_rpc_forgeries import RPC_FORGERS, build  # noqa: E402


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    times = [o.seconds for o in outcomes]
    findings = [o for o in outcomes
                if not o.detected and not o.forged.limit and not o.forged.noop]
    limits = [o for o in outcomes if o.forged.limit]
    detected = sum(o.detected for o in outcomes)
    return {
        "forgeries": len(outcomes), "detected": detected,
        "rate": round(detected / len(outcomes), 3),
        "rate_outside_limits": round(1 - len(findings) / max(1, len(outcomes) - len(limits)), 3),
        "misplaced": sum(o.misplaced for o in outcomes),
        "writes_refused": sum(bool(o.write_refused) for o in outcomes),
        "writes_tried": sum(o.write_refused is not None for o in outcomes),
        "documented_limits": len(limits),
        "noop": sum(o.forged.noop for o in outcomes),
        "limits_detected": sum(o.detected for o in limits),
        "undetected_findings": len(findings),
        "findings": [o.as_dict() for o in findings][:5],
        "check_s_median": round(statistics.median(times), 3),
        "check_s_max": round(max(times), 3),
    }


def run_rpc(seeds: int) -> dict[str, Any]:
    """Each node forgery on anvil, a fresh registry and home per seed."""
    binary = anvil_binary()
    if binary is None:
        return {"skipped": "anvil not installed (make setup)"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = Path(tempfile.mkdtemp(prefix="mltrail-rpc-forgeries-"))
    try:
        time.sleep(2)
        out: dict[str, Any] = {}
        for family, forge in RPC_FORGERS.items():
            outcomes = []
            for seed in range(seeds):
                home = build(base / f"{family}-{seed}" / ".mltrail", url,
                             bytes.fromhex(ANVIL_KEY), random.Random(seed))
                outcomes.append(judge(home, forge(home, url, random.Random(seed)), PASSWORD))
            out[family] = summary(outcomes)
            print(f"{family}: {out[family]['detected']}/{seeds} detected", file=sys.stderr)
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
from testkit import ANVIL_KEY, anvil_binary, free_port, make_home  # noqa: E402


def run(seeds: int, families: list[str], templates: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="mltrail-forgeries-"))
    try:
        homes = []
        for t in range(templates if families else 0):
            home = make_home(base / f"template-{t}")
            populate(home, PASSWORD, random.Random(1000 + t))
            homes.append(home.root)
        out: dict[str, Any] = {}
        for family in families:
            outcomes = []
            for seed in range(seeds):
                target = base / f"{family}-{seed}" / ".mltrail"
                home = fresh_copy(homes[seed % templates], target)
                outcomes.append(attempt(family, home, seed, PASSWORD))
                shutil.rmtree(target.parent)
            out[family] = summary(outcomes)
            print(f"{family}: {out[family]['detected']}/{len(outcomes)} detected, "
                  f"{out[family]['undetected_findings']} findings", file=sys.stderr)
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_race(checks: int, kill: bool) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="mltrail-race-"))
    try:
        home = make_home(base)
        res = race(home, PASSWORD, checks=checks, seed=11 if kill else 10,
                   kill=0.5 if kill else 0.0, pause=0.0 if kill else 0.6)
        print(f"race (kill={kill}): {res.false_alarms}/{res.checks} false alarms, "
              f"{res.kills} writers killed", file=sys.stderr)
        return res.as_dict()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--templates", type=int, default=3)
    ap.add_argument("--families", default=",".join(FORGERS))
    ap.add_argument("--rpc-seeds", type=int, default=20, help="0: skip the anvil families")
    ap.add_argument("--race-checks", type=int, default=0)
    ap.add_argument("--race-kill", type=int, default=0)
    args = ap.parse_args()
    families = [f for f in args.families.split(",") if f]
    start = time.time()
    result = {"bench": "ledger_forgeries", "seeds": args.seeds, "templates": args.templates,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
              "families": run(args.seeds, families, args.templates)}
    if args.rpc_seeds:
        result["rpc_families"] = run_rpc(args.rpc_seeds)
    if args.race_checks:
        result["check_race"] = run_race(args.race_checks, kill=False)
    if args.race_kill:
        result["check_race_kill"] = run_race(args.race_kill, kill=True)
    result["wall_s"] = round(time.time() - start, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
