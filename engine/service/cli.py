"""`pfill serve` (the run service, in the foreground), `pfill worker` (a Celery worker for
`--executor celery`) and `pfill service up|down|status` (the service in the background, for the demo)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from pfill.config import Settings
from pfill.errors import PfillError
from pfill.options import json_option, pass_settings
from pfill.output import emit_json, info
from pfill.processes import pid_alive, wait_until_healthy
from pfill.secrets import mask_url

from .queue import DEFAULT_CAPACITY
from .tasks import DEFAULT_BROKER

DEFAULT_PORT = 8089
EXECUTORS = ("embedded", "celery")


def _broker(settings: Settings, given: str | None) -> str:
    configured = settings.service().broker_url
    return given or os.environ.get("PFILL_BROKER_URL") or (configured.value() if configured else DEFAULT_BROKER)


def _logging(debug: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the schema check at start says nothing useful


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--executor", type=click.Choice(EXECUTORS), default="embedded", show_default=True,
              help="embedded: runs execute in this server; celery: in `pfill worker`s, over the broker.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Embedded executor: runs of different tenants executing at once.")
@click.option("--queue-capacity", type=click.IntRange(1, 100_000),
              help=f"Runs that may wait for an executor before POST /run answers 503 [pfill.yaml; {DEFAULT_CAPACITY}].")
@click.option("--broker", metavar="URL", help=f"Celery broker [env PFILL_BROKER_URL; pfill.yaml; {DEFAULT_BROKER}].")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log every request.")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Server processes (each with its own embedded executor of --concurrency runs).")
@pass_settings
def serve(settings: Settings, host: str, port: int, executor: str, concurrency: int, queue_capacity: int | None,
          broker: str | None, access_log: bool, workers: int) -> None:
    """Serve the run API (submit, watch and cancel runs) under /api/powerfill, until stopped.

    On the same engine database as the CLI (--db / PFILL_DB_URL; SQLite by default). Bearer tokens
    come from pfill.yaml `service.tokens`, or are generated per local tenant (their files are printed).
    """
    import uvicorn

    from .. import db
    from .tokens import load_tokens

    _logging()
    db.open_engine(settings.db_url, create=False)  # a database that is not ready: one line, before any worker
    tokens = load_tokens(settings)  # generated here, once, before the workers read them
    options = {"executor": executor, "concurrency": concurrency, "broker": _broker(settings, broker),
               "capacity": queue_capacity or settings.service().queue_capacity or DEFAULT_CAPACITY}
    info(f"run service on http://{host}:{port}/api/powerfill (executor {executor}, queue capacity "
         f"{options['capacity']}, {workers} worker process(es), engine database {mask_url(settings.db_url)})")
    for path in tokens.files:
        info(f"token for tenant {path.name.removeprefix('token-')}: in {path}")
    if executor == "celery":
        info(f"broker: {mask_url(options['broker'])}; start workers with `pfill worker`")
    # uvicorn raises the SIGTERM/SIGINT it stopped on again once it has shut down, so the process ended
    # "killed by SIGTERM" (-15) after a clean stop; these handlers, put back by uvicorn, make that exit 0
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    served: Any = build_app(settings, options) if workers == 1 else None
    if workers > 1:  # each process builds its own app from the same settings, passed through the environment
        os.environ.update(PFILL_HOME=str(settings.home), PFILL_DB_URL=settings.db_url,
                          PFILL_SERVE_OPTIONS=json.dumps(options))
        if settings.config_path:
            os.environ["PFILL_CONFIG"] = str(settings.config_path.absolute())
        served = "pfill.engine.service.cli:app_from_environment"
    uvicorn.run(served, host=host, port=port, log_level="info", access_log=access_log, log_config=None,
                timeout_graceful_shutdown=15, workers=workers, factory=workers > 1)


def build_app(settings: Settings, options: dict[str, Any]) -> Any:
    """The FastAPI app of `pfill serve` for these settings and options (executor, concurrency,
    capacity, broker)."""
    from .. import db
    from .app import Service, create_app
    from .executors import CeleryExecutor, EmbeddedExecutor
    from .queue import RunQueue
    from .tokens import load_tokens

    engine = db.open_engine(settings.db_url, create=False)
    runner = (CeleryExecutor(engine, options["broker"]) if options["executor"] == "celery"
              else EmbeddedExecutor(engine, options["concurrency"]))
    return create_app(Service(engine=engine, tokens=load_tokens(settings), queue=RunQueue(engine, options["capacity"]),
                              executor=runner))


def app_from_environment() -> Any:
    """`pfill serve --workers N`: the app of one worker process (uvicorn's factory)."""
    _logging()
    return build_app(Settings.resolve(), json.loads(os.environ["PFILL_SERVE_OPTIONS"]))


def _stopped(_signum: int, _frame: object) -> None:
    """A stop signal once uvicorn has shut down gracefully: exit 0."""
    sys.exit(0)


@click.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Runs this worker executes at once (processes).")
@click.option("--broker", metavar="URL", help=f"Celery broker [env PFILL_BROKER_URL; pfill.yaml; {DEFAULT_BROKER}].")
@click.option("--name", help="Worker name in the run log [pfill@<host>-<pid>].")
@pass_settings
def worker(settings: Settings, concurrency: int, broker: str | None, name: str | None) -> None:
    """Execute queued runs for `pfill serve --executor celery` (a Celery worker on the broker).

    Start as many as needed, on any host that reaches the broker and the engine database; each run
    executes exactly once, whichever worker takes it.
    """
    from .. import db
    from .tasks import QUEUE, celery_app

    db.open_engine(settings.db_url, create=False)  # refuse a database that is not ready, in one line
    os.environ["PFILL_DB_URL"] = settings.db_url  # the pool's processes open the same database
    app = celery_app(_broker(settings, broker))
    info(f"worker on {mask_url(_broker(settings, broker))}, engine database {mask_url(settings.db_url)}")
    app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "-Q", QUEUE,
                     "-n", name or f"pfill@%h-{os.getpid()}", "--without-gossip", "--without-mingle"])


