"""The auditor's HTTP client for a classification API (reference contract in service.py).

:class:`Target` is the protocol-neutral client (mltrail's own API here, the Open
Inference Protocol and adapter-described APIs in :mod:`.protocols`). It sends batches
with a fresh random nonce each and returns outputs, receipt, the time of sending and the
round-trip time. A refusal (non-200), a timeout or a malformed body is
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
from pydantic import ValidationError

from mltrail.audit.wire import ServiceInfo
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


class Target:
    """A keep-alive client of one classification service, whatever protocol it speaks.

    Subclasses say how a batch becomes a request (:meth:`request_for`) and how an answer
    becomes outputs (:meth:`parse`); this class sends, times and classifies failures. Every
    request carries a fresh 32-hex-digit nonce, the format the documented client library
    uses for all its traffic."""

    protocol = "mltrail"
    method = "POST"

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  transport=httpx.HTTPTransport(socket_options=NODELAY))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Target:
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
        try:
            return r.json()
        except ValueError as exc:
            raise InputError(f"{self.url}{path} answered a body that is not JSON") from exc

    def info(self) -> ServiceInfo:
        raise NotImplementedError

    def request_for(self, batch: np.ndarray, nonce: str) -> tuple[str, Any]:
        """(path, JSON body) of one request for ``batch``."""
        raise NotImplementedError

    def headers_for(self, nonce: str) -> dict[str, str]:
        """Extra headers of one request (none by default)."""
        return {}

    def parse(self, data: Any, n: int, nonce: str
              ) -> tuple[Any, Any, str | None]:
        """(outputs, receipt, model digest) of an answer; outputs are checked by the
        caller (:func:`check_outputs`)."""
        raise NotImplementedError

    def classify(self, batch: np.ndarray, nonce: str | None = None,
                 classes: int | None = None) -> Response:
        """One request with a fresh nonce (unless given); a :class:`ServiceFailure` unless
        the service answered 200 with a well-formed body (one output per input: an int
        label and ``classes`` finite probabilities)."""
        nonce = nonce or secrets.token_hex(16)
        path, body = self.request_for(batch, nonce)
        where = f"{self.url}{path}"
        sent = time.time()
        t0 = time.perf_counter()
        try:
            r = self._http.request(self.method, path, json=body,
                                   headers=self.headers_for(nonce))
        except httpx.TimeoutException as exc:
            raise ServiceFailure("timeout", f"{where} timed out",
                                 (time.perf_counter() - t0) * 1000) from exc
        except httpx.HTTPError as exc:
            raise ServiceFailure("unreachable", f"cannot reach {where}: {exc}",
                                 (time.perf_counter() - t0) * 1000) from exc
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise ServiceFailure("refused", f"{where} answered "
                                 f"{r.status_code}: {r.text[:200]!r}", ms)
        try:
            data = r.json()
        except ValueError as exc:
            raise ServiceFailure("malformed", f"{self.url} answered a body that is not "
                                 "JSON", ms) from exc
        try:
            outputs, receipt, digest = self.parse(data, len(batch), nonce)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ServiceFailure("malformed", f"{self.url} answered a malformed body: "
                                 f"{str(exc)[:200]}", ms) from exc
        problem = check_outputs(outputs, len(batch), classes)
        if problem:
            raise ServiceFailure("malformed", f"{self.url} answered a malformed body: "
                                 f"{problem}", ms)
        assert isinstance(outputs, list)
        return Response(outputs, receipt, nonce, sent, digest, ms)


class ServiceClient(Target):
    """A client of mltrail's own API: ``GET /v1/model``, ``POST /v1/classify``."""

    def info(self) -> ServiceInfo:
        """The service's ``GET /v1/model``."""
        data = self._get("/v1/model")
        if not isinstance(data, dict) or "model_digest" not in data:
            raise InputError(f"{self.url}/v1/model is not a model description")
        try:
            return ServiceInfo.model_validate({**data, "protocol": "mltrail"})
        except ValidationError as exc:
            raise InputError(f"{self.url}/v1/model is malformed: "
                             f"{_first_error(exc)}") from exc

    def request_for(self, batch: np.ndarray, nonce: str) -> tuple[str, Any]:
        flat = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        return "/v1/classify", {"inputs": flat.tolist(), "nonce": nonce}

    def parse(self, data: Any, n: int, nonce: str) -> tuple[Any, Any, str | None]:
        if not isinstance(data, dict):
            return None, None, None
        digest = data.get("model_digest")
        return data.get("outputs"), data.get("receipt"), \
            digest if isinstance(digest, str) else None


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    return f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"


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
