"""Scaling measurements: what one record, one block, one read and one replayed step cost.

Prints one JSON document; docs/scaling.md's tables and its projection to 10 million
artefacts across 50 organisations come from one such run. Every part reuses the
project's own benches rather than copying them:

* ``records``: gas and wall time per ``register``, ``transition`` and ``anchor`` on the
  embedded chain and (when the anvil binary is installed) on anvil, sequential from one
  identity, each confirmed and indexed before the next (``bench/ledger.py``'s gas table
  and timing);
* ``storage``: bytes per registered artefact of the home's index, chain database and
  content store, measured as the growth over ``--artefacts`` real registrations, and
  the index bytes per artefact of ``bench/server.py``'s 10,000-artefact synthetic index;
* ``check``: ``ledger check`` (every block re-executed, every index row compared) on the
  filled embedded chain, per block;
* ``batch``: batch anchoring (``bench/capture.py``'s ``merkle``): records per anchor
  transaction, seconds to build the tree and send it, gas per record;
* ``node``: artefact and lineage reads per second of ``mltrail serve`` at 10,000
  artefacts (``bench/server.py``'s fill, node and load generator), and the node's CPU per
  request (``1000 / cpu_ms`` is what one free core serves, less sensitive to the load);
* ``pol``: Proof-of-Learning verification cost per training step: the user-loop ResNet
  of ``bench/pol_loop.py`` trained bare, then every segment of its proof replayed; the
  ratio of replay to training time per step.

    python bench/scaling.py [--artefacts 300] [--requests 600] [--skip-anvil]

About 5 minutes on a 2-core VM (anvil included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import capture as capture_bench  # noqa: E402
from pol_loop import _resnet_loop  # noqa: E402

import ledger as ledger_bench  # noqa: E402
import server as server_bench  # noqa: E402
from mltrail.ledger.check import check  # noqa: E402
from mltrail.ledger.client import Ledger  # noqa: E402
from mltrail.ledger.setup import init_home  # noqa: E402
from testkit import ANVIL_KEY, anvil_binary, free_port  # noqa: E402

PW = ledger_bench.PW
_digest = ledger_bench._digest


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _per_op(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """Median and p95 milliseconds of ``n`` sequential calls of ``fn``."""
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ms.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": round(statistics.median(ms), 2),
            "p95_ms": round(statistics.quantiles(ms, n=20)[18], 2), "n": n}


def records(led: Ledger, n: int) -> dict[str, Any]:
    """Gas (``bench/ledger.py``'s table) and time of each kind of record."""
    gas = ledger_bench.gas_table(led)
    models = [led.register("model", _digest()).artefact_id for _ in range(n)]
    it = iter(models)
    timing = {"register": _per_op(lambda: led.register("model", _digest()), n),
              "transition": _per_op(lambda: led.transition(next(it), "trained", _digest()),
                                    n),
              "anchor": _per_op(lambda: led.anchor(models[0], os.urandom(32), 100,
                                                   _digest()), n)}
    return {"gas": gas, "time": timing}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def storage(led: Ledger, n: int) -> dict[str, Any]:
    """Bytes per artefact: growth of index, chain and content store over ``n`` real
    registrations (one metadata blob each, like ``mltrail register``)."""
    home = led.home
    parts = {"index": home.index_db, "chain": home.chain_db, "store": home.store.root}

    def sizes() -> dict[str, int]:
        for db in (led.index, led.backend):  # write-ahead logs folded into the files
            conn = getattr(db, "conn", None)
            if conn is not None:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {k: _size(p) + (_size(Path(f"{p}-wal")) if Path(f"{p}-wal").exists() else 0)
                for k, p in parts.items()}

    before = sizes()
    have = len(led.list_artefacts(limit=1_000_000))
    t0 = time.perf_counter()
    for i in range(n):
        led.register("dataset", _digest(), metadata={"name": f"data-{have + i}",
                                                     "path": f"/data/part-{i:06d}"})
    wall = time.perf_counter() - t0
    after = sizes()
    per = {k: round((after[k] - before[k]) / n, 1) for k in parts}
    return {"artefacts_added": n, "bytes_per_artefact": per,
            "gb_per_million": {k: round(v * 1e6 / 1e9, 2) for k, v in per.items()},
            "register_tx_per_s": round(n / wall, 1)}


def ledger_check(led: Ledger) -> dict[str, Any]:
    t0 = time.perf_counter()
    rep = check(led)
    wall = time.perf_counter() - t0
    return {"blocks": rep.blocks, "events": rep.events, "artefacts": rep.artefacts,
            "seconds": round(wall, 2), "ms_per_block": round(1000 * wall / rep.blocks, 3)}


def batches(led: Ledger, sizes: list[int]) -> list[dict[str, Any]]:
    art = led.register("dataset", _digest()).artefact_id
    rows = []
    for count in sizes:
        row = capture_bench.merkle(led, art, count)
        row["records_per_s"] = round(count / row["anchor_incl_tree_s"], 1)
        row["gas_per_record"] = round(row["anchor_gas"] / count, 4)
        rows.append(row)
    return rows


def node(n: int, requests: int, concurrency: int) -> dict[str, Any]:
    import random

    from mltrail.config import Home
    from mltrail.server.tokens import TokenStore

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ".mltrail"
        ids = server_bench.fill(root, n)
        index_bytes = _size(Home(root).index_db)
        server_bench.HEADERS["Authorization"] = "Bearer " + TokenStore(Home(root)).create(
            "bench", "admin", read_only=True)[1]
        proc, url = server_bench.start_node(root, 1)
        try:
            rng = random.Random(1)
            pick = [rng.choice(ids) for _ in range(requests)]
            import asyncio

            asyncio.run(server_bench.load(url, [f"/v1/artefacts/{a}" for a in pick[:100]], 4))
            out = {"artefacts": len(ids), "index_bytes_per_artefact": round(index_bytes / n, 1),
                   "workers": 1}
            for name, paths in (("artefact", [f"/v1/artefacts/{a}" for a in pick]),
                                ("lineage", [f"/v1/artefacts/{a}/lineage" for a in pick])):
                out[name] = server_bench.measure(url, proc.pid, paths, concurrency)
        finally:
            proc.terminate()
            proc.wait(10)
    return out


def pol(k: int, epochs: int) -> dict[str, Any]:
    """Training vs verification time per step for one user-loop proof."""
    import torch

    from mltrail.pol.verifier import verify_bundle
    from mltrail.reference import pinned_threads

    with tempfile.TemporaryDirectory() as tmp, pinned_threads(1):
        bare_s, _ = _resnet_loop(False, Path(tmp) / "bare", k, epochs)
        rec_s, _ = _resnet_loop(True, Path(tmp) / "proof", k, epochs)
        gen = torch.Generator().manual_seed(0)  # the loop's data, as _resnet_loop draws it
        data = {"x": torch.randn(512, 3, 16, 16, generator=gen),
                "y": torch.randint(0, 4, (512,), generator=gen)}
        steps = 16 * epochs
        segments = steps // k
        rep = verify_bundle(Path(tmp) / "proof", data, q=0, r=segments, seed=1)
        proof_bytes = _size(Path(tmp) / "proof")
    replayed = sum(s.end_step - s.start_step for s in rep.segments)
    return {"loop": "resnet-adam-2groups-cosine (bench/pol_loop.py), batch 32, 1 thread",
            "steps": steps, "k": k, "verdict": rep.verdict,
            "train_ms_per_step": round(1000 * bare_s / steps, 2),
            "record_ms_per_step": round(1000 * rec_s / steps, 2),
            "verify_total_s": round(rep.total_seconds, 2), "replayed_steps": replayed,
            "verify_ms_per_replayed_step": round(1000 * rep.total_seconds / replayed, 2),
            "verify_to_train_per_step": round(rep.total_seconds / replayed /
                                              (bare_s / steps), 3),
            "proof_bytes_per_step": round(proof_bytes / steps)}


def _anvil(tmp: Path, n: int) -> dict[str, Any] | None:
    binary = anvil_binary()
    if not binary:
        return None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        home = init_home(tmp / "anvil", PW, rpc_url=f"http://127.0.0.1:{port}",
                         private_key=bytes.fromhex(ANVIL_KEY))
        with Ledger.open(home, password=PW) as led:
            return {"started_utc": _now(), **records(led, n)}
    finally:
        proc.terminate()


# What the projection assumes (on paper: nothing below is measured here).
ASSUMPTIONS: dict[str, Any] = {
    "artefacts": 10_000_000, "organisations": 50,
    "txs_per_artefact": "1 register (1 parent) + 2 transitions + 0.1 anchor",
    "qbft_block_seconds": 2, "qbft_block_gas_limit": 50_000_000,
    "qbft_validators": 7,  # tolerates 2 faulty (n >= 3f + 1), chosen among the members
    "confirmations_per_identity_per_block": 1,  # mltrail sends one tx, waits, sends the next
    "member_vm": "4 vCPU, 16 GiB, 1 TB SSD", "member_vm_usd_month": 250,
    "rollup_usd_per_100k_gas_tx": 0.005,  # an L2 fee including its share of L1 data
    "reads_per_member_per_s_peak": 50,
}


def projection(emb: dict[str, Any]) -> dict[str, Any]:
    """10 million artefacts across 50 organisations, from this run's measurements and
    :data:`ASSUMPTIONS` (see docs/scaling.md for what is tested and what is on paper)."""
    a = ASSUMPTIONS
    gas = emb["gas"]
    per_artefact_gas = gas["register_1_parent"] + 2 * gas["transition"] + 0.1 * gas["anchor"]
    txs = a["artefacts"] * 3.1
    total_gas = a["artefacts"] * per_artefact_gas
    gas_per_s = a["qbft_block_gas_limit"] / a["qbft_block_seconds"]
    per_member_tx_s = a["confirmations_per_identity_per_block"] / a["qbft_block_seconds"]
    per_million = emb["storage"]["gb_per_million"]
    big = max(emb["batch"], key=lambda r: r["records_per_anchor_tx"])
    return {
        "gas_per_artefact": round(per_artefact_gas),
        "transactions": round(txs), "total_gas": round(total_gas),
        "qbft_chain_capacity_tx_per_s": round(gas_per_s / (per_artefact_gas / 3.1), 1),
        "qbft_days_of_full_blocks_for_all": round(total_gas / gas_per_s / 86400, 1),
        "sequential_tx_per_s_all_members": a["organisations"] * per_member_tx_s,
        "days_to_ingest_at_sequential_rate": round(
            txs / (a["organisations"] * per_member_tx_s) / 86400, 1),
        "index_gb_per_member": round(per_million["index"] * a["artefacts"] / 1e6, 1),
        "content_store_gb_per_member": round(per_million["store"] * a["artefacts"] / 1e6, 1),
        "embedded_chain_gb_if_one_tx_per_block": round(
            per_million["chain"] * a["artefacts"] / 1e6, 1),
        "ledger_check_hours_at_measured_ms_per_tx": round(
            txs * emb["check"]["ms_per_block"] / 1000 / 3600, 1),
        "batch_anchor_txs_for_all_as_records": -(-a["artefacts"] // big["records_per_anchor_tx"]),
        "members_cost_usd_month": a["organisations"] * a["member_vm_usd_month"],
        "rollup_fees_usd_all_txs": round(txs * per_artefact_gas / 3.1 / 100_000
                                         * a["rollup_usd_per_100k_gas_tx"]),
        "assumptions": a}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=40, help="records of each kind timed")
    ap.add_argument("--artefacts", type=int, default=300, help="registrations for storage")
    ap.add_argument("--batch-sizes", default="1000,100000")
    ap.add_argument("--node-artefacts", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--pol-k", type=int, default=16)
    ap.add_argument("--pol-epochs", type=int, default=4)
    ap.add_argument("--skip-anvil", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"bench": "bench/scaling.py", "started_utc": _now(),
                           "command": " ".join(["python", *sys.argv]),
                           "cpu_count": os.cpu_count()}
    os.environ.setdefault("MLTRAIL_PASSWORD", PW)
    with tempfile.TemporaryDirectory() as d:
        home = init_home(Path(d) / "embedded", PW)
        with Ledger.open(home, password=PW) as led:
            part = {"started_utc": _now(), **records(led, args.ops)}
            part["storage"] = storage(led, args.artefacts)
            part["batch"] = batches(led, [int(s) for s in args.batch_sizes.split(",")])
            part["check"] = ledger_check(led)
            out["embedded"] = part
            print(json.dumps({"embedded": "done", "at": _now()}), file=sys.stderr, flush=True)
        if not args.skip_anvil:
            out["anvil"] = _anvil(Path(d), args.ops)
            print(json.dumps({"anvil": "done", "at": _now()}), file=sys.stderr, flush=True)
    out["node"] = {"started_utc": _now(), **node(args.node_artefacts, args.requests,
                                                 args.concurrency)}
    print(json.dumps({"node": "done", "at": _now()}), file=sys.stderr, flush=True)
    out["pol"] = {"started_utc": _now(), **pol(args.pol_k, args.pol_epochs)}
    out["projection"] = projection(out["embedded"])
    out["finished_utc"] = _now()
    out["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
