"""Forging the Ed25519 side of an exported DSSE envelope, against a third-party verifier.

The verifier is the one docs/provenance.md shows: it reads the claimed signer's Ed25519
key from that member's on-chain profile, verifies the envelope with securesystemslib and
requires the statement's ``runDetails.builder.id`` to name that member. Each forgery takes
the victim's envelope and returns ``(forged envelope, claimed signer)``, the claimed signer
being ``"victim"`` or ``"forger"``:

- ``edit_payload``: the statement edited, the victim's signatures kept;
- ``resign_as_victim``: edited and re-signed with the forger's own key under the victim's
  keyid;
- ``splice``: the victim's signatures on a payload the forger signed;
- ``random_sig``: random 64 bytes under the victim's keyid;
- ``claim_key``: the forger publishes the victim's public key in its own profile
  (:data:`NEEDS_CLAIM`) and presents the victim's untouched envelope as its own;
- ``claim_and_rebuild``: the same, with the builder id rewritten to the forger's address.

It builds envelopes only; the caller publishes what :data:`NEEDS_CLAIM` asks for.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mltrail.provenance import attest, signing

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Forgery = Callable[[dict[str, Any], "Ed25519PrivateKey", str, random.Random],
                   tuple[dict[str, Any], str]]


def _victim_sig(env: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in env["signatures"] if attest.is_ed25519(s))


def _with_payload(env: dict[str, Any], stmt: dict[str, Any]) -> dict[str, Any]:
    return {**env, "payload": base64.b64encode(json.dumps(stmt).encode()).decode()}


def _edited(env: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    stmt = attest.statement_of(env)
    stmt["subject"][0]["digest"]["sha256"] = rng.randbytes(32).hex()
    return stmt


def _signed(stmt: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, str]:
    payload = json.dumps(stmt).encode()
    return signing.sign_pae(key, attest.pae(attest.PAYLOAD_TYPE, payload))


def edit_payload(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
                 rng: random.Random) -> tuple[dict[str, Any], str]:
    return _with_payload(env, _edited(env, rng)), "victim"


def resign_as_victim(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
                     rng: random.Random) -> tuple[dict[str, Any], str]:
    stmt = _edited(env, rng)
    sig = {**_signed(stmt, key), "keyid": _victim_sig(env)["keyid"]}
    return {**_with_payload(env, stmt), "signatures": [sig]}, "victim"


def splice(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
           rng: random.Random) -> tuple[dict[str, Any], str]:
    stmt = _edited(env, rng)
    return {**_with_payload(env, stmt),
            "signatures": [_signed(stmt, key), _victim_sig(env)]}, "victim"


def random_sig(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
               rng: random.Random) -> tuple[dict[str, Any], str]:
    sig = {"keyid": _victim_sig(env)["keyid"],
           "sig": base64.b64encode(rng.randbytes(64)).decode()}
    return {**env, "signatures": [sig]}, "victim"


def claim_key(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
              rng: random.Random) -> tuple[dict[str, Any], str]:
    return dict(env), "forger"


def claim_and_rebuild(env: dict[str, Any], key: Ed25519PrivateKey, forger: str,
                      rng: random.Random) -> tuple[dict[str, Any], str]:
    stmt = attest.statement_of(env)
    stmt["predicate"]["runDetails"]["builder"]["id"] = f"mltrail:{forger}"
    stmt["predicate"]["runDetails"]["metadata"]["invocationId"] = rng.randbytes(8).hex()
    return _with_payload(env, stmt), "forger"


FORGERIES: dict[str, Forgery] = {
    "edit_payload": edit_payload, "resign_as_victim": resign_as_victim, "splice": splice,
    "random_sig": random_sig, "claim_key": claim_key, "claim_and_rebuild": claim_and_rebuild,
}
NEEDS_CLAIM = frozenset({"claim_key", "claim_and_rebuild"})
