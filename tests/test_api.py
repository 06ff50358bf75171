"""The read API against a real `casehistory serve` process (see fixtures_serve)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import pytest
from openpyxl import load_workbook

from casehistory.bootstrap import build
from casehistory.domain.durations import COHORT_YEARS, over_years
from casehistory.services.access import ROWS_SHOWN
from casehistory.settings import Settings
from tests.fixtures_serve import AS_OF, Served, populate, start_server, stop_server

EARLIER = date(2015, 3, 1)
CASEWORKER = "caseworker"
"""Rows per citizen are the caseworker's (and the DPO's), each read with a purpose."""
ROWS = "&purpose=sag+2026-0001"


def cli_rows(served: Served, as_of: date) -> list[dict[str, object]]:
    """The CLI's own per-citizen export, the numbers every surface must agree with."""
    out = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli",
         "durations", "--as-of", as_of.isoformat(),
         "--per-citizen", "--format", "jsonl", "--purpose", "test"],
        env={**__import__("os").environ, **served.env}, capture_output=True, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_every_request_needs_an_identity(served: Served) -> None:
    status, headers, _ = served.request("/api/v1/headline?as_of=2026-11-01", role=None)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic")
    status, _, _ = served.request("/", role=None, headers={"Authorization": "Basic bm86bm8="})
    assert status == 401


def test_openapi_3_describes_every_report(served: Served) -> None:
    spec = served.json("/openapi.json")
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/headline", "/api/v1/cohorts", "/api/v1/durations",
                 "/api/v1/coordination", "/api/v1/flows", "/api/v1/trend",
                 "/api/v1/citizens/{citizen_key}", "/api/v1/citizens/lookup"):
        assert path in spec["paths"], path
    status, _, page = served.request("/docs")
    assert status == 200
    assert b"/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert b"http://" not in page.replace(b"http://www.w3.org", b"")
    assert b"https://" not in page


@pytest.mark.parametrize("as_of", [AS_OF, EARLIER])
def test_headline_equals_the_cli_export_on_any_date(served: Served, as_of: date) -> None:
    rows = cli_rows(served, as_of)
    report = served.json(f"/api/v1/headline?as_of={as_of}", "auditor")
    tables = report["tables"]
    on = [r for r in rows if r["on_benefit"]]
    assert tables["summary"]["rows"] == [[len(rows), len(on)]]
    assert len(on) > 50  # a population worth comparing
    cohorts = {r[0]: r for r in tables["cohorts"]["rows"]}
    for years in COHORT_YEARS:
        true = sum(
            over_years(date.fromisoformat(str(r["all_benefits_spell_start"])), as_of, years)
            for r in on
        )
        naive = sum(
            over_years(date.fromordinal(as_of.toordinal() - int(str(r["naive_days"]))), as_of,
                       years)
            for r in on
        )
        assert cohorts[years][1] == true
        assert cohorts[years][3] == naive
    same = served.json(f"/api/v1/cohorts?as_of={as_of}", "auditor")["tables"]["cohorts"]
    assert same == tables["cohorts"]


def test_csv_follows_the_danish_convention(served: Served) -> None:
    status, headers, body = served.request(
        f"/api/v1/coordination?as_of={AS_OF}&format=csv&table=by_target_group", "auditor")
    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0] == "target_group;citizens;faellesborgere;share"
    report = served.json(f"/api/v1/coordination?as_of={AS_OF}",
                         "auditor")["tables"]["by_target_group"]
    for line, row in zip(lines[1:], report["rows"], strict=True):
        cells = line.split(";")
        assert cells[:3] == [str(v) for v in row[:3]]
        share = row[3]
        assert cells[3] == ("" if share is None else repr(share).replace(".", ","))
    assert any("," in line.split(";")[3] for line in lines[1:])


