"""The reference service: its contract, clear 4xx errors, and that it keeps serving."""

from __future__ import annotations

import httpx
import numpy as np

from mltrail.audit.client import ServiceClient
from mltrail.audit.models import digits, predict
from mltrail.audit.receipts import ReceiptVerifier, load_public_key

ZEROS = ",".join(["0"] * 63)


def test_model_info_and_classify_with_valid_receipt(supplier) -> None:  # type: ignore[no-untyped-def]
    with ServiceClient(supplier.url) as c:
        info = c.info()
        assert info.model_digest == supplier.digest and info.protocol == "mltrail"
        assert info.public_key == supplier.pubkey
        assert info.seed_config and info.seed_config["seed"] == 1
        assert info.claims and info.claims["accuracy"] > 0.8
        x = digits()[2][:5]
        r = c.classify(x)
        assert r.labels.tolist() == predict(supplier.model, x).argmax(1).tolist()
        assert np.allclose(r.probs.sum(1), 1.0)
        ver = ReceiptVerifier(load_public_key(str(info.public_key)), supplier.digest)
        assert ver.check(r.receipt, batch=x, outputs=r.outputs, nonce=r.nonce,
                         sent_at=r.sent_at).ok


def test_bad_requests_get_clear_4xx_and_the_server_keeps_serving(supplier) -> None:  # type: ignore[no-untyped-def]
    url = supplier.url + "/v1/classify"
    cases = [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"inputs": []}', 422, "non-empty"),
        (b'{"inputs": [[1, 2, 3]]}', 422, "shape"),
        (b'{"inputs": [[1, 2], [3]]}', 422, "shape"),
        (b'{"inputs": [["a"' + b',"b"' * 63 + b"]]}", 422, "numeric"),
        (b'{"inputs": [[NaN,' + ZEROS.encode() + b"]]}", 422, "non-finite"),
        (b'{"inputs": [[Infinity,' + ZEROS.encode() + b"]]}", 422, "non-finite"),
        (b'{"inputs": [[1e39,' + ZEROS.encode() + b"]]}", 422, "non-finite"),
        (b'{"inputs": [[0,' + ZEROS.encode() + b']], "extra": 1}', 422, "unknown field"),
        (b'{"inputs": [[0,' + ZEROS.encode() + b']], "nonce": 5}', 422, "nonce"),
        (b'{"inputs": [' + b",".join([b"[0," + ZEROS.encode() + b"]"] * 257) + b"]}", 413,
         "exceeds the limit of 256"),
        (b" " * (5 << 20), 413, "request body"),
    ]
    with httpx.Client() as http:
        for body, status, text in cases:
            r = http.post(url, content=body, headers={"content-type": "application/json"})
            assert r.status_code == status, (body[:40], r.text)
            assert text in r.json()["error"], r.text
        assert http.get(supplier.url + "/nope").status_code == 404
        ok = http.post(url, json={"inputs": [[0.0] * 64], "nonce": "after-errors"})
        assert ok.status_code == 200 and len(ok.json()["outputs"]) == 1
