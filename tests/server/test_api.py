"""The node's REST API over a real home, through a real HTTP server on loopback."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from mltrail.server.tokens import TokenStore


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_list_filter_and_search(served):
    with httpx.Client(base_url=served.url) as c:
        page = c.get("/v1/artefacts").json()
        assert page["total"] == 3
        assert [a["name"] for a in page["items"]] == ["digits-api", "digits-cnn", "digits"]
        assert page["items"][0]["owner_name"] == "operator"
        assert [a["kind"] for a in c.get("/v1/artefacts?kind=model").json()["items"]] == ["model"]
        assert [a["name"] for a in c.get("/v1/artefacts?state=validated").json()["items"]] == [
            "digits"]
        assert c.get("/v1/artefacts?name=cnn").json()["total"] == 1
        prefix = served.ids["model"][:10]
        assert [a["id"] for a in c.get(f"/v1/artefacts?q={prefix}").json()["items"]] == [
            served.ids["model"]]
        owner = page["items"][0]["owner"]
        assert c.get(f"/v1/artefacts?owner={owner}").json()["total"] == 1
        r = c.get("/v1/artefacts?kind=spaceship")
        assert r.status_code == 400 and "unknown kind" in r.json()["error"]


def test_artefact_history_lineage_and_report(served):
    with httpx.Client(base_url=served.url) as c:
        d = c.get(f"/v1/artefacts/{served.ids['model'][:12]}").json()
        assert d["artefact"]["state"] == "verified"
        assert [e["summary"] for e in d["history"]] == [
            "registered as registered", "registered → trained", "trained → verified"]
        assert d["history"][-1]["actor_name"] == "verifier"
        assert d["history"][-1]["evidence_digest"] == served.ids["report"]
        assert {m["state"] for m in d["next_states"]} >= {"approved", "revoked"}
        lin = c.get(f"/v1/artefacts/{served.ids['model']}/lineage").json()
        assert [a["name"] for a in lin["ancestors"]] == ["digits"]
        assert [a["name"] for a in lin["descendants"]] == ["digits-api"]
        rep = c.get(f"/v1/reports/{served.ids['report']}",
                    headers=_auth(served.tokens["viewer"])).json()
        assert rep["type"] == "pol" and rep["report"]["verdict"] == "accepted"
        assert d["metadata"] is None and d["metadata_note"].startswith("withheld")
        assert c.get("/v1/artefacts/0x" + "ab" * 32).status_code == 404


def test_verify_file(served):
    data = served.files["cnn.bin"].read_bytes()
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=served.url) as c:
        assert c.post(f"/v1/verify?digest={good}", content=data).json()["match"] is True
        r = c.post(f"/v1/verify?digest={good}", content=data + b"!").json()
        assert r["match"] is False and r["actual"] != good


def test_health_and_ledger(served):
    with httpx.Client(base_url=served.url) as c:
        h = c.get("/v1/health").json()
        assert h["in_sync"] and h["head"] == h["index_block"]
        r = c.post("/v1/ledger/check", headers=_auth(served.tokens["viewer"]))
        assert r.status_code == 200 and r.json()["ok"] is True
        assert c.get("/v1/health").json()["last_check"]["ok"] is True
        led = c.get("/v1/ledger").json()
        assert {m["name"] for m in led["members"]} >= {"admin", "dev", "verifier"}
        assert led["counts"]["model"] == {"verified": 1}


def test_writes_need_a_token_that_may_write(served):
    sid = served.ids["service"]
    body = {"to_state": "deployed"}
    with httpx.Client(base_url=served.url) as c:
        r = c.post(f"/v1/artefacts/{sid}/transitions", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post(f"/v1/artefacts/{sid}/transitions", json=body, headers=_auth("mlt_nope"))
        assert r.status_code == 401
        r = c.post(f"/v1/artefacts/{sid}/transitions", json=body,
                   headers=_auth(served.tokens["viewer"]))
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        assert c.get(f"/v1/artefacts/{sid}").json()["artefact"]["state"] == "registered"
        # the contract refuses a developer (no operator role): 403 with the lifecycle's reason
        r = c.post(f"/v1/artefacts/{sid}/transitions", json=body,
                   headers=_auth(served.tokens["dev"]))
        assert r.status_code == 403 and "missing role" in r.json()["error"]
        r = c.post(f"/v1/artefacts/{sid}/transitions", json=body,
                   headers=_auth(served.tokens["op"]))
        assert r.status_code == 200, r.text
        tx = r.json()
        assert tx["tx_hash"].startswith("0x") and tx["gas_used"] > 0 and tx["block"] > 0
        assert c.get(f"/v1/artefacts/{sid}").json()["artefact"]["state"] == "deployed"


def test_register_anchor_and_blobs(served):
    tok = _auth(served.tokens["dev"])
    with httpx.Client(base_url=served.url) as c:
        blob = c.post("/v1/blobs", content=b"model card", headers=tok).json()
        r = c.post("/v1/artefacts", headers=tok, json={
            "kind": "model", "content_digest": "sha256:" + "77" * 32, "name": "via-api",
            "parents": [served.ids["dataset"]], "metadata": {"card": blob["digest"]}})
        assert r.status_code == 201, r.text
        aid = r.json()["artefact_id"]
        d = c.get(f"/v1/artefacts/{aid}", headers=tok).json()
        assert d["artefact"]["name"] == "via-api" and d["artefact"]["owner_name"] == "dev"
        assert d["metadata"]["card"] == blob["digest"]
        r = c.post(f"/v1/artefacts/{aid}/anchors", headers=tok,
                   json={"root": "ab" * 32, "count": 3})
        assert r.status_code == 200
        assert c.get(f"/v1/artefacts/{aid}").json()["history"][-1]["event"] == "Anchored"
        assert c.get(f"/v1/artefacts/{aid}").json()["metadata"] is None  # content: readers
        # blobs: token holders yes, anonymous no
        assert c.get(f"/v1/blobs/{blob['digest']}", headers=tok).content == b"model card"
        assert c.get(f"/v1/blobs/{blob['digest']}").status_code == 401


def test_bad_bodies_get_4xx_and_the_node_keeps_serving(served):
    tok = _auth(served.tokens["dev"])
    with httpx.Client(base_url=served.url) as c:
        r = c.post("/v1/artefacts", headers={**tok, "content-type": "application/json"},
                   content=b"{not json")
        assert r.status_code == 422 and r.json()["error"].startswith("invalid request")
        r = c.post("/v1/artefacts", headers=tok, json={"kind": "model", "content_digest": "x"})
        assert r.status_code == 422 and "content_digest" in r.json()["error"]
        r = c.post("/v1/artefacts", headers=tok, json={"kind": "model",
                   "content_digest": "sha256:" + "11" * 32, "metadata": {"x": "y" * 300_000}})
        assert r.status_code == 413
        big = (b"x" * 65536 for _ in range(1100))  # 72 MB streamed without a length
        r = c.post("/v1/blobs", headers=tok, content=big)
        assert r.status_code == 413
        r = c.post("/v1/artefacts", headers=tok, json={"kind": "spaceship",
                   "content_digest": "sha256:" + "11" * 32})
        assert r.status_code == 400 and "unknown kind" in r.json()["error"]
        assert c.get("/v1/health").status_code == 200


def test_revoked_token_is_refused(served):
    store = TokenStore(served.home)
    _, secret = store.create("temp", "dev")
    with httpx.Client(base_url=served.url) as c:
        assert c.post("/v1/ledger/check", headers=_auth(secret)).status_code == 200
        store.revoke("temp")
        assert c.post("/v1/ledger/check", headers=_auth(secret)).status_code == 401


def test_tokens_are_stored_only_as_hashes(served):
    raw = (served.home.root / "node" / "tokens.json").read_text()
    for secret in served.tokens.values():
        assert secret not in raw
        assert hashlib.sha256(secret.encode()).hexdigest() in raw


@pytest.mark.parametrize("path", ["/v1/artefacts/zz", "/v1/reports/sha256:12",
                                  "/v1/blobs/nothex", "/v1/artefacts?limit=0"])
def test_malformed_reads_are_4xx(served, path):
    with httpx.Client(base_url=served.url) as c:
        assert 400 <= c.get(path).status_code < 500
