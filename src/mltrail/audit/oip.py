"""The Open Inference Protocol (KServe / Triton "v2" REST API) for a classifier.

Owns the v2 routes a service adds beside mltrail's own ``/v1`` API
(:func:`install_oip`): ``GET /v2`` (server metadata), ``/v2/health/live``,
``/v2/health/ready``, ``GET /v2/models/{name}`` (model metadata: one input tensor
``input``, outputs ``probs`` FP64 [-1, classes] and ``label`` INT64 [-1]),
``/v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer``; the request's hardened
parsing (:func:`parse_infer`: limits first, then every field of the spec checked, each
error a 4xx ``{"error": ...}`` as the spec asks), and the response body
(:func:`infer_response`). Receipts travel in the response's ``parameters``:
``mltrail_model_digest`` (a string) and ``mltrail_receipt`` (the receipt object of
docs/receipts.md as a canonical-JSON string, because v2 parameter values must be
strings, numbers or booleans). The receipt's nonce is the request's ``id``, the field the
spec already requires a server to echo, so an mltrail client sends exactly what any v2
client sends. This module never audits anything; the auditor's v2 client lives in
:mod:`.protocols`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mltrail.audit.service import MAX_NONCE, ApiError, leaves, read_json

INPUT = "input"
PROBS = "probs"
LABEL = "label"
RECEIPT_PARAM = "mltrail_receipt"
DIGEST_PARAM = "mltrail_model_digest"
IN_TYPES = ("FP32", "FP64", "INT32", "INT64")   # converted to float32 (receipts bind those)
# (outputs, receipt or None, model digest) for a float32 batch, the request's id and the
# whole request body (the testing package's cheaters read it; honest services ignore it)
Answer = Callable[[np.ndarray, str, dict[str, Any]],
                  tuple[list[dict[str, Any]], dict[str, Any] | None, str]]


class MetadataTensor(BaseModel):
    model_config = ConfigDict(extra="ignore")   # MLServer adds "parameters"

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``$metadata_model_response`` of the v2 spec. Stock servers may declare no tensors
    (MLServer answers ``"inputs": [], "outputs": []`` unless its model settings list
    them), so both lists may be empty."""

    model_config = ConfigDict(extra="ignore")

    name: str
    versions: list[str] | None = None
    platform: str = ""
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)


def metadata(name: str, shape: tuple[int, ...], classes: int) -> ModelMetadata:
    return ModelMetadata(name=name, platform="pytorch", inputs=[
        MetadataTensor(name=INPUT, datatype="FP32", shape=[-1, *shape])], outputs=[
        MetadataTensor(name=PROBS, datatype="FP64", shape=[-1, classes]),
        MetadataTensor(name=LABEL, datatype="INT64", shape=[-1])])


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parameters(obj: Any, where: str) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise _bad(f"{where}parameters must be an object")
    for k, v in obj.items():
        if not isinstance(v, str | int | float) or (isinstance(v, float) and not math.isfinite(v)):
            raise _bad(f"{where}parameters.{str(k)[:40]} must be a string, number or boolean")


def parse_infer(payload: Any, shape: tuple[int, ...], max_batch: int
                ) -> tuple[np.ndarray, str | None, list[str] | None]:
    """Validate a ``$inference_request``; return the batch (float32, N×shape), the
    request ``id`` and the requested output names (None: all)."""
    if not isinstance(payload, dict):
        raise _bad("inference request must be a JSON object")
    extra = set(payload) - {"id", "parameters", "inputs", "outputs"}
    if extra:
        raise _bad(f"unknown field(s): {', '.join(sorted(extra))[:200]}")
    rid = payload.get("id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_NONCE
                            or not rid.isprintable()):
        raise _bad(f"id must be a printable string of at most {MAX_NONCE} characters")
    _parameters(payload.get("parameters"), "")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _bad(f"inputs must be a list of exactly one tensor named {INPUT!r}")
    t = inputs[0]
    extra = set(t) - {"name", "shape", "datatype", "parameters", "data"}
    missing = {"name", "shape", "datatype", "data"} - set(t)
    if extra or missing:
        raise _bad(f"input tensor has unknown field(s) {sorted(extra)} or lacks {sorted(missing)}")
    if t["name"] != INPUT:
        raise _bad(f"unknown input {str(t['name'])[:40]!r} (this model takes {INPUT!r})")
    if t["datatype"] not in IN_TYPES:
        raise _bad(f"datatype must be one of {', '.join(IN_TYPES)}")
    _parameters(t.get("parameters"), "input ")
    dims = t["shape"]
    size = math.prod(shape)
    if not isinstance(dims, list) or not dims or not all(_is_int(d) and d >= 0 for d in dims):
        raise _bad("shape must be a list of non-negative integers")
    if tuple(dims[1:]) not in (tuple(shape), (size,)):
        raise _bad(f"shape must be [N, {', '.join(map(str, shape))}] or [N, {size}]")
    n = dims[0]
    if n < 1:
        raise _bad("the batch is empty")
    if n > max_batch:
        raise ApiError(413, f"batch of {n} inputs exceeds the limit of {max_batch}")
    data = t["data"]
    if not isinstance(data, list):
        raise _bad("data must be a list")
    try:
        if any(isinstance(v, bool) for v in leaves(data)):
            raise TypeError("booleans")
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad("data must be numbers, flat or nested in row-major order") from exc
    if arr.size != n * size or arr.ndim not in (1, len(dims)) or \
            (arr.ndim > 1 and list(arr.shape) != dims):
        raise _bad(f"data holds {arr.size} values in shape {list(arr.shape)}; shape "
                   f"{dims} needs {n * size}")
    if t["datatype"].startswith("INT") and not np.all(arr == np.round(arr)):
        raise _bad(f"{t['datatype']} data must be integers")
    with np.errstate(over="ignore"):
        batch = arr.reshape((n, *shape)).astype(np.float32)
    if not np.isfinite(batch).all():
        raise _bad("data contain non-finite values (NaN, Infinity or float32 overflow)")
    wanted = payload.get("outputs")
    names = None
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
            raise _bad("outputs must be a list of {\"name\": ...} objects")
        names = []
        for o in wanted:
            if set(o) - {"name", "parameters"} or o.get("name") not in (PROBS, LABEL):
                raise _bad(f"unknown requested output (this model has {PROBS!r}, {LABEL!r})")
            _parameters(o.get("parameters"), "output ")
            names.append(str(o["name"]))
    return batch, rid, names