def test_xlsx_has_every_table_with_its_numbers(served: Served) -> None:
    status, headers, body = served.request(f"/api/v1/headline?as_of={AS_OF}&format=xlsx",
                                           "auditor")
    assert status == 200
    assert "spreadsheetml" in headers["content-type"]
    book = load_workbook(io.BytesIO(body))
    report = served.json(f"/api/v1/headline?as_of={AS_OF}", "auditor")["tables"]
    assert book.sheetnames == list(report)
    for name, table in report.items():
        rows = [list(r) for r in book[name].iter_rows(values_only=True)]
        assert rows[0] == table["columns"]
        assert rows[1:] == table["rows"]


def test_durations_pages_and_filters(served: Served) -> None:
    everyone = served.json(f"/api/v1/durations?as_of={AS_OF}&limit=10000{ROWS}", CASEWORKER)
    cli = {r["citizen_key"]: r for r in cli_rows(served, AS_OF)}
    assert everyone["total"] == len(everyone["rows"]) == len(cli)
    pages = [
        served.json(f"/api/v1/durations?as_of={AS_OF}&offset={o}&limit=250{ROWS}",
                    CASEWORKER)["rows"]
        for o in range(0, everyone["total"], 250)
    ]
    assert [r for page in pages for r in page] == everyone["rows"]
    assert all(row == {k: cli[row["citizen_key"]][k] for k in row} for row in everyone["rows"])

    long = served.json(
        f"/api/v1/durations?as_of={AS_OF}&over_years=10&order=longest&limit=10000{ROWS}",
        CASEWORKER)
    expected = [r for r in everyone["rows"] if r["all_benefits_spell_start"] and over_years(
        date.fromisoformat(r["all_benefits_spell_start"]), AS_OF, 10)]
    assert long["total"] == len(expected) > 0
    days = [r["all_benefits_spell_days"] for r in long["rows"]]
    assert days == sorted(days, reverse=True)
    moved = served.json(f"/api/v1/durations?as_of={AS_OF}&break_kind=move&on_benefit=true{ROWS}",
                        CASEWORKER)
    assert all(r["on_benefit"] and "moved_municipality" in r["breaks_bridged"]
               for r in moved["rows"])
    status, _, _ = served.request(f"/api/v1/durations?as_of={AS_OF}&limit=0{ROWS}", CASEWORKER)
    assert status == 422


def test_flows_and_trend_for_a_range(served: Served) -> None:
    flows = served.json("/api/v1/flows?from=2018-01-01&to=2020-12-31", "auditor")["tables"]
    assert [r[0] for r in flows["inflow"]["rows"]] == [
        f"{y}H{h}" for y in (2018, 2019, 2020) for h in (1, 2)]
    assert len(flows["awaiting_flexjob"]["rows"]) == 36
    trend = served.json(f"/api/v1/trend?from=2026-09-01&to={AS_OF}", "auditor")["tables"]["trend"]
    assert [r[0] for r in trend["rows"]] == ["2026-09-01", "2026-10-01", "2026-11-01"]
    headline = served.json(f"/api/v1/headline?as_of={AS_OF}", "auditor")["tables"]
    assert trend["rows"][-1][1] == headline["summary"]["rows"][0][1]


def test_a_role_that_may_not_see_a_report_gets_403_and_is_logged(served: Served) -> None:
    status, _, _ = served.request(f"/api/v1/headline?as_of={AS_OF}", role="operator")
    assert status == 403
    status, _, _ = served.request(f"/api/v1/durations?as_of={AS_OF}{ROWS}", role="analyst")
    assert status == 403  # aggregates only
    refused = [r for r in served.access_log() if r["kind"] == "refused"]
    assert {"who": "operator", "permission": "aggregates", "path": "/api/v1/headline"} in [
        {k: r[k] for k in ("who", "permission", "path")} for r in refused]
    assert {"who": "analyst", "permission": "per_citizen_rows", "path": "/api/v1/durations"} in [
        {k: r[k] for k in ("who", "permission", "path")} for r in refused]
    status, _, _ = served.request(f"/api/v1/durations?as_of={AS_OF}", CASEWORKER)
    assert status == 422  # rows per citizen need a purpose
    served.json(f"/api/v1/durations?as_of={AS_OF}&limit=5&purpose=sag+2026-0099", CASEWORKER)
    read = served.access_log()[-1]
    assert (read["kind"], read["who"], read["purpose"], read["criterion"], read["shown"],
            read["citizen_key"]) == ("lookup", "caseworker", "sag 2026-0099",
                                     f"/api/v1/durations?as_of={AS_OF}&limit=5",
                                     ROWS_SHOWN, None)
    log = served.json("/api/v1/access-log", role="auditor")
    assert log["intact"] is True
    assert len([r for r in log["records"] if r["kind"] == "refused"]) >= 2


