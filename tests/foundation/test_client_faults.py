"""Faults a real Superset will not produce on demand (502/503, timeouts, refused connections),
injected by a small local HTTP server that speaks just enough of the API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pfill.deploy.client import AuthError, SupersetClient, SupersetError
from tests.conftest import free_port

PASSWORD = "pa55-word-never-shown"


class FaultyServer(ThreadingHTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.script: dict[str, list[int]] = {}  # path -> statuses to answer before a 200
        self.hits: dict[str, int] = {}
        self.delay = 0.0


class Handler(BaseHTTPRequestHandler):
    server: FaultyServer

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits[path] = self.server.hits.get(path, 0) + 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(self.server.delay)
        queue = self.server.script.get(path, [])
        status = queue.pop(0) if queue else 200
        body: dict = {"message": f"injected {status}"} if status != 200 else {"result": "ok"}
        if status == 200 and path == "/api/v1/security/login":
            body = {"access_token": "a", "refresh_token": "r"}
        if status == 200 and path == "/api/v1/security/refresh":
            body = {"access_token": "b"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    srv = FaultyServer(free_port())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(server: FaultyServer, **kwargs: object) -> SupersetClient:
    return SupersetClient(f"http://127.0.0.1:{server.server_port}", "deployer", PASSWORD, backoff=0.01, **kwargs)


def test_get_is_retried_on_503_then_succeeds(server: FaultyServer) -> None:
    server.script["/api/v1/chart/1"] = [503, 502]
    assert _client(server).get("/api/v1/chart/1") == {"result": "ok"}
    assert server.hits["/api/v1/chart/1"] == 3


def test_post_is_not_retried_on_503(server: FaultyServer) -> None:
    server.script["/api/v1/chart/"] = [503]
    with pytest.raises(SupersetError) as failure:
        _client(server).post("/api/v1/chart/", json={"x": 1})
    assert server.hits["/api/v1/chart/"] == 1
    assert failure.value.status == 503
    assert "POST http://127.0.0.1" in str(failure.value) and "injected 503" in str(failure.value)


def test_retries_give_up_with_status_url_and_message(server: FaultyServer) -> None:
    server.script["/api/v1/dataset/7"] = [504] * 10
    with pytest.raises(SupersetError) as failure:
        _client(server, retries=2).get("/api/v1/dataset/7")
    assert failure.value.status == 504
    assert server.hits["/api/v1/dataset/7"] == 3
    assert "/api/v1/dataset/7 returned 504: injected 504" in str(failure.value)
    assert PASSWORD not in str(failure.value)


def test_timeout_is_reported(server: FaultyServer) -> None:
    server.delay = 1.0
    with pytest.raises(SupersetError, match=r"no answer within 0s|no answer within"):
        _client(server, timeout=0.2, retries=0).get("/api/v1/chart/1")


def test_refused_connection_is_one_clear_error() -> None:
    client = SupersetClient(f"http://127.0.0.1:{free_port()}", "deployer", PASSWORD, retries=1, backoff=0.01)
    with pytest.raises(SupersetError, match="cannot connect") as failure:
        client.get("/api/v1/chart/1")
    assert PASSWORD not in str(failure.value)


def test_expired_token_is_refreshed_once(server: FaultyServer) -> None:
    server.script["/api/v1/chart/2"] = [401]
    assert _client(server).get("/api/v1/chart/2") == {"result": "ok"}
    assert server.hits["/api/v1/security/refresh"] == 1


def test_login_401_names_user_and_url_not_password(server: FaultyServer) -> None:
    server.script["/api/v1/security/login"] = [401]
    with pytest.raises(AuthError) as failure:
        _client(server).login()
    text = str(failure.value)
    assert "'deployer'" in text and f"127.0.0.1:{server.server_port}" in text and "401" in text
    assert PASSWORD not in text


def test_writes_send_csrf_and_are_counted(server: FaultyServer) -> None:
    client = _client(server)
    client.get("/api/v1/chart/1")
    client.put("/api/v1/chart/1", json={})
    client.delete("/api/v1/chart/1")
    assert client.writes == 2
    assert server.hits["/api/v1/security/csrf_token/"] == 1
