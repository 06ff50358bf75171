"""Every page in real headless Chromium (Debian's): looks, accessibility, locality, words.

Each page is loaded as a user of the role it is for; the test saves a screenshot
under docs/screenshots/, runs axe-core (vendored in tests/vendor) for WCAG 2.1
A and AA and fails on any serious or critical violation, and fails if any
request went anywhere but the server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fixtures_serve import AS_OF, Served

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
]
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Debian's chromium is required under CI (scripts/test installs it)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Visit:
    """One user's browser tab that records every request it makes."""

    def __init__(self, browser: Any, served: Served, role: str) -> None:
        self.context = browser.new_context(
            http_credentials={"username": role, "password": served.password(role)},
            viewport={"width": 1280, "height": 900}, locale="da-DK", bypass_csp=True,
        )
        self.page = self.context.new_page()
        self.served = served
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))

    def open(self, path: str) -> int:
        response = self.page.goto(self.served.url + path)
        self.page.wait_for_load_state("networkidle")
        return int(response.status)

    def check(self, name: str) -> None:
        """Screenshot, axe-core, and nothing requested beyond 127.0.0.1."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # The citizen page is long: its screenshot shows the timeline and the measures.
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=name != "citizen")
        self.page.add_script_tag(path=str(AXE))
        result = self.page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            WCAG,
        )
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"] if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], serious
        hosts = {urlsplit(url).hostname for url in self.requests if not url.startswith("data:")}
        assert hosts == {"127.0.0.1"}, hosts
        assert self.failed == []

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector)).strip()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, served: Served) -> Iterator[Any]:
    opened: list[Visit] = []

    def as_role(role: str) -> Visit:
        opened.append(Visit(browser, served, role))
        return opened[-1]

    yield as_role
    for v in opened:
        v.close()


def _cells(v: Visit, table_id: str) -> list[list[str]]:
    rows = v.page.query_selector_all(f"#{table_id} tbody tr")
    return [[c.text_content().strip() for c in r.query_selector_all("th, td")] for r in rows]


def test_overview_shows_the_apis_numbers_in_danish(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open(f"/?as_of={AS_OF}") == 200
    v.check("overview")
    assert v.text("#as-of-shown") == "01.11.2026"
    report = served.json(f"/api/v1/headline?as_of={AS_OF}")["tables"]
    citizens, on_benefit = report["summary"]["rows"][0]
    assert v.text("#citizens") == f"{citizens:,}".replace(",", ".")
    assert v.text("#on-benefit") == f"{on_benefit:,}".replace(",", ".")
    shown = _cells(v, "buckets-table")
    assert [row[1:] for row in shown] == [[str(t), str(n)] for _, t, n in report["buckets"]["rows"]]
    assert shown[0][0] == "0-26 uger"
    for chart in ("buckets", "cohorts", "missed-by-break", "trend"):
        assert v.page.query_selector(f"#{chart}-chart svg") is not None, chart
        summary = v.page.query_selector(f"details[data-table-for={chart}] summary")
        assert summary.inner_text().strip() == "Vis som tabel"
    trend = _cells(v, "trend-table")
    assert trend[-1][0] == "01.11.2026" and trend[-1][1] == str(on_benefit)


def test_pages_open_on_the_servers_as_of_date(visit: Any) -> None:
    v = visit("analyst")
    assert v.open("/") == 200
    assert v.text("#as-of-shown") == "01.11.2026"


def test_english_on_request(visit: Any) -> None:
    v = visit("analyst")
    assert v.open(f"/?as_of={AS_OF}&lang=en") == 200
    assert v.text("#as-of-shown") == "2026-11-01"
    assert v.page.get_attribute("html", "lang") == "en"
    assert "Show as table" in v.page.content()


def test_coordination_page(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open(f"/samarbejde?as_of={AS_OF}") == 200
    v.check("coordination")
    report = served.json(f"/api/v1/coordination?as_of={AS_OF}")["tables"]
    rows = _cells(v, "by-target-group-table")
    assert [r[1:3] for r in rows] == [[str(a), str(b)] for _, a, b, _ in
                                       report["by_target_group"]["rows"]]
    shares = [r[3] for r in rows if r[3] != "–"]
    assert shares and all(re.fullmatch(r"\d{1,3},\d %", s) for s in shares), shares


def test_flows_page(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open("/stroemme?from=2018-01-01&to=2026-06-30") == 200
    v.check("flows")
    assert v.text("#period-shown") == "01.01.2018 – 30.06.2026"
    report = served.json("/api/v1/flows?from=2018-01-01&to=2026-06-30")["tables"]
    assert [r[0] for r in _cells(v, "inflow-table")] == [r[0] for r in report["inflow"]["rows"]]


def test_a_caseworker_finds_a_citizen_by_cpr_without_it_reaching_a_url(
    visit: Any, served: Served,
) -> None:
    from tests.test_api import _long_history_cpr

    cpr = _long_history_cpr(served)
    v = visit("caseworker")
    assert v.open("/borger") == 200
    v.check("citizen-search")
    v.page.fill("#cpr", cpr)
    v.page.fill("#purpose", "sag 2026-0815 varighed")
    v.page.fill("#as_of", AS_OF.isoformat())
    with v.page.expect_navigation():
        v.page.click("button[type=submit]")
    v.page.wait_for_load_state("networkidle")
    assert v.page.query_selector("svg.timeline") is not None
    assert len(v.page.query_selector_all("#facts-table tbody tr")) > 10
    v.check("citizen")
    assert all(cpr not in url for url in v.requests)
    last = served.access_log()[-1]
    assert (last["kind"], last["who"]) == ("lookup", "caseworker")
    assert last["shown"].endswith("(found by cpr)")
    measures = dict((r[0], r[1]) for r in _cells(v, "measures-table"))
    story = served.json(f"/api/v1/citizens/{last['citizen_key']}?purpose=check&as_of={AS_OF}",
                        role="caseworker")
    days = story["measures"]["all_benefits_spell_days"]
    if days is not None:
        assert measures["Forløbets længde i dage"] == f"{days:,}".replace(",", ".")


def test_operations_page(visit: Any, served: Served) -> None:
    v = visit("operator")
    assert v.open("/drift") == 200
    v.check("operations")
    events = served.json("/api/v1/operations", role="operator")["events_stored"]
    assert events >= 1000
    assert v.text("#events-stored") == f"{events:,}".replace(",", ".")
    assert re.fullmatch(r"\d{1,3}(\.\d{3})+", v.text("#events-stored"))


def test_access_log_page_and_api_docs(visit: Any) -> None:
    v = visit("auditor")
    assert v.open("/opslag") == 200
    v.check("access-log")
    assert v.text("#chain") == "Kæden er intakt"
    d = visit("analyst")
    assert d.open("/docs") == 200
    d.page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    d.check("api-docs")


def test_a_page_a_role_may_not_see_is_403_and_logged(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open("/borger") == 403
    refused = served.access_log()[-1]
    assert (refused["kind"], refused["who"], refused["permission"], refused["path"]) == (
        "refused", "analyst", "view_citizen", "/borger")
    assert visit("operator").open(f"/?as_of={AS_OF}") == 403


def _numbers(cells: list[list[str]]) -> list[list[int | str]]:
    """Danish whole numbers in a page's table (`1.234`) as integers ("<5" as it is)."""
    return [[c if c == "<5" else int(c.replace(".", "")) for c in row[1:]] for row in cells]


