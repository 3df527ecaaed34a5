"""`mltrail verify --statement` checks every signature an envelope carries against the
signer's on-chain identity: the Ethereum one against its address, the Ed25519 one against
the key the signer published in its profile; any bad one is exit 1, unreadable input 2.
The Ed25519 forgers of ``mltrail.testing.dsse_forgeries`` run against it over seeds."""

from __future__ import annotations

import base64
import json
import random

import pytest

from mltrail.errors import VerificationError
from mltrail.provenance import attest, signing
from mltrail.provenance.verify import verify_envelope
from mltrail.testing.dsse_forgeries import FORGERIES, NEEDS_CLAIM

SEEDS = 10


@pytest.fixture
def exported(project, cli):
    home = project / ".mltrail"
    r = cli("--as", "dev", "run", "--step", "train", "-o", "model.bin", "--json", "--", "sh",
            "-c", "echo weights > model.bin", home=home, cwd=project)
    assert r.code == 0, r.err
    out = cli("export", r.json()["outputs"][0]["artefact_id"], "-f", "in-toto", home=home)
    return json.loads(out.out.splitlines()[0])


def _verify(cli, project, env) -> object:
    target = project / "statement.json"
    target.write_text(json.dumps(env) if isinstance(env, dict) else env)
    return cli("verify", "--statement", str(target), "--json", home=project / ".mltrail")


def test_every_signature_reported(exported, project, cli, open_as):
    r = _verify(cli, project, exported)
    assert r.code == 0, r.err
    sigs = r.json()["signatures"]
    dev = open_as("dev").address
    assert [(s["scheme"], s["signer"], s["ok"]) for s in sigs] == [
        ("eip191", dev, True), ("ed25519", dev, True)]
    human = cli("verify", "--statement", str(project / "statement.json"),
                home=project / ".mltrail")
    assert human.code == 0 and "ed25519 signature" in human.out and "dev (" in human.out


def test_a_forged_ed25519_signature_fails(exported, project, cli, open_as):
    """The Ethereum signature is intact; the Ed25519 one is random bytes under the signer's
    keyid, then a valid signature by another member's published key: exit 1 each time."""
    env = json.loads(json.dumps(exported))
    ed = next(s for s in env["signatures"] if attest.is_ed25519(s))
    ed["sig"] = base64.b64encode(random.Random(1).randbytes(64)).decode()
    r = _verify(cli, project, env)
    assert r.code == 1 and "ed25519" in r.err and "does not verify" in r.err, r.err
    forger = open_as("steward")
    signing.publish(forger)
    pae = attest.pae(attest.PAYLOAD_TYPE, attest.payload_of(exported))
    env["signatures"] = [exported["signatures"][0], signing.sign_pae(forger.signing_key, pae)]
    r = _verify(cli, project, env)
    assert r.code == 1 and "not the Ed25519 key any signer published" in r.err, r.err


def test_unreadable_input_is_exit_2(project, cli):
    assert _verify(cli, project, "not json").code == 2
    assert _verify(cli, project, {"payloadType": "x", "payload": "", "signatures": []}).code == 2


def test_dsse_forgers_rejected(exported, open_as):
    """Each forger over SEEDS seeds: rejected, or (the untouched envelope a forger claims)
    attributed to the victim, never to the forger."""
    reader, dev, forger = open_as("admin"), open_as("dev"), open_as("steward")
    signing.publish(forger)
    forger.set_profile("ed25519:" + signing.published_key(reader, dev.address).hex())
    target = reader.home.root.parent / "forged.json"
    caught: dict[str, int] = {}
    for name, forge in FORGERIES.items():
        caught[name] = 0
        for seed in range(SEEDS):
            env, _ = forge(exported, forger.signing_key, forger.address, random.Random(seed))
            target.write_text(json.dumps(env))
            try:
                signers = verify_envelope(reader, target)["signers"]
            except VerificationError:
                caught[name] += 1
                continue
            assert name in NEEDS_CLAIM and signers == [dev.address], (name, signers)
            caught[name] += forger.address not in signers
    assert caught == dict.fromkeys(FORGERIES, SEEDS), caught
