"""Bad input about the Superset connection never hangs, and always says what is wrong.

A corpus of bad Superset addresses and settings, one row per fault: the pfill.yaml to write (or the
built-in `local` environment), the environment variables, the local server that plays the fault,
and fragments of the one error line. Every fault runs through the real CLI in process
(`pfill.cli.cli` with `--home` and `--config` in tmp folders) for each command that talks to
Superset (`env check`, `plan`, `apply --yes`, `verify`, `export`) and must:
- exit 1;
- print exactly one `error: ` line, naming the environment, the Superset URL (masked) when the fault
  is about the address, and the row's fragment; at most one `hint: ` line (holding the row's hint
  fragment, if any);
- print no traceback, no "unexpected" error, and no password, stdout or stderr;
- finish within a few seconds, a server that never answers included (its timeout is 1 s).

The faults are played by the local servers of test_client_faults.py: a server that accepts and
never answers (every call, or only GETs after the login), a plain web server answering HTML, a
sign-in page in front of the API, nginx's 400 for plain HTTP to its HTTPS port, a TLS server with a
self-signed certificate (made with the openssl command), a port that refuses, a port whose listen
queue is full (connect timeout), a login that answers 401.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from pfill.cli import cli
from tests.conftest import free_port
from tests.foundation.test_client_faults import LOGIN, FaultyServer, backlogged_port, serving, tls_server

SECRET = "Sup3rset-Pw-7431-never-printed"  # $BAD_INPUT_SUPERSET_PW, the Superset password of every row
LIMIT_SECONDS = 4.0
YAML = """\
environments:
  prod:
    superset:
      url: {url}
      username: deployer
      password: ${{BAD_INPUT_SUPERSET_PW}}
{extra}    tenants:
      acme:
        database_url: sqlite:///{db}
