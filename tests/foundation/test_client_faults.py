"""Faults a real Superset will not produce on demand (502/503, timeouts, dropped and refused
connections, a server that never answers, pages where JSON is due, the wrong scheme), injected by
small local servers that speak just enough of the API. The servers here are shared with
tests/foundation/test_bad_input_superset.py."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pfill.deploy.client import AuthError, SupersetClient, SupersetError
from tests.conftest import free_port

PASSWORD = "pa55-word-never-shown"
LOGIN = "/api/v1/security/login"
HTML = b"<!DOCTYPE html><html><head><title>Sign in - Example Proxy</title></head><body>\n<form></form></body></html>"
HTTPS_PORT_400 = (b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
                  b"<body><center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to "
                  b"HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class FaultyServer(ThreadingHTTPServer):
    """Answers like Superset (login, refresh, {"result": "ok"}) unless told otherwise:
    - `script[path]`: what to answer first, one item per request: an HTTP status, "drop" (close the
      connection without a word), "html" (a 200 sign-in page), "html-<status>" (an error page),
      "https-port" (nginx's 400 for plain HTTP sent to its HTTPS port);
    - `hang`: paths, methods ("GET") or "*" that never answer: the handler sleeps until the server stops;
    - `html`: paths, methods or "*" that always answer a 200 HTML page (a proxy's sign-in page)."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.script: dict[str, list[int | str]] = {}
        self.hits: dict[str, int] = {}
        self.hang: set[str] = set()
        self.html: set[str] = set()
        self.delay = 0.0
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(BaseHTTPRequestHandler):
    server: FaultyServer
    protocol_version = "HTTP/1.1"  # keep-alive, like gunicorn behind a proxy

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits[path] = self.server.hits.get(path, 0) + 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if {path, self.command, "*"} & self.server.hang:
            self.server.stopping.wait(30)  # never answers (until the test is over)
            self.close_connection = True
            return
        time.sleep(self.server.delay)
        queue = self.server.script.get(path, [])
        what = queue.pop(0) if queue else ("html" if {path, self.command, "*"} & self.server.html else 200)
        if what == "drop":
            self.close_connection = True
            return
        if what == "html":
            return self._send(200, HTML, "text/html; charset=utf-8")
        if isinstance(what, str) and what.startswith("html-"):  # an error page: "html-404"
            status = int(what[5:])
            page = f"<html>\n<head><title>{status} {self.responses[status][0]}</title></head>\n<body></body></html>"
            return self._send(status, page.encode(), "text/html")
        if what == "https-port":
            return self._send(400, HTTPS_PORT_400, "text/html")
        assert isinstance(what, int)
        body: dict = {"message": f"injected {what}"} if what != 200 else {"result": "ok"}
        if what == 200 and path == LOGIN:
            body = {"access_token": "a", "refresh_token": "r"}
        if what == 200 and path == "/api/v1/security/refresh":
            body = {"access_token": "b"}
        self._send(what, json.dumps(body).encode(), "application/json")

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopping = getattr(server, "stopping", None)
        if stopping is not None:
            stopping.set()
        server.shutdown()
        server.server_close()


@contextmanager
def tls_server(folder: Path) -> Iterator[FaultyServer]:
    """A FaultyServer behind TLS with a self-signed certificate (made by the openssl command in
    `folder`, once)."""
    if shutil.which("openssl") is None:
        pytest.skip("SKIPPED, NOT PASSED: no openssl command to make a self-signed certificate")
    key, cert = folder / "key.pem", folder / "cert.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = FaultyServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # the handshake runs in the handler's thread, so a client that never speaks TLS blocks nobody
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    original = server.finish_request

    def finish_request(request: ssl.SSLSocket, client_address: object) -> None:
        try:
            request.settimeout(5)
            request.do_handshake()
            request.settimeout(None)
        except (OSError, ssl.SSLError):
            return
        original(request, client_address)

    server.finish_request = finish_request  # type: ignore[method-assign]
    with serving(server):
        yield server


@contextmanager
def backlogged_port() -> Iterator[int]:
    """A port whose listen queue is full and never accepted from: a new connection is never
    completed, so connecting times out (as with a firewall that drops packets)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    with serving(FaultyServer(free_port())) as srv:
        yield srv  # type: ignore[misc]


def _client(server: FaultyServer, **kwargs: object) -> SupersetClient:
    kwargs.setdefault("backoff", 0.01)
    return SupersetClient(server.url, "deployer", PASSWORD, **kwargs)  # type: ignore[arg-type]


def _fails(call, *args: object, **kwargs: object) -> tuple[SupersetError, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    with pytest.raises(SupersetError) as failure:
        call(*args, **kwargs)
    return failure.value, time.monotonic() - start


def _one_line(error: SupersetError) -> str:
    text = str(error)
    assert "\n" not in text and (error.hint is None or "\n" not in error.hint)
    assert PASSWORD not in text and PASSWORD not in (error.hint or "")
    return text


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


def test_dropped_connections_keep_their_retries(server: FaultyServer) -> None:
    server.script["/api/v1/chart/3"] = ["drop", "drop"]
    assert _client(server).get("/api/v1/chart/3") == {"result": "ok"}
    assert server.hits["/api/v1/chart/3"] == 3


def test_a_dropped_post_is_not_sent_again(server: FaultyServer) -> None:
    client = _client(server)
    client.login()
    server.script["/api/v1/assets/import/"] = ["drop"]
    error, _ = _fails(client.post, "/api/v1/assets/import/", data={"x": "1"})
    assert server.hits["/api/v1/assets/import/"] == 1
    assert error.kind == "dropped"
    assert _one_line(error) == f"Superset at {server.url} dropped the connection during POST /api/v1/assets/import/"


def test_read_timeout_of_a_get_is_retried_once_and_named(server: FaultyServer) -> None:
    client = _client(server, timeout=0.5)
    client.login()
    server.hang.add("/api/v1/database/")
    error, took = _fails(client.get, "/api/v1/database/", params={"q": "(page:0)"})
    assert server.hits["/api/v1/database/"] == 2  # once, then once more: not four times
    assert 1.0 <= took < 2.0
    assert error.kind == "read-timeout" and error.status is None
    assert _one_line(error) == f"Superset at {server.url} did not answer GET /api/v1/database/ within 0.5s"
    assert error.hint == "is it up? raise superset.timeout in pfill.yaml or PFILL_SUPERSET_TIMEOUT"


def test_read_timeout_of_a_post_is_never_retried(server: FaultyServer) -> None:
    server.hang.add(LOGIN)
    error, took = _fails(_client(server, timeout=0.5).login)
    assert server.hits[LOGIN] == 1
    assert took < 1.2
    assert _one_line(error) == f"Superset at {server.url} did not answer POST {LOGIN} within 0.5s"


def test_a_server_that_never_answers_ends_the_call_within_the_timeouts(server: FaultyServer) -> None:
    """Timeout 1 s: the login ends after 1 s; a GET after at most 2 (two tries), never 4 minutes."""
    server.hang.add("*")
    error, took = _fails(_client(server, timeout=1, backoff=0.5).login)
    assert took < 1.5 and error.kind == "read-timeout"
    server.hang.clear()
    client = _client(server, timeout=1, backoff=0.5)
    client.login()
    server.hang.add("*")
    error, took = _fails(client.get, "/api/v1/chart/1")
    assert took < 3.0 and error.kind == "read-timeout"


def test_timeout_is_reported(server: FaultyServer) -> None:
    server.delay = 1.0
    with pytest.raises(SupersetError, match=r"did not answer POST /api/v1/security/login within 0\.2s"):
        _client(server, timeout=0.2, retries=0).get("/api/v1/chart/1")


def test_connect_timeout_is_separate_and_named() -> None:
    with backlogged_port() as port:
        client = SupersetClient(f"http://127.0.0.1:{port}", "deployer", PASSWORD, timeout=30, connect_timeout=0.5,
                                backoff=0.01)
        error, took = _fails(client.login)
    assert took < 1.8  # tried twice at 0.5 s, not 30 s
    assert error.kind == "connect-timeout"
    assert _one_line(error) == (f"Superset at http://127.0.0.1:{port} did not accept a connection within 0.5s "
                                f"(POST {LOGIN})")
    assert "connect_timeout" in (error.hint or "")


def test_refused_connection_is_one_clear_error() -> None:
    port = free_port()
    client = SupersetClient(f"http://127.0.0.1:{port}", "deployer", PASSWORD, retries=1, backoff=0.01)
    error, took = _fails(client.get, "/api/v1/chart/1")
    assert took < 1
    assert error.kind == "refused"
    assert _one_line(error) == f"nothing listens at http://127.0.0.1:{port} (connection refused)"
    assert "pfill superset up" in (error.hint or "")


def test_unknown_host_is_named() -> None:
    client = SupersetClient("https://nonexistent.invalid", "deployer", PASSWORD, backoff=0.01)
    error, _ = _fails(client.login)
    assert error.kind == "dns"
    assert _one_line(error) == ("Superset at https://nonexistent.invalid: cannot resolve the host name "
                                "nonexistent.invalid")


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:99999", "has port 99999, out of range (1 to 65535)"),
    ("http://127.0.0.1:8o88", "has port '8o88', not a number from 1 to 65535"),
    ("bi.example.com", "has no scheme (http:// or https://)"),
    ("ftp://bi.example.com", "has scheme ftp:// (use http:// or https://)"),
])
def test_a_malformed_url_is_refused_before_any_call(url: str, problem: str) -> None:
    with pytest.raises(SupersetError) as failure:
        SupersetClient(url, "deployer", PASSWORD)
    assert failure.value.kind == "bad-url"
    assert _one_line(failure.value) == f"the Superset URL {url!r} {problem}"


def test_a_password_in_the_url_is_masked() -> None:
    port = free_port()
    client = SupersetClient(f"http://deployer:{PASSWORD}@127.0.0.1:{port}", "deployer", PASSWORD, backoff=0.01)
    error, _ = _fails(client.login)
    assert _one_line(error) == f"nothing listens at http://deployer:***@127.0.0.1:{port} (connection refused)"


def test_a_web_server_that_is_not_superset(server: FaultyServer) -> None:
    server.html.add("*")
    error, _ = _fails(_client(server).login)
    assert error.kind == "not-superset" and error.status == 200
    assert _one_line(error) == f"{server.url} does not look like Superset: POST {LOGIN} answered 200 text/html"


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_server_without_the_login_endpoint_is_not_superset(server: FaultyServer, status: int) -> None:
    server.script[LOGIN] = [status]
    error, _ = _fails(_client(server).login)
    assert f"does not look like Superset: POST {LOGIN} answered {status} application/json" in _one_line(error)


def test_a_sign_in_page_in_the_middle_is_named(server: FaultyServer) -> None:
    """A proxy whose session ran out answers its sign-in page (200, HTML) instead of Superset's JSON."""
    client = _client(server)
    client.login()
    server.html.add("/api/v1/dashboard/1")
    error, _ = _fails(client.get, "/api/v1/dashboard/1")
    assert _one_line(error) == (f"{server.url} does not look like Superset: GET /api/v1/dashboard/1 answered 200 "
                                "text/html")


def test_an_html_error_page_is_one_line_with_its_title(server: FaultyServer) -> None:
    client = _client(server)
    client.login()
    server.script["/api/v1/chart/9"] = ["html-404"]
    error, _ = _fails(client.get, "/api/v1/chart/9")
    assert error.status == 404
    assert _one_line(error) == f"GET {server.url}/api/v1/chart/9 returned 404: an HTML page (404 Not Found)"


def test_https_against_a_plain_http_server_says_use_http(server: FaultyServer) -> None:
    url = f"https://127.0.0.1:{server.server_port}"
    client = SupersetClient(url, "deployer", PASSWORD, backoff=0.01)
    error, took = _fails(client.login)
    assert took < 1
    assert error.kind == "scheme"
    assert _one_line(error).startswith(f"Superset at {url} does not speak HTTPS (TLS handshake: wrong version number)")
    assert error.hint == f"use http://127.0.0.1:{server.server_port} in superset.url"


def test_http_against_an_https_port_behind_nginx_says_use_https(server: FaultyServer) -> None:
    server.script[LOGIN] = ["https-port"]
    error, _ = _fails(_client(server).login)
    assert error.kind == "scheme"
    assert _one_line(error) == (f"Superset at {server.url} is an HTTPS port: POST {LOGIN} answered 400 "
                                '"The plain HTTP request was sent to HTTPS port"')
    assert error.hint == f"use https://127.0.0.1:{server.server_port} in superset.url"


def test_http_against_a_tls_server_says_use_https(tmp_path: Path) -> None:
    with tls_server(tmp_path) as tls:
        url = f"http://127.0.0.1:{tls.server_port}"
        error, took = _fails(SupersetClient(url, "deployer", PASSWORD, backoff=0.01).login)
        assert took < 1
        assert error.kind == "scheme"
        assert _one_line(error) == (f"Superset at {url} closed the connection without answering POST {LOGIN}: "
                                    "stopped, or an HTTPS port?")
        assert error.hint == (f"check that it is up; if it speaks HTTPS, use https://127.0.0.1:{tls.server_port} "
                              "in superset.url")
        untrusted, _ = _fails(SupersetClient(f"https://127.0.0.1:{tls.server_port}", "u", PASSWORD).login)
        assert untrusted.kind == "tls"
        assert "its TLS certificate is not trusted (self-signed certificate)" in _one_line(untrusted)


def test_expired_token_is_refreshed_once(server: FaultyServer) -> None:
    server.script["/api/v1/chart/2"] = [401]
    assert _client(server).get("/api/v1/chart/2") == {"result": "ok"}
    assert server.hits["/api/v1/security/refresh"] == 1


def test_login_401_names_user_and_url_not_password(server: FaultyServer) -> None:
    server.script[LOGIN] = [401]
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


def test_an_error_names_the_path_without_its_query_string(server: FaultyServer) -> None:
    """A list call's rison query, URL-encoded, would be noise in a one-line message."""
    server.script["/api/v1/chart/"] = [500]
    with pytest.raises(SupersetError) as failure:
        list(_client(server).iter_list("chart", [{"col": "id", "opr": "in", "value": [1, 2]}]))
    assert "/api/v1/chart/ returned 500" in str(failure.value)
    assert "?q=" not in str(failure.value) and "%28" not in str(failure.value)