def test_exits_page(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open(f"/afgange?from=2019-01-01&to=2026-06-30&as_of={AS_OF}") == 200
    v.check("exits")
    assert v.text("#period-shown") == "01.01.2019 – 30.06.2026, som kendt pr. 01.11.2026"
    report = served.json(f"/api/v1/exits?from=2019-01-01&to=2026-06-30&as_of={AS_OF}")["tables"]
    table = report["by_destination"]
    assert _numbers(_cells(v, "by-destination-table")) == [r[1:] for r in table["rows"]]
    headings = [h.text_content() for h in v.page.query_selector_all("#by-destination-table th")]
    assert "Førtidspension" in headings or "Job" in headings


def test_cohort_page(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open("/kohorte?on=2024-11-01&min_years=1") == 200
    v.check("cohort")
    report = served.json("/api/v1/cohort?on=2024-11-01&min_years=1")
    assert v.text("#period-shown") == (
        f"Kohortedato 01.11.2024: {report['citizens']:,} borgere".replace(",", "."))
    detail = _cells(v, "outcomes-table")
    rows = report["tables"]["outcomes"]["rows"]
    assert _numbers([r[3:5] for r in detail]) == [[r[4]] for r in rows]
    assert all(re.fullmatch(r"\d{1,3},\d %", r[5]) or (r[5], r[4]) == ("–", "<5") for r in detail)


def test_casework_page(visit: Any, served: Served) -> None:
    v = visit("analyst")
    assert v.open(f"/sagsbehandling?as_of={AS_OF}") == 200
    v.check("casework")
    load = served.json(f"/api/v1/caseload?as_of={AS_OF}")["tables"]["distribution"]
    assert _numbers(_cells(v, "distribution-table")) == [r[1:] for r in load["rows"]]
    cadence = served.json(f"/api/v1/cadence?as_of={AS_OF}")["tables"]["by_status"]
    assert _numbers(_cells(v, "by-status-table")) == [r[1:] for r in cadence["rows"]]
    assert _cells(v, "by-status-table")[-1][0] == "Alle borgere"


def test_lists_page(visit: Any, served: Served) -> None:
    v = visit("caseworker")
    assert v.open(f"/lister?as_of={AS_OF}&years=5") == 200  # no purpose: the form, no rows
    assert v.page.query_selector("#long-durations-table") is None
    v.page.fill("#purpose", "opfølgning team 3")
    v.page.click("form.as-of-form button[type=submit]")
    v.page.wait_for_selector("#long-durations-table")
    v.check("lists")
    long = served.json(f"/api/v1/lists/long-durations?as_of={AS_OF}&years=5&purpose=test",
                       "caseworker")["rows"]
    cells = _cells(v, "long-durations-table")
    assert [r[0] for r in cells] == [r["citizen_key"] for r in long]
    first = long[0]["spell_start"]
    assert cells[0][1] == ".".join(reversed(first.split("-")))
    read = [r for r in served.access_log() if r["purpose"] == "opfølgning team 3"]
    assert [(r["who"], r["criterion"]) for r in read] == [
        ("caseworker", f"/lister?lang=da&as_of={AS_OF}&years=5")]
    for role in ("analyst", "operator"):  # aggregates only; no personal data
        assert visit(role).open("/lister?purpose=studie") == 403
