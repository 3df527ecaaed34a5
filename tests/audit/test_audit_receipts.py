"""Receipts: a valid one passes; every kind of tampering or replay is named."""

from __future__ import annotations

import copy
import time

import numpy as np

from mltrail.audit.receipts import (
    ReceiptVerifier,
    load_or_create_key,
    load_public_key,
    public_key_b64,
    sign_receipt,
)

DIGEST = "sha256:" + "ab" * 32


def _setup() -> tuple[object, ReceiptVerifier, np.ndarray, list[dict[str, object]]]:
    key = load_or_create_key(None)
    ver = ReceiptVerifier(load_public_key(public_key_b64(key.public_key())), DIGEST)
    batch = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    outputs: list[dict[str, object]] = [{"label": i, "probs": [0.25, 0.75]} for i in range(3)]
    return key, ver, batch, outputs


def test_valid_receipt_passes_and_each_tampering_is_caught() -> None:
    key, ver, batch, outputs = _setup()
    rec = sign_receipt(key, model_digest=DIGEST, batch=batch, outputs=outputs,  # type: ignore[arg-type]
                       nonce="n1")
    assert ver.check(rec, batch=batch, outputs=outputs, nonce="n1").ok

    other = batch.copy()
    other[0, 0, 0, 0] += 0.01
    assert any("inputs" in p for p in ver.check(rec, batch=other, outputs=outputs,
                                                nonce="n1").problems)
    changed = copy.deepcopy(outputs)
    changed[1]["label"] = 0
    assert any("outputs" in p for p in ver.check(rec, batch=batch, outputs=changed,
                                                 nonce="n1").problems)
    forged = copy.deepcopy(rec)
    forged["body"]["model_digest"] = DIGEST
    forged["body"]["output_digest"] = "sha256:" + "00" * 32
    assert any("signature" in p for p in ver.check(forged, batch=batch, outputs=outputs,
                                                   nonce="n9").problems)
    mallory = load_or_create_key(None)
    fake = sign_receipt(mallory, model_digest=DIGEST, batch=batch, outputs=outputs,  # type: ignore[arg-type]
                        nonce="n3")
    assert any("signature" in p for p in ver.check(fake, batch=batch, outputs=outputs,
                                                   nonce="n3").problems)
    cheap = sign_receipt(key, model_digest="sha256:" + "cd" * 32, batch=batch,
                         outputs=outputs, nonce="n4")  # type: ignore[arg-type]
    assert any("names model" in p for p in ver.check(cheap, batch=batch, outputs=outputs,
                                                     nonce="n4").problems)
    old = sign_receipt(key, model_digest=DIGEST, batch=batch, outputs=outputs,  # type: ignore[arg-type]
                       nonce="n5", issued_at_ms=int((time.time() - 3600) * 1000))
    assert any("timestamp" in p for p in ver.check(old, batch=batch, outputs=outputs,
                                                   nonce="n5").problems)
    assert not ver.check(None, batch=batch, outputs=outputs, nonce="x").ok


def test_replayed_receipts_are_caught() -> None:
    key, ver, batch, outputs = _setup()
    rec = sign_receipt(key, model_digest=DIGEST, batch=batch, outputs=outputs,  # type: ignore[arg-type]
                       nonce="fresh")
    assert ver.check(rec, batch=batch, outputs=outputs, nonce="fresh").ok
    # same receipt presented for a new request (new nonce): replay
    assert any("replayed" in p for p in ver.check(rec, batch=batch, outputs=outputs,
                                                  nonce="newer").problems)
    # same receipt presented again for a request reusing the nonce: seen before
    assert any("seen before" in p for p in ver.check(rec, batch=batch, outputs=outputs,
                                                     nonce="fresh").problems)


def test_key_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    k1 = load_or_create_key(tmp_path / "k.pem")
    k2 = load_or_create_key(tmp_path / "k.pem")
    assert public_key_b64(k1.public_key()) == public_key_b64(k2.public_key())
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600


def test_libsodium_signatures_equal_cryptography_signatures():
    """Receipts are signed with libsodium; Ed25519 is deterministic, so OpenSSL agrees."""
    import base64

    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mltrail.audit.receipts import sign_receipt
    from mltrail.provenance.digest import canonical_json

    key = Ed25519PrivateKey.generate()
    batch = np.zeros((2, 1, 8, 8), dtype=np.float32)
    outputs = [{"label": 1, "probs": [0.5, 0.5]}, {"label": 0, "probs": [0.9, 0.1]}]
    r = sign_receipt(key, model_digest="sha256:" + "0" * 64, batch=batch, outputs=outputs,
                     nonce="n1")
    assert base64.b64decode(r["signature"]) == key.sign(canonical_json(r["body"]))
    key.public_key().verify(base64.b64decode(r["signature"]), canonical_json(r["body"]))
