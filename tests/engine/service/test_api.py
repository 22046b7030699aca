"""The run service's HTTP API, status code by status code, with its headers and body shapes: a real
`pfill serve` (uvicorn) on a free port, over SQLite and PostgreSQL.

Most tests share one server per database (tenants demo and acme, no step delay, the embedded
executor); they leave no run active behind them. The test that needs a slow run starts its own
server. (The cancel of a queued run, which needs the Celery executor with no worker, is in
test_concurrency, on the full-queue test's server.)"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pfill.cli import cli
from pfill.database import open_database
from pfill.engine import runs, schema
from pfill.engine.pipeline import RunOptions, execute_run
from tests.engine.helpers import AS_OF
from tests.engine.service.server import PREFIX, Server, problem, wait_status

ENDED = {"Complete", "Failed", "Cancelled"}
RUN = {"as_of": AS_OF.isoformat()}


@pytest.fixture(scope="module")
def shared(module_demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(module_demo_db, tmp_path_factory.mktemp("shared") / "home", tenants=("demo", "acme")).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(shared: Server) -> Iterator[httpx.Client]:
    with shared.client() as client:
        yield client


def _loan_ids(db_url: str, tenant: str, n: int) -> list[str]:
    """n of the tenant's considered (Locked or Closed) loans."""
    loan = schema.loan.c
    with open_database(db_url).connect() as conn:
        return list(conn.execute(sa.select(loan.loan_id).where(loan.tenant_id == tenant,
                                                               loan.status.in_(("Locked", "Closed")))
                                 .order_by(loan.loan_id).limit(n)).scalars())


def _run_ids(db_url: str, tenant: str, status: str | None = None) -> list[str]:
    """The tenant's runs in the API's order: newest first, then by run id (descending)."""
    h = schema.pfill_run_history.c
    query = sa.select(h.run_id).where(h.tenant_id == tenant).order_by(h.created_at.desc(), h.run_id.desc())
    if status:
        query = query.where(h.status == status)
    with open_database(db_url).connect() as conn:
        return list(conn.execute(query).scalars())


def _row_counts(db_url: str) -> dict[str, int]:
    with open_database(db_url).connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in schema.OUTPUT_TABLES}


def _output_hash(db_url: str, run_id: str) -> str:
    """A digest of the run's rows in pfill_powerfill_guide and pfill_trade_base."""
    digest = hashlib.sha256()
    with open_database(db_url).connect() as conn:
        for table in (schema.pfill_powerfill_guide, schema.pfill_trade_base):
            rows = sorted(repr(tuple(r)) for r in conn.execute(sa.select(table).where(table.c.run_id == run_id)))
            assert rows, f"run {run_id} has no rows in {table.name}"
            digest.update(f"{table.name}:{len(rows)}\n".encode())
            for row in rows:
                digest.update(row.encode() + b"\n")
    return digest.hexdigest()


def _ended_run(db_url: str, tenant: str, status: str = "Complete") -> str:
    """A run row that has ended (no pipeline behind it): quick history for the list and paging tests."""
    engine = open_database(db_url)
    run_id = runs.create_run(engine, tenant, "price", {"strategy": "greedy", "keep_runs": 10, "as_of": AS_OF})
    runs.finish_run(engine, run_id, tenant, status, **({"failure_message": "test"} if status != "Complete" else {}))
    return run_id


# -- POST /run ----------------------------------------------------------------------------------------

