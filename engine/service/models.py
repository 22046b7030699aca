"""Request and response models of the run service (they make its OpenAPI 3.1 schema).

The run document is built from the pfill_run_history table: one field per column, the *_json
columns decoded under their names without the suffix, as `pfill runs show --json` prints it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

from .. import schema
from ..solver import STRATEGIES

MAX_LOAN_IDS = 200_000
MAX_PREVIEW_LOANS = 1_000


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# The run-history timestamps are stored naive, in UTC; the API gives them as RFC 3339 date-times, which
# need an offset ("...Z"), as `format: date-time` in the schema says.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
# a loan id as the loan tables hold it (String(36)): anything else can name no loan
LoanId = Annotated[str, StringConstraints(min_length=1, max_length=schema.loan.c.loan_id.type.length)]

_TYPES: dict[type, Any] = {sa.String: str, sa.Text: str, sa.Integer: int, sa.Float: float, sa.DateTime: UtcDatetime,
                           sa.Date: date, sa.Boolean: bool}


def _field_type(column: sa.Column) -> Any:
    for sa_type, py_type in _TYPES.items():
        if isinstance(column.type, sa_type):
            return py_type
    return Any


def _run_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column in schema.pfill_run_history.c:
        if column.name.endswith("_json"):
            fields[column.name.removesuffix("_json")] = (Any, Field(None, description=column.comment))
        elif column.nullable:
            fields[column.name] = (_field_type(column) | None, Field(None, description=column.comment))
        else:
            fields[column.name] = (_field_type(column), Field(description=column.comment))
    return fields


RunDocument = create_model("RunDocument", __doc__="One run: its row of pfill_run_history.", **_run_fields())

Strategy = Literal[tuple(sorted(STRATEGIES))]  # type: ignore[valid-type]
RunStatus = Literal[schema.STATUSES]  # type: ignore[valid-type]


class RunRequest(BaseModel):
    """What `pfill run` takes; the tenant comes from the token."""

    model_config = ConfigDict(extra="forbid")
    scoring: Literal["price", "price_carry"] = "price"
    strategy: Strategy = Field(None, description="optimal or greedy [optimal]")  # type: ignore[valid-type]
    as_of: date | None = Field(None, description="Business date, 2000-01-01 to a year from today [today]")
    keep_runs: int | None = Field(None, ge=1, le=1_000_000, description="Runs to keep per tenant [10]")
    loan_ids: list[LoanId] | None = Field(None, min_length=1, max_length=MAX_LOAN_IDS,
                                       description="Run on these loans only (kept in input_loan_ids_json)")


class ProblemDocument(BaseModel):
    """An error (RFC 9457, application/problem+json): members beyond these name what went wrong."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field(description="about:blank")
    title: str = Field(description="The HTTP status's phrase")
    status: int = Field(ge=400, le=599, description="The HTTP status code")
    detail: str = Field(description="What went wrong, naming the field or the run at fault")
    field: str | None = Field(None, description="The request field at fault (400)")
    errors: list[dict[str, Any]] | None = Field(None, description="Every invalid field with its message (400)")
    run_id: str | None = Field(None, description="The run at fault (404, 409)")
    active_run: str | None = Field(None, description="The tenant's active run (409 on POST /run, BR-8)")


class RunAccepted(BaseModel):
    run_id: str
    status: Literal["Pending"] = "Pending"


class RunList(BaseModel):
    runs: list[RunDocument]  # type: ignore[valid-type]
    next: str | None = Field(None, description="Cursor of the next page; none on the last page")


class ServiceStatus(BaseModel):
    module: Literal["powerfill"] = "powerfill"
    status: Literal["ready"] = "ready"
    version: str
    schema_version: str | None
    executor: str
    queue_depth: int
    queue_capacity: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loan_ids: list[LoanId] = Field(min_length=1, max_length=MAX_PREVIEW_LOANS)
    scoring: Literal["price", "price_carry"] = "price"
    as_of: date | None = None


class CandidateOption(BaseModel):
    loan_id: str
    trade_id: str
    agency: str
    instrument: str
    coupon: float
    settlement_date: str
    price: float
    payup: float
    carry: float
    score: float


class LoanPreview(BaseModel):
    loan_id: str
    eligible_trades: int
    locked_in_trade: str | None = Field(description="In the lockdown guide: the trade of its pool, where it stays")
    cash_price: float | None
    reason_code: str | None
    reason: str | None


class CandidatePreview(BaseModel):
    tenant: str
    as_of: str
    scoring: str
    loans: list[LoanPreview]
    not_considered: list[str] = Field(description="Requested loans that are not Locked or Closed")
    candidates: list[CandidateOption]
