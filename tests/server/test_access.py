"""Confidentiality by construction: every route of the node, enumerated from ``app.routes``.

Each route must declare what it returns (``access.route``); a route that returns content
must take a ``Caller`` (so it reads through ``access.read``, the one rule); and no module
of the node but ``access`` touches a blob's bytes. Then every route is called as a
non-reader (anonymous, a member not among the readers, a stranger) with parameters that
name restricted content, and none of it, nor a local path, may come back; a reader gets
it from the content routes (so the check can fail).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from mltrail.ledger.client import Ledger
from mltrail.provenance import exchange
from mltrail.server import access
from testkit import PASSWORD

CANARY = "canary-3c1f0e-restricted"
LOCAL = "/home/steward/private/census-2026.csv"
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
SERVER = Path(access.__file__).parent


def _calls(dependant) -> set:
    out = {dependant.call}
    for dep in dependant.dependencies:
        out |= _calls(dep)
    return out


def test_every_route_declares_what_it_returns(served):
    seen = set()
    routes = list(access.endpoints(served.app.routes))
    for r in routes:
        if r.mounted:
            assert r.path == "/static", r.path  # the dashboard's own JS and CSS
            continue
        if r.dependant is None:
            assert r.path in FRAMEWORK, f"{r.path}: not a declared route"
            continue
        kind = r.access
        assert kind in ("content", "chain", "write", "compute"), \
            f"{r.path} does not declare what it returns (@access.route)"
        calls = _calls(r.dependant)
        if kind == "content":
            assert calls & {access.caller_of, access.exchange_caller}, \
                f"{r.path} returns content without a Caller"
        if kind == "write":
            assert calls & {access.write_token, access.any_token}, \
                f"{r.path} writes without a token"
        seen.add((kind, r.path))
    # the flattening misses nothing: every operation of the OpenAPI document is among them
    served_ops = {(m, r.path) for r in routes for m in r.methods}
    for path, ops in served.app.openapi()["paths"].items():
        for method in ops:
            assert (method.upper(), path) in served_ops, (method, path)
    assert {p for k, p in seen if k == "content"} == {
        "/v1/artefacts/{artefact_id}", "/v1/reports/{digest}", "/v1/blobs/{digest}",
        "/a/{artefact_id}", "/reports/{digest}", "/compare", "/download/{digest}"}


def test_only_access_touches_blob_bytes():
    pattern = re.compile(r"store\.get\(|fetch_blob\(|fetch_from\(|\.blob\(")
    for path in SERVER.glob("*.py"):
        if path.name == "access.py":
            continue
        hits = [ln for ln in path.read_text().splitlines() if pattern.search(ln)]
        assert not hits, f"{path.name} reads blob bytes outside access.read: {hits}"
    # queries reads only the node's own files and the index
    q = (SERVER / "queries.py").read_text()
    assert not re.search(r"\.store\b|exchange", q)


@pytest.fixture(scope="module")
def secret(served):
    """An artefact whose metadata and cited report hold the canary, readers: one stranger."""
    stranger = Account.create().address
    with Ledger.open(served.home, identity="steward", password=PASSWORD) as st:
        aid = st.register("dataset", "sha256:" + "5e" * 32, (), {
            "name": "census", "note": CANARY, "path": LOCAL}).artefact_id
        md = st.artefact(aid).metadata_digest
        rep = served.home.store.put(json.dumps({
            "format": "mltrail-pol-report/1", "verdict": "accepted", "note": CANARY,
            "bundle": LOCAL}).encode())
        st.transition(aid, "validated", rep)
    for d in (md, rep):
        exchange.Readers(served.home).set(d, [stranger])
    return {"artefact_id": aid, "digest": rep, "md": md, "kind": "dataset"}


def _requests(served, secret):
    """(method, url path) for every route, path parameters filled with restricted names."""
    for r in access.endpoints(served.app.routes):
        if r.dependant is None:
            continue
        for method in sorted(r.methods - {"HEAD"}):
            digests = [secret["digest"], secret["md"]] if "{digest}" in r.path else [None]
            for d in digests:
                path = r.path.replace("{artefact_id}", secret["artefact_id"]).replace(
                    "{kind}", secret["kind"]).replace("{digest}", d or "")
                if path == "/v1/verify":
                    path += f"?digest={secret['md']}"
                yield method, path, d or secret["md"]


def test_no_route_gives_content_to_a_non_reader(served, secret):
    member = Ledger.open(served.home, identity="verifier", password=PASSWORD)
    node_id = served.app.state.node.reader.address
    stranger = type("K", (), {"account": Account.create()})
    tried = 0
    try:
        with httpx.Client(base_url=served.url, timeout=60) as c:
            for method, path, digest in _requests(served, secret):
                for who in ("anonymous", "member", "stranger"):
                    signer = member if who == "member" else stranger
                    headers = {} if who == "anonymous" else {
                        exchange.HEADER: exchange.sign_request(signer, digest, node_id)}
                    body = b"{}" if method != "GET" else None
                    resp = c.request(method, path, headers=headers, content=body)
                    tried += 1
                    assert resp.status_code < 500, (method, path, resp.text)
                    assert CANARY not in resp.text, f"{who} got content from {method} {path}"
                    assert LOCAL not in resp.text, f"{who} got a local path from {method} {path}"
    finally:
        member.close()
    assert tried >= 3 * 17


def test_a_reader_gets_it(served, secret):
    """The same routes give the content to a token of this node (the check can fail)."""
    tok = {"Authorization": f"Bearer {served.tokens['viewer']}"}
    with httpx.Client(base_url=served.url, timeout=60, headers=tok) as c:
        d = c.get(f"/v1/artefacts/{secret['artefact_id']}").json()
        assert d["metadata"]["note"] == CANARY
        assert d["metadata"]["path"] == LOCAL  # steward is this home's own identity
        assert CANARY in c.get(f"/v1/reports/{secret['digest']}").text
        assert CANARY.encode() in c.get(f"/v1/blobs/{secret['md']}").content
    with httpx.Client(base_url=served.url, timeout=60,
                      cookies={"mltrail_token": served.tokens["viewer"]}) as c:
        assert CANARY in c.get(f"/a/{secret['artefact_id']}").text


def test_deep_and_huge_bodies_get_4xx(served):
    tok = {"Authorization": f"Bearer {served.tokens['dev']}"}
    deep = b'{"kind": "model", "content_digest": "sha256:' + b"11" * 32 + b'", "metadata": ' \
        + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    with httpx.Client(base_url=served.url, timeout=120) as c:
        r = c.post("/v1/artefacts", headers={**tok, "content-type": "application/json"},
                   content=deep[: 250_000] if len(deep) > 250_000 else deep)
        assert r.status_code in (400, 413), r.text
        nested = b"[" * 50_000 + b"]" * 50_000  # a blob nested 50,000 deep, shown as a report
        digest = served.home.store.put(nested)
        r = c.get(f"/v1/reports/{digest}", headers=tok)
        assert r.status_code == 400 and "nested deeper" in r.json()["error"], r.text
        assert c.get("/v1/health").status_code == 200


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_uploads_stream_under_a_bound(served):
    """Three 60 MiB files to /v1/verify (anonymous, hashed as they arrive) and one to
    /v1/blobs (token, to disk): the node's peak memory grows by far less than they weigh."""
    chunk = b"\x5a" * (1 << 20)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
    before = _peak_rss_mib()
    with httpx.Client(base_url=served.url, timeout=120) as c:
        for _ in range(3):
            r = c.post(f"/v1/verify?digest=sha256:{'00' * 32}", content=(chunk for _ in range(60)))
            assert r.status_code == 200 and r.json()["size"] == 60 << 20
        r = c.post(f"/v1/verify?digest=sha256:{'00' * 32}", content=(chunk for _ in range(65)))
        assert r.status_code == 413
    grown = _peak_rss_mib() - before
    assert grown < 40, f"the node's peak memory grew by {grown:.0f} MiB for 180 MiB streamed"


def test_deep_metadata_is_withheld_not_a_500(served):
    """An artefact whose metadata blob nests 50,000 deep (a hostile registrant's node can
    send one): the artefact answers, its metadata is not shown and the note says why."""
    from mltrail.ledger.client import Artefact

    node = served.app.state.node
    deep = served.home.store.put(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000)
    art = Artefact("0x" + "ee" * 32, "model", "registered", node.reader.address,
                   "sha256:" + "ee" * 32, [], deep, 1, 1)
    tok = node.tokens.authenticate(served.tokens["viewer"])
    shown = access.metadata(node, access.Caller(token=tok), art)
    assert shown.doc is None and "nested" in (shown.note or ""), shown
