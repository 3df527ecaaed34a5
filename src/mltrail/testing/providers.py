"""Intermediary providers that claim to resell a supplier: honest and dishonest ones.

Real services for tests and the demo. ``honest`` forwards every request and relays the
supplier's receipt; ``substitute`` answers from a cheaper model; ``mix=F`` substitutes a
fraction F of requests; ``probe-aware`` forwards only the inputs it recognises as audit
probes (exact copies of a public data set) and substitutes the rest. What a cheating
provider does with receipts is separate (``receipts``): ``relay`` what upstream gave,
``drop`` them, ``forge`` them with its own key, or ``replay`` an old one. A proxy always
advertises the supplier's ``/v1/model`` as its own. Nothing here audits anything.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mltrail.audit.client import async_transport
from mltrail.audit.models import INPUT_SHAPE
from mltrail.audit.receipts import sign_receipt
from mltrail.audit.service import (
    MAX_BATCH,
    ApiError,
    classify_openapi,
    install_error_handlers,
    outputs_of,
    parse_classify,
    read_json,
)
from mltrail.errors import InputError

ReceiptMode = Literal["relay", "drop", "forge", "replay"]
RECEIPT_MODES = ("relay", "drop", "forge", "replay")


@dataclass
class ProxyMode:
    """``honest``, ``substitute``, ``mix`` (with ``fraction``) or ``probe-aware``."""

    kind: Literal["honest", "substitute", "mix", "probe-aware"]
    fraction: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ProxyMode:
        if text in ("honest", "substitute", "probe-aware"):
            return cls(text)  # type: ignore[arg-type]
        if text.startswith("mix="):
            try:
                f = float(text[4:])
            except ValueError:
                f = -1.0
            if 0.0 <= f <= 1.0:
                return cls("mix", f)
        raise InputError(f"unknown proxy mode {text!r} (honest, substitute, mix=F, probe-aware)")


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(row, dtype="<f4").tobytes()).digest()


@dataclass
class KnownSet:
    """The probe-aware provider's guess at what audit probes look like: public inputs."""

    keys: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, x: np.ndarray) -> KnownSet:
        return cls({_row_key(r) for r in x})

    def contains(self, batch: np.ndarray) -> np.ndarray:
        return np.array([_row_key(r) in self.keys for r in batch], dtype=bool)


def create_proxy_app(upstream: str, mode: ProxyMode,
                     cheap: Callable[[np.ndarray], np.ndarray], *,
                     receipts: ReceiptMode | None = None, known: KnownSet | None = None,
                     seed: int | None = None, max_batch: int = MAX_BATCH) -> FastAPI:
    """A provider in front of ``upstream`` that may answer from ``cheap`` instead."""
    app = FastAPI(title=f"mltrail proxy ({mode.kind})", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    rmode: ReceiptMode = receipts or ("relay" if mode.kind == "honest" else "drop")
    rng = random.Random(seed)
    own_key = Ed25519PrivateKey.generate()
    known = known or KnownSet()
    state: dict[str, Any] = {"info": None, "old_receipt": None}
    http = httpx.AsyncClient(base_url=upstream.rstrip("/"), timeout=30.0,
                             transport=async_transport())

    async def info() -> dict[str, Any]:
        if state["info"] is None:
            r = await http.get("/v1/model")
            if r.status_code != 200:
                raise ApiError(502, f"upstream answered {r.status_code}")
            state["info"] = r.json()
        return dict(state["info"])

    async def forward(batch: np.ndarray, nonce: str | None) -> dict[str, Any]:
        flat = batch.reshape(len(batch), -1).tolist()
        try:
            r = await http.post("/v1/classify", json={"inputs": flat, "nonce": nonce})
        except httpx.HTTPError as exc:
            raise ApiError(502, f"upstream unreachable: {exc}") from exc
        if r.status_code != 200:
            return {"__status__": r.status_code, **r.json()}
        data: dict[str, Any] = r.json()
        if state["old_receipt"] is None:
            state["old_receipt"] = data.get("receipt")
        return data

    def local(batch: np.ndarray, nonce: str | None, digest: str) -> dict[str, Any]:
        outputs = outputs_of(cheap(batch))
        receipt: Any = None
        if rmode == "forge":
            receipt = sign_receipt(own_key, model_digest=digest, batch=batch, outputs=outputs,
                                   nonce=nonce or "")
        elif rmode == "replay":
            receipt = state["old_receipt"]
        return {"model_digest": digest, "outputs": outputs, "receipt": receipt}

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        return await info()

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/classify", openapi_extra=classify_openapi(INPUT_SHAPE, max_batch))
    async def classify(request: Request) -> JSONResponse:
        meta = await info()
        batch, nonce = parse_classify(await read_json(request), tuple(meta["input_shape"]),
                                      max_batch)
        digest = str(meta["model_digest"])
        if mode.kind == "honest":
            use_upstream = np.ones(len(batch), dtype=bool)
        elif mode.kind == "substitute":
            use_upstream = np.zeros(len(batch), dtype=bool)
        elif mode.kind == "mix":
            use_upstream = np.full(len(batch), rng.random() >= mode.fraction)
        else:
            use_upstream = known.contains(batch)
        if rmode == "replay" and state["old_receipt"] is None:
            await forward(batch, nonce)  # obtain one genuine receipt to replay later
        if use_upstream.all():
            data = await forward(batch, nonce)
            status = int(data.pop("__status__", 200))
            if rmode != "relay" and status == 200 and mode.kind != "honest":
                data["receipt"] = data.get("receipt") if rmode != "drop" else None
            return JSONResponse(data, status_code=status)
        data = local(batch, nonce, digest)
        if use_upstream.any():
            up = await forward(batch[use_upstream], nonce)
            up_out = iter(up.get("outputs", []))
            data["outputs"] = [next(up_out) if u else o
                               for u, o in zip(use_upstream, data["outputs"], strict=True)]
            data["receipt"] = None if rmode == "drop" else data["receipt"]
        return JSONResponse(data)

    return app