def test_submit_locate_conflict_and_cancel(demo_db: str, tmp_path: Path) -> None:
    """202 + Location that resolves; 409 names the active run; cancel answers 202 while the run is
    active and the run ends Cancelled with the previous Complete run's rows untouched; 409 once
    ended; 404 for an unknown run."""
    previous = execute_run(open_database(demo_db), RunOptions(tenant="demo", as_of=AS_OF))
    assert previous["status"] == "Complete"
    before = _output_hash(demo_db, previous["run_id"])
    srv = Server(demo_db, tmp_path / "home", env={"PFILL_TEST_STEP_DELAY": "cash_grid=20"}).start()
    try:
        with srv.client() as api:
            accepted = api.post("/run", json=RUN)
            assert accepted.status_code == 202, accepted.text
            assert accepted.headers["content-type"] == "application/json"
            run_id = accepted.json()["run_id"]
            assert accepted.json() == {"run_id": run_id, "status": "Pending"}
            assert accepted.headers["location"] == f"{PREFIX}/runs/{run_id}"
            located = api.get(httpx.URL(srv.url).join(accepted.headers["location"]))
            assert located.status_code == 200 and located.json()["run_id"] == run_id
            assert located.json()["status"] in schema.ACTIVE_STATUSES

            busy = problem(api.post("/run", json=RUN), 409)
            assert busy["active_run"] == run_id and busy["active_status"] in schema.ACTIVE_STATUSES
            assert busy["active_run_url"] == f"{PREFIX}/runs/{run_id}" and run_id in busy["detail"]

            wait_status(api, run_id, {"PreProcessing"})  # executing, held in cash_grid by the delay
            cancel = api.post(f"/runs/{run_id}/cancel")
            assert cancel.status_code == 202, cancel.text
            assert cancel.json()["run_id"] == run_id and cancel.json()["cancel_requested_at"] is not None
            done = wait_status(api, run_id, ENDED, timeout=30)
            assert done["status"] == "Cancelled" and done["failure_message"] == "cancelled by request", done
            assert done["failure_step"] == "cash_grid"

            again = problem(api.post(f"/runs/{run_id}/cancel"), 409)
            assert again["run_id"] == run_id and again["run_status"] == "Cancelled"
            missing = str(uuid.uuid4())
            assert problem(api.post(f"/runs/{missing}/cancel"), 404)["run_id"] == missing
    finally:
        srv.stop()
    assert _output_hash(demo_db, previous["run_id"]) == before
    assert runs.get_run(open_database(demo_db), previous["run_id"])["status"] == "Complete"


BAD_BODIES = [
    pytest.param({"as_of": "2025-03-03", "bogus": 1}, "bogus", None, id="unknown-field"),
    pytest.param({"as_of": "2025-13-45"}, "as_of", None, id="bad-date"),
    pytest.param({"as_of": "1999-01-01"}, "as_of", "1999-01-01", id="as-of-out-of-window"),
    pytest.param({"as_of": "2025-03-03", "strategy": "fastest"}, "strategy", None, id="unknown-strategy"),
    pytest.param({"as_of": "2025-03-03", "scoring": "carry"}, "scoring", None, id="bad-scoring"),
    pytest.param({"as_of": "2025-03-03", "keep_runs": 0}, "keep_runs", None, id="keep-runs-0"),
    pytest.param({"as_of": "2025-03-03", "loan_ids": []}, "loan_ids", None, id="empty-loan-ids"),
    pytest.param({"as_of": "2025-03-03", "loan_ids": ["NO-SUCH-LOAN"]}, "loan_ids", "NO-SUCH-LOAN",
                 id="unknown-loan-id"),
    pytest.param({"as_of": "2025-03-03", "loan_ids": "L1"}, "loan_ids", None, id="loan-ids-not-a-list"),
]


@pytest.mark.parametrize(("body", "field", "named"), BAD_BODIES)
def test_submit_refuses_bad_options_naming_the_field(shared: Server, api: httpx.Client, body: dict[str, Any],
                                                     field: str, named: str | None) -> None:
    before = _run_ids(shared.db_url, "demo")
    refused = problem(api.post("/run", json=body), 400, field=field)
    if named:
        assert named in refused["detail"], refused
    assert _run_ids(shared.db_url, "demo") == before  # nothing recorded


def test_submit_refuses_a_body_that_is_not_json(shared: Server, api: httpx.Client) -> None:
    before = _run_ids(shared.db_url, "demo")
    problem(api.post("/run", content=b"{not json", headers={"content-type": "application/json"}), 400)
    problem(api.post("/run", json=["as_of"]), 400)
    assert _run_ids(shared.db_url, "demo") == before


