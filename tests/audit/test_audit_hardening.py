"""The service under hostile input: limits before parsing, 4xx not 5xx, keep-alive kept;
schemathesis against serve-model (its /v1 and Open Inference Protocol /v2 routes) and
serve-proxy (small fixed budget)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

BODY = json.dumps({"inputs": [[0.0] * 64], "nonce": "abc"}).encode()


def _raw(port: int, payload: bytes,
         sock: socket.socket | None = None) -> tuple[bytes, socket.socket]:
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    time.sleep(0.2)
    return s.recv(1 << 16), s


def _post(body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % n) + body


@pytest.mark.parametrize("body,status", [
    (b'{"inputs": [[0.0]], "nonce": "\\ud800"}', 400),        # lone surrogate
    (b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}", 413),  # deep nesting
    (b'{"inputs": [[0.1]], "nonce": "\xff\xfe"}', 400),        # invalid UTF-8
    (b'{"inputs": [[0.1]], "nonce": "' + b"a" * 30000 + b'"}', 413),
    (b'{"inputs": [[true]]}', 422),
    (b'{"inputs": [[1e400]]}', 422),
    (b"{oops", 400),
])
def test_bad_bodies_get_4xx_and_the_connection_keeps_serving(supplier, body, status) -> None:  # type: ignore[no-untyped-def]
    port = int(supplier.url.rsplit(":", 1)[1])
    first, s = _raw(port, _post(body))
    assert first.startswith(b"HTTP/1.1 %d" % status), first[:200]
    again, s = _raw(port, _post(BODY), s)  # the same keep-alive connection
    assert again.startswith(b"HTTP/1.1 200"), again[:200]
    s.close()


def test_lying_content_length_gets_4xx(supplier) -> None:  # type: ignore[no-untyped-def]
    port = int(supplier.url.rsplit(":", 1)[1])
    short, s = _raw(port, _post(BODY, length=10))  # claims less than it sends
    assert short.startswith(b"HTTP/1.1 400")
    s.close()
    bad, s = _raw(port, _post(BODY).replace(b"Content-Length: %d" % len(BODY),
                                            b"Content-Length: x1"))
    assert bad.startswith(b"HTTP/1.1 400")
    s.close()
    assert httpx.post(supplier.url + "/v1/classify", content=BODY).status_code == 200


def test_classify_request_schema_is_in_openapi(supplier) -> None:  # type: ignore[no-untyped-def]
    doc = httpx.get(supplier.url + "/openapi.json").json()
    body = doc["paths"]["/v1/classify"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["inputs"] and schema["properties"]["inputs"]["maxItems"] == 256


def _fuzz(url: str, op, mode: GenerationMode) -> None:  # type: ignore[no-untyped-def]
    strict = mode is GenerationMode.POSITIVE and op.path == "/v1/classify"

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:  # type: ignore[no-untyped-def]
        r = case.call(base_url=url)
        assert r.status_code < 500, (case.body, r.text[:300])
        if strict:  # a schema-valid request is served (422: the finite-value rules)
            assert r.status_code in (200, 422), r.text[:200]

    check()


@pytest.mark.parametrize("which", ["supplier", "proxy"])
def test_schemathesis_finds_no_server_error(supplier, make_proxy, which) -> None:  # type: ignore[no-untyped-def]
    url = supplier.url if which == "supplier" else make_proxy(supplier.url, "honest")
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert any(op.path == "/v1/classify" for op in ops)
    if which == "supplier":  # the Open Inference Protocol routes are fuzzed as well
        assert {"/v2/models/{model_name}/infer", "/v2/models/{model_name}", "/v2/health/live",
                "/v2"} <= {op.path for op in ops}
    for op in ops:
        _fuzz(url, op, GenerationMode.POSITIVE)
        if op.method.upper() == "POST":
            _fuzz(url, op, GenerationMode.NEGATIVE)
