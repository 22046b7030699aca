"""Scale-out (#11): two API replicas (`pfill serve --executor celery`) and two Celery workers (`pfill
worker`) on one PostgreSQL engine database and a real Redis broker (a database of its own).

- 20 runs over 10 tenants, submitted to the replicas in turn: every run completes, executed exactly
  once (one claim naming one worker, one "run Complete"), both workers take part, and no tenant
  ever has two active runs (BR-8: polled throughout; every 409 came while the tenant's run was active).
  The replicas send queued runs again every second (PFILL_RESEND_SECONDS), so runs that waited get
  second messages: the conditional claim makes those no-ops.
- Lost broker messages lose no run: with the workers stopped, a run's message is flushed from Redis,
  and a replica whose broker is unreachable still answers 202 at once; both runs execute when workers
  are back (the other replicas send queued runs again).
- A cancel sent to the replica that did not accept the run ends it Cancelled in its worker; the
  tenant's last Complete run keeps its output.

The replicas share their tokens through a pfill.yaml (`service.tokens`, from environment variables),
each with a home of its own, as on separate hosts.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import demo_data, schema
from pfill.engine.context import utcnow
from pfill.engine.db import init_schema
from pfill.engine.service.tasks import QUEUE
from tests.conftest import free_port
from tests.engine.helpers import AS_OF, wait_for
from tests.engine.service.server import Server
from tests.engine.service.workers import Worker, stop_all

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

H, LOG = schema.pfill_run_history, schema.pfill_powerfill_log
TENANTS = [f"t{i:02d}" for i in range(10)]
SLOW = "slow"  # the cancel's tenant
BODY = {"as_of": AS_OF.isoformat(), "strategy": "greedy"}  # the MIP's second per run is not what is tested
RESEND_SECONDS = "1"
CLAIM_KEY = "pfill-test-scale-out"  # marks the Redis database this session took
NOT_USED = {0, 11}  # the default broker's database, and the one the other service tests leave idle


@pytest.fixture
def broker() -> Iterator[tuple[str, redis.Redis]]:
    """A Redis database of this test's own (empty, claimed with a key), flushed at the end."""
    candidates = [n for n in range(1, 16) if n not in NOT_USED]
    random.shuffle(candidates)
    for n in candidates:
        client = redis.Redis(host="127.0.0.1", port=6379, db=n)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, os.getpid(), nx=True, ex=900):
            break
        client.close()
    else:
        pytest.fail("no empty Redis database to take on 127.0.0.1:6379")
    try:
        yield f"redis://127.0.0.1:6379/{n}", client
    finally:
        client.flushdb()
        client.close()


