"""A real `pfill serve` (or `pfill worker`) in a subprocess on a free port, for the service tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pfill.database import open_database
from pfill.engine import demo_data
from tests.conftest import free_port
from tests.engine.helpers import AS_OF, PFILL, pfill_env

PREFIX = "/api/powerfill"


@dataclass
class Server:
    """`pfill serve` on 127.0.0.1:<port> with its own home (tokens under <home>/service)."""

    db_url: str
    home: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    tenants: tuple[str, ...] = ("demo",)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self, timeout: float = 60.0) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "local-tenants").write_text("\n".join(self.tenants) + "\n")
        log = open(self.home / f"serve-{self.port}.log", "a")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [PFILL, "serve", "--port", str(self.port), *self.args],
            env=pfill_env(self.db_url, PFILL_HOME=str(self.home), **self.env),
            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pfill serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"pfill serve did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.home / f"serve-{self.port}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def token(self, tenant: str = "demo") -> str:
        return (self.home / "service" / f"token-{tenant}").read_text().strip()

    def client(self, tenant: str | None = "demo", **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(tenant)}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 30, **kw})

    def kill(self) -> None:
        """SIGKILL the server's whole process group (no shutdown of any kind)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_status(client: httpx.Client, run_id: str, wanted: set[str], timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /runs/{run_id} until its status is one of `wanted`."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = client.get(f"/runs/{run_id}").json()
        if run.get("status") in wanted:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {run.get('status')} after {timeout}s")


# -- helpers of the HTTP tests (test_api, test_concurrency, test_durability) -----------------------

PROBLEM = "application/problem+json"
IDLE_BROKER = "redis://127.0.0.1:6379/11"  # a Redis database no `pfill worker` listens on: runs stay queued


def problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The response's problem document, checked: its status, media type, RFC 9457 members and `field`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"] and body["detail"], body
    if field is not None:
        assert body.get("field") == field, body
    return body


def add_tenant_inputs(db_url: str, tenant: str, seed: int, loans: int = 400) -> None:
    """Demo inputs (as of AS_OF) for one more tenant of the database."""
    demo_data.replace_tenant_inputs(open_database(db_url), tenant, demo_data.generate(loans, 12, seed=seed,
                                                                                        as_of=AS_OF))


def empty_idle_broker() -> None:
    """Drop what the tests sent to IDLE_BROKER (messages nobody will take)."""
    import redis

    client = redis.Redis.from_url(IDLE_BROKER)
    try:
        keys = list(client.scan_iter("*pfill-runs*")) + list(client.scan_iter("_kombu.binding*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

