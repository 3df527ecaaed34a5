"""An exported in-toto bundle verified by securesystemslib and in-toto alone, with the
Ed25519 key the signer published on chain; the key's keystore and its profile line."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format
from in_toto.models.metadata import Envelope as InTotoEnvelope
from in_toto_attestation.v1 import statement as ita_statement
from in_toto_attestation.v1 import statement_pb2
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import SSlibKey

from mltrail.errors import AuthError, InputError
from mltrail.identity import signing_public_key, unlock_signing_key
from mltrail.provenance import attest, signing
from testkit import PASSWORD


@pytest.fixture
def exported(project, cli, open_as):
    """dev runs one step in ``project``; the in-toto export of its output, as dicts."""
    home = project / ".mltrail"
    r = cli("--as", "dev", "run", "--step", "train", "-o", "model.bin", "-p", "lr=0.1",
            "--json", "--", "sh", "-c", "echo weights > model.bin", home=home, cwd=project)
    assert r.code == 0, r.err
    model = r.json()["outputs"][0]["artefact_id"]
    out = cli("export", model, "-f", "in-toto", home=home)
    assert out.code == 0, out.err
    return [json.loads(line) for line in out.out.splitlines()]


def _sslib(env: dict) -> SslibEnvelope:
    return SslibEnvelope.from_dict(json.loads(json.dumps(env)))  # from_dict edits its input


def _published_key(led, address: str) -> SSlibKey:
    """What a third party does: read the profile on chain, take the ed25519 token, build
    the securesystemslib key (its keyid computed by securesystemslib)."""
    line = led.profile(address)
    (hexkey,) = re.findall(r"(?:^| )ed25519:([0-9a-f]{64})(?: |$)", line)
    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexkey)))


def test_third_party_libraries_verify_with_the_key_on_chain(exported, open_as):
    dev = open_as("dev")
    key = _published_key(open_as("admin"), dev.address)
    assert len(exported) == 1
    env = exported[0]
    # securesystemslib's DSSE envelope: the Ed25519 signature verifies, the Ethereum one
    # (keyid = address) is ignored as a key it was not given
    verified = _sslib(env).verify([key], 1)
    assert set(verified) == {key.keyid}
    # in-toto's own envelope model and its verify_signature, with the same key
    ito = InTotoEnvelope.from_dict(json.loads(json.dumps(env)))
    ito.verify_signature({"keyid": key.keyid, **key.to_dict()})
    stmt = json.loads(ito.payload)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    pb = json_format.Parse(ito.payload, statement_pb2.Statement())
    ita_statement.Statement.copy_from_pb(pb).validate()
    # and mltrail's own check still recovers the address from the Ethereum signature
    assert attest.signers(env) == [dev.address]


def test_a_forged_or_foreign_ed25519_signature_is_refused(exported, open_as):
    dev, steward = open_as("dev"), open_as("steward")
    env = exported[0]
    key = _published_key(open_as("admin"), dev.address)
    # payload edited: the dev's key no longer verifies it
    stmt = attest.statement_of(env)
    stmt["subject"][0]["name"] = "other.bin"
    edited = {**env, "payload": base64.b64encode(json.dumps(stmt).encode()).decode()}
    with pytest.raises(SslibVerificationError):
        _sslib(edited).verify([key], 1)
    # re-signed by another member (its own Ed25519 key) under the dev's keyid
    forged = attest.sign(steward.account, stmt, steward.signing_key)
    forged["signatures"][1]["keyid"] = key.keyid
    with pytest.raises(SslibVerificationError):
        _sslib(forged).verify([key], 1)
    # the steward's published key does not verify the dev's envelope
    signing.publish(steward)
    other = _published_key(open_as("admin"), steward.address)
    with pytest.raises(SslibVerificationError):
        _sslib(env).verify([other], 1)


def test_keyid_is_securesystemslib_s(open_as):
    dev = open_as("dev")
    public = signing.public_bytes(dev.signing_key)
    sslib = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(public))
    assert signing.keyid(public) == sslib.keyid
    assert signing.sslib_key(public) == {"keyid": sslib.keyid, **sslib.to_dict()}


def test_signing_key_is_encrypted_beside_the_keystore(home):
    path = home.keys_dir / "dev.ed25519"
    doc = json.loads(path.read_text())
    key = unlock_signing_key(home, "dev", PASSWORD)
    seed = key.private_bytes_raw()
    assert seed.hex() not in path.read_text() and doc["crypto"]["kdf"] == "scrypt"
    assert "address" not in doc and signing_public_key(home, "dev") == signing.public_bytes(key)
    with pytest.raises(AuthError):
        unlock_signing_key(home, "dev", "wrong password")
    # the public key in clear is checked against the decrypted key
    doc["public_key"] = "00" * 32
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="another key"):
        unlock_signing_key(home, "dev", PASSWORD)
    # the identity list does not mistake the file for an identity
    from mltrail.identity import list_identities

    assert "dev.ed25519" not in {i.name for i in list_identities(home)}


def test_an_identity_without_the_key_gets_one_on_first_use(home, open_as):
    (home.keys_dir / "dev.ed25519").unlink()
    dev = open_as("dev")
    assert signing.publish(dev) is not None  # made now, then published
    assert signing.published_key(dev, dev.address) == signing_public_key(home, "dev")
    assert signing.publish(dev) is None  # already there: no transaction


def test_profile_keeps_the_node_url_and_the_key(home, open_as):
    from mltrail.provenance.exchange import node_url, publish_url

    dev = open_as("dev")
    publish_url(dev, "http://127.0.0.1:8765")
    signing.publish(dev)
    line = dev.profile(dev.address)
    assert line.startswith("http://127.0.0.1:8765 ed25519:")
    assert node_url(dev, dev.address) == "http://127.0.0.1:8765"
    publish_url(dev, "http://127.0.0.1:9999")  # a new URL keeps the key
    assert signing.published_key(dev, dev.address) == signing_public_key(home, "dev")
    assert node_url(dev, dev.address) == "http://127.0.0.1:9999"
    assert signing.parse_profile("http://a ed25519:zz x").other == ("ed25519:zz", "x")


def test_in_toto_links_get_payload_and_verify(project, cli, open_as):
    """The links export: in-toto's ``Envelope.get_payload()`` reads each as a Link whose
    products are the output's bytes, and in-toto verifies it with the published key."""
    home = project / ".mltrail"
    r = cli("run", "--step", "prepare", "-k", "dataset", "-i", "raw", "-o", "clean.csv",
            "--json", "--", "sh", "-c", "cat raw/*.csv > clean.csv", home=home, cwd=project)
    assert r.code == 0, r.err
    out = cli("export", r.json()["outputs"][0]["artefact_id"], "-f", "in-toto-links",
              home=home)
    assert out.code == 0, out.err
    (line,) = out.out.splitlines()
    admin = open_as("admin")
    key = _published_key(admin, admin.address)
    ito = InTotoEnvelope.from_dict(json.loads(line))
    ito.verify_signature({"keyid": key.keyid, **key.to_dict()})
    link = ito.get_payload()
    assert type(link).__name__ == "Link" and link.name == "prepare"
    assert set(link.materials) == {"raw/a.csv", "raw/b.csv", "raw/sub/c.csv"}
    digest = hashlib.sha256((project / "clean.csv").read_bytes()).hexdigest()
    assert link.products == {"clean.csv": {"sha256": digest}}
    assert link.materials["raw/a.csv"]["sha256"] == hashlib.sha256(
        (project / "raw" / "a.csv").read_bytes()).hexdigest()