def infer_response(model_name: str, rid: str | None, outputs: list[dict[str, Any]],
                   receipt: dict[str, Any] | None, digest: str,
                   names: list[str] | None = None) -> dict[str, Any]:
    """A ``$inference_response``: ``probs`` (FP64, row-major) and ``label`` (INT64)."""
    from mltrail.provenance.digest import canonical_json

    n = len(outputs)
    classes = len(outputs[0]["probs"]) if outputs else 0
    tensors = {
        PROBS: {"name": PROBS, "shape": [n, classes], "datatype": "FP64",
                "data": [p for o in outputs for p in o["probs"]]},
        LABEL: {"name": LABEL, "shape": [n], "datatype": "INT64",
                "data": [int(o["label"]) for o in outputs]},
    }
    params: dict[str, Any] = {DIGEST_PARAM: digest}
    if receipt is not None:
        params[RECEIPT_PARAM] = canonical_json(receipt).decode()
    body: dict[str, Any] = {"model_name": model_name}
    if rid is not None:
        body["id"] = rid
    body["parameters"] = params
    body["outputs"] = [tensors[k] for k in (names or [PROBS, LABEL])]
    return body


def infer_openapi(shape: tuple[int, ...], max_batch: int) -> dict[str, Any]:
    """The request body's schema for the OpenAPI document (parsed by hand, limits first)."""
    size = math.prod(shape)
    scalar = {"type": "string", "maxLength": 64}
    params = {"type": "object", "additionalProperties": {"anyOf": [
        scalar, {"type": "number"}, {"type": "boolean"}]}}
    tensor = {"type": "object", "additionalProperties": False,
              "required": ["name", "shape", "datatype", "data"],
              "properties": {"name": {"type": "string", "enum": [INPUT]},
                             "shape": {"type": "array", "minItems": 2, "maxItems": 2,
                                       "items": {"type": "integer", "minimum": 1,
                                                 "maximum": max_batch}},
                             "datatype": {"type": "string", "enum": list(IN_TYPES)},
                             "parameters": params,
                             "data": {"type": "array", "items": {"type": "number"},
                                      "minItems": size, "maxItems": size * max_batch}}}
    schema = {"type": "object", "additionalProperties": False, "required": ["inputs"],
              "properties": {"id": {"type": "string", "maxLength": MAX_NONCE},
                             "parameters": params,
                             "inputs": {"type": "array", "minItems": 1, "maxItems": 1,
                                        "items": tensor},
                             "outputs": {"type": "array", "items": {
                                 "type": "object", "additionalProperties": False,
                                 "required": ["name"],
                                 "properties": {"name": {"type": "string",
                                                         "enum": [PROBS, LABEL]}}}}}}
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}},
            "responses": {"400": {"description": "invalid inference request"},
                          "404": {"description": "unknown model"},
                          "413": {"description": "over a limit"}}}


def install_oip(app: FastAPI, name: str, shape: tuple[int, ...], classes: int,
                answer: Answer, *, max_batch: int) -> None:
    """Add the v2 routes for one model called ``name`` to ``app``."""
    meta = metadata(name, shape, classes).model_dump(exclude_none=True)
    # the one model name this service knows, in the OpenAPI document (fuzzers use it)
    named = {"parameters": [{"name": "model_name", "in": "path", "required": True,
                             "schema": {"type": "string", "enum": [name]}}]}

    def _model(model_name: str) -> None:
        if model_name != name:
            raise ApiError(404, f"unknown model {model_name[:60]!r}")

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "mltrail", "version": "1", "extensions": ["mltrail_receipts"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{model_name}", openapi_extra=named)
    async def model_metadata(model_name: str) -> dict[str, Any]:
        _model(model_name)
        return meta

    @app.get("/v2/models/{model_name}/ready", openapi_extra=named)
    async def model_ready(model_name: str) -> dict[str, Any]:
        _model(model_name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{model_name}/infer",
              openapi_extra={**infer_openapi(shape, max_batch), **named})
    async def infer(model_name: str, request: Request) -> Response:
        _model(model_name)
        payload = await read_json(request)
        batch, rid, names = parse_infer(payload, shape, max_batch)
        outputs, receipt, digest = answer(batch, rid or "", payload)
        return JSONResponse(infer_response(name, rid, outputs, receipt, digest, names))


def receipt_of(parameters: Any) -> Any:
    """The receipt a v2 response carries in its ``parameters`` (None if none)."""
    if not isinstance(parameters, dict) or not isinstance(parameters.get(RECEIPT_PARAM), str):
        return None
    try:
        return json.loads(parameters[RECEIPT_PARAM])
    except ValueError:
        return {"malformed": True}
