"""The run service's own check for the schemathesis fuzz (loaded by it through SCHEMATHESIS_HOOKS; see
test_fuzz.py): every error is a problem document (RFC 9457) whose `status` is the response's."""

from __future__ import annotations

import json
from typing import Any

import schemathesis

PROBLEM_TYPE = "application/problem+json"


@schemathesis.check
def problem_documents(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """A 4xx or 5xx is application/problem+json with type, title, status (= the response's) and detail,
    whether the schema documents that status for the operation or not (405, 404 of unknown paths)."""
    if response.status_code < 400:
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert media_type == PROBLEM_TYPE, f"a {response.status_code} answered as {media_type!r}, not {PROBLEM_TYPE}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"a {response.status_code} whose body is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict), f"a problem document that is not an object: {body!r}"
    missing = sorted({"type", "title", "status", "detail"} - body.keys())
    assert not missing, f"a problem document without {missing}: {body!r}"
    assert body["status"] == response.status_code, f"problem status {body['status']!r} on a {response.status_code}"
    return True
