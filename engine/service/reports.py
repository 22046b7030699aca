"""The reports over HTTP: the same templated queries as the dashboards, with the run bound.

Each report renders its query from `queries/` for the engine database's dialect with `:tenant` and
`:run_id` as bind parameters (never spliced into the SQL), wraps it with sqlglot for the filters,
the key order and a page (LIMIT/OFFSET, or OFFSET/FETCH on SQL Server), and runs it.

Freshness, the same for every report (`resolve`):
- unknown run, another tenant's, or `latest` with no Complete run: 404;
- still active: 409 with its status;
- retention removed its output: 410, naming the newest run that has output (kept tables still answer);
- Failed or Cancelled: 200 with no rows in the user-facing reports and a note (status, failure step
  and message); the kept tables (log, synthetic trades) return theirs;
- Complete: 200 with rows.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlglot import exp

from pfill.dialects import wrap
from pfill.queries.catalog import Query, load_queries

from .. import runs, schema
from .problems import Problem

DEFAULT_PAGE, MAX_PAGE = 1_000, 10_000
CSV_CHUNK_ROWS = 1_000  # rows per chunk of a CSV export
# API filter -> the report column it narrows (a report takes the filters whose column it has)
FILTERS = {"trade": "trade_id", "pool": "pool_id", "pool_action": "pool_action", "row_type": "row_type",
           "loan": "loan_id"}


@dataclass(frozen=True)
class Report:
    path: str  # the endpoint under /runs/{run_id}/
    query: str  # the query in queries/
    summary: str
    kept: bool = False  # read from a table BR-9 keeps (the log): rows even for Failed/Cancelled runs


REPORTS = (
    Report("guide", "allocation_guide", "Allocation guide: allocations, and kickouts (row_type)"),
    Report("recap", "trade_recap", "Trade recap: one row per trade with its fulfilment counters"),
    Report("switching", "switching", "Switching: loans moving from one pool into another"),
    Report("candidates", "pool_candidates", "Pool candidates: every eligible loan x trade option of the run"),
    Report("existing-disposition", "existing_disposition", "Existing disposition: loans already in pools"),
    Report("pooling-guide", "pooling_guide", "Pooling guide: per pool, count and UPB of each pool action"),
    Report("cash-slotting", "cash_trade_slotting", "Cash trade slotting: the cash-window cells of unplaced loans"),
)
_queries: dict[str, Query] | None = None


def queries() -> dict[str, Query]:
    global _queries
    if _queries is None:
        _queries = load_queries()
    return _queries


# -- which run, and may it answer ------------------------------------------------------------------

@dataclass
class RunView:
    run: dict[str, Any]
    is_latest: bool
    note: dict[str, Any] | None  # Failed/Cancelled: why there are no rows

    def header(self) -> dict[str, Any]:
        return {"run_id": self.run["run_id"], "status": self.run["status"],
                "completed_at": as_utc_text(self.run["completed_at"]),
                "is_latest": self.is_latest, "note": self.note}


def resolve(engine: sa.Engine, tenant: str, run_id: str, kept: bool = False) -> RunView:
    """The run a report answers for, or the Problem its freshness calls for."""
    latest = runs.latest_complete_run(engine, tenant)
    if run_id == "latest":
        if latest is None:
            raise Problem(404, f"tenant {tenant} has no Complete run yet", run_id=run_id)
        run = latest
    else:
        try:
            run = runs.get_run(engine, run_id)
        except runs.RunNotFound:
            run = None
        if run is None or run["tenant_id"] != tenant:
            raise Problem(404, f"no run {run_id}", run_id=run_id)
    status = run["status"]
    if status in schema.ACTIVE_STATUSES:
        raise Problem(409, f"run {run['run_id']} is still {status}: its reports are written when it completes",
                      run_id=run["run_id"], run_status=status)
    if run.get("output_removed_at") is not None and not kept:
        newest = latest["run_id"] if latest else None
        removed = f"{run['output_removed_at']:%Y-%m-%d %H:%M:%S}"
        raise Problem(410, f"run {run['run_id']}'s output was removed by retention at {removed} UTC"
                      + (f"; the newest run with output is {newest}" if newest else ""),
                      run_id=run["run_id"], newest_run=newest,
                      newest_run_url=f"/api/powerfill/runs/{newest}" if newest else None)
    note = None
    if status in ("Failed", "Cancelled"):
        note = {"status": status, "failure_step": run["failure_step"], "failure_message": run["failure_message"],
                "detail": f"a {status} run keeps no user-facing output (BR-9); its log is kept"}
    return RunView(run, latest is not None and latest["run_id"] == run["run_id"], note)


# -- SQL --------------------------------------------------------------------------------------------

def report_sql(query: Query, dialect: str, *, tenant: str, run_id: str | None, filters: dict[str, Any],
               page: tuple[int, int] | None, after: bool = False) -> str:
    """The query with the run and tenant bound, the filters (`:f_<column>`), the key order and a page
    (limit, offset): SQL for sa.text with every value a bind parameter. The SQL has `:tenant` and
    `:run_id` (run_id None: the query is not run-bound); their values still reach the template
    (`tenant.value`), which may write them into text, e.g. the overview's links to the dashboards.
    after=True: only the rows after the one whose key is `:k_<column>`... (keyset paging).

    Built once per distinct arguments (the filters' columns, not their values, which are bound):
    sqlglot's parse, wrap and generate cost 5-70 ms a page (more than many reports' queries at 100k
    loans, bench_api part 4), and the same page of the same run is asked for again and again."""
    return _page_sql(_Same(query), dialect, tenant, run_id, tuple(filters), page, after)


class _Same:
    """A query as a cache key, by identity (a Query is a mutable dataclass, so not hashable; the
    service loads each once). The cache holds the key, so the query, so its id stays its own."""

    __slots__ = ("query",)

    def __init__(self, query: Query) -> None:
        self.query = query

    def __hash__(self) -> int:
        return id(self.query)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.query is self.query


@functools.lru_cache(maxsize=1024)
def _page_sql(key: _Same, dialect: str, tenant: str, run_id: str | None, filters: tuple[str, ...],
              page: tuple[int, int] | None, after: bool) -> str:
    query = key.query
    inner = query.render(dialect, tenant=tenant, run_id=run_id, bind=True)

    def outer(sub: exp.Subquery) -> exp.Expression:
        select = exp.select("*").from_(sub)
        for column in filters:
            select = select.where(exp.column(column, table="q").eq(exp.Placeholder(this=f"f_{column}")))
        if after:
            select = select.where(_after_key(query))
        for key in query.key:
            select = select.order_by(exp.Ordered(this=exp.column(key.removeprefix("-"), table="q"),
                                                 desc=key.startswith("-")))
        if page is not None:
            select = select.limit(page[0]).offset(page[1])
        return select

    return _text_binds(wrap(inner, dialect, outer))


def _after_key(query: Query) -> exp.Expression:
    """Rows after the key (:k_<column>, ...) in the key order: (a > :k_a) OR (a = :k_a AND b > :k_b)...,
    `<` for a descending column. For keys that are never NULL (the overview's created_at, run_id)."""
    terms: list[exp.Expression] = []
    for index, item in enumerate(query.key):
        equal = [exp.column(k.removeprefix("-"), table="q").eq(exp.Placeholder(this=f"k_{k.removeprefix('-')}"))
                 for k in query.key[:index]]
        name = item.removeprefix("-")
        column, value = exp.column(name, table="q"), exp.Placeholder(this=f"k_{name}")
        beyond = (exp.LT if item.startswith("-") else exp.GT)(this=column, expression=value)
        terms.append(exp.and_(*equal, beyond))
    return exp.or_(*terms)


_PYFORMAT = re.compile(r"%\((\w+)\)s")  # sqlglot writes PostgreSQL placeholders as %(name)s
_OUR_BINDS = re.compile(r"\\:(tenant|run_id|f_\w+|k_\w+)\b")


def _text_binds(sql: str) -> str:
    """Placeholders as sa.text's `:name`; every other colon literal text."""
    sql = _PYFORMAT.sub(r":\1", sql).replace(":", "\\:")
    return _OUR_BINDS.sub(r":\1", sql)


# -- rows -------------------------------------------------------------------------------------------

def as_utc_text(value: Any) -> str | None:
    """A stored (naive UTC) timestamp as RFC 3339 text; SQLite hands it over as text."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=None).isoformat() + "Z"


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": str, "integer": int, "float": float, "decimal": float, "boolean": bool,
    "date": lambda v: v[:10] if isinstance(v, str) else v.isoformat(),
    "datetime": as_utc_text,
}


def converters(query: Query) -> list[Callable[[Any], Any]]:
    """Per declared column: its value as the declared JSON type (SQLite gives 0/1 and text dates,
    PostgreSQL Decimal for ROUND(NUMERIC))."""
    return [_CONVERT[c.type] for c in query.columns]


def as_records(query: Query, rows: list[sa.Row[Any]]) -> list[dict[str, Any]]:
    names, convert = query.column_names, converters(query)
    return [{n: (None if v is None else f(v)) for n, f, v in zip(names, convert, row, strict=True)} for row in rows]


def encode_cursor(report: str, owner: str, position: int | list[Any]) -> str:
    """An opaque cursor: the report, its run (the tenant for the overview), and where the next page
    starts: an offset, or the key of the last row given (keyset paging)."""
    return pack_cursor([report, owner, position])


def pack_cursor(value: Any) -> str:
    """`value` as an opaque cursor (URL-safe base64 of its JSON); unpack_cursor reads it back."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def unpack_cursor(cursor: str) -> Any:
    """What pack_cursor packed, or None for text that is not a cursor."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None


def _decode(cursor: str) -> list[Any]:
    decoded = unpack_cursor(cursor)
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise Problem(400, "cursor: not a cursor this service gave out", field="cursor")
    return decoded


def _not_ours(report: str, owner: str) -> Problem:
    return Problem(400, f"cursor: it belongs to another report or run than {report} of {owner}", field="cursor")


def decode_cursor(cursor: str, report: str, run_id: str) -> int:
    """The offset an offset cursor of this report and run holds (else 400)."""
    got_report, got_run, offset = _decode(cursor)
    if got_report != report or got_run != run_id or type(offset) is not int or offset < 0:
        raise _not_ours(report, run_id)
    return offset


def cursor_run(cursor: str, report: str) -> str | None:
    """The run a cursor of this report was given out for; None when it is not one (decode_cursor says
    why). `latest` with a cursor answers that run: the pages of one listing stay on one run even when
    a newer run completes between them."""
    try:
        got_report, got_run, _ = _decode(cursor)
    except Problem:
        return None
    return got_run if got_report == report and isinstance(got_run, str) else None


def decode_after(cursor: str, query: Query, owner: str) -> dict[str, Any]:
    """The key (column -> value, timestamps as datetimes) a keyset cursor of this query holds (else 400)."""
    got_report, got_owner, values = _decode(cursor)
    names = [k.removeprefix("-") for k in query.key]
    if got_report != query.name or got_owner != owner or not isinstance(values, list) or len(values) != len(names):
        raise _not_ours(query.name, owner)
    types = {c.name: c.type for c in query.columns}
    after: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or "\x00" in str(value):
            raise _not_ours(query.name, owner)  # a NUL: PostgreSQL refuses it in a query (it was a 500)
        if types[name] == "datetime":
            try:
                value = datetime.fromisoformat(str(value).removesuffix("Z"))
            except ValueError:
                raise _not_ours(query.name, owner) from None
        after[name] = value
    return after


def key_of(query: Query, record: dict[str, Any]) -> list[Any]:
    """The key of a row (as JSON types): what a keyset cursor holds."""
    return [record[k.removeprefix("-")] for k in query.key]


def fetch_page(engine: sa.Engine, query: Query, params: dict[str, Any], filters: dict[str, Any],
               limit: int, offset: int, run_bound: bool,
               after: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One page of the report's rows (as declared JSON types), and whether more follow; `after`: the
    rows after that key (keyset paging, from decode_after) instead of an offset."""
    sql = report_sql(query, engine.dialect.name, tenant=params["tenant"],
                     run_id=params["run_id"] if run_bound else None, filters=filters, page=(limit + 1, offset),
                     after=after is not None)
    binds = {**params, **{f"f_{c}": v for c, v in filters.items()}, **{f"k_{c}": v for c, v in (after or {}).items()}}
    statement = sa.text(sql)
    if after:  # a timestamp bound as the column stores it (SQLite: text in SQLAlchemy's format)
        types = {c.name: c.type for c in query.columns}
        statement = statement.bindparams(*[sa.bindparam(f"k_{c}", type_=sa.DateTime()) for c in after
                                           if types[c] == "datetime"])
    with engine.connect() as conn:
        rows = conn.execute(statement, binds).all()
    return as_records(query, rows[:limit]), len(rows) > limit


def stream_csv(engine: sa.Engine, query: Query, params: dict[str, Any], filters: dict[str, Any],
               run_bound: bool) -> Iterator[bytes]:
    """The whole report as CSV, a chunk per thousand rows, from a server-side cursor: memory stays
    flat whatever the size. The SQL is built before the first chunk (an error is still an answer)."""
    sql = report_sql(query, engine.dialect.name, tenant=params["tenant"],
                     run_id=params["run_id"] if run_bound else None, filters=filters, page=None)
    binds = {**params, **{f"f_{c}": v for c, v in filters.items()}}
    return _csv_chunks(engine, sql, binds, query)


def _csv_chunks(engine: sa.Engine, sql: str, binds: dict[str, Any], query: Query) -> Iterator[bytes]:
    convert = converters(query)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(query.column_names)
    with engine.connect() as conn:
        # a server-side cursor, read CSV_CHUNK_ROWS at a time: the size goes to partitions() itself, as
        # SQLAlchemy ignores the yield_per execution option for text() (partitions() then read it all)
        result = conn.execution_options(stream_results=True).execute(sa.text(sql), binds)
        for partition in result.partitions(CSV_CHUNK_ROWS):
            writer.writerows([None if v is None else _csv_value(f(v)) for f, v in zip(convert, row, strict=True)]
                             for row in partition)
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
