"""The auditor's HTTP client for a classification API (reference contract in service.py).

It sends batches with a fresh random nonce each and returns outputs, receipt, the time
of sending and the round-trip time. A refusal (non-200), a timeout or a malformed body is
a :class:`ServiceFailure` naming which, so the auditor can count it against the service;
it checks nothing else itself (the runner and receipts module do).
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from mltrail.errors import InputError, NetworkError

# httpx writes a request's headers and body separately; with Nagle on, the body then
# waits for the server's delayed ACK (~40 ms per request on Linux loopback).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def async_transport(max_connections: int = 100) -> httpx.AsyncHTTPTransport:
    """An asyncio transport with Nagle off (for providers and load generators)."""
    return httpx.AsyncHTTPTransport(socket_options=NODELAY, limits=httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=min(64, max_connections)))


class ServiceFailure(NetworkError):
    """The service refused, timed out or answered a malformed body; ``reason`` says which
    (``refused``, ``timeout``, ``unreachable``, ``malformed``)."""

    def __init__(self, reason: str, message: str, elapsed_ms: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.elapsed_ms = elapsed_ms


@dataclass
class Response:
    outputs: list[dict[str, Any]]
    receipt: Any
    nonce: str
    sent_at: float
    model_digest: str | None
    elapsed_ms: float = 0.0

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

    def classify(self, batch: np.ndarray, nonce: str | None = None,
                 classes: int | None = None) -> Response:
        """One ``POST /v1/classify`` with a fresh nonce (unless given); a
        :class:`ServiceFailure` unless the service answered 200 with a well-formed body
        (one output per input: an int label and ``classes`` finite probabilities)."""
        nonce = nonce or secrets.token_hex(16)
        flat = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        sent = time.time()
        t0 = time.perf_counter()
        try:
            r = self._http.post("/v1/classify", json={"inputs": flat.tolist(), "nonce": nonce})
        except httpx.TimeoutException as exc:
            raise ServiceFailure("timeout", f"{self.url}/v1/classify timed out",
                                 (time.perf_counter() - t0) * 1000) from exc
        except httpx.HTTPError as exc:
            raise ServiceFailure("unreachable", f"cannot reach {self.url}/v1/classify: {exc}",
                                 (time.perf_counter() - t0) * 1000) from exc
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise ServiceFailure("refused", f"{self.url}/v1/classify answered "
                                 f"{r.status_code}: {r.text[:200]!r}", ms)
        try:
            data = r.json()
        except ValueError as exc:
            raise ServiceFailure("malformed", f"{self.url} answered a body that is not "
                                 "JSON", ms) from exc
        outputs = data.get("outputs") if isinstance(data, dict) else None
        problem = check_outputs(outputs, len(batch), classes)
        if problem:
            raise ServiceFailure("malformed", f"{self.url} answered a malformed body: "
                                 f"{problem}", ms)
        assert isinstance(outputs, list) and isinstance(data, dict)
        digest = data.get("model_digest")
        return Response(outputs, data.get("receipt"), nonce, sent,
                        digest if isinstance(digest, str) else None, ms)


def check_outputs(outputs: Any, n: int, classes: int | None) -> str | None:
    """What is wrong with a response's ``outputs`` (None when nothing is)."""
    if not isinstance(outputs, list) or len(outputs) != n:
        return f"{len(outputs) if isinstance(outputs, list) else 'no'} outputs for {n} inputs"
    width = None
    for i, o in enumerate(outputs):
        if not isinstance(o, dict) or type(o.get("label")) is not int:
            return f"output {i} has no integer label"
        probs = o.get("probs")
        if not isinstance(probs, list) or not probs or not all(
                type(p) in (int, float) and np.isfinite(p) for p in probs):
            return f"output {i} has no list of finite probabilities"
        if width is None:
            width = len(probs)
        if len(probs) != width or (classes is not None and len(probs) != classes):
            return f"output {i} has {len(probs)} probabilities"
        if not 0 <= o["label"] < len(probs):
            return f"output {i} has label {o['label']} outside 0..{len(probs) - 1}"
    return None
