"""The run service's FastAPI application, under /api/powerfill (the original system's paths).

    GET  /health                    liveness (no token)
    GET  /status                    module, version, schema version, executor, queue depth/capacity
    POST /run                       202 + Location | 400 | 409 (BR-8) | 503 + Retry-After (queue full)
    GET  /runs?limit=&cursor=&status=   newest first, keyset cursor, `next` and a Link header
    GET  /runs/{run_id}             the run document | 404 (unknown, or another tenant's)
    POST /runs/{run_id}/cancel      202 while active | 409 ended | 404
    POST /candidates/preview        eligible trades and prices for given loans, without a run
    GET  /runs/overview, /runs/{run_id}/<report>, /runs/{run_id}/log   the reports (report_api.py)

Every request but /health carries `Authorization: Bearer <token>`; the token names the tenant.
Errors are application/problem+json naming the field or the run at fault.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

import pfill
from pfill.errors import PfillError, UsageError

from .. import db, runs, schema
from ..inputs import InputError
from ..pipeline import RunOptions
from . import models, reports
from .executors import Executor
from .preview import preview_candidates
from .problems import MEDIA_TYPE, Problem, problem_response
from .queue import QueueFull, RunQueue
from .report_api import report_router
from .tokens import Tokens

PREFIX = "/api/powerfill"
RETRY_AFTER_SECONDS = 5
DEFAULT_PAGE, MAX_PAGE = 50, 500
RUN_ID_LENGTH = schema.pfill_run_history.c.run_id.type.length
log = logging.getLogger("pfill.service")


@dataclass
class Service:
    engine: sa.Engine
    tokens: Tokens
    queue: RunQueue
    executor: Executor


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.executor.start()
        yield
        service.executor.stop()

    app = FastAPI(title="PowerFill run service", version=pfill.__version__, lifespan=lifespan,
                  description="Submit, watch and cancel PowerFill runs; one bearer token per tenant.",
                  responses={400: _PROBLEM, 401: _PROBLEM})
    app.state.service = service
    # the reports first: /runs/overview must not be taken for a run id
    app.include_router(report_router(lambda request: request.app.state.service.engine, _tenant_of))
    app.include_router(_routes(service))
    _errors(app)
    app.add_middleware(_RefuseNul)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class _RefuseNul:
    """A NUL (%00) in the path or the query string is a 400 problem before any route: no run id, filter
    or cursor of this API holds one, and PostgreSQL refuses a NUL in a query (it was a 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]
                                        or b"\x00" in scope["query_string"]):
            refused = problem_response(400, "a NUL character (%00) is not allowed in the path or the query string")
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


