"""Ledger benchmark: gas per operation, throughput and latency, query time, check time.

Prints JSON. Throughput is measured on the embedded chain with 0 and 1,000 artefacts
already registered and on anvil with 0 (``--sizes``/``--anvil-sizes`` to change):
sequential registrations from one identity, each confirmed and indexed before the next
(one block per transaction). ``ledger check`` (every block re-executed from genesis, every
index row compared) is timed on the filled chain. The defaults run in a few minutes on a
2-core VM; docs/ledger.md's tables come from one such run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mltrail.identity import create_identity  # noqa: E402
from mltrail.ledger.check import check  # noqa: E402
from mltrail.ledger.client import Ledger  # noqa: E402
from mltrail.ledger.setup import init_home  # noqa: E402
from testkit import ANVIL_KEY, anvil_binary, free_port  # noqa: E402

PW = "bench"


def _digest() -> str:
    return "sha256:" + os.urandom(32).hex()


def gas_table(led: Ledger) -> dict[str, int]:
    a = led.register("model", _digest())
    named = led.register("model", _digest(), name="n" * 64)
    b = led.register("model", _digest(), parents=[a.artefact_id])
    parents = [led.register("model", _digest()).artefact_id for _ in range(8)]
    c = led.register("model", _digest(), parents=parents)
    t = led.transition(a.artefact_id, "trained", _digest())
    n = led.anchor(a.artefact_id, os.urandom(32), 100, _digest())
    p = led.set_profile("http://127.0.0.1:8765")
    other = create_identity(led.home, f"g{os.urandom(3).hex()}", PW)
    g = led.grant_role(other, "verifier")
    return {"register_no_parents": a.gas_used, "register_64_byte_name": named.gas_used,
            "register_1_parent": b.gas_used, "register_8_parents": c.gas_used,
            "per_parent": round((c.gas_used - a.gas_used) / 8),
            "transition": t.gas_used, "anchor": n.gas_used, "set_profile": p.gas_used,
            "grant_role": g.gas_used}


def fill(led: Ledger, target: int, have: int) -> int:
    while have < target:
        led.register("dataset", _digest())
        have += 1
    return have


def throughput(led: Ledger, n: int) -> dict[str, float]:
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        led.register("dataset", _digest())
        lat.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    q = statistics.quantiles(lat, n=20)
    return {"tx_per_s": round(n / wall, 1), "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(q[18], 2), "n": n}


def queries(led: Ledger, n: int = 50) -> dict[str, float]:
    """lineage and history of a model deep in a chain of derivations."""
    root = led.register("dataset", _digest()).artefact_id
    node = root
    for _ in range(10):
        node = led.register("model", _digest(), parents=[node]).artefact_id
        led.transition(node, "trained")
    out = {}
    for name, fn in (("lineage_ms", lambda: led.lineage(root)),
                     ("history_ms", lambda: led.history(node))):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1000)
        out[name] = round(statistics.median(ts), 2)
    return out


def run_backend(label: str, led: Ledger, sizes: list[int], per_point: int) -> dict[str, object]:
    res: dict[str, object] = {"gas": gas_table(led)}
    have = len(led.list_artefacts(limit=1_000_000))
    points = {}
    for size in sizes:
        t0 = time.perf_counter()
        have = fill(led, size, have)
        print(f"[{label}] filled to {have} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        points[str(size)] = throughput(led, per_point)
        have += per_point
    res["throughput_at_artefacts"] = points
    res["queries_at_artefacts"] = {"artefacts": have, **queries(led)}
    t0 = time.perf_counter()
    report = check(led)
    wall = time.perf_counter() - t0
    res["check"] = {"blocks": report.blocks, "events": report.events,
                    "artefacts": report.artefacts, "seconds": round(wall, 2),
                    "ms_per_block": round(1000 * wall / report.blocks, 2)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,1000")
    ap.add_argument("--per-point", type=int, default=100)
    ap.add_argument("--anvil-sizes", default="0",
                    help="anvil slows down as its chain grows (7 tx/s at 1,000 artefacts "
                         "in an earlier run); 0 keeps the bench short")
    ap.add_argument("--skip-anvil", action="store_true")
    ap.add_argument("--skip-embedded", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, object] = {"targets": {"register_gas": 60_000, "per_parent_gas": 6_000,
                                          "transition_gas": 40_000, "embedded_tx_per_s": 60,
                                          "query_ms": 100},
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "command": " ".join(["python", *sys.argv])}
    anvil_sizes = [int(s) for s in args.anvil_sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_embedded:
            home = init_home(Path(d) / "e", PW)
            os.environ.setdefault("MLTRAIL_PASSWORD", PW)
            with Ledger.open(home, password=PW) as led:
                out["embedded"] = run_backend("embedded", led, sizes, args.per_point)
        binary = anvil_binary()
        if binary and not args.skip_anvil:
            import subprocess

            port = free_port()
            proc = subprocess.Popen([binary, "--port", str(port), "--silent"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1.5)
                home = init_home(Path(d) / "a", PW, rpc_url=f"http://127.0.0.1:{port}",
                                 private_key=bytes.fromhex(ANVIL_KEY))
                with Ledger.open(home, password=PW) as led:
                    out["anvil"] = run_backend("anvil", led, anvil_sizes, args.per_point)
            finally:
                proc.terminate()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
