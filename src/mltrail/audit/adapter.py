"""Declarative adapter files: how the auditor speaks to a JSON API that is neither
mltrail's own nor the Open Inference Protocol.

Owns the adapter file's format (:class:`AdapterSpec`, YAML or JSON, documented in
docs/audit.md): a request template (method, path, headers, a JSON body in which the
string ``"$inputs"`` stands for the batch, ``"$n"`` for its size and ``"$nonce"`` for
the request's fresh nonce; the batch nested, one flat row per input, or all of it as one
row-major list, as an Open Inference Protocol ``data`` field is) and response paths as
JSON Pointers (RFC 6901, the ``jsonpointer`` package): where the per-input list is, and
within each item the probability vector, or a list of ``{label, score}`` pairs, and
optionally the label; or where one row-major list of ``n x classes`` probabilities is
(a v2 output tensor's flat ``data``); where a receipt and a model digest are, if the API
returns them. :func:`load_adapter` reads and validates a file (bounded
size, no YAML aliases, every pointer parsed); any problem is one :class:`InputError`
naming the field. :func:`fill` and :func:`read_outputs` apply a spec to one exchange.
It never sends a request (the client in :mod:`.protocols` does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from jsonpointer import JsonPointer, JsonPointerException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mltrail.errors import InputError

MAX_FILE = 1 << 20
INPUTS = "$inputs"
NONCE = "$nonce"
BATCH = "$n"


def _pointer(value: str | None) -> str | None:
    if value is not None:
        try:
            JsonPointer(value)
        except JsonPointerException as exc:
            raise ValueError(f"not a JSON Pointer: {exc}") from exc
    return value


class LabelScores(BaseModel):
    """Each item is a list of ``{label, score}`` objects (the Hugging Face pipeline shape)."""

    model_config = ConfigDict(extra="forbid")

    pairs: str = ""         # pointer within the item to the list ("" = the item itself)
    label: str = "/label"   # pointer within each pair to the class name or index
    score: str = "/score"

    _ptr = field_validator("pairs", "label", "score")(_pointer)


class AdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["POST", "PUT"] = "POST"
    path: str = Field(pattern=r"^/[\x21-\x7e]*$", max_length=500)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    body: Any
    # each input as input_shape (nested), each input flat, or the batch as one flat list
    layout: Literal["nested", "flat", "row-major"] = "nested"
    input_type: Literal["float", "int"] = "float"

    @model_validator(mode="after")
    def _one_inputs(self) -> AdapterRequest:
        n = _count(self.body, INPUTS)
        if n != 1:
            raise ValueError(f"the body template must hold the string {INPUTS!r} exactly "
                             f"once (found {n})")
        if len(json.dumps(self.body)) > 65536:
            raise ValueError("the body template exceeds 64 KiB")
        return self


class AdapterResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outputs: str                      # pointer to the list of per-input items
    # items: one item per input; row-major: outputs is one flat list of n x classes
    # probabilities (a v2 output tensor's data), read as [n, classes]
    layout: Literal["items", "row-major"] = "items"
    probs: str | None = None          # pointer within an item to its probabilities
    scores: LabelScores | None = None
    label: str | None = None          # pointer within an item to its label (default argmax)
    receipt: str | None = None        # pointer to an mltrail receipt, if the API signs
    model_digest: str | None = None

    _ptr = field_validator("outputs", "probs", "label", "receipt", "model_digest")(_pointer)

    @model_validator(mode="after")
    def _one_source(self) -> AdapterResponse:
        if self.layout == "row-major":
            if self.probs is not None or self.scores is not None or self.label is not None:
                raise ValueError("with layout row-major, outputs is the flat probability "
                                 "list: give no probs, scores or label")
        elif (self.probs is None) == (self.scores is None):
            raise ValueError("give exactly one of probs and scores")
        return self


class AdapterSpec(BaseModel):
    """An adapter file (docs/audit.md, "Adapter files")."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    request: AdapterRequest
    response: AdapterResponse
    input_shape: list[int] = Field(min_length=1, max_length=8)
    classes: int = Field(ge=2, le=100_000)
    labels: list[str] | None = None   # class names, in class-index order
    max_batch: int = Field(default=64, ge=1, le=4096)
    health: str | None = Field(default=None, pattern=r"^/[\x21-\x7e]*$", max_length=500)

    @model_validator(mode="after")
    def _labels(self) -> AdapterSpec:
        if any(d < 1 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive")
        if self.labels is not None and len(self.labels) != self.classes:
            raise ValueError(f"labels names {len(self.labels)} classes, not {self.classes}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")
        return self


def _count(obj: Any, token: str) -> int:
    if obj == token:
        return 1
    if isinstance(obj, dict):
        return sum(_count(v, token) for v in obj.values())
    if isinstance(obj, list):
        return sum(_count(v, token) for v in obj)
    return 0


def parse_adapter(text: str, source: str = "adapter") -> AdapterSpec:
    """Validate adapter text (YAML or JSON); one :class:`InputError` naming the field."""
    if len(text) > MAX_FILE:
        raise InputError(f"{source}: larger than {MAX_FILE} bytes")
    try:
        if any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text)):
            raise InputError(f"{source}: YAML aliases are not allowed")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not YAML or JSON: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise InputError(f"{source}: nested too deeply") from exc
    if not isinstance(data, dict):
        raise InputError(f"{source}: must be a mapping with v, name, request, response, "
                         "input_shape and classes")
    try:
        return AdapterSpec.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        msg = str(e["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in e["loc"])
        raise InputError(f"{source}: {where}: {msg}" if where else f"{source}: {msg}") from exc
    except RecursionError as exc:
        raise InputError(f"{source}: nested too deeply") from exc


def load_adapter(path: str | Path) -> AdapterSpec:
    """Read and validate an adapter file."""
    from mltrail._fs import regular_file

    p = regular_file(path, "adapter file")
    raw = p.read_bytes()[: MAX_FILE + 1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"adapter {p}: not UTF-8") from exc
    return parse_adapter(text, f"adapter {p}")


def fill(spec: AdapterSpec, batch: np.ndarray, nonce: str) -> tuple[dict[str, str], Any]:
    """(headers, body) of the request for ``batch``."""
    shape = {"nested": (len(batch), *spec.input_shape), "flat": (len(batch), -1),
             "row-major": (-1,)}[spec.request.layout]
    arr = np.ascontiguousarray(batch, dtype=np.float32).reshape(shape)
    values = arr.round().astype(np.int64).tolist() if spec.request.input_type == "int" \
        else arr.tolist()

    def sub(obj: Any) -> Any:
        if obj == INPUTS:
            return values
        if obj == NONCE:
            return nonce
        if obj == BATCH:
            return len(batch)
        if isinstance(obj, dict):
            return {k: sub(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [sub(v) for v in obj]
        return obj

    headers = {k: (nonce if v == NONCE else v) for k, v in spec.request.headers.items()}
    return headers, sub(spec.request.body)


def _at(doc: Any, pointer: str) -> Any:
    try:
        return JsonPointer(pointer).resolve(doc)
    except (JsonPointerException, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"nothing at {pointer or '(root)'}") from exc


def _class_index(spec: AdapterSpec, label: Any) -> int:
    if isinstance(label, int) and not isinstance(label, bool):
        return label
    if isinstance(label, str) and spec.labels is not None and label in spec.labels:
        return spec.labels.index(label)
    raise ValueError(f"label {str(label)[:40]!r} is not a class of the adapter")


def read_outputs(spec: AdapterSpec, data: Any, n: int
                 ) -> tuple[list[dict[str, Any]], Any, str | None]:
    """(outputs as ``[{label, probs}]``, receipt, model digest) of one answer; a
    :class:`ValueError` naming what is missing."""
    r = spec.response
    items = _at(data, r.outputs)
    if r.layout == "row-major":
        if not isinstance(items, list) or len(items) != n * spec.classes:
            raise ValueError(f"{r.outputs} holds no flat list of {n} x {spec.classes} "
                             "probabilities")
        items = [items[i * spec.classes:(i + 1) * spec.classes] for i in range(n)]
        r = r.model_copy(update={"probs": ""})
    if not isinstance(items, list) or len(items) != n:
        raise ValueError(f"{r.outputs} holds no list of {n} items")
    outputs = []
    for item in items:
        if r.probs is not None:
            probs = _at(item, r.probs)
            if not isinstance(probs, list):
                raise ValueError(f"{r.probs} is not a list of probabilities")
        else:
            assert r.scores is not None
            pairs = _at(item, r.scores.pairs)
            if not isinstance(pairs, list):
                raise ValueError(f"{r.scores.pairs or '(item)'} is not a list of scores")
            probs = [0.0] * spec.classes
            seen = set()
            for pair in pairs:
                k = _class_index(spec, _at(pair, r.scores.label))
                if not 0 <= k < spec.classes or k in seen:
                    raise ValueError(f"class {k} is out of range or repeated")
                seen.add(k)
                probs[k] = _at(pair, r.scores.score)
        if not all(type(p) in (int, float) for p in probs):
            raise ValueError("probabilities are not numbers")
        probs = [float(p) for p in probs]
        if r.label is not None:
            label = _class_index(spec, _at(item, r.label))
        else:
            label = int(np.argmax(probs)) if probs else -1
        outputs.append({"label": label, "probs": probs})
    receipt = _at(data, r.receipt) if r.receipt is not None else None
    digest = _at(data, r.model_digest) if r.model_digest is not None else None
    return outputs, receipt, digest if isinstance(digest, str) else None
