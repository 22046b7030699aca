"""The report endpoints: one per report under /runs/{run_id}/, the log, and /runs/overview.

Each answers a page of JSON ({run_id, status, completed_at, is_latest, note, columns, rows, next}),
or with `Accept: text/csv` the whole report streamed. Rows carry the columns the query's yaml
declares, with their types; each report's page has its own model in the OpenAPI schema.

Paging: `next` (and the Link header) continues the same listing. A run's pages stay on that run: the
Link names the run itself, and `latest` with a cursor answers the cursor's run, even when a newer run
completed in between (its rows never change, so an offset is exact). The overview pages by keyset on
(created_at, run_id), newest first: runs added or purged between pages shift no page."""

import inspect
from datetime import date, datetime
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, create_model

from pfill.queries import catalog
from pfill.queries.catalog import Column

from .. import schema
from . import reports
from .problems import Problem

_TYPES: dict[str, Any] = {"string": str, "integer": int, "float": float, "decimal": float, "boolean": bool,
                          "date": date, "datetime": datetime}
LOG = schema.pfill_powerfill_log


class Note(BaseModel):
    status: str
    failure_step: str | None
    failure_message: str | None
    detail: str


class ColumnInfo(BaseModel):
    name: str
    type: str
    description: str


def _page_model(name: str, row: type[BaseModel], with_run: bool = True) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    if with_run:
        fields.update(run_id=(str, ...), status=(str, ...), completed_at=(datetime | None, None),
                      is_latest=(bool, Field(description="This is the tenant's latest Complete run")),
                      note=(Note | None, Field(None, description="Why a Failed or Cancelled run has no rows")))
    fields.update(columns=(list[ColumnInfo], ...), rows=(list[row], ...),  # type: ignore[valid-type]
                  next=(str | None, Field(None, description="Cursor of the next page; none on the last")))
    return create_model(name, **fields)