# -- the service in the background (`pfill demo`, `make demo-down`) --------------------------------

def _state_file(settings: Settings) -> Path:
    return settings.home / "service" / "state.json"


def _state(settings: Settings) -> dict[str, Any] | None:
    try:
        state = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    return state if isinstance(pid, int) and pid > 0 and pid_alive(pid) else None


def start_background(settings: Settings, port: int = DEFAULT_PORT, timeout: float = 30.0) -> dict[str, Any]:
    """Start `pfill serve` detached (log in <home>/service/serve.log) and wait until it answers;
    returns its state (pid, url). Already running: its state, nothing new is started."""
    running = _state(settings)
    if running:
        return running
    folder = settings.home / "service"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PFILL_HOME": str(settings.home), "PFILL_DB_URL": settings.db_url}
    if settings.config_path:
        env["PFILL_CONFIG"] = str(settings.config_path.absolute())
    with open(folder / "serve.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pfill", "serve", "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/powerfill"
    state = {"pid": proc.pid, "port": port, "url": url, "log": str(folder / "serve.log")}
    _state_file(settings).write_text(json.dumps(state))
    deadline = time.monotonic() + timeout
    while not wait_until_healthy(url, timeout=0.5, interval=0.25):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_background(settings)
            exited = proc.poll() is not None
            why = f"exited with code {proc.returncode}" if exited else f"did not answer in {timeout:.0f}s"
            raise PfillError(f"the run service {why} on {url}",
                             hint=f"see {folder / 'serve.log'} (is port {port} taken?)")
    return state


def stop_background(settings: Settings, timeout: float = 20.0) -> int | None:
    """Stop the background service; its pid, or None when it was not running."""
    state = _state(settings)
    if state is None:
        return None
    pid = int(state["pid"])
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _state_file(settings).unlink(missing_ok=True)
    return pid


@click.group("service")
def service_group() -> None:
    """The run service in the background: up, down, status (as `pfill demo` runs it)."""


@service_group.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@pass_settings
def service_up(settings: Settings, port: int) -> None:
    """Start `pfill serve` in the background on 127.0.0.1 and wait until it answers."""
    from .tokens import load_tokens

    state = start_background(settings, port)
    info(f"run service up at {state['url']} (pid {state['pid']}, log {state['log']})")
    for path in load_tokens(settings).files:
        info(f"token for tenant {path.name.removeprefix('token-')}: in {path}")


@service_group.command("down")
@pass_settings
def service_down(settings: Settings) -> None:
    """Stop the background run service started by `pfill service up` (or `pfill demo`)."""
    pid = stop_background(settings)
    info(f"stopped the run service (pid {pid})" if pid else "the run service is not running")


@service_group.command("status")
@json_option()
@pass_settings
def service_status(settings: Settings, as_json: bool) -> None:
    """Whether the background run service runs, where, and whether it answers."""
    state = _state(settings)
    healthy = bool(state) and wait_until_healthy(state["url"], timeout=2, interval=0.5)
    report = {"running": bool(state), "healthy": healthy, **(state or {})}
    if as_json:
        emit_json(report)
    elif state:
        info(f"run service {'up' if healthy else 'not answering'} at {state['url']} (pid {state['pid']})")
    else:
        info("the run service is not running")
    if state and not healthy:
        raise PfillError("the run service is running but does not answer", hint=f"see {state['log']}")
