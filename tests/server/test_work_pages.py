"""The dashboard shows the work: parameters and metrics of imported MLflow runs and of a
PoL proof, two artefacts compared side by side, downloads for readers only."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from test_pages import AUDIT

from mltrail.ledger.client import Ledger
from mltrail.provenance import exchange
from mltrail.server import work
from testkit import PASSWORD
from workkit import seed_work

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's SQLAlchemy
RAW = ("{'", "{&#34;", '{"', "&#39;:", "None")  # a dict or JSON dumped into a page


@pytest.fixture(scope="module")
def seeded(served, tmp_path_factory):
    return seed_work(served.home, tmp_path_factory.mktemp("work"), pol=True)


def _client(served, token: str | None = "viewer") -> httpx.Client:
    cookies = {"mltrail_token": served.tokens[token]} if token else {}
    return httpx.Client(base_url=served.url, cookies=cookies, timeout=60)


def _row(page: str, label: str) -> str:
    m = re.search(rf'<tr class="(\w+)"><th scope="row">{re.escape(label)}</th>(.*?)</tr>',
                  page, re.S)
    assert m, f"no row {label!r}"
    return m.group(1) + " " + re.sub(r"<[^>]+>", " ", m.group(2))


def _raw_free(page: str) -> None:
    main = page.split("<main>", 1)[1]
    for bad in RAW:
        assert bad not in main, f"{bad!r} in the page"


def test_imported_mlflow_run_shows_its_params_and_metrics(served, seeded):
    aid = seeded["runs"][0]
    with _client(served) as c:
        page = c.get(f"/a/{aid}").text
    params = page.split('id="params"', 1)[1].split("</table>", 1)[0]
    metrics = page.split('id="metrics"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<th scope=\"row\">lr</th><td>0.05</td>", params), params
    assert re.search(r"<th scope=\"row\">acc</th><td>0.9</td>", metrics), metrics
    assert "MLflow run fit-a" in page and "Compare with" in page
    _raw_free(page)
    with _client(served, None) as c:  # no token: the work is content, withheld
        anon = c.get(f"/a/{aid}").text
    assert 'id="params"' not in anon and "set an API token" in anon


def test_pol_proof_shows_its_hyperparameters(served, seeded):
    with _client(served) as c:
        page = c.get(f"/a/{seeded['pol']}").text
    params = page.split('id="params"', 1)[1].split("</table>", 1)[0]
    for key, value in (("batch_size", "64"), ("checkpoint every (k)", "20")):
        assert f'<th scope="row">{key}</th><td>{value}</td>' in params, key
    assert '<th scope="row">optimizer.lr</th><td>0.1</td>' in params  # either spec format
    assert "sha256:" not in params  # digests are not hyperparameters
    assert "proof of learning" in page and "proof-bundle.tar" in page
    _raw_free(page)


def test_compare_two_runs_highlights_differences(served, seeded):
    a, b = seeded["runs"]
    with _client(served) as c:
        page = c.get("/compare", params={"a": a, "b": b}).text
        verdicts = c.get("/compare", params={"a": served.ids["model"], "b": a}).text
        picker = c.get("/compare").text
    assert _row(page, "lr").split() == ["diff", "0.05", "0.1"]
    assert _row(page, "acc").split() == ["diff", "0.9", "0.8"]
    assert _row(page, "epochs").split() == ["same", "3", "3"]
    assert _row(page, "kind").startswith("same")
    assert _row(page, "lifecycle state").startswith("same")
    assert "fit-a" in page and "fit-b" in page and page.count("svg class=\"lineage\"") == 2
    _raw_free(page)
    row = _row(verdicts, "proof of learning verdict")
    assert row.startswith("diff") and "accepted" in row and "—" in row
    assert _row(verdicts, "parents").startswith("diff")  # digits vs none
    assert 'name="a"' in picker and "sections" not in picker
    with _client(served, None) as c:  # no token: chain data side by side, no parameters
        anon = c.get("/compare", params={"a": a, "b": b})
    assert anon.status_code == 200 and '<th scope="row">lr</th>' not in anon.text
    with _client(served) as c:
        assert c.get("/compare", params={"a": a, "b": "0x" + "ab" * 32}).status_code == 404


def test_compare_shows_audit_verdicts(served, seeded):
    import json

    digest = served.home.store.put(json.dumps(AUDIT).encode())
    sid = served.ids["service"]
    with Ledger.open(served.home, identity="operator", password=PASSWORD) as op:
        op.transition(sid, "deployed")
    with Ledger.open(served.home, identity="auditor", password=PASSWORD) as au:
        au.transition(sid, "suspended", digest)
    with _client(served) as c:
        page = c.get("/compare", params={"a": sid, "b": served.ids["model"]}).text
        art = c.get(f"/a/{sid}").text
    assert _row(page, "audit verdict").split()[:5] == ["diff", "fail", "(32", "queries,", "1"]
    assert _row(page, "lifecycle state").split() == ["diff", "suspended", "verified"]
    assert 'id="verdicts"' in art and "audit: fail" in art
    _raw_free(page)


def test_downloads_for_readers_only(served, seeded):
    restricted, open_ = seeded["weights_digest"], seeded["open_digest"]
    with _client(served) as c:
        r = c.get(f"/download/{restricted}", params={"name": "../../etc/model.pt"})
        assert r.status_code == 200 and r.content == seeded["weights"]
        assert "sha256:" + hashlib.sha256(r.content).hexdigest() == restricted
        assert r.headers["content-disposition"] == 'attachment; filename="model.pt"'
        page = c.get(f"/a/{seeded['runs'][0]}").text
        assert f'href="/download/{restricted}?name=model.pt"' in page
        assert "chosen readers" in page and "every member" in page
        assert c.get(f"/download/sha256:{'0' * 64}").status_code == 404
        assert c.get("/download/not-a-digest").status_code == 400
    with _client(served, None) as c:
        anon = c.get(f"/download/{restricted}")
        assert anon.status_code == 401 and seeded["weights"] not in anon.content
        assert c.get(f"/download/{open_}").status_code == 401  # content needs a reader
    node_id = served.app.state.node.reader.address
    with Ledger.open(served.home, identity="verifier", password=PASSWORD) as member:
        signed = {exchange.HEADER: exchange.sign_request(member, restricted, node_id)}
        refused = httpx.get(f"{served.url}/download/{restricted}", headers=signed)
        assert refused.status_code == 403 and seeded["weights"] not in refused.content
        signed = {exchange.HEADER: exchange.sign_request(member, open_, node_id)}
        allowed = httpx.get(f"{served.url}/download/{open_}", headers=signed)
        assert allowed.status_code == 200  # open to members: a member's node may have it
    log = (served.home.root / "node" / "access.log").read_text().splitlines()
    mine = [ln for ln in log if f" download {restricted} " in ln]
    assert any("anonymous refused" in ln for ln in mine)
    assert any("member:" in ln and "refused" in ln and "not one" in ln for ln in mine)


def test_cells_are_text_for_people():
    assert work.cell({"lr": 0.1, "betas": [0.9, 0.999]}) == "lr: 0.1, betas: 0.9, 0.999"
    assert work.cell(0.123456) == "0.1235" and work.cell(None) == "—"
    assert work.cell(True) == "yes" and work.cell(123456) == "123456"
    assert work.cell("x" * 500).endswith("…") and len(work.cell("x" * 500)) == work.MAX_CELL
    assert work.safe_filename('a"b\r\nX-Evil: 1/../é.pt') == "_.pt"
    assert work.safe_filename("C:\\x\\model.pt") == "model.pt"
    assert len(work.safe_filename("m" * 500)) == 100
    assert work.flatten({"optimizer": {"name": "sgd", "lr": 0.1}, "k": 2}) == {
        "optimizer.name": "sgd", "optimizer.lr": 0.1, "k": 2}
    loop_spec = {"name": "SGD", "groups": [{"options": {"lr": 0.1}, "params": ["w"]}]}
    assert work.flatten({"optimizer": loop_spec, "ks": [1, 2]}, skip=frozenset({"params"})) \
        == {"optimizer.name": "SGD", "optimizer.lr": 0.1, "ks": [1, 2]}
    assert work.flatten({"g": [{"lr": 1}, {"lr": 2}], "program": {"x": 1}},
                        skip=frozenset({"program"})) == {"g[0].lr": 1, "g[1].lr": 2}
    rows = work.rows({"lr": "0.10", "acc": 0.9}, {"lr": 0.1, "loss": 1.0})
    assert [(r.label, r.differs) for r in rows] == [("lr", False), ("acc", True),
                                                     ("loss", True)]


def test_hostile_work_documents_give_notes_not_errors(served, seeded):
    """Metadata naming a proof bundle that is no tar, a statement nested 5,000 deep and a
    'PoL report' with nonsense fields: the page answers 200 and says what it could not read."""
    import base64
    import io
    import json
    import tarfile

    store = served.home.store
    deep = (b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicate": '
            + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001)
    envelope = store.put(json.dumps({"payloadType": "application/vnd.in-toto+json",
                                     "payload": base64.b64encode(deep).decode(),
                                     "signatures": [{"keyid": "x", "sig": "eA=="}]}).encode())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # a 'bundle' whose manifest is a list
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    odd_tar = store.put(buf.getvalue())
    report = store.put(json.dumps({"format": "mltrail-pol-report/1", "verdict": "accepted",
                                   "segments": [{"error": "x"}, 3], "threshold": [],
                                   "findings": 7}).encode())
    with Ledger.open(served.home, identity="dev", password=PASSWORD) as dev:
        bad = dev.register("model", "sha256:" + "7a" * 32, (), {
            "name": "odd", "pol_bundle": store.put(b"not a tar"),
            "activity": {"envelope": envelope}}).artefact_id
        odd = dev.register("model", "sha256:" + "7b" * 32, (), {
            "name": "odd-tar", "pol_bundle": odd_tar}).artefact_id
        dev.transition(odd, "trained", report)
    with _client(served) as c:
        page = c.get(f"/a/{bad}")
        assert page.status_code == 200
        assert "no readable manifest.json" in page.text and "nested deeper" in page.text
        other = c.get(f"/a/{odd}")
        assert other.status_code == 200 and "proof of learning: accepted" in other.text
        assert c.get("/compare", params={"a": bad, "b": odd}).status_code == 200


def test_training_curve_from_the_verifiers_report(served, seeded):
    """A PoL report's per-checkpoint loss and accuracy (the verifier's, ``curve``) on the
    model's page, marked as the verifier's, its last point among the metrics."""
    import json

    curve = [{"step": s, "epoch": 0, "loss": 2.3 - s / 10, "accuracy": 0.1 + s / 50,
              "source": "verifier"} for s in (0, 10, 20)]
    report = served.home.store.put(json.dumps({
        "format": "mltrail-pol-report/1", "verdict": "accepted", "threshold": 0.1,
        "segments": [{"error": 0.001, "ok": True}], "curve": curve}).encode())
    with Ledger.open(served.home, identity="verifier", password=PASSWORD) as v:
        v.transition(seeded["pol"], "verified", report)
    with _client(served) as c:
        page = c.get(f"/a/{seeded['pol']}").text
    table = page.split('id="curve"', 1)[1].split("</table>", 1)[0]
    assert "computed by the verifier" in table and table.count("<td>verifier</td>") == 3
    assert "<td>20</td><td>0.3</td><td>0.5</td>" in table
    assert '<th scope="row">final loss (verifier)</th><td>0.3</td>' in page
    _raw_free(page)
