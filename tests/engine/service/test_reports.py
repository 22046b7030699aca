"""The reports over HTTP (#12): a real `pfill serve` on SQLite and PostgreSQL over demo data.

- every report (seven per run, plus the overview) answers the rows `pfill preview NAME --execute`
  prints for the same run, with the columns its queries/<name>.yaml declares and a unique key;
- freshness, one test per rule of engine/service/reports.py: `latest`, unknown run, another
  tenant's run, kept output, output removed by retention, Failed, Cancelled, active;
- cursor paging (each row once while another run completes between pages, the Link header, bad
  cursors and limits), the filters, CSV (the whole report; a 100k-row export streamed in flat
  memory: PostgreSQL, marked slow), and the row models in the OpenAPI schema.

Most tests share one server per database (tenants demo, acme and nobody, which has no run; no step
delay). Runs they make themselves are executed in-process (pipeline.execute_run) with a large
keep_runs, so that retention never removes the output of the module's base run; the retention test
uses tenant acme. Tests that need an active run start their own server with a step delay."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from functools import cmp_to_key
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import runs, schema
from pfill.engine.pipeline import RunFailed, RunOptions, execute_run
from pfill.engine.service import reports
from pfill.queries.catalog import Query
from tests.engine.helpers import AS_OF, PFILL, pfill_env
from tests.engine.service.server import PREFIX, Server, problem, wait_status

ENDED = {"Complete", "Failed", "Cancelled"}
KEEP = 100  # keep_runs of the runs the tests make: retention never touches the module's base run
RUN = {"as_of": AS_OF.isoformat(), "keep_runs": KEEP}
QUERIES = reports.queries()
PATHS = {r.query: r.path for r in reports.REPORTS}  # query -> endpoint under /runs/{run_id}/
NAMES = ["run_overview", *PATHS]
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")
LOG_COLUMNS = ["log_id", "logged_at", "step", "level", "event", "message", "details"]


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(module_demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(module_demo_db, tmp_path_factory.mktemp("reports") / "home",
                 tenants=("demo", "acme", "nobody")).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(shared: Server) -> Iterator[httpx.Client]:
    with shared.client() as client:
        yield client


def _execute(db_url: str, tenant: str = "demo", keep_runs: int = KEEP, **options: Any) -> str:
    """A run executed in this process (Complete); its id."""
    run = execute_run(open_database(db_url), RunOptions(tenant=tenant, keep_runs=keep_runs, as_of=AS_OF, **options))
    assert run["status"] == "Complete", run
    return str(run["run_id"])


@pytest.fixture(scope="module")
def base(shared: Server) -> str:
    """The module's Complete demo run, compared with `pfill preview` (its output is kept throughout)."""
    return _execute(shared.db_url)


def _preview(db_url: str, name: str, run_id: str | None, tenant: str = "demo") -> dict[str, Any]:
    """`pfill preview NAME --execute --format json` (every row) for the run, as the CLI prints it."""
    command = [PFILL, "preview", name, "--execute", "--format", "json", "--limit", "10000000", "--tenant", tenant]
    if run_id is not None:
        command += ["--run-id", run_id]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=pfill_env(db_url))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def previews(shared: Server, base: str) -> dict[str, dict[str, Any]]:
    """The seven per-run reports of the base run by `pfill preview`, run side by side."""
    with ThreadPoolExecutor(len(PATHS)) as pool:
        found = pool.map(lambda name: (name, _preview(shared.db_url, name, base)), PATHS)
        return dict(found)


@pytest.fixture
def held(demo_db: str, tmp_path: Path) -> Iterator[Server]:
    """A server of its own whose runs wait 30 s in cash_grid (they stay active until cancelled)."""
    srv = Server(demo_db, tmp_path / "home", env={"PFILL_TEST_STEP_DELAY": "cash_grid=30"}).start()
    yield srv
    srv.stop()


# -- helpers ----------------------------------------------------------------------------------------

def _path(name: str, run_id: str) -> str:
    return "/runs/overview" if name == "run_overview" else f"/runs/{run_id}/{PATHS[name]}"


def _next_url(page: httpx.Response) -> str | None:
    """The Link header's next URL (checked against the body's `next`)."""
    body = page.json()
    if "link" not in page.headers:
        assert body["next"] is None, body["next"]
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers["link"])
    assert match, page.headers["link"]
    assert body["next"] and httpx.URL(match.group(1)).params["cursor"] == body["next"]
    return match.group(1)


def _walk(api: httpx.Client, path: str, params: dict[str, Any] | None = None,
          between: Callable[[int], None] | None = None) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    """Every page by following the Link header; `between(n)` is called after page n (1-based) but the last."""
    limit = (params or {}).get("limit", reports.DEFAULT_PAGE)
    page = api.get(path, params=params)
    rows: list[dict[str, Any]] = []
    pages: list[httpx.Response] = []
    while True:
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/json"
        pages.append(page)
        rows += page.json()["rows"]
        url = _next_url(page)
        if url is None:
            assert len(page.json()["rows"]) <= limit
            return rows, pages
        assert len(page.json()["rows"]) == limit
        if between:
            between(len(pages))
        assert len(pages) < 1000, "paging does not end"
        page = api.get(url)


