"""Fuzzing the run service from its own OpenAPI schema (issue #11).

schemathesis reads /openapi.json from a real `pfill serve` (the `server` fixture, over HTTP, with a
valid bearer token) and sends every operation generated requests: valid and invalid bodies, query
strings and path parameters (its coverage and fuzzing phases), the same without or with a wrong token,
and sequences that follow the Location of a submitted run (its stateful phase). No request may get a
5xx, and every response must be one the schema documents: its status code, content type, headers and
body (against the schema for that status). fuzz_checks.py adds the service's own rule: every error is
an application/problem+json document whose `status` is the response's.

Its command line, not its pytest plugin: `schemathesis.pytest.from_fixture` does not run under pytest
9.2 (it sets a node attribute, `_nodeid`, that pytest no longer has). The command prints each failure
with a curl line that reproduces it, and the seed.

Checks left out: positive_data_acceptance, which wants every schema-valid request accepted; this API
refuses some by what is in the database, as documented (loan ids the tenant does not have and cursors
it did not give out are 400, a second active run of a tenant 409), and a schema cannot say which.

POST /run starts real runs on the small demo book (the fixture's runs wait 1 s in cash_grid, so most
submissions meet an active run and answer 409, which is documented).

The fuzz runs on SQLite (16 operations, about 1,000 requests: 55 s on the shared 2-core machine at load
8); the inputs it does not generate (a NUL in a path or a query string, forged cursors: 500s on
PostgreSQL once) are checked on both databases.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.engine.service.server import Server

REPO = Path(__file__).resolve().parents[3]
MAX_EXAMPLES = 20  # per operation and phase: about 1,000 requests in all
REQUEST_TIMEOUT = 10  # seconds: a request that takes longer fails the run
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
          "response_schema_conformance", "negative_data_rejection", "missing_required_header", "unsupported_method",
          "allow_header_conformance", "use_after_free", "ensure_resource_availability", "ignored_auth",
          "problem_documents")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_response_is_documented(server: Server, tmp_path: Path) -> None:
    root = f"http://127.0.0.1:{server.port}"
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{root}/openapi.json",
               "--header", f"Authorization: Bearer {server.token()}", "--checks", ",".join(CHECKS),
               "--mode", "all", "--max-examples", str(MAX_EXAMPLES), "--request-timeout", str(REQUEST_TIMEOUT),
               "--generation-database", "none", "--workers", "2", "--no-color", "--warnings", "off"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.engine.service.fuzz_checks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    output = done.stdout + done.stderr
    print(f"schemathesis: {time.monotonic() - started:.1f}s\n{output[-3000:]}")
    assert done.returncode == 0, f"schemathesis found problems (exit {done.returncode}):\n{output[-20000:]}" \
                                 f"\n--- server log ---\n{server.log()}"
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated[1]) >= 100, f"schemathesis sent too few requests:\n{output[-3000:]}"


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _cursor(created: object, run_id: object) -> str:
    return _b64([created, run_id])


# Inputs the generator does not make (it leaves NUL out of path parameters and cannot forge a cursor);
# PostgreSQL refuses a NUL in a query, which made these a 500.
ODD_RUN_IDS = ["x" * 5000, "é" * 40, "00000000-0000-0000-0000-000000000000"]
NUL_PATHS = ["/runs/a%00b", "/runs/%00/cancel", "/runs/a%00b/guide", "/runs/latest/recap?trade=a%00b",
             "/runs?cursor=%00", "/runs/overview?limit=1%00"]
ODD_CURSORS = [_cursor("2025-01-01T00:00:00", "a\x00b"), _cursor("2025-01-01T00:00:00", "x" * 100),
               _cursor("2025-01-01T00:00:00+05:00", "x"), _cursor("2025-01-01T00:00:00", 7),
               _cursor(None, "x"), "%%%", "bm90IGpzb24"]


def test_odd_run_ids_and_cursors_are_4xx_problems(server: Server) -> None:
    """Inputs no request of the fuzz carries are 404 (no such run) and 400 (not a cursor), as problems."""
    with server.client() as api:
        for run_id in ODD_RUN_IDS:
            path = f"/runs/{quote(run_id, safe='')}"
            for answer in (api.get(path), api.post(f"{path}/cancel")):
                assert answer.status_code == 404, (run_id, answer.status_code, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["status"] == 404
        for path in NUL_PATHS:
            method = "POST" if path.endswith("/cancel") else "GET"
            answer = api.request(method, f"{server.url}{path}")
            assert answer.status_code == 400, (path, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/problem+json" and "NUL" in answer.json()["detail"]
        # a report's cursor names its run ([report, run id, position]); `latest` with one reads that run
        answer = api.get("/runs/latest/recap", params={"cursor": _b64(["recap", "a\x00b", 0])})
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json", answer.text
        # a keyset cursor of the overview: [report, tenant, key values]
        overview_cursor = _b64(["run_overview", "demo", ["2025-01-01T00:00:00Z", "a\x00b"]])
        answer = api.get("/runs/overview", params={"cursor": overview_cursor})
        assert answer.status_code == 400 and answer.json()["field"] == "cursor", answer.text
        for cursor in ODD_CURSORS:
            answer = api.get("/runs", params={"cursor": cursor})
            assert answer.status_code == 400, (cursor, answer.status_code, answer.text)
            assert answer.json()["field"] == "cursor"
