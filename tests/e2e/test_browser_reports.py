"""Report pages in a real browser (Debian's chromium via Playwright, as the dashboard's
browser test): a proof report from a real verifier run and an audit report with nested
values. In the DOM: no table cell holds a raw dict, list or JSON; the training curve, the
replay-error plot and the sequential evidence paths are SVG; the lifecycle is dot's.
Screenshots go to tests/e2e/screenshots/.
"""

from __future__ import annotations

import json
import re

import pytest
from test_browser_dashboard import SHOTS, page  # noqa: F401  (the shared browser fixture)

from nodekit import seed
from reportkit import AUDIT
from testkit import PASSWORD, make_home

# a dict or JSON object, a quoted list item, Python's None/True/False, an escaped quote
RAW = re.compile(r"[{}]|\[['\"]|['\"]\]|\bNone\b|\bTrue\b|\bFalse\b|&#34;")
CELLS = "table td, dl.kv dd"


# in file order on one worker with one page: later tests use the token an earlier one saved
pytestmark = pytest.mark.xdist_group("browser")

@pytest.fixture(scope="module")
def reports_site(tmp_path_factory):
    """A node whose model was verified with a real proof report (with its curve) and
    whose service was audited with a report full of nested sections."""
    from mltrail.audit.service import serve_in_thread
    from mltrail.ledger.client import Ledger
    from mltrail.pol.reftask import record_reference
    from mltrail.pol.verifier import verify_bundle
    from mltrail.reference import load_digits_tensors, pinned_threads
    from mltrail.server.app import create_app
    from mltrail.server.tokens import TokenStore

    tmp = tmp_path_factory.mktemp("reports")
    home = make_home(tmp)
    ids, _ = seed(home, tmp)
    d = load_digits_tensors()
    with pinned_threads(1):
        record_reference(tmp / "proof", d.x_train, d.y_train, arch={"type": "mlp",
                         "hidden": [16]}, optimizer={"name": "sgd", "lr": 0.1},
                         k=8, epochs=2, batch_size=64, seed=5)  # pol train's loop spec
        rep = verify_bundle(tmp / "proof", (d.x_train, d.y_train), q=1, r=3, seed=2)
    assert rep.accepted and rep.curve
    pol = home.store.put(rep.to_json())
    audit = home.store.put(json.dumps(AUDIT).encode())
    with Ledger.open(home, identity="dev", password=PASSWORD) as dev:
        model = dev.register("model", "sha256:" + "77" * 32, [ids["dataset"]],
                             {"name": "digits-mlp"}).artefact_id
        dev.transition(model, "trained")
    with Ledger.open(home, identity="verifier", password=PASSWORD) as v:
        v.transition(model, "verified", pol)
    with Ledger.open(home, identity="operator", password=PASSWORD) as op:
        op.transition(ids["service"], "deployed")
    with Ledger.open(home, identity="auditor", password=PASSWORD) as au:
        au.transition(ids["service"], "suspended", audit)
    viewer = TokenStore(home).create("viewer", "operator", read_only=True)[1]
    app = create_app(home, password=PASSWORD)
    with serve_in_thread(app) as srv:
        yield {"url": srv.url, "pol": pol, "audit": audit, "model": model, "viewer": viewer,
               "service": ids["service"]}
    app.state.node.close()


def _login(page, site) -> None:  # noqa: F811
    page.context.add_cookies([{"name": "mltrail_token", "value": site["viewer"],
                               "url": site["url"]}])


def _no_raw_cells(page) -> int:  # noqa: F811
    texts = page.locator(CELLS).all_inner_texts()
    bad = [t for t in texts if RAW.search(t)]
    assert not bad, bad[:3]
    return len(texts)


def test_proof_report_page_curves_and_no_raw_cells(reports_site, page):  # noqa: F811
    _login(page, reports_site)
    page.goto(f"{reports_site['url']}/reports/{reports_site['pol']}")
    assert "accepted" in page.locator("h1").inner_text()
    assert page.locator("#training-curve figure.curve svg").count() == 1
    assert page.locator("#replay-errors figure.replay-error svg").count() == 1
    assert "computed by the verifier" in page.locator("#training-curve").inner_text()
    assert page.locator("#segments tbody tr").count() >= 3
    assert _no_raw_cells(page) > 20
    box = page.locator("#replay-errors svg").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150  # drawn, not collapsed
    page.screenshot(path=str(SHOTS / "report-pol.png"), full_page=True)


def test_audit_report_page_evidence_paths_and_no_raw_cells(reports_site, page):  # noqa: F811
    _login(page, reports_site)
    page.goto(f"{reports_site['url']}/reports/{reports_site['audit']}")
    assert "fail" in page.locator("h1").inner_text()
    assert page.locator("#sequential figure.sequential svg").count() == 1
    assert page.locator("figure.robustness svg, figure.latency svg").count() == 2
    assert page.locator("table.sub").count() >= 3  # nested values became sub-tables
    assert _no_raw_cells(page) > 20
    page.screenshot(path=str(SHOTS / "report-audit.png"), full_page=True)


def test_lifecycle_drawn_by_dot(reports_site, page):  # noqa: F811
    page.goto(f"{reports_site['url']}/a/{reports_site['model']}")
    svg = page.locator("svg.lifecycle")
    assert svg.locator("g.state.current").get_attribute("data-state") == "verified"
    assert svg.locator("g.edge").count() >= 8
    page.locator("svg.lifecycle").screenshot(path=str(SHOTS / "lifecycle.png"))