def _tokens_config(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A pfill.yaml naming one token per tenant, each in an environment variable; returns
    (tenant -> token, variable -> token)."""
    tokens = {tenant: secrets.token_urlsafe(32) for tenant in [*TENANTS, SLOW]}
    variables = {f"PFILL_TOKEN_{tenant.upper()}": token for tenant, token in tokens.items()}
    lines = ["service:", "  tokens:"]
    lines += [f"    {tenant}: ${{PFILL_TOKEN_{tenant.upper()}}}" for tenant in tokens]
    path.write_text("\n".join(lines) + "\n")
    return tokens, variables


class Br8Watch(threading.Thread):
    """Polls the run history while runs go: tenants seen with two active runs in one snapshot (one
    statement sees one snapshot), and the most runs seen executing at once."""

    def __init__(self, db_url: str) -> None:
        super().__init__(name="br8-watch", daemon=True)
        self.engine = sa.create_engine(db_url)
        self.samples, self.most_executing = 0, 0
        self.doubles: list[dict[str, list[str]]] = []
        self.executing_pids: set[int] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        query = sa.select(H.c.tenant_id, H.c.run_id, H.c.status, H.c.pid).where(
            H.c.status.in_(schema.ACTIVE_STATUSES))
        while not self._halt.is_set():
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            by_tenant: dict[str, list[str]] = {}
            for tenant, run_id, _status, _pid in rows:
                by_tenant.setdefault(tenant, []).append(run_id)
            doubles = {t: ids for t, ids in by_tenant.items() if len(ids) > 1}
            if doubles:
                self.doubles.append(doubles)
            executing = [pid for _t, _r, status, pid in rows if status != "Pending" and pid is not None]
            self.most_executing = max(self.most_executing, len(executing))
            self.executing_pids.update(executing)
            self.samples += 1
            time.sleep(0.02)

    def finish(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)
        self.engine.dispose()


def _log(engine: sa.Engine, run_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(LOG.c.event, LOG.c.message)
                                               .where(LOG.c.run_id == run_id).order_by(LOG.c.log_id))]


def _executed_once(engine: sa.Engine, run_id: str, ending: str = "Complete") -> str:
    """The run's log has one claim naming one Celery worker and one `run <ending>` line; returns the
    worker's --name."""
    log = _log(engine, run_id)
    claims = [message for event, message in log if event == "claim"]
    assert len(claims) == 1 and claims[0].startswith("claimed by worker celery@"), (run_id, log)
    endings = [message for event, message in log if event == "status" and message.startswith(f"run {ending}")]
    assert len(endings) == 1, (run_id, log)
    assert not [m for e, m in log if e == "status" and m.startswith("run ") and m.split()[1] in
                schema.TERMINAL_STATUSES and not m.startswith(f"run {ending}")], (run_id, log)
    return claims[0].removeprefix("claimed by worker celery@").split()[0]


def _runs(engine: sa.Engine, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["run_id"]: dict(r) for r in conn.execute(sa.select(H).where(H.c.run_id.in_(run_ids))).mappings()}


def _all_ended(engine: sa.Engine, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    def ended() -> dict[str, dict[str, Any]] | None:
        found = _runs(engine, run_ids)
        return found if all(r["status"] in schema.TERMINAL_STATUSES for r in found.values()) else None

    try:
        return wait_for(ended, timeout=timeout, every=0.1)
    except AssertionError:
        statuses = {k: f"{v['status']} step {v['current_step']} pid {v['pid']}"
                    for k, v in _runs(engine, run_ids).items()}
        raise AssertionError(f"runs not ended in {timeout}s: {statuses}") from None


def _output(engine: sa.Engine, run_id: str) -> tuple[str, int]:
    """A hash of the run's rows in pfill_powerfill_guide and pfill_trade_base, and their number."""
    digest, count = hashlib.sha256(), 0
    with engine.connect() as conn:
        for table in (schema.pfill_powerfill_guide, schema.pfill_trade_base):
            rows = conn.execute(sa.select(table).where(table.c.run_id == run_id)
                                .order_by(*table.primary_key.columns)).all()
            digest.update(f"{table.name}:{rows!r}".encode())
            count += len(rows)
    return digest.hexdigest(), count


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_replicas_two_workers(db_url: str, broker: tuple[str, redis.Redis], tmp_path: Path) -> None:
    broker_url, rds = broker
    engine = open_database(db_url)
    init_schema(engine)
    for i, tenant in enumerate([*TENANTS, SLOW]):
        demo_data.replace_tenant_inputs(engine, tenant, demo_data.generate(300, 10, seed=i, as_of=AS_OF))
    tokens, variables = _tokens_config(tmp_path / "pfill.yaml")
    replica_env = {"PFILL_CONFIG": str(tmp_path / "pfill.yaml"), "PFILL_RESEND_SECONDS": RESEND_SECONDS, **variables}
    celery = ("--executor", "celery", "--broker")
    dead_broker = f"redis://127.0.0.1:{free_port()}/1"  # nothing listens there
    a = Server(db_url, tmp_path / "a", args=(*celery, broker_url), env=replica_env)
    b = Server(db_url, tmp_path / "b", args=(*celery, broker_url), env=replica_env)
    c = Server(db_url, tmp_path / "c", args=(*celery, dead_broker), env=replica_env)
    workers = [Worker(db_url, tmp_path / "workers", broker_url, name, env={"PFILL_TEST_STEP_DELAY": "cash_grid=0.3"})
               for name in ("w1", "w2")]
    # after the lost messages: runs wait 3 s in allocation, long enough to cancel one there
    slow_workers = [Worker(db_url, tmp_path / "workers", broker_url, name,
                           env={"PFILL_TEST_STEP_DELAY": "allocation=3"}) for name in ("w3", "w4")]
    watch = Br8Watch(db_url)
    clients: list[httpx.Client] = []
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda proc: proc.start(), [a, b, c, *workers]))
        timings["start"] = time.monotonic() - started
        clients += [httpx.Client(base_url=srv.url, timeout=30) for srv in (a, b, c)]
        api_a, api_b, api_c = clients

        def auth(tenant: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[tenant]}"}

        # -- 20 runs over 10 tenants, to the replicas in turn ------------------------------------
        accepted: dict[str, list[str]] = {t: [] for t in [*TENANTS, SLOW]}
        accepted_by: dict[str, httpx.Client] = {}
        conflicts: list[tuple[str, Any, dict[str, Any]]] = []
        turn = itertools.cycle([api_a, api_b])

        def submit(tenant: str, api: httpx.Client | None = None) -> httpx.Response:
            api = api or next(turn)
            sent = utcnow()
            response = api.post("/run", json=BODY, headers=auth(tenant))
            if response.status_code == 202:
                run_id = response.json()["run_id"]
                accepted[tenant].append(run_id)
                accepted_by[run_id] = api
            elif response.status_code == 409:
                conflicts.append((tenant, sent, response.json()))
            else:
                raise AssertionError(f"POST /run for {tenant}: {response.status_code} {response.text}")
            return response

        phase = time.monotonic()
        watch.start()
        for tenant in [*TENANTS, SLOW]:  # SLOW's run: the Complete run the cancel must leave alone
            assert submit(tenant).status_code == 202
        waiting = TENANTS[::-1]  # the last tenant's first run is still queued: a 409 at once
        deadline = time.monotonic() + 60
        while waiting:  # a 409 (the tenant's run is still active): wait and retry
            if time.monotonic() > deadline:
                firsts = _runs(engine, [accepted[t][0] for t in waiting])
                raise AssertionError("second runs not accepted; the first runs: " + "; ".join(
                    f"{r['tenant_id']} {r['status']} step {r['current_step']} pid {r['pid']}" for r in firsts.values()))
            waiting = [t for t in waiting if submit(t).status_code != 202]
            if waiting:
                time.sleep(0.1)
        first_20 = [run_id for t in TENANTS for run_id in accepted[t]]
        assert len(first_20) == 20
        done = _all_ended(engine, [*first_20, *accepted[SLOW]], timeout=60)
        watch.finish()
        timings["20 runs"] = time.monotonic() - phase

        assert {r["status"] for r in done.values()} == {"Complete"}, {k: v["status"] for k, v in done.items()}
        took_part = {run_id: _executed_once(engine, run_id) for run_id in first_20}
        assert set(took_part.values()) == {"w1", "w2"}, took_part
        # BR-8 throughout: never two active runs for a tenant, and every 409 named the tenant's active run
        assert watch.samples >= 20 and watch.doubles == [], watch.doubles[:3]
        assert conflicts, "no submission met an active run"
        for tenant, sent, body in conflicts:
            first = done[accepted[tenant][0]]
            assert body["active_run"] == first["run_id"] and body["active_status"] in schema.ACTIVE_STATUSES, body
            assert first["completed_at"] > sent, (tenant, sent, first["completed_at"])  # it was active then
        for tenant in TENANTS:
            first, second = (done[run_id] for run_id in accepted[tenant])
            assert second["created_at"] >= first["completed_at"], tenant
        assert {id(api) for api in accepted_by.values()} == {id(api_a), id(api_b)}

        # -- lost broker messages lose no run ----------------------------------------------------
        phase = time.monotonic()
        # no run is queued, so no more messages come: the workers finish the second messages first
        # (a pool process that finishes a task as the shutdown begins holds it for 30 s, see stop_all)
        wait_for(lambda: rds.llen(QUEUE) == 0, timeout=20)
        time.sleep(0.2)
        stop_all(*workers, worker_timeout=10)
        timings["stop workers"] = time.monotonic() - phase
        lost = submit(TENANTS[0], api_a)
        assert lost.status_code == 202, lost.text
        lost_id = lost.json()["run_id"]
        assert rds.llen(QUEUE) >= 1  # its message waits in Redis...
        rds.flushdb()  # ...and is gone
        rds.set(CLAIM_KEY, os.getpid(), ex=900)
        asked = time.monotonic()
        unsent = submit(TENANTS[1], api_c)  # this replica's broker does not answer
        timings["POST /run, broker down"] = time.monotonic() - asked
        assert unsent.status_code == 202, unsent.text
        assert timings["POST /run, broker down"] < 2.0
        unsent_id = unsent.json()["run_id"]
        assert f"run {unsent_id}: could not reach the broker" in (c.home / f"serve-{c.port}.log").read_text()
        for tenant, run_id in ((TENANTS[0], lost_id), (TENANTS[1], unsent_id)):
            run = api_b.get(f"/runs/{run_id}", headers=auth(tenant)).json()
            assert run["status"] == "Pending" and run["pid"] is None, run
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda proc: proc.start(), slow_workers))
        recovered = _all_ended(engine, [lost_id, unsent_id], timeout=30)
        timings["lost messages"] = time.monotonic() - phase
        for run_id in (lost_id, unsent_id):
            assert recovered[run_id]["status"] == "Complete", recovered[run_id]
            assert _executed_once(engine, run_id) in {"w3", "w4"}

        # -- a cancel sent to the other replica ------------------------------------------------------
        phase = time.monotonic()
        kept = done[accepted[SLOW][0]]
        before = _output(engine, kept["run_id"])
        assert before[1] > 0
        slow = submit(SLOW, api_a)
        assert slow.status_code == 202, slow.text
        slow_id = slow.json()["run_id"]
        other = api_b if accepted_by[slow_id] is api_a else api_a

        def in_allocation() -> bool:
            run = other.get(f"/runs/{slow_id}", headers=auth(SLOW)).json()
            assert run["status"] in schema.ACTIVE_STATUSES, run
            return run["current_step"] == "allocation"

        wait_for(in_allocation, timeout=20, every=0.05)
        cancel = other.post(f"/runs/{slow_id}/cancel", headers=auth(SLOW))
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested_at"] is not None
        ended = _all_ended(engine, [slow_id], timeout=15)[slow_id]
        timings["cancel"] = time.monotonic() - phase
        assert ended["status"] == "Cancelled" and ended["failure_step"] == "allocation", ended
        assert ended["failure_message"] == "cancelled by request", ended
        assert _executed_once(engine, slow_id, ending="Cancelled") in {"w3", "w4"}
        assert _output(engine, slow_id)[1] == 0  # BR-9
        assert _output(engine, kept["run_id"]) == before
        latest = api_b.get("/runs", params={"status": "Complete", "limit": 1}, headers=auth(SLOW)).json()
        assert latest["runs"][0]["run_id"] == kept["run_id"]
    finally:
        phase = time.monotonic()
        stop_all(*workers, *slow_workers, a, b, c, worker_timeout=10)  # first: nothing may keep them running
        timings["stop all"] = time.monotonic() - phase
        watch.finish()
        for client in clients:
            client.close()
        engine.dispose()
        print("\nscale-out timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
              + f"; total {time.monotonic() - started:.1f}")
        print(f"BR-8 watch: {watch.samples} samples, at most {watch.most_executing} runs executing at once, "
              f"{len(watch.executing_pids)} worker pids")
        for worker in (*workers, *slow_workers):
            with contextlib.suppress(OSError):
                text = worker.log_path.read_text(errors="replace")
                print(f"{worker.name}: {text.count('] received')} messages received")