def _row_model(query: catalog.Query) -> type[BaseModel]:
    fields = {c.name: (_TYPES[c.type] | None, Field(None, description=c.description)) for c in query.columns}
    return create_model(f"{_camel(query.name)}Row", **fields)


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _json(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    # orjson: a page of 1,000 rows is written in a tenth of the stdlib's time (15-40 ms of a page's
    # 50-600 ms at 100k loans, bench_api part 4); datetimes go through json_default as before
    return Response(orjson.dumps(body, default=reports.json_default, option=orjson.OPT_PASSTHROUGH_DATETIME),
                    media_type="application/json", headers=headers)


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def _next_link(request: Request, cursor: str | None, run_id: str | None = None) -> dict[str, str]:
    """The Link header of the next page: this URL with the cursor, naming the run itself (not `latest`)."""
    if cursor is None:
        return {}
    url = request.url
    if run_id is not None and request.path_params.get("run_id") == "latest":
        url = url.replace(path=url.path.replace("/runs/latest/", f"/runs/{run_id}/", 1))
    return {"Link": f'<{url.include_query_params(cursor=cursor)}>; rel="next"'}


def _pinned(run_id: str, cursor: str | None, report: str) -> str:
    """`latest` with a cursor answers the run the cursor was given out for (a page of one listing)."""
    if run_id == "latest" and cursor:
        return reports.cursor_run(cursor, report) or run_id
    return run_id


def report_router(engine_of: Any, tenant_dependency: Any) -> APIRouter:
    """`engine_of(request)` gives the engine database; `tenant_dependency` the token's tenant."""
    router = APIRouter(prefix="/api/powerfill", tags=["reports"])
    Tenant = Annotated[str, Depends(tenant_dependency)]
    Limit = Annotated[int, Query(ge=1, le=reports.MAX_PAGE, description="Rows per page")]
    Cursor = Annotated[str | None, Query(max_length=400, description="`next` of the previous page")]
    queries = reports.queries()

    overview = queries["run_overview"]
    overview_model = _page_model("RunOverviewPage", _row_model(overview), with_run=False)

    @router.get("/runs/overview", response_model=None, summary="Run overview (the hub): the tenant's runs",
                responses={200: {"model": overview_model, "content": {"text/csv": {}}}})
    def run_overview(tenant: Tenant, request: Request, limit: Limit = reports.DEFAULT_PAGE,
                     cursor: Cursor = None) -> Response:
        _only_known(request, ())
        engine = engine_of(request)
        params = {"tenant": tenant}
        if _wants_csv(request):
            return _csv(engine, overview, params, {}, run_bound=False, name="run_overview")
        # keyset paging (newest first): runs added or purged between pages shift no page
        after = reports.decode_after(cursor, overview, tenant) if cursor else None
        rows, more = reports.fetch_page(engine, overview, params, {}, limit, 0, run_bound=False, after=after)
        next_cursor = reports.encode_cursor(overview.name, tenant, reports.key_of(overview, rows[-1])) if more else None
        return _json({"columns": _columns(overview), "rows": rows, "next": next_cursor},
                     _next_link(request, next_cursor))

    for report in reports.REPORTS:
        _add_report(router, report, queries[report.query], engine_of, Tenant, Limit, Cursor)

    log_columns = [Column(c, t, d) for c, t, d in (
        ("log_id", "integer", "Order of the entry"), ("logged_at", "datetime", "When (UTC)"),
        ("step", "string", "Step, or run for lifecycle events"), ("level", "string", "INFO, WARN, ERROR"),
        ("event", "string", "What happened"), ("message", "string", "Text"),
        ("details", "string", "Details as JSON text"))]
    log_row = create_model("LogRow", **{c.name: (_TYPES[c.type] | None, Field(None, description=c.description))
                                        for c in log_columns})
    log_model = _page_model("RunLogPage", log_row)

    @router.get("/runs/{run_id}/log", response_model=None, summary="The run's log (kept for every run)",
                responses={200: {"model": log_model}, 404: {}, 409: {}})
    def run_log(tenant: Tenant, run_id: str, request: Request, limit: Limit = reports.DEFAULT_PAGE,
                cursor: Cursor = None) -> Response:
        _only_known(request, ())
        engine = engine_of(request)
        view = reports.resolve(engine, tenant, _pinned(run_id, cursor, "log"), kept=True)
        real_id = view.run["run_id"]
        offset = reports.decode_cursor(cursor, "log", real_id) if cursor else 0
        query = (sa.select(LOG.c.log_id, LOG.c.logged_at, LOG.c.step, LOG.c.level, LOG.c.event, LOG.c.message,
                           LOG.c.details_json).where(LOG.c.run_id == real_id, LOG.c.tenant_id == tenant)
                 .order_by(LOG.c.log_id).limit(limit + 1).offset(offset))
        with engine.connect() as conn:
            found = conn.execute(query).all()
        rows = [{"log_id": r[0], "logged_at": reports.as_utc_text(r[1]), "step": r[2], "level": r[3], "event": r[4],
                 "message": r[5], "details": r[6]} for r in found[:limit]]
        next_cursor = reports.encode_cursor("log", real_id, offset + limit) if len(found) > limit else None
        body = {**view.header(), "note": None, "columns": [c.__dict__ for c in log_columns], "rows": rows,
                "next": next_cursor}
        return _json(body, _next_link(request, next_cursor, real_id))

    return router


def _only_known(request: Request, filters: Any) -> None:
    """A query parameter the endpoint does not take is refused, not ignored: `?row_type=` on a report
    without that column would otherwise answer every row as if it were filtered."""
    for name in request.query_params:
        if name not in ("limit", "cursor") and name not in filters:
            known = ", ".join(filters) or "none"
            raise Problem(400, f"{name}: not a filter of this endpoint (its filters: {known})", field=name)


def _columns(query: catalog.Query) -> list[dict[str, str]]:
    return [{"name": c.name, "type": c.type, "description": c.description} for c in query.columns]


def _csv(engine: sa.Engine, query: catalog.Query, params: dict[str, Any], filters: dict[str, Any], *,
         run_bound: bool, name: str) -> StreamingResponse:
    chunks = reports.stream_csv(engine, query, params, filters, run_bound=run_bound)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _add_report(router: APIRouter, report: reports.Report, query: catalog.Query, engine_of: Any, Tenant: Any,
                Limit: Any, Cursor: Any) -> None:
    filters = {api: column for api, column in reports.FILTERS.items() if column in query.column_names}
    model = _page_model(f"{_camel(query.name)}Page", _row_model(query))

    def endpoint(tenant: str, run_id: str, request: Request, limit: int = reports.DEFAULT_PAGE,
                 cursor: str | None = None, **given: str | None) -> Response:
        _only_known(request, filters)
        engine = engine_of(request)
        view = reports.resolve(engine, tenant, _pinned(run_id, cursor, query.name), kept=report.kept)
        real_id = view.run["run_id"]
        chosen = {filters[api]: value for api, value in given.items() if value is not None}
        params = {"tenant": tenant, "run_id": real_id}
        if _wants_csv(request):
            if view.note:
                return _csv_empty(query)
            return _csv(engine, query, params, chosen, run_bound=True, name=f"{query.name}-{real_id}")
        offset = reports.decode_cursor(cursor, query.name, real_id) if cursor else 0
        rows, more = ([], False) if view.note else reports.fetch_page(engine, query, params, chosen, limit, offset,
                                                                        run_bound=True)
        next_cursor = reports.encode_cursor(query.name, real_id, offset + limit) if more else None
        body = {**view.header(), "columns": _columns(query), "rows": rows, "next": next_cursor}
        return _json(body, _next_link(request, next_cursor, real_id))

    P = inspect.Parameter
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        P("tenant", P.KEYWORD_ONLY, annotation=Tenant),
        P("run_id", P.KEYWORD_ONLY, annotation=str),
        P("request", P.KEYWORD_ONLY, annotation=Request),
        P("limit", P.KEYWORD_ONLY, annotation=Limit, default=reports.DEFAULT_PAGE),
        P("cursor", P.KEYWORD_ONLY, annotation=Cursor, default=None),
        *[P(api, P.KEYWORD_ONLY, default=None,
            annotation=Annotated[str | None, Query(max_length=64, description=f"Only rows of this {column}")])
          for api, column in filters.items()],
    ])
    router.add_api_route(f"/runs/{{run_id}}/{report.path}", endpoint, methods=["GET"], response_model=None,
                         summary=report.summary, name=report.query,
                         description=f"{query.description}\n\n`run_id` may be `latest`. Filters: "
                                     + (", ".join(f"`{a}` ({c})" for a, c in filters.items()) or "none") + ".",
                         responses={200: {"model": model, "content": {"text/csv": {}}}, 404: {}, 409: {}, 410: {}})


def _csv_empty(query: catalog.Query) -> Response:
    return Response(",".join(query.column_names) + "\n", media_type="text/csv; charset=utf-8")

