"""Signed meta-results ("receipts") of an inference service; format in docs/receipts.md.

One receipt per response: the supplier's Ed25519 signature over the canonical JSON of
``{v, alg, model_digest, input_digest, input_shape, output_digest, nonce, issued_at_ms}``.
``input_digest`` is the SHA-256 of the batch as little-endian float32 C-order bytes;
``output_digest`` hashes the returned labels (int64) and probabilities (float64).
This module signs and checks receipts; it never decides
what a failed check means for an audit (the runner does).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from mltrail._fs import atomic_write
from mltrail.errors import InputError
from mltrail.provenance.digest import canonical_json, digest_bytes

VERSION = 1
ALG = "ed25519"


def input_digest(batch: np.ndarray) -> str:
    """Digest of a batch as little-endian float32 C-order bytes."""
    return digest_bytes(np.ascontiguousarray(batch, dtype="<f4").tobytes())


def output_digest(outputs: Sequence[dict[str, Any]]) -> str:
    """Digest of ``[{"label": int, "probs": [float, ...]}, ...]``.

    Hashed as binary, not JSON, so it is cheap: the labels as little-endian int64, then the
    probabilities as little-endian float64, row by row (JSON round-trips float64 exactly,
    so the client recomputes the same bytes from the response it parsed).
    """
    labels = np.array([int(o["label"]) for o in outputs], dtype="<i8")
    probs = np.array([o["probs"] for o in outputs], dtype="<f8")
    if probs.ndim != 2:
        raise ValueError("ragged probabilities")
    return digest_bytes(labels.tobytes() + probs.tobytes())


# Keys are stored and exchanged with `cryptography` (PEM, raw base64); the per-response
# signing and checking use libsodium (PyNaCl), about 1.6x faster here. Ed25519 signatures
# are deterministic, so both libraries produce the same bytes (a test checks this).


def _nacl_signer(key: Ed25519PrivateKey) -> SigningKey:
    return _signer_from_raw(key.private_bytes(serialization.Encoding.Raw,
                                              serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption()))


@lru_cache(maxsize=16)
def _signer_from_raw(raw: bytes) -> SigningKey:
    return SigningKey(raw)


def _nacl_verifier(key: Ed25519PublicKey) -> VerifyKey:
    return _verifier_from_raw(key.public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw))


@lru_cache(maxsize=64)
def _verifier_from_raw(raw: bytes) -> VerifyKey:
    return VerifyKey(raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode()


def load_public_key(b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise InputError(f"not a base64 Ed25519 public key: {b64[:20]!r}...") from exc


def load_or_create_key(path: str | Path | None) -> Ed25519PrivateKey:
    """The supplier's signing key from a PEM file; created there if missing; ephemeral if None."""
    if path is None:
        return Ed25519PrivateKey.generate()
    p = Path(path)
    if p.exists():
        try:
            key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise InputError(f"cannot read signing key {p}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(f"signing key {p} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    atomic_write(p, key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), mode=0o600)
    return key


def sign_receipt(key: Ed25519PrivateKey, *, model_digest: str, batch: np.ndarray,
                 outputs: Sequence[dict[str, Any]], nonce: str,
                 issued_at_ms: int | None = None) -> dict[str, Any]:
    """A receipt for one response."""
    body = {
        "v": VERSION, "alg": ALG, "model_digest": model_digest,
        "input_digest": input_digest(batch), "input_shape": list(batch.shape),
        "output_digest": output_digest(outputs), "nonce": nonce,
        "issued_at_ms": int(time.time() * 1000) if issued_at_ms is None else issued_at_ms,
    }
    sig = _nacl_signer(key).sign(canonical_json(body)).signature
    return {"body": body, "signature": base64.b64encode(sig).decode()}


@dataclass
class ReceiptCheck:
    """The outcome of checking one receipt; ``problems`` empty means valid."""

    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ReceiptVerifier:
    """Checks receipts against a pinned public key and the claimed model digest.

    ``max_skew_s`` bounds how far ``issued_at_ms`` may lie from the auditor's clock at
    the time of the request. The verifier remembers every nonce it accepted, so a receipt
    presented twice is a replay even if its nonce once was fresh.
    """

    public_key: Ed25519PublicKey
    model_digest: str
    max_skew_s: float = 30.0
    seen: set[str] = field(default_factory=set)

    def check(self, receipt: Any, *, batch: np.ndarray, outputs: Sequence[dict[str, Any]],
              nonce: str, sent_at: float | None = None) -> ReceiptCheck:
        res = ReceiptCheck()
        if not isinstance(receipt, dict) or not isinstance(receipt.get("body"), dict):
            res.problems.append("receipt missing or malformed")
            return res
        body = receipt["body"]
        try:
            sig = base64.b64decode(str(receipt.get("signature", "")), validate=True)
            _nacl_verifier(self.public_key).verify(canonical_json(body), sig)
        except (BadSignatureError, InvalidSignature, ValueError, TypeError):
            res.problems.append("bad signature (forged or altered receipt)")
        if body.get("v") != VERSION or body.get("alg") != ALG:
            res.problems.append(f"unknown receipt version/alg {body.get('v')}/{body.get('alg')}")
        if body.get("model_digest") != self.model_digest:
            res.problems.append(f"receipt names model {body.get('model_digest')}, "
                                f"claimed {self.model_digest}")
        if body.get("input_digest") != input_digest(batch) or \
                body.get("input_shape") != list(batch.shape):
            res.problems.append("receipt does not bind the inputs sent")
        try:
            out_ok = body.get("output_digest") == output_digest(outputs)
        except (KeyError, TypeError, ValueError):
            out_ok = False
        if not out_ok:
            res.problems.append("receipt does not bind the outputs returned")
        got_nonce = body.get("nonce")
        if got_nonce != nonce:
            res.problems.append("receipt nonce differs from the request's (replayed receipt)")
        elif got_nonce in self.seen:
            res.problems.append("receipt nonce seen before (replayed receipt)")
        else:
            self.seen.add(nonce)
        issued = body.get("issued_at_ms")
        now = time.time() if sent_at is None else sent_at
        if not isinstance(issued, int) or abs(issued / 1000 - now) > self.max_skew_s:
            res.problems.append("receipt timestamp missing or outside the allowed skew")
        return res