def _long_history_cpr(served: Served) -> str:
    counts = Counter(
        json.loads(line).get("cpr") for line in served.population.read_text().splitlines())
    return str(counts.most_common(1)[0][0])


def test_a_citizen_by_cpr_in_the_body_is_logged_without_the_cpr(served: Served) -> None:
    cpr = _long_history_cpr(served)
    body = {"cpr": cpr, "purpose": "sag 2026-4711 opfølgning", "as_of": AS_OF.isoformat()}
    status, _, _ = served.request("/api/v1/citizens/lookup", role="analyst", body=body)
    assert status == 403
    status, _, _ = served.request("/api/v1/citizens/lookup", role="caseworker",
                                  body={"cpr": cpr, "purpose": ""})
    assert status == 422
    story = served.json("/api/v1/citizens/lookup", role="caseworker", body=body)
    assert len(story["facts"]) > 10 and story["spells"]
    lookups = [r for r in served.access_log() if r["kind"] == "lookup"]
    last = lookups[-1]
    assert (last["who"], last["citizen_key"], last["purpose"]) == (
        "caseworker", story["citizen_key"], body["purpose"])
    assert last["shown"].endswith("(found by cpr)")
    assert cpr not in (served.data_dir / "serve.log").read_text("utf-8")
    assert cpr.encode() not in (served.data_dir / "lookups.db").read_bytes()

    row = served.json(f"/api/v1/durations?as_of={AS_OF}&limit=10000{ROWS}", CASEWORKER)["rows"]
    mine = next(r for r in row if r["citizen_key"] == story["citizen_key"])
    assert story["measures"] == mine
    by_key = served.json(
        f"/api/v1/citizens/{story['citizen_key']}?purpose=tilsyn&as_of={AS_OF}", role="caseworker")
    assert by_key["measures"] == mine
    assert served.access_log()[-1]["shown"].endswith("(found by citizen_key)")
    status, _, _ = served.request(f"/api/v1/citizens/{'0' * 32}?purpose=tilsyn", role="caseworker")
    assert status == 404


def test_metrics_count_the_ingest_and_dead_letters_by_reason(served: Served) -> None:
    status, _, _ = served.request("/metrics", role="analyst")
    assert status == 403
    status, headers, body = served.request("/metrics", role="operator")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    file_records = 'casehistory_ingest_records_total{outcome="%s",partition="",source="file"}'
    stored = samples[file_records % "stored"]
    assert stored == served.ingested.stored
    dead = {k: v for k, v in samples.items() if k.startswith("casehistory_dead_letters_total")}
    assert sum(dead.values()) == served.ingested.rejected
    for reason, count in served.ingested.rejected_by_reason.items():
        assert dead[f'casehistory_dead_letters_total{{reason="{reason}",source="file"}}'] == count
    assert samples['casehistory_projection_lag_events{read_model="history"}'] == 0
    assert "casehistory_freshness_seconds_bucket" in body.decode()


