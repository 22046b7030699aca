"""Run-service benchmark: a run submitted over HTTP against `pfill run`, and GET /runs/{run_id} under load.
Figures, not pass/fail: medians of interleaved rounds in one session, printed next to the targets.

    .venv/bin/python tests/benchmarks/bench_api.py [--db postgresql|sqlite|both] [--rounds 5] [--loans 10000]
                                                   [--concurrency 32] [--requests 3000] [--load-rounds 3]

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

PostgreSQL uses a throw-away database on PFILL_TEST_PG_URL (default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfill.database import open_database  # noqa: E402
from pfill.engine import demo_data  # noqa: E402
from pfill.engine.db import init_schema  # noqa: E402
from tests.benchmarks.bench_engine import _database  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PFILL = str(Path(sys.executable).with_name("pfill"))
PREFIX = "/api/powerfill"
TENANT = "bench"
AS_OF = date(2025, 3, 3)
TERMINAL = {"Complete", "Failed", "Cancelled"}
TARGET_RATIO, TARGET_P99_MS, TARGET_RPS = 1.10, 50.0, 500.0
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


def submit_vs_cli(kind: str, db_url: str, rounds: int, loans: int, folder: Path) -> str:
    """Part 1 on one (fresh) database; returns the id of the last HTTP run."""
    engine = open_database(db_url)
    init_schema(engine)
    demo_data.replace_tenant_inputs(engine, TENANT, demo_data.generate(loans, 100, 42, AS_OF))
    engine.dispose()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of CLI and HTTP runs per database")
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="requests per load measurement")
    parser.add_argument("--load-rounds", type=int, default=3)
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="py-spy the server for this long under load (needs py-spy)")
    args = parser.parse_args()
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    folder = Path(tempfile.mkdtemp(prefix="pfill-bench-api-"))
    databases = {kind: _database(kind) for kind in kinds}
    try:
        print(f"\n1. a {args.loans}-loan run: `pfill run` (subprocess) vs POST /run + GET /runs/{{id}} every 0.1 s")
        run_ids = {kind: submit_vs_cli(kind, databases[kind][0], args.rounds, args.loans, folder) for kind in kinds}
        if "postgresql" not in kinds:
            print("\n2. GET /runs/{run_id} under load: skipped (it runs on PostgreSQL: --db postgresql or both)")
            return
        print(f"\n2. GET /runs/{{run_id}} at {args.concurrency} concurrent clients, embedded server on PostgreSQL")
        get_run_under_load(databases["postgresql"][0], run_ids["postgresql"], folder, args.concurrency,
                           args.requests, args.load_rounds, args.profile)
    finally:
        for _url, drop in databases.values():
            drop()
        print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
