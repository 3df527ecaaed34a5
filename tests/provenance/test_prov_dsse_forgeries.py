"""The Ed25519 forgers of ``mltrail.testing.dsse_forgeries`` against the third-party check
docs/provenance.md shows (securesystemslib with the key from the claimed signer's on-chain
profile, then the builder id), 50 seeds each."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from mltrail.provenance import signing
from mltrail.testing.dsse_forgeries import FORGERIES, NEEDS_CLAIM

SEEDS = 50


def third_party_accepts(env: dict, signer: str, reader) -> bool:
    """The documented check, with third-party libraries (the profile read through a
    ledger client)."""
    public = signing.parse_profile(reader.profile(signer)).ed25519
    if public is None:
        return False
    key = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(public))
    try:
        dsse = Envelope.from_dict(json.loads(json.dumps(env)))
        dsse.verify([key], 1)
        builder = json.loads(dsse.payload)["predicate"]["runDetails"]["builder"]["id"]
    except (VerificationError, ValueError, KeyError, TypeError):
        return False
    return bool(builder.lower() == f"mltrail:{signer}".lower())


@pytest.fixture
def victim_envelope(project, cli):
    home = project / ".mltrail"
    r = cli("--as", "dev", "run", "--step", "train", "-o", "model.bin", "--json", "--", "sh",
            "-c", "echo weights > model.bin", home=home, cwd=project)
    assert r.code == 0, r.err
    out = cli("export", r.json()["outputs"][0]["artefact_id"], "-f", "in-toto", home=home)
    return json.loads(out.out.splitlines()[0])


def test_every_forgery_rejected_and_no_honest_envelope(victim_envelope, open_as):
    reader, dev, forger = open_as("admin"), open_as("dev"), open_as("steward")
    assert third_party_accepts(victim_envelope, dev.address, reader)  # control
    assert not third_party_accepts(victim_envelope, forger.address, reader)
    signing.publish(forger)
    rates = {}
    for claim in (False, True):
        if claim:  # the forger's profile now names the victim's key
            forger.set_profile("ed25519:" + signing.published_key(reader, dev.address).hex())
        for name, forge in FORGERIES.items():
            if (name in NEEDS_CLAIM) != claim:
                continue
            caught = 0
            for seed in range(SEEDS):
                env, who = forge(victim_envelope, forger.signing_key, forger.address,
                                 random.Random(seed))
                signer = dev.address if who == "victim" else forger.address
                caught += not third_party_accepts(env, signer, reader)
            rates[name] = caught / SEEDS
    assert rates == dict.fromkeys(FORGERIES, 1.0), rates
    # the honest envelope still verifies as the victim's after all that
    assert third_party_accepts(victim_envelope, dev.address, reader)