def test_serve_projects_what_arrives_while_it_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": "cd" * 32}
    population, _ = populate(env, citizens=60)
    url, process = start_server(env, tmp_path)
    try:
        served = Served(url, tmp_path, env, population, None, process)  # type: ignore[arg-type]
        before = served.json("/api/v1/operations", role="operator")
        more = tmp_path / "more.jsonl"
        from casehistory.consumers.deadletter import DeadLetterFile
        from casehistory.entrypoints.cli.common import ingest_files
        from casehistory.population import generator

        generator.write_jsonl(generator.generate_population(40, 99, until=AS_OF), more)
        engine = build(Settings.load(env))
        try:
            ingest_files(engine, [more], DeadLetterFile(tmp_path / "more-dead.jsonl"))
            head = engine.app.recorder.max_notification_id()
        finally:
            engine.close()
        for _ in range(200):
            now = served.json("/api/v1/operations", role="operator")
            if all(m["position"] == head for m in now["read_models"]):
                break
            time.sleep(0.1)
        assert now["events_stored"] == head > before["events_stored"]
        assert [m["lag"] for m in now["read_models"]] == [0]
        metrics = served.request("/metrics", role="operator")[2].decode()
        assert "casehistory_freshness_seconds_count 0.0" not in metrics
    finally:
        stop_server(process)


@pytest.mark.postgres
def test_serve_on_postgresql(postgres_dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": "cd" * 32,
           "CASEHISTORY_STORE": postgres_dsn}
    population, report = populate(env, citizens=150)
    url, process = start_server(env, tmp_path)
    try:
        served = Served(url, tmp_path, env, population, report, process)
        headline = served.json(f"/api/v1/headline?as_of={AS_OF}",
                               "auditor")["tables"]["summary"]["rows"]
        rows = cli_rows(served, AS_OF)
        assert headline == [[len(rows), sum(1 for r in rows if r["on_benefit"])]]
        engine = build(Settings.load(env))
        try:
            head = engine.app.recorder.max_notification_id()
        finally:
            engine.close()
        metrics = served.request("/metrics", role="operator")[2].decode()
        assert f"casehistory_events_stored {float(head)}" in metrics

        # Roles and the lookup log in PostgreSQL: refusals, rows per citizen, one citizen.
        assert served.request(f"/api/v1/durations?as_of={AS_OF}{ROWS}", "analyst")[0] == 403
        assert served.request(f"/api/v1/headline?as_of={AS_OF}", "operator")[0] == 403
        listed = served.json(f"/api/v1/durations?as_of={AS_OF}&limit=10000{ROWS}", CASEWORKER)
        assert listed["total"] == len(rows)
        story = served.json("/api/v1/citizens/lookup", role=CASEWORKER, body={
            "cpr": _long_history_cpr(served), "purpose": "sag 2026-0500"})
        log = served.access_log()
        assert [(r["kind"], r["who"], r.get("permission") or r["purpose"]) for r in log] == [
            ("lookup", "test-dpo", "test"),  # the CLI's rows above, in the same log
            ("refused", "analyst", "per_citizen_rows"), ("refused", "operator", "aggregates"),
            ("lookup", "caseworker", "sag 2026-0001"), ("lookup", "caseworker", "sag 2026-0500")]
        assert (log[3]["criterion"], log[4]["citizen_key"]) == (
            f"/api/v1/durations?as_of={AS_OF}&limit=10000", story["citizen_key"])
        assert served.json("/api/v1/access-log", "auditor")["intact"] is True
    finally:
        stop_server(process)


def test_a_form_posted_from_another_site_is_refused(served: Served) -> None:
    body = {"cpr": _long_history_cpr(served), "purpose": "forged"}
    status, _, _ = served.request("/api/v1/citizens/lookup", role="caseworker", body=body,
                                  headers={"Origin": "http://elsewhere.example"})
    assert status == 403
    assert all(r.get("purpose") != "forged" for r in served.access_log())
    assert served.access_log()[-1]["permission"] == "same_origin"