def test_loan_subset_is_honoured_and_stored(shared: Server, api: httpx.Client) -> None:
    subset = _loan_ids(shared.db_url, "demo", 7)
    accepted = api.post("/run", json={**RUN, "loan_ids": subset, "strategy": "greedy"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    done = wait_status(api, run_id, ENDED)
    assert done["status"] == "Complete", done
    assert done["input_loan_ids"] == subset and done["loans_considered"] <= len(subset)
    assert done["options"]["strategy"] == "greedy" and done["strategy"] == "greedy"
    stored = runs.get_run(open_database(shared.db_url), run_id)
    assert json.loads(stored["input_loan_ids_json"]) == subset
    guide = schema.pfill_powerfill_guide.c
    with open_database(shared.db_url).connect() as conn:
        placed = set(conn.execute(sa.select(guide.loan_id).where(guide.run_id == run_id)).scalars())
    assert placed <= set(subset)


# -- tokens ---------------------------------------------------------------------------------------------

ROUTES = [("GET", "/status"), ("POST", "/run"), ("GET", "/runs"), ("GET", "/runs/x"), ("POST", "/runs/x/cancel"),
          ("POST", "/candidates/preview")]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_but_health_needs_a_valid_token(shared: Server, method: str, path: str) -> None:
    before = _run_ids(shared.db_url, "demo")
    with shared.client(None) as anonymous:
        missing = anonymous.request(method, path, json={})
        assert problem(missing, 401)["detail"] == "a bearer token is required"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.request(method, path, json={}, headers={"Authorization": "Bearer " + "x" * 43})
        assert problem(wrong, 401)["detail"] == "the bearer token is not valid"
        assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        other_scheme = anonymous.request(method, path, json={},
                                         headers={"Authorization": f"Basic {shared.token()}"})
        problem(other_scheme, 401)
        assert other_scheme.headers["www-authenticate"].startswith("Bearer")
    assert _run_ids(shared.db_url, "demo") == before


def test_health_needs_no_token(shared: Server) -> None:
    with shared.client(None) as anonymous:
        health = anonymous.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_status(api: httpx.Client) -> None:
    status = api.get("/status")
    assert status.status_code == 200
    body = status.json()
    assert set(body) == {"module", "status", "version", "schema_version", "executor", "queue_depth",
                         "queue_capacity"}
    assert body["module"] == "powerfill" and body["status"] == "ready"
    assert body["version"] and body["schema_version"]
    assert body["executor"] == "embedded" and body["queue_capacity"] == 64
    assert isinstance(body["queue_depth"], int) and body["queue_depth"] >= 0


# -- GET /runs ------------------------------------------------------------------------------------------

def _walk(api: httpx.Client, limit: int, status: str | None = None,
          between: Any = None) -> tuple[list[str], list[httpx.Response]]:
    """Every page of GET /runs by cursor; `between()` is called after each page but the last."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    ids: list[str] = []
    pages: list[httpx.Response] = []
    while True:
        page = api.get("/runs", params=params)
        assert page.status_code == 200, page.text
        pages.append(page)
        body = page.json()
        assert len(body["runs"]) <= limit
        ids += [r["run_id"] for r in body["runs"]]
        if body["next"] is None:
            assert "link" not in page.headers
            return ids, pages
        assert len(body["runs"]) == limit
        if between:
            between()
        params["cursor"] = body["next"]
        assert len(pages) < 100, "paging does not end"


def test_runs_pages_newest_first_each_run_once(shared: Server, api: httpx.Client) -> None:
    engine = open_database(shared.db_url)
    made = [_ended_run(shared.db_url, "demo", status) for status in
            ("Complete", "Failed", "Complete", "Cancelled", "Complete", "Failed", "Complete")]
    # two runs created at the same instant: the run id orders them, and paging splits them correctly
    same = runs.get_run(engine, made[3])["created_at"]
    runs.update_run(engine, made[4], created_at=same)
    expected = _run_ids(shared.db_url, "demo")
    assert len(expected) >= len(made)

    first = api.get("/runs").json()
    assert [r["run_id"] for r in first["runs"]] == expected[:50]
    created = [_instant(r["created_at"]) for r in first["runs"]]
    assert created == sorted(created, reverse=True)

    for limit in (1, 2, 3, len(expected), len(expected) + 1):
        ids, _pages = _walk(api, limit)
        assert ids == expected, limit

    # runs added between pages shift nothing: each run of the first listing comes exactly once
    added: list[str] = []
    ids, pages = _walk(api, 2, between=lambda: added.append(_ended_run(shared.db_url, "demo")))
    assert ids == expected and len(added) == len(pages) - 1
    assert not set(added) & set(ids)
    assert _walk(api, 3)[0] == _run_ids(shared.db_url, "demo")[:len(expected) + len(added)]


def test_runs_link_header_names_the_next_page(shared: Server, api: httpx.Client) -> None:
    for _ in range(3):
        _ended_run(shared.db_url, "demo")
    page = api.get("/runs", params={"limit": 2, "status": "Complete"})
    body = page.json()
    assert body["next"]
    match = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers["link"])
    assert match, page.headers["link"]
    url = httpx.URL(match.group(1))
    assert url.params["cursor"] == body["next"] and url.params["limit"] == "2"
    assert url.params["status"] == "Complete"
    assert url.host == "127.0.0.1" and url.port == shared.port and url.path == f"{PREFIX}/runs"
    followed = api.get(url)
    assert followed.status_code == 200
    assert followed.json() == api.get("/runs", params={"limit": 2, "status": "Complete",
                                                        "cursor": body["next"]}).json()
    assert {r["status"] for r in followed.json()["runs"]} == {"Complete"}


def test_runs_filter_by_status(shared: Server, api: httpx.Client) -> None:
    _ended_run(shared.db_url, "demo", "Failed")
    for status in ("Complete", "Failed", "Pending"):
        ids, pages = _walk(api, 2, status=status)
        assert ids == _run_ids(shared.db_url, "demo", status), status
        assert all(r["status"] == status for p in pages for r in p.json()["runs"])
    assert _walk(api, 2, status="Failed")[0]


@pytest.mark.parametrize(("params", "field"), [
    pytest.param({"status": "Bogus"}, "status", id="unknown-status"),
    pytest.param({"status": "complete"}, "status", id="status-case"),
    pytest.param({"cursor": "garbage"}, "cursor", id="garbage-cursor"),
    pytest.param({"cursor": "!!!"}, "cursor", id="not-base64-cursor"),
    pytest.param({"cursor": "WzEsMl0"}, "cursor", id="cursor-of-numbers"),  # [1,2]
    pytest.param({"cursor": "eyJhIjoxfQ"}, "cursor", id="cursor-of-an-object"),  # {"a":1}
    pytest.param({"cursor": "x" * 201}, "cursor", id="overlong-cursor"),
    pytest.param({"limit": 0}, "limit", id="limit-0"),
    pytest.param({"limit": 1000}, "limit", id="limit-1000"),
    pytest.param({"limit": "ten"}, "limit", id="limit-text"),
])
def test_runs_refuses_bad_parameters(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    problem(api.get("/runs", params=params), 400, field=field)


# -- GET /runs/{id} -------------------------------------------------------------------------------------

def _cli_show(srv: Server, run_id: str) -> dict[str, Any]:
    """`pfill runs show RUN_ID --json` on the server's database, as tenant demo."""
    done = CliRunner().invoke(cli, ["--home", str(srv.home), "--db", srv.db_url, "runs", "show", run_id,
                                    "--tenant", "demo", "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_run_document_is_what_runs_show_prints(shared: Server, api: httpx.Client) -> None:
    run_id = api.post("/run", json=RUN).json()["run_id"]
    assert wait_status(api, run_id, ENDED)["status"] == "Complete"
    got = api.get(f"/runs/{run_id}")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    document, shown = got.json(), _cli_show(shared, run_id)
    assert list(document) == list(shown)
    stamps = [key for key, column in schema.pfill_run_history.c.items() if isinstance(column.type, sa.DateTime)]
    assert document["created_at"] and document["started_at"] and document["completed_at"]
    for key in stamps:  # ISO strings both; the API's carry the UTC offset the stored (naive) ones mean
        assert _instant(document.pop(key)) == _instant(shown.pop(key)), key
    assert document == shown
    assert document["options"]["as_of"] == RUN["as_of"] and document["response"]["counters"]
    assert set(document["step_seconds"]) >= {"load_inputs", "allocation", "synthetic"}


def _instant(stamp: str | None) -> datetime | None:
    """An ISO timestamp as an aware UTC datetime (a naive one is UTC, as the run history stores it)."""
    if stamp is None:
        return None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", stamp), stamp
    value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def test_unknown_run_is_404(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    body = problem(api.get(f"/runs/{missing}"), 404)
    assert body["run_id"] == missing and missing in body["detail"]
    problem(api.get("/runs/not-a-run-id"), 404)


def test_another_tenants_runs_are_not_there(shared: Server) -> None:
    """acme cannot see, cancel or list demo's runs (nor demo acme's); BR-8 is per tenant."""
    engine = open_database(shared.db_url)
    demo_done = _ended_run(shared.db_url, "demo")
    demo_active = runs.create_run(engine, "demo", "price", {"as_of": AS_OF})  # held by this (live) process
    try:
        with shared.client("acme") as acme, shared.client("demo") as demo:
            for run_id in (demo_done, demo_active):
                assert problem(acme.get(f"/runs/{run_id}"), 404)["detail"] == f"no run {run_id}"
                assert problem(acme.post(f"/runs/{run_id}/cancel"), 404)["detail"] == f"no run {run_id}"
            still = runs.get_run(engine, demo_active)
            assert still["status"] == "Pending" and still["cancel_requested_at"] is None
            assert problem(demo.post("/run", json=RUN), 409)["active_run"] == demo_active

            accepted = acme.post("/run", json={**RUN, "strategy": "greedy"})
            assert accepted.status_code == 202, accepted.text  # demo's active run does not hold acme's back
            acme_run = accepted.json()["run_id"]
            assert wait_status(acme, acme_run, ENDED)["status"] == "Complete"
            assert wait_status(acme, acme_run, ENDED)["tenant_id"] == "acme"
            listed = [r["run_id"] for r in acme.get("/runs", params={"limit": 500}).json()["runs"]]
            assert listed == [acme_run] == _run_ids(shared.db_url, "acme")
            problem(demo.get(f"/runs/{acme_run}"), 404)
            problem(demo.post(f"/runs/{acme_run}/cancel"), 404)
            assert acme_run not in [r["run_id"] for r in demo.get("/runs", params={"limit": 500}).json()["runs"]]
    finally:
        runs.finish_run(engine, demo_active, "demo", "Cancelled", failure_message="test over")


# -- POST /candidates/preview ---------------------------------------------------------------------------

def _open_trades(db_url: str, tenant: str) -> dict[str, float]:
    trades = schema.pscat_trades.c
    with open_database(db_url).connect() as conn:
        return dict(conn.execute(sa.select(trades.trade_id, trades.price).where(
            trades.tenant_id == tenant, trades.status == "Open", trades.trade_type.in_(("TBA", "Spec")))).all())


@pytest.mark.parametrize("scoring", ["price", "price_carry"])
def test_candidate_preview(shared: Server, api: httpx.Client, scoring: str) -> None:
    loans = _loan_ids(shared.db_url, "demo", 25)
    rows, history = _row_counts(shared.db_url), _run_ids(shared.db_url, "demo")
    preview = api.post("/candidates/preview", json={"loan_ids": loans, "scoring": scoring, "as_of": "2025-03-03"})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["tenant"] == "demo" and body["scoring"] == scoring and body["as_of"] == "2025-03-03"
    assert [loan["loan_id"] for loan in body["loans"]] and {loan["loan_id"] for loan in body["loans"]} <= set(loans)
    assert body["not_considered"] == sorted(set(loans) - {loan["loan_id"] for loan in body["loans"]})
    candidates = body["candidates"]
    assert candidates, body
    open_trades = _open_trades(shared.db_url, "demo")
    for option in candidates:
        assert option["loan_id"] in loans and option["trade_id"] in open_trades, option
        assert option["price"] == pytest.approx(open_trades[option["trade_id"]])
        expected = option["price"] + option["payup"] + (option["carry"] if scoring == "price_carry" else 0.0)
        assert option["score"] == pytest.approx(expected, abs=1e-5), option
    per_loan = {loan["loan_id"]: loan["eligible_trades"] for loan in body["loans"]}
    assert sum(per_loan.values()) == len(candidates)
    assert _row_counts(shared.db_url) == rows and _run_ids(shared.db_url, "demo") == history


def test_candidate_preview_refuses(shared: Server, api: httpx.Client) -> None:
    rows = _row_counts(shared.db_url)
    loans = _loan_ids(shared.db_url, "demo", 2)
    unknown = problem(api.post("/candidates/preview", json={"loan_ids": [*loans, "NO-SUCH-LOAN"]}), 400,
                      field="loan_ids")
    assert "NO-SUCH-LOAN" in unknown["detail"]
    problem(api.post("/candidates/preview", json={"loan_ids": []}), 400, field="loan_ids")
    problem(api.post("/candidates/preview", json={}), 400, field="loan_ids")
    problem(api.post("/candidates/preview", json={"loan_ids": loans, "scoring": "cheap"}), 400, field="scoring")
    problem(api.post("/candidates/preview", json={"loan_ids": loans, "as_of": "1999-01-01"}), 400, field="as_of")
    with shared.client("acme") as acme:  # the same loan ids are acme's own loans for acme's token
        assert acme.post("/candidates/preview", json={"loan_ids": loans}).json()["tenant"] == "acme"
    assert _row_counts(shared.db_url) == rows


# -- paths and methods ----------------------------------------------------------------------------------

def test_unknown_path_is_404_and_wrong_method_405(shared: Server, api: httpx.Client) -> None:
    problem(api.get("/nothing-here"), 404)
    problem(api.get(f"http://127.0.0.1:{shared.port}/"), 404)
    problem(api.post("/runs/x/stop"), 404)
    for method, path in (("DELETE", "/run"), ("GET", "/run"), ("PUT", "/runs/x"), ("GET", "/runs/x/cancel"),
                         ("POST", "/status"), ("GET", "/candidates/preview")):
        refused = api.request(method, path)
        problem(refused, 405)
        assert refused.headers["allow"], (method, path)


def test_shared_server_left_nothing_active(shared: Server) -> None:
    """The shared server's tests leave no active run (a later module's server starts clean)."""
    h = schema.pfill_run_history.c
    with open_database(shared.db_url).connect() as conn:
        active = conn.execute(sa.select(h.run_id, h.status).where(h.status.in_(schema.ACTIVE_STATUSES))).all()
    assert not active