def _all_rows(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """The whole report in one page (the demo reports are far below the page limit)."""
    page = api.get(path, params={"limit": reports.MAX_PAGE, **params})
    assert page.status_code == 200, page.text
    assert page.json()["next"] is None
    return list(page.json()["rows"])


def _csv(api: httpx.Client, path: str, **params: Any) -> tuple[list[str], list[list[str]]]:
    got = api.get(path, params=params, headers={"Accept": "text/csv"})
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    header, *rows = list(csv.reader(io.StringIO(got.text)))
    return header, rows


def _from_csv(name: str, header: list[str], text_rows: list[list[str]]) -> list[dict[str, Any]]:
    """CSV rows as JSON rows: "" is NULL, booleans true/false, numbers by the declared type."""
    assert header == QUERIES[name].column_names
    types = {c.name: c.type for c in QUERIES[name].columns}
    parse: dict[str, Callable[[str], Any]] = {"integer": int, "float": float, "decimal": float,
                                              "boolean": {"true": True, "false": False}.__getitem__}
    return [{c: None if v == "" else parse.get(types[c], str)(v) for c, v in zip(header, row, strict=True)}
            for row in text_rows]


def _assert_rows(name: str, got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The same rows in the same order, floats to a tolerance: PostgreSQL may add up a weighted average
    in another order under another plan (a filter, a LIMIT), which changes the last bits."""
    query = QUERIES[name]
    assert len(got) == len(expected), (name, len(got), len(expected))
    for a, b in zip(got, expected, strict=True):
        assert list(a) == list(b) == query.column_names, (name, list(a), list(b))
        for column in query.columns:
            assert _same(column.type, a[column.name], b[column.name]), (
                name, _key(query, a), column.name, a[column.name], b[column.name])


def _key(query: Query, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k.removeprefix("-")] for k in query.key)


def _canon_key(query: Query, row: dict[str, Any]) -> tuple[Any, ...]:
    """The key of an API row or a CLI row, in one form (timestamps as naive datetimes)."""
    types = {c.name: c.type for c in query.columns}
    names = [k.removeprefix("-") for k in query.key]
    return tuple(_instant(str(row[n])) if types[n] == "datetime" and row[n] is not None else row[n] for n in names)


def _key_order(query: Query) -> Callable[[dict[str, Any]], Any]:
    """A sort key giving the API's order: by the query's key (`-name` descending), NULLs last either
    way on every database (sqlglot writes NULLS LAST where the dialect's default differs)."""

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for item in query.key:
            name, desc = item.removeprefix("-"), item.startswith("-")
            x, y = a[name], b[name]
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1
            result = -1 if x < y else 1
            return -result if desc else result
        return 0

    return cmp_to_key(compare)


def _instant(text: str) -> datetime:
    """A stored timestamp (SQLite text, PostgreSQL isoformat, or the API's RFC 3339 with Z), naive UTC."""
    return datetime.fromisoformat(text.removesuffix("Z").replace(" ", "T"))


def _same(column_type: str, ours: Any, theirs: Any) -> bool:
    """The API's value (a declared JSON type) is the CLI's (as the driver gave it), types normalised."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if column_type in ("float", "decimal"):
        return isinstance(ours, (int, float)) and not isinstance(ours, bool) and ours == pytest.approx(
            float(theirs), rel=1e-9, abs=1e-9)
    if column_type == "integer":
        return type(ours) is int and ours == int(theirs) and float(theirs) == int(theirs)
    if column_type == "boolean":
        return type(ours) is bool and theirs in (True, False, 0, 1) and ours == bool(theirs)
    if column_type == "date":
        return bool(ISO_DATE.fullmatch(ours)) and ours == str(theirs)[:10] and date.fromisoformat(ours) is not None
    if column_type == "datetime":
        return bool(RFC3339_Z.fullmatch(ours)) and _instant(ours) == _instant(str(theirs))
    return type(ours) is str and ours == str(theirs)


def _check_header(db_url: str, body: dict[str, Any], run_id: str, status: str, is_latest: bool) -> None:
    """The run members every per-run answer carries: run_id, status, completed_at (RFC 3339, Z), is_latest."""
    assert body["run_id"] == run_id and body["status"] == status and body["is_latest"] is is_latest, body
    assert body["completed_at"] and RFC3339_Z.fullmatch(body["completed_at"]), body["completed_at"]
    assert _instant(body["completed_at"]) == runs.get_run(open_database(db_url), run_id)["completed_at"]


def _run_ids(db_url: str, tenant: str) -> list[str]:
    h = schema.pfill_run_history.c
    with open_database(db_url).connect() as conn:
        return list(conn.execute(sa.select(h.run_id).where(h.tenant_id == tenant)).scalars())


def _failed_run(db_url: str, monkeypatch: pytest.MonkeyPatch, step: str = "allocation") -> str:
    """A demo run failed in `step` (PFILL_TEST_FAIL_STEP, in this process); its id."""
    before = set(_run_ids(db_url, "demo"))
    monkeypatch.setenv("PFILL_TEST_FAIL_STEP", step)
    with pytest.raises(RunFailed):
        execute_run(open_database(db_url), RunOptions(tenant="demo", keep_runs=KEEP, as_of=AS_OF))
    monkeypatch.delenv("PFILL_TEST_FAIL_STEP")
    (run_id,) = set(_run_ids(db_url, "demo")) - before
    return run_id


# -- 1. the API answers what `pfill preview` prints -------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_rows_equal_pfill_preview(shared: Server, api: httpx.Client, base: str,
                                  previews: dict[str, dict[str, Any]], name: str) -> None:
    """Same rows as `pfill preview NAME --execute --run-id RUN` (types normalised), the declared
    columns, exactly those keys per row, a unique key, in key order."""
    query = QUERIES[name]
    expected = _preview(shared.db_url, name, None) if name == "run_overview" else previews[name]
    rows, pages = _walk(api, _path(name, base), {"limit": reports.MAX_PAGE})
    body = pages[0].json()
    assert body["columns"] == [{"name": c.name, "type": c.type, "description": c.description} for c in query.columns]
    if name == "run_overview":
        assert set(body) == {"columns", "rows", "next"}
    else:
        _check_header(shared.db_url, body, base, "Complete", body["is_latest"])
        assert body["note"] is None and {r["run_id"] for r in rows} == {base}
    assert all(list(row) == query.column_names for row in rows)
    assert expected["columns"] == query.column_names
    assert len(rows) == expected["row_count"] == len(expected["rows"]) > 0, (len(rows), expected["row_count"])

    keys = [_key(query, row) for row in rows]
    assert len(set(keys)) == len(keys), f"{name}: key {query.key} is not unique"
    assert rows == sorted(rows, key=_key_order(query)), f"{name}: not in key order"
    theirs = {_canon_key(query, row): row for row in expected["rows"]}
    assert set(theirs) == {_canon_key(query, row) for row in rows}
    for row in rows:
        other = theirs[_canon_key(query, row)]
        for column in query.columns:
            assert _same(column.type, row[column.name], other[column.name]), (
                name, _key(query, row), column.name, column.type, row[column.name], other[column.name])


# -- 2. freshness: which run answers, and may it ------------------------------------------------------

def test_latest_is_the_latest_complete_run(shared: Server, api: httpx.Client, base: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`latest` answers the tenant's last Complete run (is_latest true) even with a Failed run after
    it; an older Complete run answers with is_latest false; a tenant without a Complete run: 404."""
    newer = _execute(shared.db_url)
    failed = _failed_run(shared.db_url, monkeypatch)
    for path in [*PATHS.values(), "log"]:
        latest = api.get(f"/runs/latest/{path}", params={"limit": 1})
        assert latest.status_code == 200, latest.text
        _check_header(shared.db_url, latest.json(), newer, "Complete", True)
        older = api.get(f"/runs/{base}/{path}", params={"limit": 1})
        _check_header(shared.db_url, older.json(), base, "Complete", False)
        assert latest.json()["rows"] and older.json()["rows"], path
    assert api.get(f"/runs/{failed}/guide").json()["is_latest"] is False
    overview = {r["run_id"]: r for r in _all_rows(api, "/runs/overview")}
    assert overview[newer]["is_latest"] is True and overview[base]["is_latest"] is False
    assert overview[failed]["is_latest"] is False and overview[failed]["status"] == "Failed"
    assert [r for r, row in overview.items() if row["is_latest"]] == [newer]
    with shared.client("nobody") as nobody:
        for path in [*PATHS.values(), "log"]:
            missing = problem(nobody.get(f"/runs/latest/{path}"), 404)
            assert missing["run_id"] == "latest" and "no Complete run" in missing["detail"], missing
        assert _all_rows(nobody, "/runs/overview") == []


@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-run-id", "LATEST"])
def test_unknown_run_is_404(api: httpx.Client, run_id: str) -> None:
    for path in [*PATHS.values(), "log"]:
        missing = problem(api.get(f"/runs/{run_id}/{path}"), 404)
        assert missing["run_id"] == run_id and missing["detail"] == f"no run {run_id}", missing
        problem(api.get(f"/runs/{run_id}/{path}", headers={"Accept": "text/csv"}), 404)


def test_another_tenants_run_is_404(shared: Server, base: str) -> None:
    """A run id of another tenant is not there (404, as an unknown one), in both directions."""
    acme_run = _execute(shared.db_url, "acme", strategy="greedy")
    with shared.client("acme") as acme, shared.client("demo") as demo:
        for client, run_id in ((acme, base), (demo, acme_run)):
            for path in [*PATHS.values(), "log"]:
                assert problem(client.get(f"/runs/{run_id}/{path}"), 404)["detail"] == f"no run {run_id}"
                problem(client.get(f"/runs/{run_id}/{path}", headers={"Accept": "text/csv"}), 404)
        assert acme.get("/runs/latest/recap").json()["run_id"] == acme_run
        assert {r["run_id"] for r in _all_rows(acme, "/runs/overview")} == set(_run_ids(shared.db_url, "acme"))
        assert acme_run not in {r["run_id"] for r in _all_rows(demo, "/runs/overview")}


def test_kept_output_answers_200_with_rows(shared: Server, api: httpx.Client, base: str) -> None:
    """An older Complete run whose output retention kept answers every report with its rows."""
    if runs.latest_complete_run(open_database(shared.db_url), "demo")["run_id"] == base:
        _execute(shared.db_url)
    assert runs.get_run(open_database(shared.db_url), base)["output_removed_at"] is None
    for path in [*PATHS.values(), "log"]:
        page = api.get(f"/runs/{base}/{path}", params={"limit": 5})
        assert page.status_code == 200, page.text
        body = page.json()
        _check_header(shared.db_url, body, base, "Complete", False)
        assert body["note"] is None and 0 < len(body["rows"]) <= 5, (path, body["rows"])


def test_output_removed_by_retention_is_410_naming_the_newest_run(shared: Server) -> None:
    """keep_runs=1: the older run's output goes (410 naming the newest run), its log stays (200)."""
    engine = open_database(shared.db_url)
    older = _execute(shared.db_url, "acme", strategy="greedy")
    newest = _execute(shared.db_url, "acme", keep_runs=1, strategy="greedy")
    assert runs.get_run(engine, older)["output_removed_at"] is not None
    with shared.client("acme") as acme:
        for path in PATHS.values():
            for accept in ("application/json", "text/csv"):
                gone = problem(acme.get(f"/runs/{older}/{path}", headers={"Accept": accept}), 410)
                assert gone["run_id"] == older and gone["newest_run"] == newest, gone
                assert gone["newest_run_url"] == f"{PREFIX}/runs/{newest}" and newest in gone["detail"], gone
            kept = acme.get(f"/runs/{newest}/{path}")
            assert kept.status_code == 200 and kept.json()["is_latest"] is True
        log = acme.get(f"/runs/{older}/log", params={"limit": reports.MAX_PAGE})
        assert log.status_code == 200, log.text
        _check_header(shared.db_url, log.json(), older, "Complete", False)
        events = [(r["step"], r["event"]) for r in log.json()["rows"]]
        assert ("run", "status") in events and len(events) > 5, events
        row = {r["run_id"]: r for r in _all_rows(acme, "/runs/overview")}[older]
        assert row["status"] == "Complete" and row["is_latest"] is False


def _check_empty_with_note(api: httpx.Client, db_url: str, run_id: str, status: str, step: str,
                           message: str) -> None:
    """Every user-facing report of a Failed/Cancelled run: 200, no rows, a note; CSV just the header;
    the log: its rows."""
    for name, path in PATHS.items():
        page = api.get(f"/runs/{run_id}/{path}")
        assert page.status_code == 200, page.text
        body = page.json()
        _check_header(db_url, body, run_id, status, False)
        assert body["rows"] == [] and body["next"] is None and "link" not in page.headers
        note = body["note"]
        assert note["status"] == status and note["failure_step"] == step, note
        assert message in note["failure_message"] and "BR-9" in note["detail"], note
        assert [c["name"] for c in body["columns"]] == QUERIES[name].column_names
        header, rows = _csv(api, f"/runs/{run_id}/{path}")
        assert header == QUERIES[name].column_names and rows == []
    log = api.get(f"/runs/{run_id}/log", params={"limit": reports.MAX_PAGE})
    assert log.status_code == 200, log.text
    _check_header(db_url, log.json(), run_id, status, False)
    assert log.json()["note"] is None and [c["name"] for c in log.json()["columns"]] == LOG_COLUMNS
    rows = log.json()["rows"]
    assert all(list(r) == LOG_COLUMNS for r in rows)
    assert any(r["step"] == "run" and r["event"] == "status" and status in r["message"] for r in rows), rows
    assert [r["log_id"] for r in rows] == sorted(r["log_id"] for r in rows)


def test_failed_run_answers_no_rows_with_a_note(shared: Server, api: httpx.Client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    failed = _failed_run(shared.db_url, monkeypatch)
    _check_empty_with_note(api, shared.db_url, failed, "Failed", "allocation", "injected failure in allocation")
    log = api.get(f"/runs/{failed}/log", params={"limit": reports.MAX_PAGE}).json()["rows"]
    assert any(r["level"] == "ERROR" and r["step"] == "allocation" for r in log), log


def test_cancelled_run_answers_no_rows_with_a_note(held: Server) -> None:
    with held.client() as api:
        run_id = api.post("/run", json=RUN).json()["run_id"]
        wait_status(api, run_id, {"PreProcessing"})
        assert api.post(f"/runs/{run_id}/cancel").status_code == 202
        assert wait_status(api, run_id, ENDED, timeout=30)["status"] == "Cancelled"
        _check_empty_with_note(api, held.db_url, run_id, "Cancelled", "cash_grid", "cancelled by request")
        events = [r["event"] for r in api.get(f"/runs/{run_id}/log").json()["rows"]]
        assert "cancel" in events, events


def test_active_run_is_409(held: Server) -> None:
    """While a run is active its reports (and log, and CSV) are 409 with its status; `latest` still
    answers the last Complete run."""
    previous = _execute(held.db_url)
    with held.client() as api:
        run_id = api.post("/run", json=RUN).json()["run_id"]
        try:
            for path in [*PATHS.values(), "log"]:
                for accept in ("application/json", "text/csv"):
                    busy = problem(api.get(f"/runs/{run_id}/{path}", headers={"Accept": accept}), 409)
                    assert busy["run_id"] == run_id and busy["run_status"] in schema.ACTIVE_STATUSES, busy
                    assert busy["run_status"] in busy["detail"]
                latest = api.get(f"/runs/latest/{path}", params={"limit": 1})
                assert latest.status_code == 200 and latest.json()["run_id"] == previous
            assert api.get(f"/runs/{run_id}").json()["status"] in schema.ACTIVE_STATUSES  # held throughout
            active = {r["run_id"]: r for r in _all_rows(api, "/runs/overview")}[run_id]
            assert active["is_active"] is True and active["completed_at"] is None
        finally:
            api.post(f"/runs/{run_id}/cancel")
            wait_status(api, run_id, ENDED, timeout=30)


# -- 3. cursor paging ---------------------------------------------------------------------------------

def _complete_over_post(api: httpx.Client) -> str:
    """A demo run submitted over POST /run and waited for (Complete)."""
    accepted = api.post("/run", json={**RUN, "strategy": "greedy"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    assert wait_status(api, run_id, ENDED)["status"] == "Complete"
    return str(run_id)


@pytest.mark.parametrize(("name", "start"), [("pool_candidates", "latest"), ("allocation_guide", "base")])
def test_paging_returns_every_row_once_while_a_run_completes(shared: Server, api: httpx.Client, base: str,
                                                             name: str, start: str) -> None:
    """limit=50, following the Link header, while another run of the tenant completes between pages
    (submitted over POST /run): every row of the first page's run exactly once, in key order. From
    `latest` the pages stay on the run the first page answered."""
    query = QUERIES[name]
    run_id = runs.latest_complete_run(open_database(shared.db_url), "demo")["run_id"] if start == "latest" else base
    whole = _all_rows(api, _path(name, run_id))
    assert len(whole) > 150
    made: list[str] = []
    rows, pages = _walk(api, _path(name, start if start == "latest" else run_id), {"limit": 50},
                        between=lambda n: made.append(_complete_over_post(api)) if n in (1, 3) else None)
    assert len(made) == 2 and len(pages) == -(-len(whole) // 50)
    assert {p.json()["run_id"] for p in pages} == {run_id}
    _assert_rows(name, rows, whole)
    keys = [_key(query, r) for r in rows]
    assert len(set(keys)) == len(keys)
    header, text_rows = _csv(api, _path(name, run_id))
    _assert_rows(name, _from_csv(name, header, text_rows), rows)
    for page in pages[1:]:  # each Link named the run itself, not `latest`
        assert f"/runs/{run_id}/" in str(page.request.url), page.request.url
    if start == "latest":  # `latest` with a cursor stays on the cursor's run, now that it is not the latest
        again = api.get(_path(name, "latest"), params={"limit": 50, "cursor": pages[0].json()["next"]})
        assert again.status_code == 200, again.text
        assert again.json()["rows"] == pages[1].json()["rows"] and again.json()["run_id"] == run_id
        assert again.json()["is_latest"] is False and f"/runs/{run_id}/" in again.headers["link"]
        first_log = api.get(f"/runs/{run_id}/log", params={"limit": 3})
        log = api.get("/runs/latest/log", params={"limit": 3, "cursor": first_log.json()["next"]})
        assert log.status_code == 200 and log.json()["run_id"] == run_id, log.text
        assert log.json()["rows"][0]["log_id"] > first_log.json()["rows"][-1]["log_id"]


def test_overview_paging_returns_each_run_once_while_runs_are_added(shared: Server, api: httpx.Client) -> None:
    """The hub pages newest first by keyset: runs added between pages neither repeat nor skip a run
    of the listing the first page began (they come first in the next listing)."""
    for _ in range(2):
        _execute(shared.db_url, strategy="greedy")
    before = [r["run_id"] for r in _all_rows(api, "/runs/overview")]
    assert len(before) >= 5
    added: list[str] = []
    for limit in (1, 2, 3):
        rows, _pages = _walk(api, "/runs/overview", {"limit": limit},
                            between=lambda n: added.append(_execute(shared.db_url, strategy="greedy"))
                            if n == 1 else None)
        assert [r["run_id"] for r in rows] == before, limit
        before = [r["run_id"] for r in _all_rows(api, "/runs/overview")]
        assert before[0] == added[-1]


def test_link_header_fetches_the_next_page(shared: Server, api: httpx.Client, base: str) -> None:
    first = api.get(f"/runs/{base}/guide", params={"limit": 7, "row_type": "Allocation"})
    url = httpx.URL(_next_url(first) or "")
    assert url.host == "127.0.0.1" and url.port == shared.port and url.path == f"{PREFIX}/runs/{base}/guide"
    assert url.params["limit"] == "7" and url.params["row_type"] == "Allocation"
    followed = api.get(url)
    assert followed.status_code == 200
    same = api.get(f"/runs/{base}/guide", params={"limit": 7, "row_type": "Allocation",
                                                   "cursor": first.json()["next"]})
    assert followed.json() == same.json()
    both = first.json()["rows"] + followed.json()["rows"]
    _assert_rows("allocation_guide", both, _all_rows(api, f"/runs/{base}/guide", row_type="Allocation")[:14])


def test_bad_cursors_and_limits_are_400(shared: Server, api: httpx.Client, base: str) -> None:
    other = _execute(shared.db_url, strategy="greedy")
    guide = api.get(f"/runs/{base}/guide", params={"limit": 5}).json()["next"]
    log = api.get(f"/runs/{base}/log", params={"limit": 2}).json()["next"]
    overview = api.get("/runs/overview", params={"limit": 1}).json()["next"]
    assert guide and log and overview
    offset = reports.encode_cursor("run_overview", "demo", 1)  # the overview's cursors hold a key
    problem(api.get("/runs/overview", params={"cursor": offset}), 400, field="cursor")
    for path, cursor in ((f"/runs/{base}/candidates", guide),  # another report of the run
                         (f"/runs/{other}/guide", guide),  # the same report of another run
                         (f"/runs/{base}/guide", log), (f"/runs/{base}/log", guide),
                         (f"/runs/{base}/guide", overview), ("/runs/overview", guide),
                         (f"/runs/{base}/guide", "garbage"), (f"/runs/{base}/guide", "!!!"),
                         (f"/runs/{base}/guide", "WzEsMl0"), (f"/runs/{base}/guide", "x" * 401)):
        problem(api.get(path, params={"cursor": cursor}), 400, field="cursor")
    for path in (f"/runs/{base}/guide", f"/runs/{base}/log", "/runs/overview"):
        for limit in (0, -1, reports.MAX_PAGE + 1, "ten"):
            problem(api.get(path, params={"limit": limit}), 400, field="limit")
        assert api.get(path, params={"limit": reports.MAX_PAGE}).status_code == 200
        assert api.get(path, params={"limit": 1}).status_code == 200


# -- 4. filters ---------------------------------------------------------------------------------------

def test_filters(shared: Server, api: httpx.Client, base: str) -> None:
    """Each filter returns exactly the report's rows with that value (= filtering the whole report);
    an unknown value: 200 with no rows."""
    guide = _all_rows(api, f"/runs/{base}/guide")
    recap = _all_rows(api, f"/runs/{base}/recap")
    trades = sorted({r["trade_id"] for r in guide if r["trade_id"]})
    assert len(trades) >= 3
    for trade in trades[:3]:
        only = _all_rows(api, f"/runs/{base}/recap", trade=trade)
        _assert_rows("trade_recap", only, [r for r in recap if r["trade_id"] == trade])
        only = _all_rows(api, f"/runs/{base}/guide", trade=trade)
        _assert_rows("allocation_guide", only, [r for r in guide if r["trade_id"] == trade])
        assert only
    for row_type in ("Kickout", "Allocation"):
        only = _all_rows(api, f"/runs/{base}/guide", row_type=row_type)
        _assert_rows("allocation_guide", only, [r for r in guide if r["row_type"] == row_type])
        assert only
    disposition = _all_rows(api, f"/runs/{base}/existing-disposition")
    actions = sorted({r["pool_action"] for r in disposition})
    assert len(actions) >= 2, actions
    for action in actions:
        _assert_rows("existing_disposition", _all_rows(api, f"/runs/{base}/existing-disposition", pool_action=action),
                     [r for r in disposition if r["pool_action"] == action])
    candidates = _all_rows(api, f"/runs/{base}/candidates")
    loan = candidates[0]["loan_id"]
    _assert_rows("pool_candidates", _all_rows(api, f"/runs/{base}/candidates", loan=loan),
                 [r for r in candidates if r["loan_id"] == loan])
    pooling = _all_rows(api, f"/runs/{base}/pooling-guide")
    pool = next(r["pool_id"] for r in pooling if r["pool_id"])
    _assert_rows("pooling_guide", _all_rows(api, f"/runs/{base}/pooling-guide", pool=pool),
                 [r for r in pooling if r["pool_id"] == pool])
    # two filters at once, a filter with paging, a filter on CSV
    both = _all_rows(api, f"/runs/{base}/guide", trade=trades[0], row_type="Allocation")
    _assert_rows("allocation_guide", both,
                 [r for r in guide if r["trade_id"] == trades[0] and r["row_type"] == "Allocation"])
    paged, _pages = _walk(api, f"/runs/{base}/guide", {"row_type": "Allocation", "limit": 40})
    _assert_rows("allocation_guide", paged, [r for r in guide if r["row_type"] == "Allocation"])
    header, text_rows = _csv(api, f"/runs/{base}/guide", row_type="Kickout")
    _assert_rows("allocation_guide", _from_csv("allocation_guide", header, text_rows),
                 [r for r in guide if r["row_type"] == "Kickout"])
    for path, params in ((f"/runs/{base}/recap", {"trade": "NO-SUCH-TRADE"}),
                         (f"/runs/{base}/guide", {"row_type": "Bogus"}),
                         (f"/runs/{base}/existing-disposition", {"pool_action": "Teleported"}),
                         (f"/runs/{base}/candidates", {"loan": "NO-SUCH-LOAN"})):
        empty = api.get(path, params=params)
        assert empty.status_code == 200 and empty.json()["rows"] == [] and empty.json()["next"] is None, params
        assert _csv(api, path, **params)[1] == []


# -- 5. CSV -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_csv_is_the_whole_report(shared: Server, api: httpx.Client, base: str, name: str) -> None:
    """Accept: text/csv streams every row (header: the declared columns; the rows: what the JSON pages
    hold, as text), whatever `limit` says."""
    query = QUERIES[name]
    path = _path(name, base)
    rows, _pages = _walk(api, path, {"limit": 100})
    got = api.get(path, params={"limit": 1}, headers={"Accept": "text/csv"})
    assert got.status_code == 200 and got.headers["content-type"] == "text/csv; charset=utf-8"
    assert got.headers["content-disposition"].startswith("attachment; filename=")
    assert got.text.endswith("\n")
    header, *text_rows = list(csv.reader(io.StringIO(got.text)))
    assert header == query.column_names
    assert len(text_rows) == len(rows) > 0
    _assert_rows(name, _from_csv(name, header, text_rows), rows)


BIG = 100_000  # synthetic allocations added to one run
RSS_LIMIT_MIB = 300


def _memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def _add_allocations(db_url: str, run_id: str, count: int) -> int:
    """`count` synthetic rows in the run's pfill_powerfill_guide (PostgreSQL: one INSERT ... SELECT of
    copies of one of its rows over generate_series, loans SYN0000000...), then ANALYZE: the run's
    allocation guide has that many more rows. Returns the guide's row count (allocations and kickouts)."""
    guide, kickouts = schema.pfill_powerfill_guide, schema.pfill_kickouts
    engine = open_database(db_url)
    with engine.connect() as conn:
        template = conn.execute(sa.select(guide.c.loan_id).where(guide.c.run_id == run_id).limit(1)).scalar_one()
    series = sa.func.generate_series(0, count - 1).table_valued("value").render_derived(name="i")
    i = series.c.value
    made = {"loan_id": sa.literal("SYN") + sa.func.lpad(sa.cast(i, sa.Text), 7, "0"),
            "upb": 100_000.0 + i, "value": 101_000.0 + i * 1.01}
    columns = [made.get(c.name, c) for c in guide.c]
    with engine.begin() as conn:
        conn.execute(guide.insert().from_select(
            [c.name for c in guide.c],
            sa.select(*columns).select_from(guide).join(series, sa.true())
            .where(guide.c.run_id == run_id, guide.c.loan_id == template)))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"ANALYZE {guide.name}"))  # as autovacuum would: the planner knows the size
        return sum(int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.run_id == run_id))
                       .scalar_one()) for t in (guide, kickouts))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_100k_row_csv_export_streams_in_flat_memory(demo_db: str, tmp_path: Path) -> None:
    """A 100k-row allocation guide as CSV: every row arrives, in many chunks as they are read (the
    first long before the last), and the server's peak RSS (VmHWM) stays below 300 MiB."""
    run_id = _execute(demo_db, strategy="greedy")
    total = _add_allocations(demo_db, run_id, BIG)
    srv = Server(demo_db, tmp_path / "home").start()
    try:
        with srv.client() as api:
            assert api.get(f"/runs/{run_id}/guide", params={"limit": 10}).status_code == 200  # warm
            before = _memory_mib(srv.proc.pid)
            start = time.monotonic()
            arrivals: list[float] = []
            lines = size = 0
            with api.stream("GET", f"/runs/{run_id}/guide", headers={"Accept": "text/csv"}) as got:
                assert got.status_code == 200 and got.headers["content-type"] == "text/csv; charset=utf-8"
                assert "content-length" not in got.headers  # chunked: nothing was built up front
                head = b""
                for chunk in got.iter_bytes():
                    arrivals.append(time.monotonic() - start)
                    head = head or chunk[:4096]
                    lines += chunk.count(b"\n")
                    size += len(chunk)
            elapsed = time.monotonic() - start
            after = _memory_mib(srv.proc.pid)
    finally:
        srv.stop()
    print(f"\nCSV export: {lines - 1} rows, {size / 2**20:.1f} MiB in {elapsed:.1f} s, {len(arrivals)} chunks, "
          f"first after {arrivals[0]:.2f} s; server RSS {before['VmRSS']:.0f} MiB before, "
          f"peak (VmHWM) {after['VmHWM']:.0f} MiB")
    assert head.decode().splitlines()[0].split(",") == QUERIES["allocation_guide"].column_names
    assert lines == total + 1 and total >= BIG
    assert len(arrivals) >= 20, len(arrivals)
    assert arrivals[0] < elapsed / 2, (arrivals[0], elapsed)
    assert after["VmHWM"] < RSS_LIMIT_MIB, after


# -- 6. OpenAPI ---------------------------------------------------------------------------------------

_JSON_TYPES = {"string": ("string", None), "integer": ("integer", None), "float": ("number", None),
               "decimal": ("number", None), "boolean": ("boolean", None), "date": ("string", "date"),
               "datetime": ("string", "date-time")}


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def test_openapi_publishes_each_report_row_model(shared: Server) -> None:
    document = httpx.get(f"http://127.0.0.1:{shared.port}/openapi.json", timeout=30).json()
    schemas, paths = document["components"]["schemas"], document["paths"]
    assert list(schemas["TradeRecapRow"]["properties"])[:3] == ["run_id", "trade_id", "agency"]
    assert "fill_status" in schemas["TradeRecapRow"]["properties"]
    for name, query in QUERIES.items():
        row = schemas[f"{_camel(name)}Row"]
        assert list(row["properties"]) == query.column_names, name
        for column in query.columns:
            prop = row["properties"][column.name]
            kinds = {(v.get("type"), v.get("format")) for v in prop.get("anyOf", [prop])}
            assert kinds == {_JSON_TYPES[column.type], ("null", None)}, (name, column.name, prop)
            assert prop["description"] == column.description
        page = schemas[f"{_camel(name)}Page"]
        assert page["properties"]["rows"]["items"] == {"$ref": f"#/components/schemas/{_camel(name)}Row"}
        run_members = {"run_id", "status", "completed_at", "is_latest", "note"}
        if name == "run_overview":
            path = f"{PREFIX}/runs/overview"
            assert not run_members & set(page["properties"])
        else:
            path = f"{PREFIX}/runs/{{run_id}}/{PATHS[name]}"
            assert run_members <= set(page["properties"])
        get = paths[path]["get"]
        content = get["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{_camel(name)}Page"}
        assert "text/csv" in content
        filters = {p["name"] for p in get["parameters"] if p["in"] == "query"} - {"limit", "cursor"}
        assert filters == {api for api, column in reports.FILTERS.items() if column in query.column_names}, name
        if name != "run_overview":
            assert {"404", "409", "410"} <= set(get["responses"]), name
    assert list(schemas["LogRow"]["properties"]) == LOG_COLUMNS
    assert schemas["RunLogPage"]["properties"]["rows"]["items"] == {"$ref": "#/components/schemas/LogRow"}


@pytest.mark.parametrize(("path", "param"), [("recap", "row_type"), ("pooling-guide", "loan"), ("log", "trade"),
                                             ("recap", "trade_idd")])
def test_a_filter_the_endpoint_does_not_take_is_400_not_ignored(api: httpx.Client, base: str, path: str,
                                                                param: str) -> None:
    answer = api.get(f"/runs/{base}/{path}", params={param: "x"})
    assert answer.status_code == 400 and answer.json()["field"] == param
    assert answer.headers["content-type"] == "application/problem+json"
    overview = api.get("/runs/overview", params={"status": "Complete"})
    assert overview.status_code == 400 and overview.json()["field"] == "status"
