"""A service's claims, signed by its registrant and bound to its ledger artefact.

Owns the claims document (:class:`ServiceClaims`: model digest, seed configuration or
reference, accuracy claim and its benchmark, latency SLA, availability, receipt public
key, endpoint), its signature by the registrant's ledger key (EIP-191 over the
canonical JSON), registering a service with it (:func:`register_service`: the signed
document goes into the content store, its digest into the registration's metadata),
reading it back with every link checked (:func:`load_claims`), and comparing it with
what a target advertises (:func:`compare_advertised`). An audit takes its claims from
here, never from the target. This module never queries a service.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mltrail.audit.models import Claims, ModelCard
from mltrail.audit.wire import ServiceInfo
from mltrail.errors import InputError, VerificationError
from mltrail.provenance.digest import canonical_json

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger, Registered

METADATA_KEY = "claims"  # the registration metadata field that names the claims digest


class ServiceClaims(BaseModel):
    """What a service promises, as registered on the ledger."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    name: str = Field(min_length=1, max_length=200)
    endpoint: str = Field(min_length=1, max_length=2000)
    model_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    # receipts: Ed25519, base64; None for a service that signs no receipts
    public_key: str | None = Field(default=None, min_length=40, max_length=100)
    seed_config: dict[str, Any] | None = None     # deterministic rebuild
    reference: str | None = None                  # URL of a reference service
    benchmark: str = "digits held-out"            # what the accuracy claim is measured on
    claims: Claims = Field(default_factory=Claims)
    input_shape: list[int] = Field(default_factory=lambda: [1, 8, 8])
    classes: int = Field(default=10, ge=2)
    message_class: int | None = None
    max_batch: int = Field(default=256, ge=1)

    @classmethod
    def from_card(cls, card: ModelCard, *, model_digest: str, public_key: str | None,
                  endpoint: str, reference: str | None = None,
                  max_batch: int = 256) -> ServiceClaims:
        """The claims of a service that serves ``card``'s model at ``endpoint``."""
        return cls(name=card.name, endpoint=endpoint, model_digest=model_digest,
                   public_key=public_key, seed_config=card.seed_config, reference=reference,
                   claims=card.claims, input_shape=list(card.input_shape),
                   classes=card.classes, message_class=card.message_class,
                   max_batch=max_batch)

    def advertised_view(self) -> dict[str, Any]:
        """The fields a target's ``GET /v1/model`` must show, as the reference service
        shows them."""
        return {"model_digest": self.model_digest, "public_key": self.public_key,
                "seed_config": self.seed_config, "claims": self.claims.model_dump(),
                "input_shape": self.input_shape, "classes": self.classes,
                "message_class": self.message_class}


def sign_claims(ledger: Ledger, claims: ServiceClaims) -> bytes:
    """The signed claims document (canonical JSON bytes) by ``ledger``'s identity."""
    body = claims.model_dump(mode="json")
    sig = ledger.account.sign_message(encode_defunct(canonical_json(body)))
    return canonical_json({"claims": body, "signer": ledger.address,
                           "signature": "0x" + bytes(sig.signature).hex()})


def register_service(ledger: Ledger, claims: ServiceClaims, *, model_id: str | None = None,
                     kind: str | None = None) -> tuple[Registered, str]:
    """Register a service artefact with its signed claims; return (registration, digest of
    the claims document). The artefact's content digest is the claims document's."""
    doc = sign_claims(ledger, claims)
    digest = ledger.home.store.put(doc)
    reg = ledger.register(kind or ledger.lifecycle.bound_kind("audit"), digest,
                          parents=[model_id] if model_id else [],
                          metadata={"name": claims.name, "endpoint": claims.endpoint,
                                    METADATA_KEY: digest})
    return reg, digest


@dataclass(frozen=True)
class LoadedClaims:
    service_id: str
    claims: ServiceClaims
    digest: str
    signer: str


def _json(ledger: Ledger, digest: str, what: str) -> Any:
    try:
        return json.loads(ledger.blob(digest))
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{what} {digest[:19]} is not JSON") from exc


def load_claims(ledger: Ledger, service_id: str) -> LoadedClaims:
    """The claims bound to ``service_id``: metadata → claims document → signature by the
    artefact's owner. Any broken link is a :class:`VerificationError`."""
    art = ledger.artefact(service_id)
    kind = ledger.lifecycle.bound_kind("audit")
    if art.kind != kind:
        raise InputError(f"{art.id[:12]} is a {art.kind}, not a {kind}")
    meta = _json(ledger, art.metadata_digest, "registration metadata")
    digest = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(digest, str):
        raise InputError(f"service {art.id[:12]} was registered without claims "
                         f"(no '{METADATA_KEY}' in its metadata)")
    doc = _json(ledger, digest, "claims document")
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), dict):
        raise VerificationError(f"claims document {digest[:19]} is malformed")
    try:
        claims = ServiceClaims.model_validate(doc["claims"])
        signer = Account.recover_message(encode_defunct(canonical_json(doc["claims"])),
                                         signature=str(doc.get("signature")))
    except (ValidationError, ValueError, TypeError) as exc:
        raise VerificationError(f"claims document {digest[:19]} is invalid: "
                                f"{str(exc).splitlines()[0]}") from exc
    if signer.lower() != str(doc.get("signer", "")).lower() or \
            signer.lower() != art.owner.lower():
        raise VerificationError(f"claims document {digest[:19]} is not signed by the "
                                f"service's owner {art.owner}")
    return LoadedClaims(art.id, claims, digest, signer)


def compare_advertised(claims: ServiceClaims, info: ServiceInfo | dict[str, Any]) -> list[str]:
    """Each field where what the target advertises differs from the ledger claims,
    named, with both values. mltrail's ``/v1/model`` advertises every claimed field; a
    v2 or adapter-described service only its input shape (a flat shape of the same size
    agrees) and class count, so only those are compared."""
    if isinstance(info, ServiceInfo):
        native = info.protocol == "mltrail"
        adv = info.advertised()
    else:
        native, adv = True, info
    diffs = []
    for key, want in claims.advertised_view().items():
        if not native and key not in adv:
            continue
        got = adv.get(key)
        if not native and key == "input_shape" and isinstance(got, list) and len(got) == 1 \
                and got[0] == math.prod(want):
            continue
        if canonical_json(got) != canonical_json(want):
            diffs.append(f"{key}: ledger {_short(want)}, target {_short(got)}")
    return diffs


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
