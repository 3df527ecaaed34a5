"""Latency and throughput SLA check: open-loop load with Poisson arrivals.

As in MLPerf's server scenario, requests are issued at exponentially spaced times at a
target rate whether or not earlier ones have finished, and latency is measured from the
*scheduled* issue time, so queueing in the service counts. Reports p50/p95/p99, the
error rate and the achieved throughput, and compares them with the supplier's claim.
This module only measures; it never judges identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from mltrail.audit.client import Target, async_transport


@dataclass
class LatencyResult:
    rate_qps: float
    duration_s: float
    latencies_ms: np.ndarray   # of successful requests
    errors: int
    sent: int
    wall_s: float

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 0.0

    def summary(self, claim: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rate_qps": self.rate_qps, "duration_s": self.duration_s, "sent": self.sent,
            "errors": self.errors, "error_rate": self.error_rate,
            "throughput_qps": (self.sent - self.errors) / self.wall_s if self.wall_s else 0.0,
            "p50_ms": self.percentile(50), "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99), "claim": claim,
        }
        if claim:
            p95 = out["p95_ms"]
            out["meets_claim"] = bool(p95 is not None and p95 <= float(claim["p95_ms"])
                                      and self.error_rate <= float(claim.get("max_error_rate",
                                                                             0.01)))
        return out


async def _load(url: str, payloads: list[tuple[str, Any]], offsets: np.ndarray,
                timeout: float, warmup: int = 8) -> tuple[list[float], int, float]:
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=timeout,
                                 transport=async_transport(256)) as http:
        for i in range(min(warmup, len(payloads))):  # not measured, as in MLPerf
            with contextlib.suppress(httpx.HTTPError):
                await http.post(payloads[i][0], json=payloads[i][1])
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            due = start + float(offsets[i])
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                path, body = payloads[i % len(payloads)]
                r = await http.post(path, json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - due) * 1000.0)
            else:
                errors += 1

        await asyncio.gather(*(one(i) for i in range(len(offsets))))
        wall = time.perf_counter() - start
    return lat, errors, wall


def poisson_offsets(rate_qps: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Arrival times (s) of a Poisson process at ``rate_qps`` within ``duration_s``."""
    rng = np.random.default_rng(seed)
    n = max(1, int(rate_qps * duration_s * 1.5) + 10)
    t = np.cumsum(rng.exponential(1.0 / rate_qps, n))
    return t[t < duration_s]


def run_load(url: str, inputs: np.ndarray, *, rate_qps: float, duration_s: float,
             timeout: float = 5.0, seed: int = 0, client: Target | None = None) -> LatencyResult:
    """Open-loop load on ``url``: one input per request, Poisson arrivals. Requests are
    built by ``client`` (the target's protocol; mltrail's own API by default), each with
    a fresh 32-hex nonce like every other request of the audit."""
    import secrets

    from mltrail.audit.client import ServiceClient

    maker = client or ServiceClient(url)
    payloads = [maker.request_for(inputs[i:i + 1], secrets.token_hex(16))
                for i in range(len(inputs))]
    if client is None:
        maker.close()
    url = maker.url
    offsets = poisson_offsets(rate_qps, duration_s, seed)
    lat, errors, wall = asyncio.run(_load(url.rstrip("/"), payloads, offsets, timeout))
    return LatencyResult(rate_qps, duration_s, np.array(lat), errors, len(offsets), wall)
