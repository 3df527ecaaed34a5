"""Ed25519 signatures on DSSE envelopes, bound to a member's address by its on-chain profile.

Third-party tools (securesystemslib, in-toto, sigstore's DSSE code) verify Ed25519 and not
Ethereum's EIP-191 signatures, so every envelope mltrail signs carries both: the Ed25519
one under a securesystemslib keyid (SHA-256 of the canonical JSON of the public key, what
``SSlibKey.from_crypto`` computes) and the Ethereum one under the address. The public key
is published in the member's profile on chain (``Ledger.set_profile``), a line of
space-separated tokens: the node URL (``http(s)://...``, if any) and
``ed25519:<64 hex>``; :func:`parse_profile` is the one reader of that line.

This module owns the keyid, the profile line and the publication; it never writes a key
(``mltrail.identity`` does) and never decides whether a signer may sign (the ledger does).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError
from mltrail.provenance.digest import canonical_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mltrail.ledger.client import Ledger, TxResult

_KEY_TOKEN = re.compile(r"^ed25519:([0-9a-f]{64})$")


@dataclass(frozen=True)
class Profile:
    """A member's on-chain profile line, read: node URL, Ed25519 key, other tokens kept."""

    url: str | None = None
    ed25519: bytes | None = None
    other: tuple[str, ...] = ()

    def line(self) -> str:
        parts = [self.url] if self.url else []
        if self.ed25519 is not None:
            parts.append("ed25519:" + self.ed25519.hex())
        return " ".join([*parts, *self.other])


def parse_profile(text: str | None) -> Profile:
    """The fields of a profile line (a plain URL, as older profiles hold, is its URL)."""
    url, key, other = None, None, []
    for tok in (text or "").split():
        m = _KEY_TOKEN.match(tok)
        if m and key is None:
            key = bytes.fromhex(m.group(1))
        elif tok.startswith(("http://", "https://")) and url is None:
            url = tok
        else:
            other.append(tok)
    return Profile(url, key, tuple(other))


def sslib_key(public: bytes) -> dict[str, Any]:
    """The securesystemslib key dict (``SSlibKey.to_dict()`` plus ``keyid``) of a raw
    Ed25519 public key; ``SSlibKey.from_dict(d["keyid"], d)`` reads it back."""
    keyval = {"public": public.hex()}
    body = {"keytype": "ed25519", "scheme": "ed25519", "keyval": keyval}
    return {"keyid": hashlib.sha256(canonical_json(body)).hexdigest(), **body}


def keyid(public: bytes) -> str:
    return str(sslib_key(public)["keyid"])


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def sign_pae(key: Ed25519PrivateKey, pae: bytes) -> dict[str, str]:
    """One DSSE signature entry: Ed25519 over the PAE bytes, with its sslib keyid."""
    return {"keyid": keyid(public_bytes(key)), "sig": base64.b64encode(key.sign(pae)).decode()}


def published_key(led: Ledger, address: str) -> bytes | None:
    """The Ed25519 public key ``address`` published on chain (None if none)."""
    return parse_profile(led.profile(address)).ed25519


def publish(led: Ledger) -> TxResult | None:
    """Put this identity's Ed25519 public key in its on-chain profile, keeping the node
    URL there; nothing is sent when the profile already names this key."""
    public = public_bytes(led.signing_key)
    current = parse_profile(led.profile(led.address))
    if current.ed25519 == public:
        return None
    line = Profile(current.url, public, current.other).line()
    if len(line.encode()) > 256:
        raise InputError("the profile (node URL and Ed25519 key) would pass 256 bytes; "
                         "publish a shorter node URL")
    return led.set_profile(line)


def verify_ed25519(public: bytes, pae: bytes, sig_b64: str) -> bool:
    """Whether ``sig_b64`` is ``public``'s Ed25519 signature of ``pae``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(base64.b64decode(sig_b64,
                                                                            validate=True), pae)
    except (InvalidSignature, ValueError):
        return False
    return True
