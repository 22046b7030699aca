"""Step 2, BestEx settle-and-price: per trade its settlement horizon and financing rate; per loan its
pay-up in every instrument. Together they price every loan x eligible trade pair (step 3).

In:  trades, rmusr_payups, pfill_carry_cost.   Out: ctx.pricing (state.Pricing: trade_days (days to
settlement), trade_fin_rate (carry curve rate at that horizon), trade_instrument_idx, payup_matrix
(loans x instruments, points)).
"""

from __future__ import annotations

import numpy as np

from ..context import RunContext
from ..market import INSTRUMENT_CODES
from ..state import Pricing


def payup_matrix(loans: dict[str, np.ndarray], payups: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of matching pay-up rules, loans x instruments (one vector pass per rule, never per loan)."""
    n = len(loans["loan_id"])
    matrix = np.zeros((n, len(INSTRUMENT_CODES)))
    fields = {"upb": loans["upb"], "fico": loans["fico"].astype(float), "ltv": loans["ltv"]}
    for i in range(len(payups["payup_id"])):
        code = payups["instrument"][i]
        if code not in INSTRUMENT_CODES:
            continue
        kind = payups["characteristic"][i]
        if kind == "state":
            match = loans["state"] == payups["text_value"][i]
        elif kind in fields:
            low, high = payups["low_value"][i], payups["high_value"][i]
            values = fields[kind]
            match = (values >= (low if not np.isnan(low) else -np.inf)) & (
                values <= (high if not np.isnan(high) else np.inf))
        else:
            continue
        matrix[:, INSTRUMENT_CODES.index(code)] += np.where(match, payups["payup"][i], 0.0)
    return matrix


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    trades, carry = ctx.inputs.trades, ctx.inputs.carry
    days = (trades["settlement_date"] - ctx.as_of64).astype(np.int64)
    fin_rate = np.zeros(len(days))
    instrument_idx = np.array([INSTRUMENT_CODES.index(c) if c in INSTRUMENT_CODES else -1
                               for c in trades["instrument"]], dtype=np.int64)
    for code in INSTRUMENT_CODES:
        mine = trades["instrument"] == code
        curve = carry["instrument"] == code
        if mine.any() and curve.any():
            order = np.argsort(carry["day"][curve])
            fin_rate[mine] = np.interp(days[mine], carry["day"][curve][order], carry["rate"][curve][order])
    ctx.pricing = Pricing(
        trade_days=np.maximum(days, 0), trade_fin_rate=fin_rate, trade_instrument_idx=instrument_idx,
        payup_matrix=payup_matrix(ctx.inputs.loans, ctx.inputs.payups),
    )
