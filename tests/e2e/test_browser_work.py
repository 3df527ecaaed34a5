"""The dashboard's work pages in a real browser (Debian's chromium, Playwright).

An imported MLflow run's parameters and metrics on its page, a PoL proof's
hyperparameters, two runs compared side by side, a download served to a token holder
(the bytes hash to the artefact's digest) and refused to an anonymous visitor and to a
member who is not among the file's readers; no raw dict or JSON in these pages' DOM.
Screenshots go to tests/e2e/screenshots/ (work-*.png).
"""

from __future__ import annotations

import hashlib
import re

import pytest
from test_browser_dashboard import ARGS, CHROMIUM, SHOTS, page  # noqa: F401 - fixture

from nodekit import seed
from testkit import PASSWORD, make_home
from workkit import seed_work

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # MLflow's SQLAlchemy
              pytest.mark.xdist_group("browser")]  # one worker: one chromium
RAW = ("{'", '{"', "':", '":', "None", "[{")  # a dict or JSON dumped into a page


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from mltrail.audit.service import serve_in_thread
    from mltrail.server.app import create_app
    from mltrail.server.tokens import TokenStore

    tmp = tmp_path_factory.mktemp("browser-work")
    home = make_home(tmp)
    ids, _ = seed(home, tmp)
    work = seed_work(home, tmp, pol=True)
    viewer = TokenStore(home).create("viewer", "operator", read_only=True)[1]
    app = create_app(home, password=PASSWORD)
    with serve_in_thread(app) as srv:
        yield {"url": srv.url, "ids": ids, "work": work, "viewer": viewer, "home": home,
               "node": app.state.node}
    app.state.node.close()


def _use_token(page, site) -> None:  # noqa: F811 - the imported fixture
    page.goto(site["url"] + "/ledger")
    page.locator("details.token summary").click()
    page.fill("#token", site["viewer"])
    page.click("#token-save")


def _no_raw_dict(page) -> None:  # noqa: F811
    text = page.locator("main").inner_text()
    for bad in RAW:
        assert bad not in text, f"{bad!r} in the page's text"


def test_mlflow_run_shows_params_and_metrics(site, page):  # noqa: F811
    _use_token(page, site)
    page.goto(f"{site['url']}/a/{site['work']['runs'][0]}")
    params, metrics = page.locator("#params"), page.locator("#metrics")
    assert params.locator("tr", has_text="lr").locator("td").inner_text() == "0.05"
    assert metrics.locator("tr", has_text="acc").locator("td").inner_text() == "0.9"
    assert "MLflow run fit-a" in page.locator("#work h2").inner_text()
    _no_raw_dict(page)
    page.screenshot(path=str(SHOTS / "work-mlflow-run.png"), full_page=True)
    page.goto(f"{site['url']}/a/{site['work']['pol']}")
    lr = page.locator("#params th", has_text=re.compile(r"^optimizer\.lr$"))
    assert lr.locator("xpath=following-sibling::td").inner_text() == "0.1"
    _no_raw_dict(page)
    page.screenshot(path=str(SHOTS / "work-pol-proof.png"), full_page=True)


def test_compare_two_runs(site, page):  # noqa: F811
    _use_token(page, site)  # each test stands alone: xdist may give this module a new page
    a, b = site["work"]["runs"]
    page.goto(f"{site['url']}/a/{a}")
    page.select_option("#compare-b", b)
    page.click("#compare-with button")
    page.wait_for_url("**/compare?a=*&b=*")
    diff = page.locator("#compare tr.diff th")
    labels = [t.strip(" ≠") for t in diff.all_inner_texts()]
    assert "lr" in labels and "acc" in labels and "epochs" not in labels
    lr = page.locator("#compare tr.diff", has_text="lr").first.locator("td").all_inner_texts()
    assert lr == ["0.05", "0.1"]
    assert page.locator("svg.lineage").count() == 2
    _no_raw_dict(page)
    page.screenshot(path=str(SHOTS / "work-compare.png"), full_page=True)
    page.goto(f"{site['url']}/compare?a={site['ids']['model']}&b={a}")
    row = page.locator("#compare tr", has_text="proof of learning verdict")
    assert "accepted" in row.locator("td").first.inner_text()
    _no_raw_dict(page)
    page.screenshot(path=str(SHOTS / "work-compare-verdicts.png"), full_page=True)


def test_download_served_to_a_reader_refused_to_others(site, page):  # noqa: F811
    _use_token(page, site)
    from mltrail.ledger.client import Ledger
    from mltrail.provenance import exchange

    w = site["work"]
    digest = w["weights_digest"]
    page.goto(f"{site['url']}/a/{w['runs'][0]}")
    link = page.locator(f'#files a.download[href^="/download/{digest}"]')
    with page.expect_download() as dl:
        link.click()
    data = open(dl.value.path(), "rb").read()  # noqa: SIM115 - read once
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert dl.value.suggested_filename == "model.pt"
    page.screenshot(path=str(SHOTS / "work-files.png"), full_page=True)
    anon = page.context.browser.new_context()
    try:
        other = anon.new_page()
        resp = other.goto(f"{site['url']}/download/{digest}")
        assert resp.status == 401 and w["weights"] not in resp.body()
        assert "needs an API token" in other.locator("main").inner_text()
        other.screenshot(path=str(SHOTS / "work-download-refused.png"))
        with Ledger.open(site["home"], identity="verifier", password=PASSWORD) as member:
            signed = exchange.sign_request(member, digest, site["node"].reader.address)
        other.set_extra_http_headers({exchange.HEADER: signed})
        resp = other.goto(f"{site['url']}/download/{digest}")
        assert resp.status == 403 and w["weights"] not in resp.body()
        assert "not one" in other.locator("main").inner_text()
    finally:
        anon.close()
    log = (site["home"].root / "node" / "access.log").read_text()
    assert f"download {digest} anonymous refused" in log
    assert f"download {digest} member:" in log
