"""A real `pfill worker` (a Celery worker) in a subprocess, for the scale-out tests; stop_all stops
servers and workers together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.engine.helpers import PFILL, pfill_env
from tests.engine.service.server import Server


@dataclass
class Worker:
    """`pfill worker --name <name>` on `broker` (concurrency 1 unless told), on the same engine
    database as the servers; its log is <home>/worker-<name>.log."""

    db_url: str
    home: Path
    broker: str
    name: str
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    _offset: int = 0

    @property
    def log_path(self) -> Path:
        return self.home / f"worker-{self.name}.log"

    def launch(self) -> Worker:
        """Start the process (`wait_ready` waits until it consumes the run queue)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "a")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [PFILL, "worker", "--broker", self.broker, "--name", self.name, "--concurrency", str(self.concurrency)],
            env=pfill_env(self.db_url, PFILL_HOME=str(self.home), **self.env),
            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        """Until Celery logs `<node> ready.` (connected to the broker, consuming)."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pfill worker {self.name} exited {self.proc.returncode}:\n{self.log()}")
            if " ready." in self.log(since_launch=True):
                return self
            time.sleep(0.1)
        raise AssertionError(f"pfill worker {self.name} was not ready in {timeout}s:\n{self.log()}")

    def start(self, timeout: float = 30.0) -> Worker:
        return self.launch().wait_ready(timeout)

    def log(self, since_launch: bool = False) -> str:
        """The log since the last launch, or its last 4,000 characters."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text[self._offset:] if since_launch else text[-4000:]

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM to the main process: a run executing finishes first)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the worker's process group: the pool processes too, whatever state they are in."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown; after `timeout`, or for pool processes left behind, SIGKILL to the group."""
        if self.proc is None:
            return
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        self.kill()


def stop_all(*procs: Server | Worker, worker_timeout: float = 20.0, server_timeout: float = 20.0) -> None:
    """Stop servers and workers with overlapping shutdowns (SIGTERM to all, then wait for each);
    any still running after its timeout is killed.

    A worker whose pool process finished a task just as the warm shutdown began can wait 30 s
    (billiard's child waits for the parent to read its last result, which it no longer does):
    `worker_timeout` bounds that wait before the SIGKILL."""
    for proc in procs:
        if isinstance(proc, Worker):
            proc.terminate()
        elif proc.proc and proc.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.proc.pid, signal.SIGTERM)
    for proc in procs:
        if proc.proc is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.proc.wait(timeout=worker_timeout if isinstance(proc, Worker) else server_timeout)
        with contextlib.suppress(Exception):  # the others must still be stopped
            proc.kill()  # still running; for a worker, also pool processes left behind
