"""The run service under concurrent requests, on SQLite and PostgreSQL: BR-8 holds with 50 submissions
at once, and the bounded queue refuses what does not fit with 503 + Retry-After and records nothing
for it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import schema
from pfill.engine.db import init_schema
from tests.engine.helpers import AS_OF
from tests.engine.service.server import PREFIX, Server, add_tenant_inputs, problem, wait_status

RUN = {"as_of": AS_OF.isoformat()}
H = schema.pfill_run_history.c


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response | BaseException]:
    """Make every call from its own thread, released together; each outcome (a response or what it raised)."""
    gate = threading.Barrier(len(calls))
    outcomes: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def one(i: int) -> None:
        try:
            gate.wait(timeout=30)
            outcomes[i] = calls[i]()
        except BaseException as exc:  # reported by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request did not return"
    return outcomes  # type: ignore[return-value]


def _post_run(srv: Server, tenant: str) -> Callable[[], httpx.Response]:
    def post() -> httpx.Response:
        # a connection of its own, as separate callers have; the server takes the submissions one at
        # a time, so the last waits for all the others (and a refused one waits 2 s for room)
        with srv.client(tenant, timeout=120) as client:
            return client.post("/run", json=RUN)

    return post


def _history(db_url: str) -> list[dict[str, Any]]:
    with open_database(db_url).connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(H.run_id, H.tenant_id, H.status, H.pid)).mappings()]


def test_fifty_submissions_at_once_make_one_run(demo_db: str, tmp_path: Path) -> None:
    """One 202, 49 × 409 naming that run, no 5xx, and one run in the database (BR-8)."""
    srv = Server(demo_db, tmp_path / "home", env={"PFILL_TEST_STEP_DELAY": "cash_grid=30"}).start()
    try:
        outcomes = _at_once([_post_run(srv, "demo")] * 50)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors[:3]
        responses: list[httpx.Response] = outcomes  # type: ignore[assignment]
        codes = Counter(r.status_code for r in responses)
        assert codes == {202: 1, 409: 49}, (codes, [r.text for r in responses if r.status_code >= 500][:3])
        accepted = next(r for r in responses if r.status_code == 202)
        run_id = accepted.json()["run_id"]
        assert accepted.headers["location"] == f"{PREFIX}/runs/{run_id}"
        for refused in (r for r in responses if r.status_code == 409):
            assert problem(refused, 409)["active_run"] == run_id
        history = _history(demo_db)
        assert [r["run_id"] for r in history] == [run_id]
        with srv.client() as api:  # still held in cash_grid by the delay: cancel it rather than wait
            assert api.post(f"/runs/{run_id}/cancel").status_code == 202
            assert wait_status(api, run_id, {"Complete", "Failed", "Cancelled"})["status"] == "Cancelled"
    finally:
        srv.stop()


def test_a_full_queue_answers_503_and_records_nothing(db_url: str, tmp_path: Path, idle_broker: str) -> None:
    """Capacity 4, no worker (nothing is claimed), ten tenants submitting at once: 4 × 202 and
    6 × 503 with Retry-After; the run history holds exactly the four accepted runs, all queued.
    Cancelling one of them ends it at once ("cancelled before it started") and makes room."""
    init_schema(open_database(db_url))
    tenants = tuple(f"t{i}" for i in range(10))
    for seed, tenant in enumerate(tenants, start=20):
        add_tenant_inputs(db_url, tenant, seed=seed)
    srv = Server(db_url, tmp_path / "home", tenants=tenants,
                 args=("--executor", "celery", "--broker", idle_broker, "--queue-capacity", "4")).start()
    try:
        outcomes = _at_once([_post_run(srv, tenant) for tenant in tenants])
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors[:3]
        responses: list[httpx.Response] = outcomes  # type: ignore[assignment]
        codes = Counter(r.status_code for r in responses)
        assert codes == {202: 4, 503: 6}, (codes, [r.text for r in responses if r.status_code not in (202, 503)])
        for full in (r for r in responses if r.status_code == 503):
            body = problem(full, 503)
            assert full.headers["retry-after"] == "5" and body["queue_capacity"] == 4, (full.headers, body)
        accepted = {r.json()["run_id"] for r in responses if r.status_code == 202}
        history = _history(db_url)
        assert {r["run_id"] for r in history} == accepted and len(history) == 4
        assert all(r["status"] == "Pending" and r["pid"] is None for r in history), history
        by_tenant = {tenant: r for tenant, r in zip(tenants, responses, strict=True)}
        assert {r["tenant_id"] for r in history} == {t for t, r in by_tenant.items() if r.status_code == 202}
        with srv.client("t0") as api:
            status = api.get("/status").json()
        assert status["queue_depth"] == 4 and status["queue_capacity"] == 4 and status["executor"] == "celery"

        # a queued run (no executor claimed it) cancelled ends Cancelled at once, and makes room
        owner = next(t for t, r in by_tenant.items() if r.status_code == 202)
        queued_id = by_tenant[owner].json()["run_id"]
        with srv.client(owner) as api:
            queued = api.get(f"/runs/{queued_id}").json()
            assert queued["status"] == "Pending" and queued["pid"] is None and queued["started_at"] is None
            cancel = api.post(f"/runs/{queued_id}/cancel")
            assert cancel.status_code == 202, cancel.text
            body = cancel.json()
            assert body["status"] == "Cancelled" and body["failure_message"] == "cancelled before it started"
            assert body["completed_at"] is not None and body["started_at"] is None and body["pid"] is None
            assert api.get(f"/runs/{queued_id}").json()["status"] == "Cancelled"
            assert problem(api.post(f"/runs/{queued_id}/cancel"), 409)["run_status"] == "Cancelled"
            assert api.get("/status").json()["queue_depth"] == 3
        refused = next(t for t, r in by_tenant.items() if r.status_code == 503)
        with srv.client(refused) as api:
            assert api.post("/run", json=RUN).status_code == 202
            assert problem(api.post("/run", json=RUN), 409)  # BR-8 before the queue is looked at
    finally:
        srv.stop()
