"""Candidate preview: the eligible trades and prices for given loans, without a run.

The first three pipeline steps (cash grid, settle and price, candidates) run in memory over the
tenant's inputs restricted to the loans; nothing is written."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from .. import reasons
from ..context import RunContext
from ..inputs import check_inputs, check_loan_ids, load_inputs
from ..market import check_business_date
from ..state import required
from ..steps import STEPS

PREVIEW_STEPS = ("cash_grid", "settle_price", "candidates")


def preview_candidates(engine: sa.Engine, tenant: str, loan_ids: list[str], scoring: str,
                       as_of: date | None) -> dict[str, Any]:
    if as_of is not None:  # the window POST /run holds to (a 1999 date priced 26 years of carry)
        check_business_date(as_of)
    with engine.connect() as conn:
        check_inputs(conn, tenant)
        check_loan_ids(conn, tenant, loan_ids)
        inputs = load_inputs(conn, tenant, loan_ids)
    ctx = RunContext(engine=engine, run_id="preview", tenant=tenant, scoring=scoring, as_of=as_of or date.today(),
                     inputs=inputs)
    for name, _status, step in STEPS:
        if name in PREVIEW_STEPS:
            step(ctx)
    cand, cash = required(ctx.candidates, "candidates"), required(ctx.cash, "cash_grid")
    loans, trades = inputs.loans, inputs.trades
    options: list[dict[str, Any]] = []
    for k in range(len(cand.loan)):
        for t in np.flatnonzero(cand.trade_group == cand.group[k]):
            price = float(trades["price"][t])
            options.append({
                "loan_id": loans["loan_id"][cand.loan[k]], "trade_id": trades["trade_id"][t],
                "agency": trades["agency"][t], "instrument": trades["instrument"][t],
                "coupon": float(trades["coupon"][t]), "settlement_date": str(trades["settlement_date"][t]),
                "price": price, "payup": float(cand.payup[k]), "carry": float(cand.carry[k]),
                "score": round(float(cand.score[k]) + price, 6),
            })
    options.sort(key=lambda o: (o["loan_id"], -o["score"], o["trade_id"]))
    per_loan, counts = [], Counter(o["loan_id"] for o in options)
    for i, loan_id in enumerate(loans["loan_id"]):
        reason = int(cand.loan_no_candidate_reason[i])
        cash_price = float(cash.price[i])
        fixed = int(cand.loan_fixed_trade[i])
        per_loan.append({"loan_id": loan_id, "eligible_trades": counts[loan_id],
                         "locked_in_trade": trades["trade_id"][fixed] if fixed >= 0 else None,
                         "cash_price": None if np.isnan(cash_price) else cash_price,
                         "reason_code": reasons.code(reason) if reason else None,
                         "reason": reasons.text(reason) if reason else None})
    not_considered = sorted(set(loan_ids) - set(loans["loan_id"].tolist()))
    return {"tenant": tenant, "as_of": ctx.as_of.isoformat(), "scoring": scoring, "loans": per_loan,
            "not_considered": not_considered, "candidates": options}
