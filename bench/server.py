"""Node benchmark: latency and throughput of artefact reads and lineage at 10,000 artefacts.

How the index is filled quickly: registering 10,000 artefacts one transaction at a time
takes minutes, and what the node reads is the event index. So the bench writes 10,000
``Registered`` events straight into a fresh home's index (``EventIndex.apply``, the same
call ``sync`` and ``reindex`` make), in a DAG shaped like real use: datasets, models
derived from a dataset (and some from an earlier model), services from a model. The
synthetic events sit in the head block after its real logs, so the index stays level
with the chain and a sync finds nothing to add.
``ledger check`` would (rightly) fail on such a home; it is a bench fixture only.

The node runs as ``mltrail serve`` in its own process; the load generator (asyncio +
httpx on loopback, a bounded number of requests and of connections in flight) reads
random artefacts (``GET /v1/artefacts/{id}``), their lineage, and the filtered list.
Requests carry a read-only token, so artefact reads include the metadata (content is for
readers). ``--baseline-src DIR`` also serves the same home from another source tree (e.g.
``/work/main/src``, the code before a change) and measures it in the same run, endpoint
by endpoint, alternating, so the two are compared under the same load.
Prints JSON: p50/p99 latency in ms and requests/s per endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from mltrail._fs import atomic_write  # noqa: E402
from mltrail.config import Home  # noqa: E402
from mltrail.ledger.client import Ledger  # noqa: E402
from mltrail.ledger.index import IndexedEvent, decode_events  # noqa: E402
from mltrail.ledger.setup import init_home  # noqa: E402
from mltrail.provenance.digest import digest_bytes  # noqa: E402
from testkit import free_port  # noqa: E402

PW = "bench"


def _put(home: Home, data: bytes) -> str:
    """Store a blob without an fsync per file (the bench's own scratch home)."""
    digest = digest_bytes(data)
    hexd = digest.split(":")[1]
    atomic_write(home.store.root / hexd[:2] / hexd[2:], data, durable=False)
    return digest


def fill(home_root: Path, n: int, seed: int = 0) -> list[str]:
    """A home whose index holds ``n`` artefacts; returns their ids."""
    rng = random.Random(seed)
    home = init_home(home_root, PW)
    with Ledger.open(home, password=PW) as led:
        owner = led.address
        led.sync()
        head = led.backend.head()
        real = decode_events(led.abi, led.backend.logs(led.registry, 0, head))
        lc = led.lifecycle
        kinds = {k: lc.kind(k) for k in ("dataset", "model", "service")}
        ids: dict[str, list[str]] = {k: [] for k in kinds}
        events = []
        for i in range(n):
            r = i / n
            kind = "dataset" if r < 0.1 or not ids["dataset"] else (
                "model" if r < 0.7 or not ids["model"] else "service")
            parents: list[str] = []
            if kind == "model":
                parents = [rng.choice(ids["dataset"][-200:])]
                if ids["model"] and rng.random() < 0.3:
                    parents.append(rng.choice(ids["model"][-200:]))
            elif kind == "service":
                parents = [rng.choice(ids["model"])]
            aid = "0x" + rng.randbytes(32).hex()
            meta = _put(home, json.dumps({"name": f"{kind}-{i}"}).encode())
            k = kinds[kind]
            state = rng.choice(k.states[:-1])
            # all in the head block (after its real logs), so the index stays level with
            # the chain and a sync finds nothing to add (and no damage to report)
            events.append(IndexedEvent(head, 10_000 + i, "0x" + rng.randbytes(32).hex(),
                                       "Registered", aid, owner, 1_700_000_000 + i, {
                                           "kind": k.code, "state": k.state_code(state),
                                           "content_digest": "0x" + rng.randbytes(32).hex(),
                                           "metadata_digest": "0x" + meta.split(":")[1],
                                           "parents": parents, "name": f"{kind}-{i}"}))
            ids[kind].append(aid)
        led.index.clear()
        extra = {}
        if "up_to_hash" in inspect.signature(led.index.apply).parameters:
            extra["up_to_hash"] = led.backend.block_hash(head)  # type: ignore[attr-defined]
        led.index.apply(real + events, head, **extra)
    return [a for v in ids.values() for a in v]


def server_cpu(pid: int) -> float:
    """CPU seconds used by the node process and its workers (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def measure(url: str, pid: int, paths: list[str], concurrency: int) -> dict[str, float]:
    """Latency and rate under load, plus the node's own CPU per request (load-independent:
    ``1000 / cpu_ms_per_request`` is what one free core could serve)."""
    before = server_cpu(pid)
    out = asyncio.run(load(url, paths, concurrency))
    cpu_ms = 1000 * (server_cpu(pid) - before) / max(1, out["requests"])
    out["server_cpu_ms_per_request"] = round(cpu_ms, 3)
    out["req_per_s_per_free_core"] = round(1000 / cpu_ms, 1) if cpu_ms else None
    return out


HEADERS: dict[str, str] = {}


async def load(url: str, paths: list[str], concurrency: int) -> dict[str, Any]:
    lat: list[float] = []
    queue = list(paths)
    errors = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            path = queue.pop()
            t0 = time.perf_counter()
            r = await client.get(path)
            lat.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers=HEADERS) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"requests": len(lat), "errors": errors, "concurrency": concurrency,
            "p50_ms": round(1000 * statistics.median(lat), 2),
            "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
            "req_per_s": round(len(lat) / wall, 1)}


def start_node(root: Path, workers: int,
               src: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``mltrail serve`` on a free port (from source tree ``src`` if given), once healthy."""
    port = free_port()
    env = {**os.environ, "MLTRAIL_PASSWORD": PW}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    exe = Path(sys.executable).with_name("mltrail")
    proc = subprocess.Popen([str(exe), "--home", str(root), "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("node did not start")
        time.sleep(0.2)


def main() -> None:
    from mltrail.server.tokens import TokenStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artefacts", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2_000, help="per endpoint")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="node worker processes")
    ap.add_argument("--baseline-src", help="another source tree to serve and compare with")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / ".mltrail"
        t0 = time.perf_counter()
        ids = fill(root, args.artefacts)
        fill_s = time.perf_counter() - t0
        HEADERS["Authorization"] = "Bearer " + TokenStore(Home(root)).create(
            "bench", "admin", read_only=True)[1]
        nodes = {"this": start_node(root, args.workers)}
        if args.baseline_src:
            nodes["baseline"] = start_node(root, args.workers, args.baseline_src)
        try:
            rng = random.Random(1)
            pick = [rng.choice(ids) for _ in range(args.requests)]
            endpoints = {
                "artefact": [f"/v1/artefacts/{a}" for a in pick],
                "lineage": [f"/v1/artefacts/{a}/lineage" for a in pick],
                "list_filtered": [f"/v1/artefacts?kind=model&state=trained&offset={i % 20 * 50}"
                                  for i in range(args.requests // 4)]}
            for _, url in nodes.values():  # warm-up
                asyncio.run(load(url, endpoints["artefact"][:200], 4))
            out: dict[str, Any] = {"artefacts": len(ids), "fill_seconds": round(fill_s, 1)}
            for name, paths in endpoints.items():
                for label, (proc, url) in nodes.items():
                    key = name if label == "this" else f"{name}_baseline"
                    out[key] = measure(url, proc.pid, paths, args.concurrency)
        finally:
            for proc, _ in nodes.values():
                proc.terminate()
                proc.wait(10)
    print(json.dumps({"bench": "server", "started": started, "cpu_count": os.cpu_count(),
                      "workers": args.workers, "baseline_src": args.baseline_src,
                      "load_avg_1m": round(os.getloadavg()[0], 2), **out}, indent=2))


if __name__ == "__main__":
    main()