def test_in_toto_verify_accepts_the_links_under_a_layout(project, cli, open_as, tmp_path):
    """The standard tool's whole check: a layout naming the member's published key for
    step ``prepare`` and its link from the export: ``in_toto_verify`` passes; a link whose
    product was edited fails it."""
    from in_toto.exceptions import ThresholdVerificationError
    from in_toto.models.layout import Layout, Step
    from in_toto.models.metadata import Envelope
    from in_toto.verifylib import in_toto_verify
    from securesystemslib.signer import CryptoSigner

    home = project / ".mltrail"
    r = cli("run", "--step", "prepare", "-k", "dataset", "-i", "raw", "-o", "clean.csv",
            "--json", "--", "sh", "-c", "cat raw/*.csv > clean.csv", home=home, cwd=project)
    out = cli("export", r.json()["outputs"][0]["artefact_id"], "-f", "in-toto-links",
              home=home)
    admin = open_as("admin")
    key = _published_key(admin, admin.address)
    key_dict = {"keyid": key.keyid, **key.to_dict()}
    links = tmp_path / "links"
    links.mkdir()
    (links / f"prepare.{key.keyid[:8]}.link").write_text(out.out)
    owner = CryptoSigner.generate_ed25519()
    step = Step(name="prepare", pubkeys=[key.keyid], threshold=1,
                expected_materials=[["ALLOW", "raw/*"], ["DISALLOW", "*"]],
                expected_products=[["CREATE", "clean.csv"], ["DISALLOW", "*"]])
    layout = Layout(steps=[step], keys={key.keyid: key_dict}, expires="2099-01-01T00:00:00Z")
    env = Envelope.from_signable(layout)
    env.create_signature(owner)
    owner_key = {"keyid": owner.public_key.keyid, **owner.public_key.to_dict()}
    in_toto_verify(env, {owner.public_key.keyid: owner_key}, link_dir_path=str(links))
    doc = json.loads(out.out)
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["products"]["clean.csv"]["sha256"] = "0" * 64
    doc["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (links / f"prepare.{key.keyid[:8]}.link").write_text(json.dumps(doc))
    with pytest.raises(ThresholdVerificationError):  # the edited link's signature fails
        in_toto_verify(env, {owner.public_key.keyid: owner_key}, link_dir_path=str(links))


def test_the_docs_snippet_runs_as_written(exported, project, open_as, monkeypatch):
    """docs/provenance.md's third-party verification block, run on this export."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "provenance.md").read_text()
    block = doc.split("Verifying an export with third-party libraries alone")[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    (project / "model.intoto.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in exported))
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLTRAIL_HOME", str(project / ".mltrail"))
    exec(compile(code, "provenance.md", "exec"), {"SIGNER": open_as("dev").address})
    signing.publish(open_as("admin"))
    with pytest.raises(SslibVerificationError):  # another member's published key
        exec(compile(code, "provenance.md", "exec"), {"SIGNER": open_as("admin").address})
