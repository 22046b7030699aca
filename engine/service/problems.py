"""Errors as RFC 9457 problem documents (`application/problem+json`): type, title, status, detail,
plus members that name what went wrong (`field`, `active_run`, ...)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raised by a route; answered as a problem document."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **members: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.members = status, detail, headers or {}, members


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None, **members: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail,
            **{k: v for k, v in members.items() if v is not None}}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)
