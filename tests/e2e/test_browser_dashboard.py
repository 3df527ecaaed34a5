"""The dashboard in a real browser: Debian's chromium driven by Playwright (no download).

Load the list, open an artefact, follow a lineage edge; check a tampered file in the
drop zone; a read-only token cannot transition. Screenshots go to tests/e2e/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from nodekit import seed
from testkit import PASSWORD, make_home

CHROMIUM = os.environ.get("MLTRAIL_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# in file order on one worker with one page: later tests use the token an earlier one saved
pytestmark = pytest.mark.xdist_group("browser")

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from mltrail.audit.service import serve_in_thread
    from mltrail.server.app import create_app
    from mltrail.server.tokens import TokenStore

    tmp = tmp_path_factory.mktemp("browser")
    home = make_home(tmp)
    ids, files = seed(home, tmp)
    viewer = TokenStore(home).create("viewer", "operator", read_only=True)[1]
    app = create_app(home, password=PASSWORD)
    with serve_in_thread(app) as srv:
        yield {"url": srv.url, "ids": ids, "files": files, "viewer": viewer, "tmp": tmp}
    app.state.node.close()


@pytest.fixture(scope="module")
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: run 'make browser' (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1366, "height": 860})
        pg.set_default_timeout(15_000)
        yield pg
        browser.close()


def test_list_artefact_and_lineage(site, page):
    page.goto(site["url"] + "/")
    rows = page.locator("#artefacts tbody tr")
    assert rows.count() == 3
    assert page.locator("#artefacts .badge").first.is_visible()
    page.screenshot(path=str(SHOTS / "list.png"), full_page=True)
    page.get_by_role("link", name="digits-cnn").click()
    page.wait_for_url(f"**/a/{site['ids']['model']}")
    assert "digits-cnn" in page.locator("#title").inner_text()
    assert page.locator("svg.lifecycle .state.current").get_attribute("data-state") == "verified"
    page.screenshot(path=str(SHOTS / "artefact.png"), full_page=True)
    page.locator(f'svg.lineage a[data-id="{site["ids"]["dataset"]}"]').click()
    page.wait_for_url(f"**/a/{site['ids']['dataset']}")
    assert "digits" in page.locator("#title").inner_text()


def test_drop_zone_catches_a_tampered_file(site, page):
    page.goto(f"{site['url']}/a/{site['ids']['model']}")
    tampered = site["tmp"] / "cnn-tampered.bin"
    tampered.write_bytes(site["files"]["cnn.bin"].read_bytes() + b"\x00")
    page.set_input_files("#file", str(tampered))
    page.wait_for_function("document.querySelector('#drop-result').textContent.includes('ismatch')")
    assert "bad" in page.locator("#drop").get_attribute("class")
    page.screenshot(path=str(SHOTS / "drop-mismatch.png"))
    page.set_input_files("#file", str(site["files"]["cnn.bin"]))
    page.wait_for_function("document.querySelector('#drop-result').textContent.includes('matches')")


def test_read_only_token_cannot_transition(site, page):
    sid = site["ids"]["service"]
    page.goto(f"{site['url']}/a/{sid}")
    page.locator("details.token summary").click()
    page.fill("#token", site["viewer"])
    page.click("#token-save")
    page.locator('button.move[data-to="deployed"]').click()
    page.wait_for_function("document.querySelector('#move-result').textContent.length > 0")
    assert "read-only" in page.locator("#move-result").inner_text()
    page.screenshot(path=str(SHOTS / "read-only-refused.png"))
    state = httpx.get(f"{site['url']}/v1/artefacts/{sid}").json()["artefact"]["state"]
    assert state == "registered"


def test_report_and_ledger_pages(site, page):
    page.goto(site["url"] + "/ledger")  # each test stands alone: xdist may give a new page
    page.locator("details.token summary").click()
    page.fill("#token", site["viewer"])
    page.click("#token-save")
    page.goto(f"{site['url']}/reports/{site['ids']['report']}")
    assert "accepted" in page.locator("h1").inner_text()
    assert page.locator("figure.replay-error svg").count() == 1
    page.screenshot(path=str(SHOTS / "pol-report.png"), full_page=True)
    page.goto(f"{site['url']}/ledger")
    assert page.locator("text=Members and roles").is_visible()
    page.screenshot(path=str(SHOTS / "ledger.png"), full_page=True)
