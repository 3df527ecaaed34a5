"""Oracle network benchmark: gas per round per oracle, rounds per minute, and how often
consensus holds against liars. Prints JSON.

Protocol rounds (request, n commits, n reveals, finalise) run in one process with
findings fixed in advance, so the numbers are the ledger's, not the audits': on the
embedded chain and on anvil, for committees of 3, 5 and 9 oracles. Gas comes from the
receipts. The attack table draws honest measurements with noise and f liars (lone or
colluding, each lie drawn at random) over many seeds and reports how often the contract
(its real median and tolerance code on the embedded EVM) keeps the honest verdict and
slashes every liar.

    python bench/oracle.py [--rounds 10] [--seeds 40] [--skip-anvil] [--skip-attacks]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "oracle")]

from netkit import build_net, register_service  # noqa: E402

from mltrail.oracle import market as M  # noqa: E402
from testkit import PASSWORD, anvil_binary, free_port  # noqa: E402

MASK = M.metrics_mask(["agreement", "accuracy", "latency", "availability"])
HONEST = {"agreement": 1.0, "accuracy": 0.93, "robustness": 0.0, "p99_latency": 12.0,
          "availability": 1.0}


def _values(metrics: dict[str, float]) -> list[int]:
    return [M.to_units(n, metrics[n]) if MASK >> i & 1 else 0 for i, n in enumerate(M.METRICS)]


def _round(client: M.Market, oracles: list[M.Market], sid: str,
           findings: list[tuple[list[int], int]]) -> dict[str, Any]:
    """One full round; returns its gas by step and the result."""
    t0 = time.perf_counter()
    rid, tx = client.request(sid, MASK, 50, "http://127.0.0.1:9/")
    gas = {"request": tx.gas_used, "commit": [], "reveal": []}
    salts = []
    for m, (vals, verdict) in zip(oracles, findings, strict=True):
        salt = os.urandom(32)
        salts.append(salt)
        c = M.commitment(rid, vals, verdict, b"\x01" * 32, salt, m.me)
        gas["commit"].append(m.commit(rid, c).gas_used)
    for m, (vals, verdict), salt in zip(oracles, findings, salts, strict=True):
        gas["reveal"].append(m.reveal(rid, vals, verdict, b"\x01" * 32, salt).gas_used)
    gas["finalize"] = oracles[0].finalize(rid).gas_used
    return {"gas": gas, "seconds": time.perf_counter() - t0, "round": rid}


def protocol(tmp: Path, rpc: str | None, sizes: list[int], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        net = build_net(tmp / f"n{n}", rpc, n_oracles=n, stake=10_000,
                        params={"commit_window": 1000, "reveal_window": 1000,
                                "min_stake": 100, "slash_amount": 50, "quorum": (n + 1) // 2})
        sid = register_service(net, "http://127.0.0.1:9/", "svc")
        client = M.Market.open(net.home, identity="client", password=PASSWORD)
        oracles = [M.Market.open(net.home, identity=o, password=PASSWORD)
                   for o in [f"oracle{i}" for i in range(1, n + 1)]]
        honest = [(_values(HONEST), M.PASS)] * n
        runs = [_round(client, oracles, sid, honest) for _ in range(rounds)]
        per_oracle = [(sum(r["gas"]["commit"]) + sum(r["gas"]["reveal"]) +
                       r["gas"]["finalize"] + r["gas"]["request"]) / n for r in runs]
        secs = [r["seconds"] for r in runs]
        last = runs[-1]["gas"]
        out[f"n={n}"] = {
            "gas_request": last["request"], "gas_commit_mean": statistics.mean(last["commit"]),
            "gas_reveal_mean": statistics.mean(last["reveal"]), "gas_finalize": last["finalize"],
            "gas_per_round": int(per_oracle[-1] * n), "gas_per_round_per_oracle":
            int(statistics.mean(per_oracle)), "rounds": rounds,
            "transactions_per_round": 2 + 2 * n,
            "rounds_per_minute": round(60.0 / statistics.median(secs), 1)}
        for m in [client, *oracles]:
            m.close()
    return out


def _lie(rng: random.Random) -> tuple[list[int], int]:
    vals = dict(HONEST)
    vals["agreement"] = rng.uniform(0.0, 0.9)
    vals["accuracy"] = rng.uniform(0.0, 0.9)
    return _values(vals), M.FAIL


def attacks(tmp: Path, seeds: int) -> dict[str, Any]:
    """Lone and colluding liars against n = 5 and 7, many seeds; the contract decides."""
    from mltrail.oracle.market import Market

    table: dict[str, Any] = {}
    for n, f in ((5, 1), (5, 2), (7, 3), (5, 3)):
        net = build_net(tmp / f"a{n}{f}", None, n_oracles=n, stake=100_000,
                        params={"commit_window": 1000, "reveal_window": 1000,
                                "min_stake": 100, "slash_amount": 1, "quorum": (n + 1) // 2})
        sid = register_service(net, "http://127.0.0.1:9/", "svc")
        client = Market.open(net.home, identity="client", password=PASSWORD)
        with Market.open(net.home, password=PASSWORD) as admin:
            admin.transfer(net.addresses["client"], 100 * seeds)
        oracles = [Market.open(net.home, identity=o, password=PASSWORD)
                   for o in [f"oracle{i}" for i in range(1, n + 1)]]
        kept = slashed_all = honest_paid = 0
        for seed in range(seeds):
            rng = random.Random(seed)
            colluding = seed % 2 == 1
            honest = []
            for _ in range(n - f):  # honest oracles measure latency with noise
                v = dict(HONEST)
                v["p99_latency"] = HONEST["p99_latency"] * rng.uniform(0.7, 1.5)
                honest.append((_values(v), M.PASS))
            lie = _lie(rng)
            liars = [lie if colluding else _lie(rng) for _ in range(f)]
            order = honest + liars
            rng.shuffle(order)
            r = _round(client, oracles, sid, order)
            res = oracles[0].result(r["round"])
            liar_addrs = {oracles[i].me for i, x in enumerate(order) if x[1] == M.FAIL}
            kept += res.round.verdict == "pass"
            slashed_all += liar_addrs <= set(res.slashed)
            honest_paid += len(res.paid) == n - f
        table[f"n={n},f={f}"] = {"bound_holds": n >= 2 * f + 1, "seeds": seeds,
                                 "honest_verdict_kept_rate": kept / seeds,
                                 "all_liars_slashed_rate": slashed_all / seeds,
                                 "all_honest_paid_rate": honest_paid / seeds}
        for m in [client, *oracles]:
            m.close()
    return table


def lazy_guess(seeds: int, queries: int = 48, tol: float = 0.02) -> dict[str, Any]:
    """A lazy oracle re-reports the previous round's accuracy instead of auditing: how
    often is it within tolerance of this round's (fresh probes, same honest service)?"""
    import numpy as np
    import torch

    from mltrail.audit import models as AM
    from mltrail.audit import probes as P

    torch.set_num_threads(1)
    net = AM.train_plain({"type": "mlp", "hidden": [32], "classes": 10}, steps=150, seed=1)
    accs = []
    for seed in range(seeds):
        pr = P.benchmark(queries, seed=seed)
        accs.append(float((AM.predict(net, pr.x).argmax(1) == pr.y).mean()))
    a = np.array(accs)
    hits = np.abs(a[1:] - a[:-1]) <= tol + 1e-12
    return {"seeds": seeds, "queries": queries, "tolerance": tol,
            "accuracy_mean": float(a.mean()), "accuracy_sd": float(a.std()),
            "stale_guess_within_tolerance_rate": float(hits.mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--sizes", default="3,5,9")
    ap.add_argument("--skip-anvil", action="store_true")
    ap.add_argument("--skip-attacks", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("MLTRAIL_PASSWORD", PASSWORD)
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"bench": "oracle", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                    time.gmtime()),
                           "command": "python bench/oracle.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["embedded"] = protocol(tmp / "emb", None, sizes, args.rounds)
        binary = anvil_binary()
        if binary and not args.skip_anvil:
            port = free_port()
            proc = subprocess.Popen([binary, "--port", str(port), "--silent"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                out["anvil"] = protocol(tmp / "anvil", f"http://127.0.0.1:{port}", sizes,
                                        args.rounds)
            finally:
                proc.terminate()
                proc.wait(10)
        if not args.skip_attacks:
            out["lazy_guess"] = lazy_guess(max(2, 5 * args.seeds))
            out["attacks"] = attacks(tmp / "att", args.seeds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
