"""Audits drawn from real traffic: clients keep receipts and submit a random sample.

Owns the submission format (docs/receipts.md, :class:`Submission`): one client's request
as sent, the service's response as received, and the client's own clock. Also the client
library (:class:`SamplingClient`: calls a service, keeps every receipt, draws each
exchange into the sample with probability ``rate`` from the OS's CSPRNG *after* the
answer arrived, so a provider cannot know which answers will be checked, and — when
the service's claims say it signs — always forwards an answer without a valid receipt
as a finding), submission to an auditor (:func:`submit`), and the auditor's inbox
(:func:`create_inbox_app`: checks each submission's shape, accepts answered ones signed
or not — an unsigned answer is a client's finding, listed under ``unsigned`` with its
reason, checked against the service's ledger-bound key — and appends accepted ones to
``<dir>/<service id>.jsonl``). The checks of the answers
themselves run in :mod:`mltrail.audit.runner`. It never touches the ledger.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    model_validator,
)

from mltrail.audit.client import ServiceFailure, check_outputs
from mltrail.audit.receipts import ReceiptVerifier, load_public_key
from mltrail.errors import InputError, NetworkError

MAX_SUBMISSIONS = 256      # per POST
MAX_INPUTS = 256           # per request inside a submission
SAMPLE_RATE = 0.01


class SubmittedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[list[FiniteFloat]] = Field(min_length=1, max_length=MAX_INPUTS)
    nonce: str = Field(min_length=1, max_length=128)


class Submission(BaseModel):
    """One sampled exchange, as a client saw it (format v1, docs/receipts.md)."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    service: str = Field(pattern=r"^0x[0-9a-f]{64}$")
    request: SubmittedRequest
    status: int = Field(ge=100, le=599)
    response: dict[str, Any] | None = None
    sent_at_ms: int = Field(ge=0)
    received_at_ms: int = Field(ge=0)
    client: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    sampled: bool = True   # False: forwarded outside the random draw (an unsigned answer)

    @model_validator(mode="after")
    def _strict_json(self) -> Submission:
        try:
            json.dumps(self.response, allow_nan=False)
        except ValueError as exc:
            raise ValueError("response holds NaN or Infinity (not JSON)") from exc
        return self

    def batch(self, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(self.request.inputs, dtype=np.float32)
        size = int(np.prod(shape))
        if arr.ndim != 2 or arr.shape[1] != size:
            raise ValueError(f"inputs must be rows of {size} numbers")
        return arr.reshape((len(arr), *shape))

    @property
    def latency_ms(self) -> float:
        return float(self.received_at_ms - self.sent_at_ms)


class SamplingClient:
    """A client of one service that keeps its receipts and samples exchanges for audit.

    With ``public_key`` (the receipt key of the service's ledger claims: the service
    signs) every answer's receipt is verified on arrival; an answer without a valid
    receipt is a finding: counted (``unsigned``), kept (``findings``) and always
    submitted (with ``sampled`` false when the random draw did not pick it, so the
    auditor's rate estimate stays unbiased)."""

    def __init__(self, endpoint: str, service_id: str, *, rate: float = SAMPLE_RATE,
                 keep: int = 100_000, public_key: str | None = None,
                 model_digest: str | None = None, client_id: str | None = None) -> None:
        if not 0.0 < rate <= 1.0:
            raise InputError("sampling rate must be in (0, 1]")
        from mltrail.audit.protocols import open_target

        self.service = open_target(endpoint)  # mltrail's API, or v2 for .../v2/models/NAME
        self.service_id = service_id
        self.rate = rate
        self.keep = keep
        self.client_id = client_id
        self.verifier = ReceiptVerifier(load_public_key(public_key), model_digest or "",
                                        max_skew_s=86400.0) if public_key else None
        self.receipts: list[Any] = []
        self.sample: list[Submission] = []
        self.findings: list[Submission] = []
        self.answered = 0
        self.unsigned = 0

    @classmethod
    def from_claims(cls, claims: Any, service_id: str, **kw: Any) -> SamplingClient:
        """A client of the service ``claims`` (:class:`~.claims.ServiceClaims`) describe;
        receipts are required when the claims name a receipt key."""
        return cls(claims.endpoint, service_id, public_key=claims.public_key,
                   model_digest=claims.model_digest, **kw)

    def close(self) -> None:
        self.service.close()

    def classify(self, batch: np.ndarray) -> dict[str, Any] | None:
        """Classify ``batch``; the response body, or None when the service failed."""
        nonce = secrets.token_hex(16)
        flat = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), -1)
        sent = int(time.time() * 1000)
        status, body, unsigned = 200, None, False
        try:
            r = self.service.classify(batch, nonce=nonce)
            body = {"model_digest": r.model_digest, "outputs": r.outputs, "receipt": r.receipt}
            self.answered += 1
            if len(self.receipts) < self.keep:
                self.receipts.append(r.receipt)
            if self.verifier is not None:
                unsigned = not self.verifier.check(
                    r.receipt, batch=np.asarray(batch, dtype=np.float32), outputs=r.outputs,
                    nonce=nonce, sent_at=sent / 1000).ok
        except ServiceFailure as exc:
            status = 599 if exc.reason != "refused" else _status_of(str(exc))
        received = int(time.time() * 1000)
        drawn = secrets.randbelow(1_000_000) < self.rate * 1_000_000  # after the answer
        if drawn or unsigned:
            sub = Submission(service=self.service_id, status=status, response=body,
                             request=SubmittedRequest(inputs=flat.tolist(), nonce=nonce),
                             sent_at_ms=sent, received_at_ms=received,
                             client=self.client_id, sampled=drawn)
            self.sample.append(sub)
            if unsigned:
                self.unsigned += 1
                if len(self.findings) < self.keep:
                    self.findings.append(sub)
        return body

    def write(self, path: str | Path) -> int:
        """Append the sample to a JSON-lines file and clear it; the number written."""
        with open(path, "a", encoding="utf-8") as fh:
            for s in self.sample:
                fh.write(s.model_dump_json() + "\n")
        n = len(self.sample)
        self.sample.clear()
        return n


