"""The reference supplier service: ``POST /v1/classify`` and ``GET /v1/model``, and the
same model over the Open Inference Protocol (``/v2/...``, :mod:`.oip`).

Owns the HTTP contract of mltrail's classification API (request validation with clear
4xx errors, the response shape, one signed receipt per response) and a helper that runs
any ASGI app on a loopback socket in a background thread. It never audits anything; the
providers in :mod:`mltrail.testing` reuse :func:`parse_classify` so all speak the same
contract.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from torch import nn

from mltrail.audit.models import ModelCard, predict
from mltrail.audit.receipts import public_key_b64, sign_receipt
from mltrail.audit.wire import ClassifyResponse, ServiceInfo

MAX_BATCH = 256
MAX_BODY = 4 << 20
MAX_NONCE = 128
MAX_DEPTH = 8          # JSON nesting: {"inputs": [[[[x]]]]} needs 5
MAX_STRING = 4096      # any JSON string in a request, in characters


class ApiError(Exception):
    """A client error with its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _no_constants(name: str) -> float:
    raise ApiError(422, f"non-finite value {name} in request (inputs must be finite numbers)")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def check_limits(raw: bytes, max_depth: int = MAX_DEPTH, max_string: int = MAX_STRING) -> None:
    """Nesting and string limits on raw JSON bytes, checked before parsing."""
    longest = 0
    for m in _STRING.finditer(raw):
        longest = max(longest, m.end() - m.start() - 2)
    if longest > max_string * 6:  # a character is at most 6 bytes of JSON (\uXXXX)
        raise ApiError(413, f"a JSON string exceeds {max_string} characters")
    bare = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = (np.isin(bare, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(bare, (ord("]"), ord("}"))).astype(np.int64))
    if len(steps) and int(np.cumsum(steps).max()) > max_depth:
        raise ApiError(413, f"JSON nested deeper than {max_depth} levels")


def _strict_strings(obj: Any) -> None:
    """Reject strings JSON allows but UTF-8 cannot carry (lone surrogates, via \\ud800)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(400, "invalid Unicode in request (lone surrogate)") from exc
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _strict_strings(k)
            _strict_strings(v)
    elif isinstance(obj, list) and obj and not isinstance(obj[0], int | float | list):
        for v in obj:
            _strict_strings(v)


async def read_json(request: Request, max_body: int = MAX_BODY) -> Any:
    """The request's JSON body, or an :class:`ApiError` saying what is wrong with it.

    Limits come first (declared and actual size, nesting, string length), then strict
    UTF-8 decoding, then parsing; nothing a client sends gets a 5xx."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.strip().isdigit():
        raise ApiError(400, "Content-Length is not a number")
    if declared and int(declared) > max_body:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {max_body}")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise ApiError(413, f"request body exceeds the limit of {max_body} bytes")
    if declared and int(declared) != len(raw):
        raise ApiError(400, f"Content-Length {declared} differs from the body's {len(raw)}")
    data = bytes(raw)
    check_limits(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON: {str(exc)[:200]}") from exc
    _strict_strings(obj)
    return obj


def classify_openapi(shape: tuple[int, ...], max_batch: int) -> dict[str, Any]:
    """The request body's schema for the OpenAPI document (the handler parses by hand,
    limits first, so FastAPI cannot derive it)."""
    size = math.prod(shape)
    num = {"type": "number"}
    nested: dict[str, Any] = num
    for d in reversed(shape):
        nested = {"type": "array", "items": nested, "minItems": d, "maxItems": d}
    flat = {"type": "array", "items": num, "minItems": size, "maxItems": size}
    schema = {"type": "object", "additionalProperties": False, "required": ["inputs"],
              "properties": {
                  "inputs": {"type": "array", "minItems": 1, "maxItems": max_batch,
                             "items": {"anyOf": [flat, nested]}},
                  "nonce": {"type": "string", "maxLength": MAX_NONCE}}}
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}},
            "responses": {"400": {"description": "malformed body"},
                          "413": {"description": "over a limit"},
                          "422": {"description": "invalid request"}}}


