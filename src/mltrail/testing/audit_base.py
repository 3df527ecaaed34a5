"""What every cheating supplier of :mod:`mltrail.testing` shares: one HTTP service.

A cheating supplier holds the genuine model, a cheap substitute and the genuine
receipt key, so its receipts always verify. It speaks mltrail's ``/v1`` API and the Open
Inference Protocol's ``/v2`` routes, like ``serve-model``. A :class:`Cheat` decides, per
request, which inputs get the genuine model, how long to stall, whether to refuse, and
what ``/v1/model`` advertises (:meth:`Cheat.decide_oip` sees a v2 request's whole body,
:meth:`Cheat.shape_oip` may rewrite a v2 answer, :meth:`Cheat.decide_tf` decides on a
TF-Serving-style route); this module turns that into a service (:func:`build_app`) and a
process (:func:`main`, ``python -m mltrail.testing.audit_<name> MODEL --cheap-model
... --port-file ...``). Nothing in the auditor imports from here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mltrail.audit import oip
from mltrail.audit.models import ModelCard, predict
from mltrail.audit.receipts import public_key_b64, sign_receipt
from mltrail.audit.service import (
    classify_openapi,
    install_error_handlers,
    outputs_of,
    parse_classify,
    read_json,
)


@dataclass
class Decision:
    genuine: np.ndarray              # per input: answer with the genuine model?
    delay_s: float = 0.0
    refuse: bool = False
    sign: bool = True                # False: answer without a receipt


@dataclass
class Cheat:
    """The honest baseline: every input genuine, no stall, true claims."""

    name: str = "honest"
    log: list[dict[str, Any]] = field(default_factory=list)
    peer: str = ""                   # the current request's client address (set per request)

    def advertise(self, info: dict[str, Any]) -> dict[str, Any]:
        return info

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        return Decision(np.ones(len(batch), dtype=bool))

    def decide_oip(self, batch: np.ndarray, request: dict[str, Any], now: float) -> Decision:
        """A v2 request (``request`` is its whole JSON body); by default as on ``/v1``."""
        rid = request.get("id")
        return self.decide(batch, rid if isinstance(rid, str) else None, now)

    def shape_oip(self, body: dict[str, Any]) -> dict[str, Any]:
        """A v2 answer as sent (honest: unchanged)."""
        return body

    def decide_tf(self, batch: np.ndarray, request: dict[str, Any], now: float) -> Decision:
        """A request on the TF-Serving-style route (an adapter's); by default as on /v1."""
        return self.decide(batch, None, now)

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """The probabilities as computed before signing (honest: unchanged)."""
        return probs

    def note(self, audit_like: bool, n: int) -> None:
        self.log.append({"audit_like": audit_like, "n": n})


def build_app(cheat: Cheat, model: torch.nn.Module, card: ModelCard, digest: str,
              key: Ed25519PrivateKey, cheap: torch.nn.Module, *,
              max_batch: int = 256) -> FastAPI:
    app = FastAPI(title=f"supplier ({cheat.name})", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    shape = tuple(card.input_shape)
    info = cheat.advertise({
        "name": card.name, "model_digest": digest,
        "public_key": public_key_b64(key.public_key()), "classes": card.classes,
        "input_shape": list(shape), "message_class": card.message_class,
        "claims": card.claims.model_dump(), "seed_config": card.seed_config,
        "arch": card.arch, "max_batch": max_batch, "receipts": True})

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        return info

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    def answer(batch: np.ndarray, d: Decision, nonce: str) -> tuple[list[dict[str, Any]],
                                                                   dict[str, Any]]:
        probs = predict(model, batch)
        if not d.genuine.all():
            cheap_probs = predict(cheap, batch)
            width = min(probs.shape[1], cheap_probs.shape[1])
            probs = probs.copy()
            probs[~d.genuine] = 0.0
            probs[~d.genuine, :width] = cheap_probs[~d.genuine, :width]
        outputs = outputs_of(cheat.transform(probs))
        receipt = sign_receipt(key, model_digest=digest, batch=batch, outputs=outputs,
                               nonce=nonce)
        return outputs, receipt

    @app.post("/v1/models/m:predict")
    async def tf_predict(request: Request) -> JSONResponse:
        payload = await read_json(request)
        rows = payload.get("instances") if isinstance(payload, dict) else None
        try:
            batch = np.asarray(rows, dtype=np.float32).reshape((-1, *shape))
        except (ValueError, TypeError):
            return JSONResponse({"error": "bad request"}, status_code=400)
        d = cheat.decide_tf(batch, payload, time.monotonic())
        outputs, _ = answer(batch, d, "")
        return JSONResponse({"predictions": [o["probs"] for o in outputs]})

    @app.post("/v1/classify", openapi_extra=classify_openapi(shape, max_batch))
    async def classify(request: Request) -> JSONResponse:
        batch, nonce = parse_classify(await read_json(request), shape, max_batch)
        cheat.peer = request.client.host if request.client else ""
        d = cheat.decide(batch, nonce, time.monotonic())
        if d.delay_s:
            await asyncio.sleep(d.delay_s)
        if d.refuse:
            return JSONResponse({"error": "service temporarily unavailable"}, status_code=503)
        outputs, receipt = answer(batch, d, nonce or "")
        return JSONResponse({"model_digest": digest, "outputs": outputs,
                             "receipt": receipt if d.sign else None})

    @app.get("/v2/models/{model_name}")
    async def v2_metadata(model_name: str) -> JSONResponse:
        if model_name != card.name:
            return JSONResponse({"error": "unknown model"}, status_code=404)
        return JSONResponse(oip.metadata(card.name, shape, card.classes).model_dump(
            exclude_none=True))

    @app.post("/v2/models/{model_name}/infer")
    async def v2_infer(model_name: str, request: Request) -> JSONResponse:
        if model_name != card.name:
            return JSONResponse({"error": "unknown model"}, status_code=404)
        payload = await read_json(request)
        batch, rid, names = oip.parse_infer(payload, shape, max_batch)
        cheat.peer = request.client.host if request.client else ""
        d = cheat.decide_oip(batch, payload, time.monotonic())
        if d.delay_s:
            await asyncio.sleep(d.delay_s)
        if d.refuse:
            return JSONResponse({"error": "service temporarily unavailable"}, status_code=503)
        outputs, receipt = answer(batch, d, rid or "")
        body = oip.infer_response(card.name, rid, outputs, receipt if d.sign else None,
                                  digest, names)
        return JSONResponse(cheat.shape_oip(body))

    return app


def main(cheat: Cheat, argv: list[str] | None = None,
         extra: Any = None) -> None:
    """Serve ``cheat`` as a process: MODEL (genuine), --cheap-model, --key, --port(-file)."""
    from mltrail.audit.models import load_model
    from mltrail.audit.receipts import load_or_create_key
    from mltrail.audit.service import serve_forever

    ap = argparse.ArgumentParser(prog=f"python -m mltrail.testing.audit_{cheat.name}")
    ap.add_argument("model")
    ap.add_argument("--cheap-model", required=True)
    ap.add_argument("--key", default=None)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default=None)
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    if hasattr(cheat, "configure"):
        cheat.configure(args)
    torch.set_num_threads(1)
    net, card, digest = load_model(args.model)
    cheap = load_model(args.cheap_model)[0]
    app = build_app(cheat, net, card, digest, load_or_create_key(args.key), cheap)

    def bound(port: int) -> None:
        if args.port_file:
            from mltrail._fs import atomic_write

            atomic_write(Path(args.port_file), f"{port}\n".encode())
        sys.stderr.write(f"{cheat.name} supplier on http://127.0.0.1:{port}\n")

    serve_forever(app, "127.0.0.1", args.port, bound)


class PublicIndex:
    """A cheater's own look-up of the public data set: every public digit and its
    one-pixel shifts, and the distance from an input to the nearest of them."""

    _cache: PublicIndex | None = None

    def __init__(self) -> None:
        from mltrail.audit.heldout import public_set

        pub = public_set()[0]   # everything public; never the auditor's own split
        self.public = pub
        shifted = [np.roll(pub, (dy, dx), axis=(-2, -1)).reshape(len(pub), -1)
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        self.points = np.concatenate(shifted).astype(np.float32)
        self.norms = (self.points.astype(np.float64) ** 2).sum(1)

    @classmethod
    def get(cls) -> PublicIndex:
        if cls._cache is None:
            cls._cache = cls()
        return cls._cache

    def distance(self, batch: np.ndarray, skip_self: bool = False) -> np.ndarray:
        out = np.empty(len(batch))
        flat = batch.reshape(len(batch), -1).astype(np.float32)
        for i in range(0, len(flat), 512):
            q = flat[i:i + 512]
            d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] + self.norms[None] \
                - 2.0 * (q @ self.points.T)
            if skip_self:
                d2[d2 < 1e-6] = np.inf
            out[i:i + 512] = np.sqrt(np.maximum(d2.min(1), 0.0))
        return out

    def new_data_distances(self) -> np.ndarray:
        """What the cheater expects of its customers' new handwriting: each public digit
        against all the others."""
        return self.distance(self.public, skip_self=True)


def looks_like_old_probe_nonce(nonce: str | None) -> bool:
    """The documented client library sends 32 lowercase hex digits; anything else (the
    auditor's old latency nonces 'load-N', none at all) is suspicious."""
    if nonce is None or len(nonce) != 32:
        return True
    return any(c not in "0123456789abcdef" for c in nonce)
