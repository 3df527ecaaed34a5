"""in-toto Statements (v1) with the SLSA provenance v1 predicate, in DSSE envelopes
signed with a participant's Ethereum key and, for other tools, its Ed25519 key.

Signature schemes (both over the DSSE pre-authentication encoding, PAE, of the payload):
- Ethereum, first: PAE signed as an EIP-191 personal message
  (``eth_account.messages.encode_defunct``); ``keyid`` is the signer's checksummed address
  and ``sig`` the base64 of the 65-byte signature. mltrail recovers the address and
  compares it with the address on chain.
- Ed25519 (:mod:`mltrail.provenance.signing`): ``keyid`` is the securesystemslib keyid of
  the public key the signer published in its on-chain profile; securesystemslib, in-toto
  and sigstore's DSSE code verify it. :func:`signers` leaves these to those tools and to
  :func:`ed25519_signatures`.
This module builds, signs and checks documents; it never sends transactions.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mltrail.errors import InputError, VerificationError
from mltrail.provenance import signing
from mltrail.provenance.digest import canonical_json, digest_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://mltrail.dev/step/v1"
MAX_ENVELOPE = 64 << 20
_SSLIB_KEYID = re.compile(r"^[0-9a-f]{64}$")


class DsseSignature(BaseModel):
    model_config = ConfigDict(extra="allow")
    sig: str
    keyid: str | None = None


class DsseEnvelope(BaseModel):
    """The shape a DSSE envelope must have (other fields are kept, not read)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    payload_type: str = Field(alias="payloadType")
    payload: str
    signatures: list[DsseSignature] = Field(min_length=1)


class StatementHead(BaseModel):
    """What is checked of an in-toto Statement v1 before it is read: its type and subjects."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Any]


def resource(name: str, digest: str, uri: str | None = None) -> dict[str, Any]:
    """An in-toto ResourceDescriptor for a ``sha256:`` digest."""
    rd: dict[str, Any] = {"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}
    if uri:
        rd["uri"] = uri
    return rd


def statement(subjects: list[dict[str, Any]], external: dict[str, Any],
              internal: dict[str, Any], dependencies: list[dict[str, Any]],
              builder: str, invocation: str, started: str, finished: str,
              byproducts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An in-toto Statement v1 whose predicate is SLSA provenance v1."""
    run_details: dict[str, Any] = {
        "builder": {"id": builder},
        "metadata": {"invocationId": invocation, "startedOn": started, "finishedOn": finished}}
    if byproducts:
        run_details["byproducts"] = byproducts
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": SLSA_PREDICATE,
            "predicate": {"buildDefinition": {"buildType": BUILD_TYPE,
                                              "externalParameters": external,
                                              "internalParameters": internal,
                                              "resolvedDependencies": dependencies},
                          "runDetails": run_details}}


def link(step: str, materials: dict[str, str], products: dict[str, str],
         command: list[str] | None) -> dict[str, Any]:
    """An in-toto link (the v0.9 layout-verification format that ``in-toto-verify`` and
    in-toto's ``Envelope.get_payload()`` read): per-file ``sha256`` of what the step used
    (materials) and made (products), keyed by the paths the statement shows."""
    def hashes(files: dict[str, str]) -> dict[str, dict[str, str]]:
        return {k: {"sha256": v.removeprefix("sha256:")} for k, v in sorted(files.items())}

    return {"_type": "link", "name": step, "command": list(command or []),
            "materials": hashes(materials), "products": hashes(products),
            "byproducts": {}, "environment": {}}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(account: LocalAccount, stmt: dict[str, Any],
         ed25519: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    """A DSSE envelope of ``stmt`` signed by ``account`` (first) and ``ed25519``."""
    payload = canonical_json(stmt)
    encoded = pae(PAYLOAD_TYPE, payload)
    sig = account.sign_message(encode_defunct(encoded)).signature
    sigs = [{"keyid": account.address, "sig": base64.b64encode(sig).decode()}]
    if ed25519 is not None:
        sigs.append(signing.sign_pae(ed25519, encoded))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
            "signatures": sigs}


def is_ed25519(signature: dict[str, Any]) -> bool:
    """Whether a signature entry is an Ed25519 one (a securesystemslib keyid: 64 hex)."""
    return bool(_SSLIB_KEYID.match(str(signature.get("keyid") or "")))


def ed25519_signatures(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in envelope["signatures"] if is_ed25519(s)]


def payload_of(envelope: dict[str, Any]) -> bytes:
    """The raw payload bytes of an envelope (checked to be base64)."""
    try:
        return base64.b64decode(str(envelope["payload"]), validate=True)
    except (KeyError, binascii.Error, ValueError) as exc:
        raise InputError("malformed DSSE envelope: payload is not base64") from exc


def parse_envelope(data: bytes) -> dict[str, Any]:
    """Validate the shape of a DSSE envelope read from a file or a store."""
    if len(data) > MAX_ENVELOPE:
        raise InputError(f"DSSE envelope larger than {MAX_ENVELOPE} bytes")
    try:
        env = json.loads(data)
    except ValueError as exc:
        raise InputError("not a DSSE envelope: not JSON") from exc
    try:
        DsseEnvelope.model_validate(env)
    except ValidationError:
        raise InputError("not a DSSE envelope: needs payloadType, payload and signatures "
                         "(each with a sig)") from None
    doc: dict[str, Any] = env
    return doc


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement inside an envelope, with its type checked."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise InputError(f"DSSE payloadType is {envelope.get('payloadType')!r}, "
                         f"not {PAYLOAD_TYPE}")
    try:
        stmt = json.loads(payload_of(envelope))
    except ValueError as exc:
        raise InputError("DSSE payload is not JSON") from exc
    try:
        StatementHead.model_validate(stmt)
    except ValidationError:
        raise InputError("DSSE payload is not an in-toto Statement v1") from None
    doc: dict[str, Any] = stmt
    return doc


def signers(envelope: dict[str, Any]) -> list[str]:
    """The addresses that really signed the envelope (each signature recovered).

    A signature whose recovered address is not its ``keyid`` fails the whole check; an
    Ed25519 signature is skipped here; an envelope without an Ethereum one fails."""
    message = encode_defunct(pae(str(envelope["payloadType"]), payload_of(envelope)))
    out = []
    for s in envelope["signatures"]:
        if is_ed25519(s):
            continue
        try:
            raw = base64.b64decode(s["sig"], validate=True)
            addr = str(Account.recover_message(message, signature=raw))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise VerificationError(f"DSSE signature does not verify: {exc}") from exc
        keyid = s.get("keyid")
        if keyid and str(keyid).lower() != addr.lower():
            raise VerificationError(f"DSSE signature by {addr}, but keyid says {keyid}")
        out.append(addr)
    if not out:
        raise VerificationError("the DSSE envelope carries no Ethereum signature")
    return out


def statement_digest(envelope: dict[str, Any]) -> str:
    """Digest of the signed payload bytes (what artefact metadata cites)."""
    return digest_bytes(payload_of(envelope))