def _status_of(message: str) -> int:
    for word in message.split():
        if word.isdigit() and 100 <= int(word) <= 599:
            return int(word)
    return 599


def read_submissions(path: str | Path, service_id: str | None = None) -> list[Submission]:
    """Submissions from a JSON-lines file; a malformed line is an :class:`InputError`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no submissions file {p}")
    out = []
    with open(p, "rb") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                s = Submission.model_validate_json(line)
            except ValidationError as exc:
                raise InputError(f"{p}:{i}: not a submission: "
                                 f"{str(exc).splitlines()[0]}") from exc
            if service_id is None or s.service == service_id:
                out.append(s)
    return out


def submit(auditor: str, submissions: Iterable[Submission], *,
           chunk: int = MAX_SUBMISSIONS) -> dict[str, Any]:
    """POST submissions to an auditor's inbox; totals of accepted and rejected."""
    items = list(submissions)
    accepted, rejected, unsigned = 0, [], []
    with httpx.Client(base_url=auditor.rstrip("/"), timeout=60) as http:
        for i in range(0, len(items), chunk):
            body = {"submissions": [s.model_dump(mode="json") for s in items[i:i + chunk]]}
            try:
                r = http.post("/v1/submissions", json=body)
            except httpx.HTTPError as exc:
                raise NetworkError(f"cannot reach the auditor {auditor}: {exc}") from exc
            if r.status_code != 200:
                raise NetworkError(f"auditor answered {r.status_code}: {r.text[:200]}")
            data = r.json()
            accepted += int(data.get("accepted", 0))
            rejected += [{**x, "index": int(x.get("index", 0)) + i}
                         for x in data.get("rejected", [])]
            unsigned += [{**x, "index": int(x.get("index", 0)) + i}
                         for x in data.get("unsigned", [])]
    return {"submitted": len(items), "accepted": accepted, "rejected": rejected,
            "unsigned": unsigned}


def check_submission(s: Submission, key_b64: str, model_digest: str,
                     shape: tuple[int, ...]) -> str | None:
    """Why the inbox rejects ``s`` (None: accepted). Failed exchanges (status ≠ 200) are
    accepted as client reports; answered ones with well-formed outputs too, signed or
    not: an answer without a valid receipt from a service that signs is a client's
    finding (:func:`unsigned_reason` says why; :mod:`.evidence` weighs it)."""
    if s.received_at_ms < s.sent_at_ms:
        return "received before sent"
    try:
        batch = s.batch(shape)
    except ValueError as exc:
        return str(exc)
    if s.status != 200:
        return None
    problem = check_outputs((s.response or {}).get("outputs"), len(batch), None)
    return f"response: {problem}" if problem else None


def unsigned_reason(s: Submission, key_b64: str, model_digest: str,
                    shape: tuple[int, ...]) -> str | None:
    """Why an accepted, answered submission carries no valid receipt (None: it does)."""
    if s.status != 200:
        return None
    resp = s.response or {}
    ver = ReceiptVerifier(load_public_key(key_b64), model_digest, max_skew_s=86400.0)
    chk = ver.check(resp.get("receipt"), batch=s.batch(shape), outputs=resp["outputs"],
                    nonce=s.request.nonce, sent_at=s.sent_at_ms / 1000)
    return None if chk.ok else "receipt: " + chk.problems[0]


def create_inbox_app(folder: str | Path, services: dict[str, tuple[str, str]],
                     shape: tuple[int, ...] = (1, 8, 8), max_body: int = 64 << 20) -> FastAPI:
    """The auditor's inbox; ``services`` maps a service id to (receipt key, model digest)
    from its ledger claims."""
    from mltrail.audit.service import ApiError, install_error_handlers, read_json

    app = FastAPI(title="mltrail audit inbox", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    @app.post("/v1/submissions")
    async def receive(request: Request) -> JSONResponse:
        payload = await read_json(request, max_body)
        items = payload.get("submissions") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items or len(items) > MAX_SUBMISSIONS:
            raise ApiError(422, f"body must be {{\"submissions\": [1..{MAX_SUBMISSIONS}]}}")
        good: dict[str, list[str]] = {}
        rejected, unsigned = [], []
        for i, item in enumerate(items):
            try:
                s = Submission.model_validate(item)
            except ValidationError as exc:
                rejected.append({"index": i, "reason": str(exc).splitlines()[0]})
                continue
            if s.service not in services:
                rejected.append({"index": i, "reason": "unknown service"})
                continue
            why = check_submission(s, *services[s.service], shape)
            if why:
                rejected.append({"index": i, "reason": why})
                continue
            good.setdefault(s.service, []).append(s.model_dump_json())
            no_receipt = unsigned_reason(s, *services[s.service], shape)
            if no_receipt:
                unsigned.append({"index": i, "reason": no_receipt})
        with lock:
            for sid, lines in good.items():
                with open(root / f"{sid}.jsonl", "a", encoding="utf-8") as fh:
                    fh.write("".join(line + "\n" for line in lines))
        return JSONResponse({"accepted": sum(map(len, good.values())), "rejected": rejected,
                             "unsigned": unsigned})

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


