"""The auditor's HTTP client for a classification API (reference contract in service.py).

It sends batches with a fresh random nonce each and returns outputs, receipt and the
time of sending; it checks nothing itself (the runner and receipts module do).
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from mltrail.errors import InputError

# httpx writes a request's headers and body separately; with Nagle on, the body then
# waits for the server's delayed ACK (~40 ms per request on Linux loopback).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def async_transport(max_connections: int = 100) -> httpx.AsyncHTTPTransport:
    """An asyncio transport with Nagle off (for providers and load generators)."""
    return httpx.AsyncHTTPTransport(socket_options=NODELAY, limits=httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=min(64, max_connections)))


@dataclass
class Response:
    outputs: list[dict[str, Any]]
    receipt: Any
    nonce: str
    sent_at: float
    model_digest: str | None

    @property
    def labels(self) -> np.ndarray:
        return np.array([int(o["label"]) for o in self.outputs], dtype=np.int64)

    @property
    def probs(self) -> np.ndarray:
        return np.array([o["probs"] for o in self.outputs], dtype=np.float64)


class ServiceClient:
    """A keep-alive client of one service."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  transport=httpx.HTTPTransport(socket_options=NODELAY))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _get(self, path: str) -> Any:
        try:
            r = self._http.get(path)
        except httpx.HTTPError as exc:
            raise InputError(f"cannot reach {self.url}{path}: {exc}") from exc
        if r.status_code != 200:
            raise InputError(f"{self.url}{path} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def info(self) -> dict[str, Any]:
        """The service's ``GET /v1/model``."""
        data = self._get("/v1/model")
        if not isinstance(data, dict) or "model_digest" not in data:
            raise InputError(f"{self.url}/v1/model is not a model description")
        return data

    def classify(self, batch: np.ndarray, nonce: str | None = None) -> Response:
        """One ``POST /v1/classify`` with a fresh nonce (unless given)."""
        nonce = nonce or secrets.token_hex(16)
        flat = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        sent = time.time()
        try:
            r = self._http.post("/v1/classify", json={"inputs": flat.tolist(), "nonce": nonce})
        except httpx.HTTPError as exc:
            raise InputError(f"cannot reach {self.url}/v1/classify: {exc}") from exc
        if r.status_code != 200:
            raise InputError(f"{self.url}/v1/classify answered {r.status_code}: {r.text[:200]}")
        data = r.json()
        outputs = data.get("outputs")
        if not isinstance(outputs, list) or len(outputs) != len(batch):
            raise InputError(f"{self.url} returned {len(outputs or [])} outputs for "
                             f"{len(batch)} inputs")
        return Response(outputs, data.get("receipt"), nonce, sent, data.get("model_digest"))