def test_a_citizen_as_known_at_an_earlier_moment(served: Served) -> None:
    from datetime import datetime

    cpr = _long_history_cpr(served)
    now = served.json("/api/v1/citizens/lookup", role="caseworker",
                      body={"cpr": cpr, "purpose": "tilsyn", "as_of": AS_OF.isoformat()})
    moments = sorted(datetime.fromisoformat(f["recorded_at"]) for f in now["facts"])
    known_at = moments[len(moments) // 2]
    then = served.json("/api/v1/citizens/lookup", role="caseworker", body={
        "cpr": cpr, "purpose": "tilsyn", "as_of": AS_OF.isoformat(),
        "known_at": known_at.isoformat()})
    later = {f["event_id"] for f in then["facts"]
             if datetime.fromisoformat(f["recorded_at"]) > known_at}
    assert later
    assert {f["event_id"] for f in then["facts"] if f["status"] == "not_yet_known"} == later
    assert then["known_at"] == known_at.isoformat()
    assert "as known at" in served.access_log()[-1]["shown"]


def test_per_citizen_coordination_equals_the_cli_export(served: Served) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli",
         "coordination", "--as-of", AS_OF.isoformat(),
         "--per-citizen", "--format", "jsonl", "--purpose", "test"],
        env={**__import__("os").environ, **served.env}, capture_output=True, check=True,
    ).stdout
    cli = {r["citizen_key"]: r for r in map(json.loads, out.splitlines())}
    everyone = served.json(f"/api/v1/coordination/citizens?as_of={AS_OF}&limit=10000{ROWS}",
                           CASEWORKER)
    assert everyone["total"] == len(cli)
    assert {r["citizen_key"]: r for r in everyone["rows"]} == cli
    shared = served.json(f"/api/v1/coordination/citizens?as_of={AS_OF}&faellesborger=true{ROWS}",
                         CASEWORKER)
    assert shared["total"] == sum(r["is_faellesborger"] for r in cli.values()) > 0
    assert served.request(f"/api/v1/coordination/citizens?as_of={AS_OF}", role="operator")[0] == 403


@pytest.mark.parametrize("listing", [["long-durations", "--years", "10"], ["clarification-pool"]])
def test_prioritisation_lists_equal_the_cli(served: Served, listing: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli",
         "lists", *listing, "--as-of", AS_OF.isoformat(),
         "--format", "jsonl", "--purpose", "test"],
        env={**__import__("os").environ, **served.env}, capture_output=True, check=True,
    ).stdout
    cli = [json.loads(line) for line in out.splitlines()]
    query = "&years=10" if "--years" in listing else ""
    assert cli or not query  # a 600-citizen municipality has spells over 10 years
    api = served.json(f"/api/v1/lists/{listing[0]}?as_of={AS_OF}{query}{ROWS}", CASEWORKER)
    assert api["total"] == len(cli)
    assert [{k: r[k] for k in c} for r, c in zip(api["rows"], cli, strict=True)] == cli
    status, _, body = served.request(
        f"/api/v1/lists/{listing[0]}?as_of={AS_OF}{query}&format=csv{ROWS}", CASEWORKER)
    assert status == 200 and body.startswith("\ufeff".encode())


def test_the_api_and_the_cli_share_one_lookup_log(served: Served) -> None:
    story = served.json("/api/v1/citizens/lookup", role="caseworker", body={
        "cpr": _long_history_cpr(served), "purpose": "sag 2026-1234 fælles log"})
    key = story["citizen_key"]
    served.request(f"/api/v1/coordination?as_of={AS_OF}", role="operator")  # refused
    out = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "lookups", "--citizen-key", key],
        env={**__import__("os").environ, **served.env, "CASEHISTORY_USER": "au-1",
             "CASEHISTORY_ROLE": "auditor", "COLUMNS": "300"},
        capture_output=True, text=True, check=True,
    ).stdout
    assert "sag 2026-1234 fælles log" in out and "caseworker" in out
    log = served.json("/api/v1/access-log", role="auditor")
    assert log["intact"] is True
    assert log["records"][-1]["kind"] == "refused"
    assert log["records"][-1]["criterion"] == "/api/v1/coordination"
