"""Run-service benchmark: a run submitted over HTTP against `pfill run`, and GET /runs/{run_id} under load.
Figures, not pass/fail: medians of interleaved rounds in one session, printed next to the targets.

    .venv/bin/python tests/benchmarks/bench_api.py [--db postgresql|sqlite|both] [--rounds 5] [--loans 10000]
                                                   [--concurrency 32] [--requests 3000] [--load-rounds 3]
                                                   [--only submit|load|reports]

1. Submit over HTTP vs the CLI, per database (a fresh one, demo inputs of --loans loans and 100 trades):
   `pfill run` as a subprocess (wall time, interpreter start included) against POST /run to a
   `pfill serve` (embedded executor, a subprocess on a free port) and GET /runs/{id} every 0.1 s until
   the run is terminal; rounds interleaved CLI, HTTP, CLI, HTTP, ...; the ratio HTTP/CLI of the medians
   and the median of the per-round ratios (target <= 1.10). Also the run's own seconds (started_at to
   completed_at in its row) on both paths, so that what is overhead can be told from the run.
2. GET /runs/{run_id} (a finished 10k-loan run's document) at --concurrency clients (threads, one
   keep-alive httpx.Client each) against the embedded server on PostgreSQL, with and without
   --no-access-log (two servers, rounds interleaved), after a warm-up: p50 and p99 latency (ms, as the
   clients see it) and requests/s; targets p99 <= 50 ms and >= 500 req/s. The same load against
   GET /health (no token, no database, no response model) is the floor that the server and this client
   reach together. The clients run in this process, on the same cores as the server: the CPU each side
   spent per request is printed (server from /proc/<pid>/stat, client from this process's rusage), so the
   figures can be read as "server CPU per request" rather than only as wall time.

3. With --profile SECONDS (needs py-spy, `pip install py-spy`, not a dependency of the kit): where the
   server's CPU goes under the same load on GET /runs/{run_id} (--no-access-log), sampled by py-spy
   while a thread holds the GIL, each sample put under the innermost library it is in.

4. The reports over HTTP (#12), on PostgreSQL (a fresh database, demo inputs of --loans loans, default
   100,000, and loans/100 trades as bench_engine's large size; one Complete run executed in-process,
   ANALYZE; then a `pfill serve` subprocess, defaults, over it):
   a. each report's first page (limit=1000: guide, recap, switching, candidates, existing-disposition,
      pooling-guide, cash-slotting, log, and /runs/overview), --report-requests (50) GETs over one
      keep-alive client, against the same SQL run directly with SQLAlchemy in this process and its rows
      fetched: the page SQL from reports.report_sql with the arguments and bind parameters the endpoint
      gives it (the log's select is built inline in report_api.run_log, so it is repeated here). HTTP and
      direct alternate (which goes first alternates too) and the reports take turns, so noise spreads
      over all of them; after a warm-up. p50 and p99 (of 50 requests: the 26th and the slowest) in ms,
      the ratios HTTP/direct of the p50s and of the p99s, target <= 1.5. Then, in this process, where a
      page's time goes besides the query: its SQL built (reports.report_sql: render, sqlglot parse and
      wrap; cached per arguments), the freshness check (reports.resolve: two reads of the run history),
      rows to declared JSON types (reports.as_records), the JSON written (report_api._json); what
      remains of HTTP - direct is HTTP, routing, the token, the threadpool and this client reading
      the body.
   b. CSV: `Accept: text/csv` streamed whole by each report of --csv (REPORT:ROUNDS, `largest` = the
      report with the most rows; default guide:3,largest:1: the allocation guide, about 80k rows at
      100k loans, and pool candidates, every loan x trade option, about 16 million rows, which takes
      tens of minutes), rounds interleaved: seconds, rows (counted in the stream, checked against
      COUNT(*)), MiB, and the server's peak RSS (VmHWM of /proc/<pid>/status, reset through
      /proc/<pid>/clear_refs before each export) and its CPU seconds; medians of the rounds.

    .venv/bin/python tests/benchmarks/bench_api.py --only reports [--loans 100000] [--report-requests 50]
                                                   [--csv guide:3,largest:1]

PostgreSQL uses a throw-away database on PFILL_TEST_PG_URL (default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfill.database import open_database  # noqa: E402
from pfill.engine import demo_data  # noqa: E402
from pfill.engine import schema as tables  # noqa: E402
from pfill.engine.db import init_schema  # noqa: E402
from pfill.engine.pipeline import RunOptions, execute_run  # noqa: E402
from pfill.engine.service import report_api, reports  # noqa: E402
from pfill.queries.catalog import Query  # noqa: E402
from tests.benchmarks.bench_engine import _database  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.engine.service.test_reports import _memory_mib  # noqa: E402

PFILL = str(Path(sys.executable).with_name("pfill"))
PREFIX = "/api/powerfill"
TENANT = "bench"
AS_OF = date(2025, 3, 3)
TERMINAL = {"Complete", "Failed", "Cancelled"}
TARGET_RATIO, TARGET_P99_MS, TARGET_RPS = 1.10, 50.0, 500.0
TARGET_REPORT_RATIO, TARGET_CSV_RSS_MIB = 1.5, 300.0
PAGE = 1_000
TICKS = os.sysconf("SC_CLK_TCK")


def _env(db_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PFILL_TEST_")}
    env.update(PFILL_DB_URL=db_url, PFILL_HOME=str(home), PFILL_TENANT=TENANT)
    return env


@dataclass
class Serve:
    """`pfill serve` (embedded executor) in a subprocess on a free port."""

    db_url: str
    home: Path
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self) -> Serve:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / f"serve-{self.port}.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen([PFILL, "serve", "--port", str(self.port), *self.args], stdout=log,
                                     stderr=subprocess.STDOUT, env=_env(self.db_url, self.home),
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"pfill serve exited {self.proc.returncode}; see {self.home}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"pfill serve did not answer within 60 s; see {self.home}")

    def token(self) -> str:
        return (self.home / "service" / f"token-{TENANT}").read_text().strip()

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token()}"},
                            timeout=120, **kw)  # type: ignore[arg-type]

    def cpu_seconds(self) -> float:
        """User + system CPU of the server so far: its process and, with --workers, its worker processes."""
        assert self.proc is not None
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _own_seconds(run: dict) -> float:
    """started_at to completed_at of a run document (the run itself, without queueing or start-up)."""
    started, completed = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("started_at", "completed_at"))
    return (completed - started).total_seconds()


def cli_run(db_url: str, home: Path, api: httpx.Client) -> tuple[float, float]:
    """`pfill run` in a subprocess: wall seconds, and the run's own seconds (read back over the API)."""
    started = time.perf_counter()
    done = subprocess.run([PFILL, "run", "--tenant", TENANT, "--as-of", AS_OF.isoformat()], env=_env(db_url, home),
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pfill run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    run = api.get("/runs", params={"limit": 1}).json()["runs"][0]
    if run["status"] != "Complete":
        raise SystemExit(f"the CLI's run ended {run['status']}: {run.get('failure_message')}")
    return wall, _own_seconds(run)


def http_run(api: httpx.Client) -> tuple[float, float, str]:
    """POST /run, then GET /runs/{id} every 0.1 s until terminal: wall seconds, the run's own seconds, its id."""
    started = time.perf_counter()
    accepted = api.post("/run", json={"as_of": AS_OF.isoformat()})
    if accepted.status_code != 202:
        raise SystemExit(f"POST /run answered {accepted.status_code}: {accepted.text}")
    run_id = accepted.json()["run_id"]
    while True:
        run = api.get(f"/runs/{run_id}").json()
        if run["status"] in TERMINAL:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if run["status"] != "Complete":
        raise SystemExit(f"the HTTP run ended {run['status']}: {run.get('failure_message')}")
    return wall, _own_seconds(run), run_id


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _demo_inputs(db_url: str, loans: int, trades: int) -> sa.Engine:
    """The schema and demo inputs (seed 42) for TENANT on a fresh database; its engine."""
    engine = open_database(db_url)
    init_schema(engine)
    demo_data.replace_tenant_inputs(engine, TENANT, demo_data.generate(loans, trades, 42, AS_OF))
    return engine


def submit_vs_cli(kind: str, db_url: str, rounds: int, loans: int, folder: Path) -> str:
    """Part 1 on one (fresh) database; returns the id of the last HTTP run."""
    _demo_inputs(db_url, loans, 100).dispose()
    home = folder / f"home-{kind}"
    server = Serve(db_url, home).start()
    cli, http, cli_own, http_own = [], [], [], []
    run_id = ""
    try:
        with server.client() as api:
            for r in range(rounds):
                wall, own = cli_run(db_url, home, api)
                cli.append(wall)
                cli_own.append(own)
                wall, own, run_id = http_run(api)
                http.append(wall)
                http_own.append(own)
                print(f"  round {r + 1}: {kind:<10} CLI {cli[-1]:6.2f}s (run {cli_own[-1]:5.2f}s)   "
                      f"HTTP {http[-1]:6.2f}s (run {http_own[-1]:5.2f}s)   HTTP/CLI {http[-1] / cli[-1]:.2f}",
                      flush=True)
    finally:
        server.stop()
    ratio = _median(http) / _median(cli)
    per_round = _median([h / c for h, c in zip(http, cli, strict=True)])
    print(f"{kind:<10} {loans} loans: CLI {_median(cli):.2f}s, HTTP {_median(http):.2f}s (medians of {rounds}); "
          f"HTTP/CLI = {ratio:.2f} (per-round median {per_round:.2f}; target <= {TARGET_RATIO:.2f}: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"{'':<10} the run itself (started_at..completed_at): CLI {_median(cli_own):.2f}s, "
          f"HTTP {_median(http_own):.2f}s; outside it: CLI {_median(cli) - _median(cli_own):.2f}s "
          f"(interpreter, imports, checks), HTTP {_median(http) - _median(http_own):.2f}s "
          f"(queue, claim, polling every 0.1 s)", flush=True)
    return run_id


@dataclass
class Load:
    latencies: list[float]
    seconds: float
    server_cpu: float
    client_cpu: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def server_ms(self) -> float:
        return self.server_cpu / len(self.latencies) * 1000

    @property
    def client_ms(self) -> float:
        return self.client_cpu / len(self.latencies) * 1000

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load(server: Serve, path: str, concurrency: int, requests: int, warmup: int) -> Load:
    """`requests` GETs of `path` from `concurrency` threads (one keep-alive client each), after `warmup`."""
    clients = [server.client(limits=httpx.Limits(max_connections=1)) for _ in range(concurrency)]
    try:
        def drive(count: int, out: list[float] | None, errors: list[int], barrier: threading.Barrier | None,
                  client: httpx.Client) -> None:
            if barrier is not None:
                barrier.wait()
            for _ in range(count):
                started = time.perf_counter()
                answer = client.get(path)
                if out is not None:
                    out.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    errors.append(answer.status_code)

        def wave(total: int, out: list[float] | None, errors: list[int]) -> None:
            barrier = threading.Barrier(concurrency + 1)
            share = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
            threads = [threading.Thread(target=drive, args=(n, out, errors, barrier, c))
                       for n, c in zip(share, clients, strict=True)]
            for t in threads:
                t.start()
            barrier.wait()
            for t in threads:
                t.join()

        wave(warmup, None, [])
        latencies: list[float] = []
        errors: list[int] = []
        cpu0, own0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        wave(requests, latencies, errors)
        seconds = time.perf_counter() - started
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
        return Load(latencies, seconds, server.cpu_seconds() - cpu0, client_cpu, len(errors))
    finally:
        for c in clients:
            c.close()


# py-spy frames (file paths) -> what they are; a sample counts for the innermost frame that matches
_PARTS = [("sqlalchemy", "SQLAlchemy"), ("psycopg2", "psycopg2"), ("pydantic", "pydantic"),
          ("h11", "HTTP parsing (h11)"), ("httptools", "HTTP parsing (httptools)"), ("logging/", "logging"),
          ("uvicorn/", "uvicorn"), ("anyio/", "threadpool (anyio: the endpoint's trip to a worker thread)"),
          ("starlette/", "Starlette (middleware, routing, responses)"),
          ("fastapi/", "FastAPI (routing, dependencies, validation)"), ("engine/", "pfill code"),
          ("pfill/", "pfill code")]


def profile(server: Serve, path: str, concurrency: int, seconds: float, folder: Path) -> None:
    """py-spy samples of the server (threads holding the GIL) while `path` is under load."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("   py-spy is not installed (pip install py-spy): no profile")
        return
    out = folder / "profile.txt"
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            load(server, path, concurrency, 500, warmup=0)

    busy = threading.Thread(target=keep_busy)
    busy.start()
    try:
        assert server.proc is not None
        done = subprocess.run([spy, "record", "--pid", str(server.proc.pid), "--duration", str(int(seconds)),
                               "--rate", "250", "--gil", "--nonblocking", "--format", "raw", "--output", str(out)],
                              capture_output=True, text=True)
    finally:
        stop.set()
        busy.join()
    if done.returncode != 0 or not out.exists():
        print(f"   py-spy failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return
    parts: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")[::-1]
        part = next((name for f in frames for key, name in _PARTS if key in f), "other (stdlib, event loop)")
        parts[part] += int(count)
    total = sum(parts.values()) or 1
    print(f"   {total} samples while the server held the GIL ({seconds:.0f} s):")
    for part, count in parts.most_common():
        print(f"   {100 * count / total:5.1f}%  {part}")


def get_run_under_load(db_url: str, run_id: str, folder: Path, concurrency: int, requests: int,
                       rounds: int, profile_seconds: float = 0.0) -> None:
    servers = {"access log": Serve(db_url, folder / "home-load"),
               "--no-access-log": Serve(db_url, folder / "home-load", ("--no-access-log",)),
               "--workers 2": Serve(db_url, folder / "home-load", ("--no-access-log", "--workers", "2"))}
    try:
        for s in servers.values():
            s.start()
        paths = {"GET /health": "/health", "GET /runs/{run_id}": f"/runs/{run_id}"}
        results: dict[tuple[str, str], list[Load]] = {}
        for r in range(rounds):
            for name, server in servers.items():
                for what, path in paths.items():
                    res = load(server, path, concurrency, requests, warmup=max(200, requests // 10))
                    results.setdefault((name, what), []).append(res)
                    print(f"  round {r + 1}: {name:<16} {what:<19} p50 {res.pct(0.5):6.1f} ms  "
                          f"p99 {res.pct(0.99):6.1f} ms  {res.rps:6.0f} req/s  server CPU {res.server_ms:.2f} ms/req  "
                          f"client CPU {res.client_ms:.2f} ms/req"
                          + (f"  ERRORS {res.errors}" if res.errors else ""), flush=True)
        print()
        print(f"{concurrency} concurrent clients, {requests} requests per measurement, medians of {rounds} rounds "
              f"(load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores):")
        for (name, what), runs in results.items():
            p50 = _median([x.pct(0.5) for x in runs])
            p99 = _median([x.pct(0.99) for x in runs])
            rps = _median([x.rps for x in runs])
            server_ms = _median([x.server_ms for x in runs])
            client_ms = _median([x.client_ms for x in runs])
            verdict = ""
            if what != "GET /health":
                verdict = (f"  targets p99 <= {TARGET_P99_MS:.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'NOT met'}, "
                           f">= {TARGET_RPS:.0f} req/s: {'met' if rps >= TARGET_RPS else 'NOT met'}")
            print(f"  {name:<16} {what:<19} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {rps:6.0f} req/s  "
                  f"(server CPU {server_ms:.2f} ms/req, client CPU {client_ms:.2f} ms/req){verdict}")
        load_now, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load_now > cores:
            print(f"  BUSY MACHINE: load average {load_now:.1f} on {cores} cores, so other processes took CPU from the")
            print("  server and the clients: latency and req/s are pessimistic; judge the targets on a quiet machine")
            print("  (server CPU per request is the figure least affected).")
        print("  The clients (httpx, threads, in this process) share the 2 cores with the server: their CPU per")
        print("  request is spent on the same cores, so req/s is that of server + client together. The server")
        print("  alone, on one core (one uvicorn process, one GIL), would reach about 1000 / (server CPU ms/req)")
        print("  req/s; `--workers 2` runs two server processes, one per core.")
        if profile_seconds > 0:
            print(f"\n3. where the server's CPU goes: GET /runs/{{run_id}}, --no-access-log, {concurrency} clients")
            profile(servers["--no-access-log"], paths["GET /runs/{run_id}"], concurrency, profile_seconds, folder)
    finally:
        for s in servers.values():
            s.stop()


# -- 4. the reports over HTTP ------------------------------------------------------------------------------

LOG = tables.pfill_powerfill_log


@dataclass
class Endpoint:
    """A report's first page: its path under the API, and the SQL with the bind parameters its endpoint runs."""

    name: str
    path: str
    statement: sa.Executable
    binds: dict[str, object]
    query: Query | None = None  # its query in queries/ (None: the log, whose select the endpoint builds)
    run_id: str | None = None  # the run bound in its SQL (None: the overview, the tenant's runs)
    rows: int = 0  # the whole report's rows (COUNT(*))
    full_sql: str = ""  # the whole report's SQL (no page), for the count


def _endpoints(engine: sa.Engine, run_id: str) -> list[Endpoint]:
    """Every report's first page as its endpoint runs it: reports.report_sql with the endpoint's arguments
    (fetch_page: the page is (limit + 1, offset), one more row tells whether a next page follows)."""
    dialect, queries = engine.dialect.name, reports.queries()
    found = []
    for report in reports.REPORTS:
        query = queries[report.query]
        binds = {"tenant": TENANT, "run_id": run_id}
        sql = reports.report_sql(query, dialect, tenant=TENANT, run_id=run_id, filters={}, page=(PAGE + 1, 0))
        full = reports.report_sql(query, dialect, tenant=TENANT, run_id=run_id, filters={}, page=None)
        found.append(Endpoint(report.path, f"/runs/{run_id}/{report.path}", sa.text(sql), binds, query, run_id,
                              full_sql=full))
    overview = queries["run_overview"]
    sql = reports.report_sql(overview, dialect, tenant=TENANT, run_id=None, filters={}, page=(PAGE + 1, 0))
    full = reports.report_sql(overview, dialect, tenant=TENANT, run_id=None, filters={}, page=None)
    found.append(Endpoint("overview", "/runs/overview", sa.text(sql), {"tenant": TENANT}, overview, full_sql=full))
    # report_api.run_log builds its select inline (no function in reports.py to call): the same select here
    log = (sa.select(LOG.c.log_id, LOG.c.logged_at, LOG.c.step, LOG.c.level, LOG.c.event, LOG.c.message,
                     LOG.c.details_json).where(LOG.c.run_id == run_id, LOG.c.tenant_id == TENANT)
           .order_by(LOG.c.log_id).limit(PAGE + 1).offset(0))
    found.append(Endpoint("log", f"/runs/{run_id}/log", log, {}))
    with engine.connect() as conn:
        for e in found:
            if e.query is None:
                count = sa.select(sa.func.count()).select_from(LOG).where(LOG.c.run_id == run_id)
                e.rows = int(conn.execute(count).scalar_one())
            else:
                e.rows = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM ({e.full_sql}) AS counted"),
                                          e.binds).scalar_one())
    return found