def parse_classify(payload: Any, input_shape: tuple[int, ...],
                   max_batch: int = MAX_BATCH) -> tuple[np.ndarray, str | None]:
    """Validate a classify request; return the batch (float32, N×shape) and the nonce."""
    if not isinstance(payload, dict):
        raise ApiError(422, "request must be a JSON object {\"inputs\": [...], \"nonce\": ...}")
    extra = set(payload) - {"inputs", "nonce"}
    if extra:
        raise ApiError(422, f"unknown field(s): {', '.join(sorted(extra))}")
    nonce = payload.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > MAX_NONCE
                              or not nonce.isprintable()):
        raise ApiError(422, f"nonce must be a printable string of at most {MAX_NONCE} "
                       "characters")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(422, "inputs must be a non-empty list")
    if len(inputs) > max_batch:
        raise ApiError(413, f"batch of {len(inputs)} inputs exceeds the limit of {max_batch}")
    try:
        if any(isinstance(v, bool) for v in leaves(inputs)):
            raise TypeError("booleans are not numbers")
        arr = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ApiError(422, "inputs must be numeric arrays of one shape "
                       f"{list(input_shape)} (or flat {math.prod(input_shape)})") from exc
    size = math.prod(input_shape)
    if arr.shape[1:] == (size,) or arr.shape[1:] == tuple(input_shape):
        arr = arr.reshape((len(arr), *input_shape))
    else:
        raise ApiError(422, f"each input must have shape {list(input_shape)} or ({size},), "
                       f"got {list(arr.shape[1:])}")
    with np.errstate(over="ignore"):
        batch = arr.astype(np.float32)
    if not np.isfinite(batch).all():
        raise ApiError(422, "inputs contain non-finite values (NaN, Infinity or float32 overflow)")
    return batch, nonce


def leaves(obj: Any) -> Any:
    """Every non-list value inside nested lists (JSON arrays), depth first."""
    if isinstance(obj, list):
        for v in obj:
            yield from leaves(v)
    else:
        yield obj


def outputs_of(probs: np.ndarray) -> list[dict[str, Any]]:
    return [{"label": int(p.argmax()), "probs": [float(v) for v in p]} for p in probs]


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def service_info(card: ModelCard, model_digest: str, key: Ed25519PrivateKey,
                 max_batch: int) -> ServiceInfo:
    """What ``GET /v1/model`` says about ``card``'s model served with ``key``."""
    return ServiceInfo(
        name=card.name, model_digest=model_digest,
        public_key=public_key_b64(key.public_key()), classes=card.classes,
        input_shape=list(card.input_shape), message_class=card.message_class,
        claims=card.claims.model_dump(), seed_config=card.seed_config,
        arch=card.arch, max_batch=max_batch, receipts=True)


def create_app(model: nn.Module, card: ModelCard, model_digest: str, key: Ed25519PrivateKey,
               *, max_batch: int = MAX_BATCH,
               predict_fn: Callable[[np.ndarray], np.ndarray] | None = None) -> FastAPI:
    """The supplier's API around ``model`` (or ``predict_fn``), signing with ``key``:
    mltrail's ``/v1`` routes and the Open Inference Protocol's ``/v2`` routes, one model,
    one key, the same receipts."""
    from mltrail.audit.oip import install_oip

    app = FastAPI(title="mltrail reference classifier", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    shape = tuple(card.input_shape)
    infer = predict_fn or (lambda b: predict(model, b))
    info = service_info(card, model_digest, key, max_batch).model_dump(exclude={"protocol"})

    def answer(batch: np.ndarray, nonce: str, _: Any = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
        outputs = outputs_of(infer(batch))
        receipt = sign_receipt(key, model_digest=model_digest, batch=batch, outputs=outputs,
                               nonce=nonce)
        return outputs, receipt, model_digest

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        return info

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/classify", openapi_extra=classify_openapi(shape, max_batch))
    async def classify(request: Request) -> JSONResponse:
        batch, nonce = parse_classify(await read_json(request), shape, max_batch)
        outputs, receipt, digest = answer(batch, nonce or "")
        body = ClassifyResponse.model_validate({"model_digest": digest, "outputs": outputs,
                                                "receipt": receipt})
        return JSONResponse(body.model_dump())

    install_oip(app, card.name, shape, card.classes, answer, max_batch=max_batch)
    return app


@dataclass
class RunningServer:
    """A uvicorn server on a loopback socket in a daemon thread."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening-ready socket on 127.0.0.1 (port 0: a free one)."""
    return _tcp_socket("127.0.0.1", port)


def _tcp_socket(host: str, port: int) -> socket.socket:
    # proto must be IPPROTO_TCP or asyncio does not disable Nagle on accepted connections,
    # and every response then waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def serve_in_thread(app: Any, port: int = 0, timeout: float = 10.0) -> RunningServer:
    """Start ``app`` on 127.0.0.1 and wait until it accepts connections."""
    sock = bind_loopback(port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    return RunningServer(server, thread, sock.getsockname()[1])


def serve_forever(app: Any, host: str, port: int,
                  on_bound: Callable[[int], None] | None = None) -> None:
    """Run ``app`` in the foreground (the CLI's serve commands); port 0 picks a free one."""
    sock = _tcp_socket(host, port)
    if on_bound is not None:
        on_bound(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
