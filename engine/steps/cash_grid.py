"""Step 1, BestEx cash grids: the cash-window cell and price for each loan.

In:  loans, pscat_trade_cash_grid.   Out: ctx.cash (state.CashSlots: the cell's agency, product,
pass-through rate, days and price, NaN: no cell, and why no cell fits). Writes nothing: the cash market map is
written after allocation, for the loans that trades did not take.
"""

from __future__ import annotations

import numpy as np

from ..context import RunContext
from ..market import CASH_AGENCY, CASH_GFEE, COMMITMENT_PERIODS, HIGH_BALANCE_CEILING, PRODUCTS, SERVICING_FEE
from ..state import CashSlots

_AGENCIES = ("FNMA", "FHLMC", "GNMA")


def _keys(agency: np.ndarray, product: np.ndarray, ptr: np.ndarray, days: np.ndarray) -> np.ndarray:
    """One int64 per (agency, product, pass-through rate, days) cell, for a sorted lookup."""
    a = np.searchsorted(np.array(_AGENCIES), agency.astype(str))
    p = np.searchsorted(np.array(sorted(PRODUCTS)), product.astype(str))
    rate = np.round(np.nan_to_num(ptr) * 1000).astype(np.int64)
    return ((a * 8 + p) * 100_000 + rate) * 1000 + days.astype(np.int64)


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    loans, grid = ctx.inputs.loans, ctx.inputs.cash_grid
    n = ctx.inputs.n_loans
    product = loans["product"].astype(str)
    rate = loans["note_rate"]
    agency = np.array([CASH_AGENCY.get(p, "") for p in product], dtype=object)
    gfee = np.array([CASH_GFEE.get(p, np.nan) for p in product])
    ptr = np.round(np.floor((rate - SERVICING_FEE - gfee + 1e-9) / 0.125) * 0.125, 3)
    days_left = (loans["lock_expiration_date"] - ctx.as_of64).astype(np.int64)
    periods = np.array(sorted(COMMITMENT_PERIODS))
    # The longest commitment period that still ends before the lock expires.
    idx = np.searchsorted(periods, days_left, side="right") - 1
    days = np.where(idx >= 0, periods[np.maximum(idx, 0)], -1)

    price = np.full(n, np.nan)
    no_slot = np.full(n, None, dtype=object)
    if len(grid["cash_price"]):
        grid_keys = _keys(grid["agency"], grid["product"], grid["pass_through_rate"], grid["commitment_days"])
        order = np.argsort(grid_keys)
        grid_keys, grid_price = grid_keys[order], grid["cash_price"][order]
        keys = _keys(agency.astype(str), product, ptr, np.maximum(days, 0))
        pos = np.minimum(np.searchsorted(grid_keys, keys), len(grid_keys) - 1)
        hit = grid_keys[pos] == keys
        price = np.where(hit, grid_price[pos], np.nan)
    no_slot[np.isnan(price)] = "no cash-grid price for this agency/product/pass-through rate/period"
    no_slot[days < 0] = "lock expires within 10 days: shorter than any commitment period"
    no_slot[days_left < 0] = "rate lock expired"
    no_slot[loans["upb"] > HIGH_BALANCE_CEILING] = "UPB above the high-balance ceiling"
    no_slot[np.isnan(rate) | ~(loans["upb"] > 0)] = "loan data incomplete"
    price[no_slot != None] = np.nan  # noqa: E711 (element-wise)
    slotted = ~np.isnan(price)

    ctx.cash = CashSlots(
        agency=np.where(slotted, agency, None), product=np.where(slotted, product.astype(object), None),
        pass_through_rate=np.where(slotted, ptr, np.nan), commitment_days=np.where(slotted, days, -1), price=price,
        no_slot_reason=no_slot,
    )
    ctx.counters["cash_slottable_loans"] = int(slotted.sum())