def _direct(engine: sa.Engine, endpoint: Endpoint) -> tuple[float, list[sa.Row]]:
    """The endpoint's SQL run directly, its rows fetched (a pooled connection, as the server's)."""
    started = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.execute(endpoint.statement, endpoint.binds).all()
    return time.perf_counter() - started, rows


def _over_http(api: httpx.Client, endpoint: Endpoint) -> tuple[float, httpx.Response]:
    """The first page over HTTP, the body read whole (not parsed)."""
    started = time.perf_counter()
    answer = api.get(endpoint.path, params={"limit": PAGE})
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"GET {endpoint.path} answered {answer.status_code}: {answer.text[:500]}")
    return elapsed, answer


def _pct(values: list[float], q: float) -> float:
    """As Load.pct: of 50 values, p50 is the 26th and p99 the 50th (the slowest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _same_rows(endpoint: Endpoint, page: dict, rows: list[sa.Row]) -> bool:
    """The page's rows are the direct rows (as the endpoint converts them): the same query. Floats to 1e-9:
    PostgreSQL sums floats in no fixed order (the recap's weighted averages differ in the last digit)."""
    if endpoint.query is None:
        expected = [{"log_id": r[0], "logged_at": reports.as_utc_text(r[1]), "step": r[2], "level": r[3],
                     "event": r[4], "message": r[5], "details": r[6]} for r in rows[:PAGE]]
    else:
        expected = reports.as_records(endpoint.query, rows[:PAGE])

    def same(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, (int, float)):
            return math.isclose(a, b, rel_tol=1e-9)
        return a == b

    got = page["rows"]
    expected = json.loads(json.dumps(expected, default=reports.json_default))
    return len(got) == len(expected) and all(e.keys() == g.keys() and all(same(e[k], g[k]) for k in e)
                                             for e, g in zip(expected, got, strict=True))


def _breakdown(engine: sa.Engine, endpoint: Endpoint, run_id: str, repeat: int) -> dict[str, float]:
    """In this process, median ms of what a page costs besides its query: the page's SQL built
    (reports.report_sql: the template rendered, then parsed and wrapped by sqlglot), the freshness check
    (reports.resolve), rows to declared JSON types, and json.dumps of the page."""
    parts: dict[str, list[float]] = collections.defaultdict(list)
    dialect = engine.dialect.name
    for _ in range(repeat):
        started = time.perf_counter()
        if endpoint.query is not None:
            reports.report_sql(endpoint.query, dialect, tenant=TENANT, run_id=endpoint.run_id, filters={},
                               page=(PAGE + 1, 0))
        parts["sql"].append(time.perf_counter() - started)
        started = time.perf_counter()
        if endpoint.name != "overview":
            view = reports.resolve(engine, TENANT, run_id, kept=endpoint.query is None)
            header = view.header()
        else:
            header = {}
        parts["resolve"].append(time.perf_counter() - started)
        _, rows = _direct(engine, endpoint)
        started = time.perf_counter()
        if endpoint.query is None:
            records = [{"log_id": r[0], "logged_at": reports.as_utc_text(r[1]), "step": r[2], "level": r[3],
                        "event": r[4], "message": r[5], "details": r[6]} for r in rows[:PAGE]]
        else:
            records = reports.as_records(endpoint.query, rows[:PAGE])
        parts["records"].append(time.perf_counter() - started)
        started = time.perf_counter()
        report_api._json({**header, "rows": records, "next": None})  # the endpoint's own writer (orjson)
        parts["json"].append(time.perf_counter() - started)
    return {k: _median(v) * 1000 for k, v in parts.items()}


def report_pages(engine: sa.Engine, server: Serve, endpoints: list[Endpoint], run_id: str, requests: int) -> None:
    """Part 4a: each report's first page over HTTP vs its SQL run directly, interleaved."""
    http: dict[str, list[float]] = {e.name: [] for e in endpoints}
    direct: dict[str, list[float]] = {e.name: [] for e in endpoints}
    sizes: dict[str, tuple[int, int]] = {}
    server_cpu0 = server.cpu_seconds()
    with server.client() as api:
        for e in endpoints:  # warm-up (connections, plans, caches), and the same rows both ways
            for _ in range(2):
                _direct(engine, e)
                _, answer = _over_http(api, e)
            _, rows = _direct(engine, e)
            page = answer.json()
            if not _same_rows(e, page, rows):
                raise SystemExit(f"{e.name}: the page over HTTP is not the direct query's rows")
            sizes[e.name] = (len(page["rows"]), len(answer.content))
        started = time.perf_counter()
        for i in range(requests):
            for e in endpoints:
                order = (_over_http, _direct) if i % 2 == 0 else (_direct, _over_http)
                for how in order:
                    if how is _over_http:
                        http[e.name].append(_over_http(api, e)[0])
                    else:
                        direct[e.name].append(_direct(engine, e)[0])
            if (i + 1) % 10 == 0:
                print(f"  {i + 1}/{requests} requests of each report ({time.perf_counter() - started:.0f} s)",
                      flush=True)
    server_cpu = server.cpu_seconds() - server_cpu0
    print(f"\n  first page (limit={PAGE}), {requests} requests each, HTTP and direct alternating, reports in turn "
          f"(load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores; "
          f"server CPU {server_cpu:.1f} s in all):")
    print(f"  {'report':<21} {'rows':>9} {'page':>5} {'KiB':>6}  {'http p50':>8} {'p99':>7}  {'direct p50':>10} "
          f"{'p99':>7}  {'p50 ratio':>9} {'p99 ratio':>9}  target <= {TARGET_REPORT_RATIO}")
    missed = []
    for e in endpoints:
        h50, h99 = _pct(http[e.name], 0.5), _pct(http[e.name], 0.99)
        d50, d99 = _pct(direct[e.name], 0.5), _pct(direct[e.name], 0.99)
        r50, r99 = h50 / d50, h99 / d99
        met = r50 <= TARGET_REPORT_RATIO and r99 <= TARGET_REPORT_RATIO
        if not met:
            missed.append(e)
        rows, size = sizes[e.name]
        print(f"  {e.name:<21} {e.rows:>9,} {rows:>5} {size / 1024:>6.0f}  {h50:>6.1f}ms {h99:>5.1f}ms  "
              f"{d50:>8.1f}ms {d99:>5.1f}ms  {r50:>9.2f} {r99:>9.2f}  {'met' if met else 'NOT met'}")
    print("\n  besides the query, in this process (median ms of 10): the page's SQL built (report_sql), the freshness "
          "check (resolve: two reads of the run history), rows to JSON types, JSON written; http - direct (p50s)")
    for e in endpoints:
        parts = _breakdown(engine, e, run_id, 10)
        rest = _pct(http[e.name], 0.5) - _pct(direct[e.name], 0.5)
        print(f"  {e.name:<21} SQL built {parts['sql']:5.1f}  resolve {parts['resolve']:5.1f}  "
              f"to JSON types {parts['records']:5.1f}  "
              f"JSON written {parts['json']:5.1f}  = {sum(parts.values()):5.1f} ms;  http - direct {rest:6.1f} ms")
    if missed:
        print(f"  NOT met: {', '.join(e.name for e in missed)} (see the figures above: where the HTTP time goes)")


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (clear_refs 5); False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def export_csv(server: Serve, endpoint: Endpoint) -> dict[str, float]:
    """The whole report as CSV, streamed: seconds, first chunk, rows, MiB, server peak RSS and CPU."""
    assert server.proc is not None
    pid = server.proc.pid
    reset = _reset_peak(pid)
    before, cpu0 = _memory_mib(pid), server.cpu_seconds()
    lines = size = 0
    first = 0.0
    with server.client() as api:
        started = time.perf_counter()
        with api.stream("GET", endpoint.path, headers={"Accept": "text/csv"}) as got:
            if got.status_code != 200:
                raise SystemExit(f"GET {endpoint.path} (text/csv) answered {got.status_code}")
            for chunk in got.iter_bytes():
                first = first or time.perf_counter() - started
                lines += chunk.count(b"\n")
                size += len(chunk)
        seconds = time.perf_counter() - started
    after = _memory_mib(pid)
    return {"seconds": seconds, "first": first, "rows": lines - 1, "mib": size / 2**20, "rss_before": before["VmRSS"],
            "peak": after["VmHWM"], "cpu": server.cpu_seconds() - cpu0, "reset": float(reset)}


def report_csv(server: Serve, endpoints: list[Endpoint], plan: list[tuple[str, int]]) -> None:
    """Part 4b: the whole report as CSV, each of `plan` (report, rounds), rounds interleaved."""
    by_name = {e.name: e for e in endpoints}
    largest = max((e for e in endpoints if e.query is not None), key=lambda e: e.rows)
    chosen: dict[str, int] = {}
    for name, rounds in plan:
        name = largest.name if name == "largest" else name
        if name not in by_name:
            raise SystemExit(f"--csv: no report {name} (reports: {', '.join(by_name)}, largest)")
        chosen[name] = max(chosen.get(name, 0), rounds)
    print(f"  the largest report: {largest.name}, {largest.rows:,} rows")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    for r in range(max(chosen.values())):
        for name, rounds in chosen.items():
            if r >= rounds:
                continue
            res = export_csv(server, by_name[name])
            results[name].append(res)
            check = "" if res["rows"] == by_name[name].rows else f"  ROWS DIFFER from COUNT(*) {by_name[name].rows:,}"
            print(f"  round {r + 1}: {name:<21} {res['rows']:>10,} rows {res['mib']:8.1f} MiB in "
                  f"{res['seconds']:7.1f} s ({res['rows'] / res['seconds']:>8,.0f} rows/s, first chunk after "
                  f"{res['first']:.2f} s)  server RSS {res['rss_before']:.0f} MiB before, peak {res['peak']:.0f} MiB, "
                  f"CPU {res['cpu']:.1f} s{check}", flush=True)
    print(f"\n  CSV, medians (load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    for name, runs in results.items():
        seconds, peak = _median([x["seconds"] for x in runs]), _median([x["peak"] for x in runs])
        rows = int(runs[-1]["rows"])
        how = "peak reset before each export" if all(x["reset"] for x in runs) else "peak since the server started"
        print(f"  {name:<21} {rows:>10,} rows  {seconds:7.1f} s  ({rows / seconds:,.0f} rows/s; median of "
              f"{len(runs)})  server peak RSS {peak:.0f} MiB ({how}; target < {TARGET_CSV_RSS_MIB:.0f} MiB: "
              f"{'met' if peak < TARGET_CSV_RSS_MIB else 'NOT met'})  server CPU "
              f"{_median([x['cpu'] for x in runs]):.1f} s")


def bench_reports(db_url: str, loans: int, requests: int, plan: list[tuple[str, int]], folder: Path) -> None:
    """Part 4 on a fresh PostgreSQL database."""
    trades = max(10, loans // 100)
    started = time.perf_counter()
    engine = _demo_inputs(db_url, loans, trades)
    run = execute_run(engine, RunOptions(tenant=TENANT, as_of=AS_OF))
    if run["status"] != "Complete":
        raise SystemExit(f"the run ended {run['status']}")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))  # as autovacuum would: the planner knows the tables' sizes
    run_id = str(run["run_id"])
    endpoints = _endpoints(engine, run_id)
    print(f"  {loans} loans, {trades} trades: demo inputs, run {run_id} and the reports' row counts in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    server = Serve(db_url, folder / "home-reports").start()
    try:
        report_pages(engine, server, endpoints, run_id, requests)
        print("\n4b. CSV (Accept: text/csv), streamed whole")
        report_csv(server, endpoints, plan)
    finally:
        server.stop()
        engine.dispose()


def _csv_plan(text: str) -> list[tuple[str, int]]:
    plan = []
    for item in text.split(","):
        name, _, rounds = item.strip().partition(":")
        plan.append((name, int(rounds or 1)))
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--only", choices=["submit", "load", "reports"], default=None,
                        help="run only part 1 (submit), part 2 (load; its run is made as part 1 makes it, on "
                             "PostgreSQL) or part 4 (reports, PostgreSQL)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of CLI and HTTP runs per database")
    parser.add_argument("--loans", type=int, default=None,
                        help="demo loans (default: 10,000 for part 1, 100,000 for part 4)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="requests per load measurement")
    parser.add_argument("--load-rounds", type=int, default=3)
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="py-spy the server for this long under load (needs py-spy)")
    parser.add_argument("--report-requests", type=int, default=50, help="part 4: first pages per report, each way")
    parser.add_argument("--csv", type=_csv_plan, default="guide:3,largest:1", metavar="REPORT:ROUNDS,...",
                        help="part 4: the reports to export as CSV and how often (largest: the one with most rows)")
    args = parser.parse_args()
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    if args.only in ("load", "reports"):
        kinds = ["postgresql"]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    folder = Path(tempfile.mkdtemp(prefix="pfill-bench-api-"))
    try:
        if args.only in (None, "submit", "load"):
            submit_and_load(args, kinds, folder)
        if args.only in (None, "reports"):
            loans = args.loans or 100_000
            print(f"\n4. the reports over HTTP at {loans} loans, PostgreSQL: first pages vs their SQL run directly, "
                  "and CSV")
            url, drop = _database("postgresql")
            try:
                bench_reports(url, loans, args.report_requests, args.csv, folder)
            finally:
                drop()
    finally:
        print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def submit_and_load(args: argparse.Namespace, kinds: list[str], folder: Path) -> None:
    """Parts 1 and 2 (3 with --profile); --only load makes the run part 2 reads with one round of part 1."""
    loans = args.loans or 10_000
    rounds = 1 if args.only == "load" else args.rounds
    databases = {kind: _database(kind) for kind in kinds}
    try:
        print(f"\n1. a {loans}-loan run: `pfill run` (subprocess) vs POST /run + GET /runs/{{id}} every 0.1 s")
        run_ids = {kind: submit_vs_cli(kind, databases[kind][0], rounds, loans, folder) for kind in kinds}
        if args.only == "submit":
            return
        if "postgresql" not in kinds:
            print("\n2. GET /runs/{run_id} under load: skipped (it runs on PostgreSQL: --db postgresql or both)")
            return
        print(f"\n2. GET /runs/{{run_id}} at {args.concurrency} concurrent clients, embedded server on PostgreSQL")
        get_run_under_load(databases["postgresql"][0], run_ids["postgresql"], folder, args.concurrency,
                           args.requests, args.load_rounds, args.profile)
    finally:
        for _url, drop in databases.values():
            drop()

if __name__ == "__main__":
    main()