"""
URL_LINE = 4  # the line of superset.url in YAML

COMMANDS = {
    "env-check": ["env", "check"],
    "plan": ["plan"],
    "apply": ["apply", "--yes"],
    "verify": ["verify"],
    "export": ["export", "--dashboard", "1", "--out", "{out}"],
}


@dataclass(frozen=True)
class Fault:
    id: str
    expect: str  # in the error line ({url} and {port} filled in); `environment <env>: ` is always checked
    url: str = "http://127.0.0.1:{port}"  # superset.url as written in pfill.yaml
    server: str | None = None  # the local server that plays the fault (see _server), None: nothing listens
    extra: str = ""  # more superset fields, as YAML lines
    env: dict[str, str] = field(default_factory=dict)
    hint: str | None = None  # in the hint line
    shown: str | None = "{url}"  # the URL the error line must name (masked); None: not about the URL
    environment: str = "prod"  # "local": the built-in one, no pfill.yaml


FAULTS = [
    # -- 1. never answers: ends after the timeout, retried at most once ----------------------------
    Fault("never-answers-login", "Superset at {url} did not answer POST /api/v1/security/login within 1s",
          server="hang", extra="      timeout: 1\n",
          hint="is it up? raise superset.timeout in pfill.yaml or PFILL_SUPERSET_TIMEOUT"),
    Fault("never-answers-get", "Superset at {url} did not answer GET /api/v1/", server="hang-get",
          extra="      timeout: 30\n", env={"PFILL_SUPERSET_TIMEOUT": "1"}),  # the variable wins over the file
    Fault("never-connects", "Superset at {url} did not accept a connection within 0.5s", server="backlog",
          env={"PFILL_SUPERSET_CONNECT_TIMEOUT": "0.5"}, hint="raise superset.connect_timeout"),
    Fault("never-answers-local", "Superset at {url} did not answer POST /api/v1/security/login within 1s",
          server="hang", environment="local", env={"PFILL_SUPERSET_TIMEOUT": "1"}),
    # -- 2. not Superset ----------------------------------------------------------------------------
    Fault("html-server", f"{{url}} does not look like Superset: POST {LOGIN} answered 200 text/html",
          server="html", hint="superset.url must be Superset's base address"),
    Fault("sign-in-page-on-get", "{url} does not look like Superset: GET /api/v1/", server="html-get"),
    Fault("wrong-password", "login as 'deployer' at {url} failed with 401: wrong user name or password",
          server="401"),
    # -- 3. the wrong scheme, either way --------------------------------------------------------------
    Fault("https-to-plain-http", "Superset at {url} does not speak HTTPS (TLS handshake: wrong version number)",
          url="https://127.0.0.1:{port}", server="plain", hint="use http://127.0.0.1:{port} in superset.url"),
    Fault("http-to-tls",
          f"Superset at {{url}} closed the connection without answering POST {LOGIN}: stopped, or an HTTPS port?",
          server="tls", hint="use https://127.0.0.1:{port} in superset.url"),
    Fault("http-to-nginx-https-port", "Superset at {url} is an HTTPS port", server="https-port",
          hint="use https://127.0.0.1:{port} in superset.url"),
    Fault("untrusted-certificate", "Superset at {url}: its TLS certificate is not trusted (self-signed certificate)",
          url="https://127.0.0.1:{port}", server="tls", hint="REQUESTS_CA_BUNDLE"),
    # -- 4. nothing there ------------------------------------------------------------------------------
    Fault("refused", "nothing listens at {url} (connection refused)", hint="pfill superset up"),
    Fault("refused-local", "nothing listens at {url} (connection refused)", environment="local",
          hint="start it with `pfill superset up`"),
    Fault("refused-password-in-url", "nothing listens at http://deployer:***@127.0.0.1:{port} (connection refused)",
          url="http://deployer:${BAD_INPUT_SUPERSET_PW}@127.0.0.1:{port}",
          shown="http://deployer:***@127.0.0.1:{port}"),
    Fault("unknown-host", "Superset at {url}: cannot resolve the host name nonexistent.invalid",
          url="http://nonexistent.invalid:8088", hint="check the host in superset.url"),
    # -- 5. the URL itself: refused at load with file:line (or when used, if it holds ${VAR}s) ----------
    Fault("no-scheme", f"pfill.yaml:{URL_LINE}: environment prod: superset.url 'bi.example.com' has no scheme",
          url="bi.example.com", shown=None, hint="https://bi.example.com"),
    Fault("no-scheme-with-port", f"pfill.yaml:{URL_LINE}: environment prod: superset.url 'bi.example.com:8088' "
          "has no scheme", url="bi.example.com:8088", shown=None),
    Fault("port-out-of-range", f"pfill.yaml:{URL_LINE}: environment prod: superset.url 'http://127.0.0.1:99999' "
          "has port 99999, out of range (1 to 65535)", url="http://127.0.0.1:99999", shown=None),
    Fault("port-not-a-number", f"pfill.yaml:{URL_LINE}: environment prod: superset.url 'http://127.0.0.1:80a' "
          "has port '80a', not a number", url="http://127.0.0.1:80a", shown=None),
    Fault("port-zero", "has port 0, out of range", url="http://127.0.0.1:0", shown=None),
    Fault("scheme-ftp", "superset.url 'ftp://bi.example.com' has scheme ftp://", url="ftp://bi.example.com",
          shown=None),
    Fault("port-from-variable", f"pfill.yaml:{URL_LINE}: environment prod: superset.url 'http://127.0.0.1:99999' "
          "has port 99999", url="http://127.0.0.1:${BAD_INPUT_PORT}", env={"BAD_INPUT_PORT": "99999"}, shown=None),
    Fault("password-in-bad-url", "superset.url 'http://deployer:***@127.0.0.1:99999' has port 99999",
          url="http://deployer:${BAD_INPUT_SUPERSET_PW}@127.0.0.1:99999", shown=None),
    # -- 6. timeouts: a number of seconds > 0 and <= 3600, in the file (file:line) or the variable ----------
    *(Fault(f"timeout-{name}", f"pfill.yaml:7: environment prod: superset.timeout {shown} {problem}",
            extra=f"      timeout: {value}\n", shown=None, hint="a number above 0 and at most 3600")
      for name, value, shown, problem in [
          ("zero", "0", "0", "is out of range"),
          ("negative", "-5", "-5", "is out of range"),
          ("over-an-hour", "3601", "3601", "is out of range"),
          ("infinite", ".inf", "inf", "is out of range"),
          ("nan", ".nan", "nan", "is out of range"),
          ("text", "soon", "'soon'", "is not a number"),
          ("with-unit", "30s", "'30s'", "is not a number"),
          ("quoted", "'30'", "'30'", "is not a number"),
          ("bool", "true", "True", "is not a number"),
          ("list", "[30]", "[30]", "is not a number"),
          ("empty", "", "None", "is not a number"),
      ]),
    Fault("connect-timeout-zero", "pfill.yaml:7: environment prod: superset.connect_timeout 0 is out of range",
          extra="      connect_timeout: 0\n", shown=None),
    *(Fault(f"timeout-variable-{name}", f"environment prod: {variable}={value!r} {problem}",
            env={variable: value}, shown=None, hint="a number of seconds above 0 and at most 3600")
      for name, variable, value, problem in [
          ("text", "PFILL_SUPERSET_TIMEOUT", "abc", "is not a number"),
          ("zero", "PFILL_SUPERSET_TIMEOUT", "0", "is out of range"),
          ("negative", "PFILL_SUPERSET_TIMEOUT", "-1", "is out of range"),
          ("huge", "PFILL_SUPERSET_TIMEOUT", "1e9", "is out of range"),
          ("nan", "PFILL_SUPERSET_TIMEOUT", "nan", "is out of range"),
          ("connect-text", "PFILL_SUPERSET_CONNECT_TIMEOUT", "5s", "is not a number"),
      ]),
]


@dataclass(frozen=True)
class Case:
    fault: Fault
    command: str

    @property
    def id(self) -> str:
        return f"{self.fault.id}-{self.command}"


CASES = [Case(fault, command) for fault in FAULTS for command in COMMANDS]


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@contextmanager
def _server(kind: str | None, cert_dir: Path) -> Iterator[int]:
    """The port of a local server playing the fault `kind` (None: a port nothing listens on)."""
    if kind is None:
        yield free_port()
        return
    if kind == "backlog":
        with backlogged_port() as port:
            yield port
        return
    if kind == "tls":
        with tls_server(cert_dir) as tls:
            yield tls.server_port
        return
    server = FaultyServer()
    if kind == "hang":
        server.hang.add("*")
    elif kind == "hang-get":
        server.hang.add("GET")
    elif kind == "html":
        server.html.add("*")
    elif kind == "html-get":
        server.html.add("GET")
    elif kind == "401":
        server.script[LOGIN] = [401] * 10
    elif kind == "https-port":
        server.script[LOGIN] = ["https-port"] * 10
    else:
        assert kind == "plain", kind
    with serving(server):
        yield server.server_port


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory in tmp_path, the environment cleared of PFILL_* settings, the password set."""
    work = tmp_path / "work"
    work.mkdir()
    for name in list(os.environ):
        if name.startswith(("PFILL_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BAD_INPUT_SUPERSET_PW", SECRET)
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_superset_input(case: Case, workspace: Path, tmp_path: Path, cert_dir: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    fault = case.fault
    with ExitStack() as stack:
        port = stack.enter_context(_server(fault.server, cert_dir))

        def fill(text: str) -> str:
            return text.replace("{port}", str(port))

        url = fill(fault.url)
        config = workspace / "pfill.yaml"
        config.write_text(YAML.format(url=url, extra=fault.extra, db=tmp_path / "acme.db"))
        for name, value in fault.env.items():
            monkeypatch.setenv(name, value)
        if fault.environment == "local":
            monkeypatch.setenv("PFILL_SUPERSET_PORT", str(port))
            monkeypatch.setenv("PFILL_SUPERSET_PASSWORD", SECRET)
        command = [part.replace("{out}", str(tmp_path / "out")) for part in COMMANDS[case.command]]
        args = ["--home", str(tmp_path / "home"), "--config", str(config), *command, "--env", fault.environment]

        start = time.perf_counter()
        result = CliRunner().invoke(cli, args)
        elapsed = time.perf_counter() - start

    output = result.stdout + result.stderr
    assert elapsed < LIMIT_SECONDS, f"took {elapsed:.1f}s: {output}"
    assert result.exit_code == 1, output
    assert "Traceback" not in output and "unexpected" not in output, output
    assert SECRET not in output, f"the password leaked: {output}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    error = errors[0].replace(str(workspace) + "/", "")
    assert f"environment {fault.environment}" in error, error
    shown = fault.shown.replace("{url}", fault.url) if fault.shown else None
    if shown:
        assert fill(shown) in error, error
    assert fill(fault.expect.replace("{url}", shown or fault.url)) in error, error
    assert len(error) <= 200, error
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert len(hints) <= 1 and all(len(line) <= 200 for line in hints), result.stderr
    if fault.hint:
        assert hints and fill(fault.hint) in hints[0], result.stderr


def test_the_corpus_covers_every_fault_class() -> None:
    kinds = {f.server for f in FAULTS}
    assert {None, "hang", "hang-get", "backlog", "html", "html-get", "401", "plain", "tls", "https-port"} <= kinds
    assert len(CASES) == len(FAULTS) * len(COMMANDS) >= 200