_PROBLEM: dict[str, Any] = {"description": "A problem document (RFC 9457)",
                            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, less what this service never answers: invalid requests are 400 problem
    documents (see _errors), not FastAPI's 422 HTTPValidationError; plus the Problem schema."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                               description=app.description, routes=app.routes)
        for operation in (op for path in document["paths"].values() for op in path.values()):
            operation["responses"].pop("422", None)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Problem"] = models.ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        app.openapi_schema = document
    return app.openapi_schema


_bearer = HTTPBearer(auto_error=False, description="One token per tenant")


async def _tenant_of(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The tenant the request's bearer token belongs to, else 401. Async: it does no I/O (a few
    constant-time compares), and a sync dependency would cost every request a trip through the threadpool."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    tenant = request.app.state.service.tokens.tenant_of(credentials.credentials)
    if tenant is None:
        raise Problem(401, "the bearer token is not valid",
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return tenant


Tenant = Annotated[str, Depends(_tenant_of)]


def _routes(service: Service) -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    def owned_run(run_id: str, tenant: str) -> dict[str, Any]:
        run = None
        if _could_be_run_id(run_id):  # PostgreSQL refuses a NUL in a query (a 500 before this check)
            with suppress(runs.RunNotFound):
                run = runs.get_run(service.engine, run_id)
        if run is None or run["tenant_id"] != tenant:  # another tenant's run is not there for this one
            raise Problem(404, f"no run {run_id}", run_id=run_id)
        return run

    @router.get("/health", response_model=models.Health, tags=["service"])
    async def health() -> models.Health:  # no I/O: answered on the event loop, without the threadpool
        return models.Health()

    @router.get("/status", response_model=models.ServiceStatus, tags=["service"])
    def status(_tenant: Tenant) -> models.ServiceStatus:
        return models.ServiceStatus(version=pfill.__version__, schema_version=db.schema_state(service.engine).current,
                                    executor=service.executor.name, queue_depth=service.queue.depth(),
                                    queue_capacity=service.queue.capacity)

    @router.post("/run", status_code=202, response_model=models.RunAccepted, tags=["runs"],
                 responses={409: _PROBLEM, 503: _PROBLEM})
    def submit(tenant: Tenant, request: Request, response: Response,
               body: Annotated[models.RunRequest | None, Body()] = None) -> models.RunAccepted:
        body = body or models.RunRequest()
        options = RunOptions(tenant=tenant, scoring=body.scoring, as_of=body.as_of, loan_ids=body.loan_ids)
        if body.strategy is not None:
            options.strategy = body.strategy
        if body.keep_runs is not None:
            options.keep_runs = body.keep_runs
        try:
            run_id = service.queue.submit(options, requested_by=_requester(tenant, request))
        except runs.ActiveRunConflict as exc:
            active = exc.active or {}
            raise Problem(409, str(exc), active_run=active.get("run_id"), active_status=active.get("status"),
                          active_run_url=f"{PREFIX}/runs/{active['run_id']}" if active else None) from None
        except QueueFull as exc:
            raise Problem(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                          queue_capacity=exc.capacity) from None
        except (UsageError, InputError) as exc:
            raise Problem(400, str(exc), field=_field_of(str(exc))) from None
        service.executor.notify(run_id)
        response.headers["Location"] = f"{PREFIX}/runs/{run_id}"
        return models.RunAccepted(run_id=run_id)

    @router.get("/runs", response_model=models.RunList, tags=["runs"])
    def list_runs(tenant: Tenant, request: Request, response: Response,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                  cursor: Annotated[str | None, Query(max_length=200)] = None,
                  status: Annotated[models.RunStatus | None, Query(description="Only runs in this status")] = None,
                  ) -> dict[str, Any]:
        after = _decode_cursor(cursor) if cursor else None
        page = runs.page_runs(service.engine, tenant, limit + 1, after=after, status=status)
        more, page = len(page) > limit, page[:limit]
        next_cursor = _encode_cursor(page[-1]) if more else None
        if next_cursor:
            url = request.url.include_query_params(cursor=next_cursor, limit=limit)
            response.headers["Link"] = f'<{url}>; rel="next"'
        return {"runs": [runs.run_document(r) for r in page], "next": next_cursor}

    @router.get("/runs/{run_id}", response_model=models.RunDocument, tags=["runs"], responses={404: _PROBLEM})
    def get_run(tenant: Tenant, run_id: str) -> Response:
        # the document is validated and serialised here, in the endpoint's worker thread, by the same
        # model; returned as a Response, FastAPI does not validate it again in a second threadpool trip
        # (the path pollers hit; response_model still gives the OpenAPI schema)
        return _json(_RUN_DOCUMENT, runs.run_document(owned_run(run_id, tenant)))

    @router.post("/runs/{run_id}/cancel", status_code=202, response_model=models.RunDocument, tags=["runs"],
                 responses={404: _PROBLEM, 409: _PROBLEM})
    def cancel(tenant: Tenant, run_id: str) -> dict[str, Any]:
        run = owned_run(run_id, tenant)
        if run["status"] not in schema.ACTIVE_STATUSES:
            raise Problem(409, f"run {run_id} has already ended ({run['status']})", run_id=run_id,
                          run_status=run["status"])
        try:
            return runs.run_document(runs.request_cancel(service.engine, run_id))
        except PfillError as exc:  # it ended between the read and the cancel
            raise Problem(409, str(exc), run_id=run_id) from None

    @router.post("/candidates/preview", response_model=models.CandidatePreview, tags=["candidates"])
    def candidates(tenant: Tenant, body: models.PreviewRequest) -> dict[str, Any]:
        try:
            return preview_candidates(service.engine, tenant, body.loan_ids, body.scoring, body.as_of)
        except (UsageError, InputError) as exc:
            raise Problem(400, str(exc), field=_field_of(str(exc))) from None

    return router


_RUN_DOCUMENT = TypeAdapter(models.RunDocument)


def _json(adapter: TypeAdapter[Any], content: Any) -> Response:
    """`content` validated and serialised by `adapter`, as FastAPI answers a response_model."""
    return Response(adapter.dump_json(adapter.validate_python(content)), media_type="application/json")


def _requester(tenant: str, request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    return f"api token of {tenant} from {client}"[:128]


def _field_of(message: str) -> str | None:
    """The option an engine refusal names (`loan_ids: ...`, `strategy '...' is not ...`)."""
    first = message.split(":", 1)[0].split(" ", 1)[0]
    return first if first in models.RunRequest.model_fields else None


def _encode_cursor(run: dict[str, Any]) -> str:
    return reports.pack_cursor([run["created_at"].isoformat(), run["run_id"]])


def _could_be_run_id(run_id: str) -> bool:
    return 0 < len(run_id) <= RUN_ID_LENGTH and "\x00" not in run_id


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, run_id = reports.unpack_cursor(cursor)
        after = datetime.fromisoformat(created)
    except (ValueError, TypeError):
        after = run_id = None
    # only what _encode_cursor gives out: a naive UTC timestamp and a run id (no NUL, as PostgreSQL needs)
    if after is None or after.tzinfo is not None or not isinstance(run_id, str) or not _could_be_run_id(run_id):
        raise Problem(400, "cursor: not a cursor this service gave out", field="cursor")
    return after, run_id


def _errors(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(_request: Request, exc: Problem) -> Response:
        return problem_response(exc.status, exc.detail, exc.headers, **exc.members)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": ".".join(str(p) for p in e["loc"][1:]) or e["loc"][0], "message": e["msg"]}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return problem_response(400, f"{first['field']}: {first['message']}"[:300], field=first["field"],
                                errors=errors[:20])

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(PfillError)
    async def on_pfill(_request: Request, exc: PfillError) -> Response:
        log.warning("request failed: %s", exc)
        return problem_response(503, str(exc).splitlines()[0][:300], hint=exc.hint)

    @app.exception_handler(Exception)
    async def on_bug(_request: Request, exc: Exception) -> Response:
        log.exception("internal error")
        return problem_response(500, "internal error; the server log has the details")
