"""Step 3, candidate builder: eligible loan-to-trade pairs with price, pay-up, carry, score and rank.

Eligible: the product fits the instrument (agency/program), the note rate lies in coupon+0.25..+1.125
(FNMA/FHLMC) or +0.25..+0.75 (GNMA), the lock does not expire before settlement, the loan is not
locked down, its data is complete and its UPB within the high-balance ceiling.

In: loans, trades, pools/relation, lockdowns, ctx.pricing.  Out: ctx.candidates (state.Candidates: the
pairs with price, pay-up, carry, score and rank; per loan its current and fixed trade, locked flag and
no-candidate reason). The candidate rows are written by step 4, once the chosen flag is known.
"""

from __future__ import annotations

import numpy as np

from .. import reasons
from ..context import RunContext
from ..market import HIGH_BALANCE_CEILING
from ..pairs import rank_within, rate_window_pairs
from ..state import Candidates, required


def _pool_trade_index(ctx: RunContext) -> dict[str, int]:
    """Existing pool id -> index of the open trade it is designated to."""
    assert ctx.inputs is not None
    trade_pos = {t: i for i, t in enumerate(ctx.inputs.trades["trade_id"])}
    rel = ctx.inputs.relation
    return {p: trade_pos[t] for t, p in zip(rel["trade_id"], rel["pool_id"], strict=True) if t in trade_pos}


def _no_candidate_reason(has_pair: np.ndarray, rate_eligible: np.ndarray, expired: np.ndarray,
                         over_ceiling: np.ndarray, invalid: np.ndarray, locked: np.ndarray,
                         fixed_trade: np.ndarray) -> np.ndarray:
    """(n,) reasons.* for loans without a pair (later rules win), PLACED for the rest and for locked
    loans that stay in their trade."""
    reason = np.zeros(len(has_pair), dtype=np.int8)
    reason[~has_pair & rate_eligible] = reasons.LOCK_BEFORE_SETTLEMENT
    reason[~has_pair & ~rate_eligible] = reasons.NO_ELIGIBLE_TRADE
    reason[expired] = reasons.LOCK_EXPIRED
    reason[over_ceiling] = reasons.UPB_OVER_CEILING
    reason[invalid] = reasons.INVALID_DATA
    reason[locked] = reasons.LOCKED_UNPOOLED
    reason[fixed_trade >= 0] = reasons.PLACED
    return reason


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    loans, trades, lockdowns = ctx.inputs.loans, ctx.inputs.trades, ctx.inputs.lockdowns
    n = ctx.inputs.n_loans
    rate, upb = loans["note_rate"], loans["upb"]
    expiry = loans["lock_expiration_date"]
    pool_id = loans["pool_id"]

    locked = np.isin(loans["loan_id"], lockdowns["loan_id"][lockdowns["loan_id"] != None])  # noqa: E711
    locked_pools = lockdowns["pool_id"][lockdowns["pool_id"] != None]  # noqa: E711
    locked |= np.isin(pool_id, locked_pools) & (pool_id != None)  # noqa: E711

    pool_trade = _pool_trade_index(ctx)
    current_trade = np.array([pool_trade.get(p, -1) if p is not None else -1 for p in pool_id], dtype=np.int64)
    fixed_trade = np.where(locked, current_trade, -1)

    invalid = np.isnan(rate) | ~(upb > 0)
    over_ceiling = upb > HIGH_BALANCE_CEILING
    expired = expiry < ctx.as_of64
    ok = ~(invalid | over_ceiling | expired | locked)

    loan_idx, trade_idx = rate_window_pairs(rate, loans["product"], ok, trades["instrument"], trades["coupon"])
    rate_eligible = np.bincount(loan_idx, minlength=n) > 0
    in_time = expiry[loan_idx] >= trades["settlement_date"][trade_idx]
    loan_idx, trade_idx = loan_idx[in_time], trade_idx[in_time]
    has_pair = np.bincount(loan_idx, minlength=n) > 0
    reason = _no_candidate_reason(has_pair, rate_eligible, expired, over_ceiling, invalid, locked, fixed_trade)

    pricing = required(ctx.pricing, "settle_price")
    days, fin = pricing.trade_days[trade_idx], pricing.trade_fin_rate[trade_idx]
    price = trades["price"][trade_idx]
    payup = pricing.payup_matrix[loan_idx, pricing.trade_instrument_idx[trade_idx]]
    carry = np.round((rate[loan_idx] - fin) * days / 360.0, 6)
    score = price + payup + (carry if ctx.scoring == "price_carry" else 0.0)

    ctx.candidates = Candidates(
        loan=loan_idx, trade=trade_idx, price=price, payup=payup, carry=carry,
        score=score, rank=rank_within(loan_idx, score),
        loan_current_trade=current_trade, loan_fixed_trade=fixed_trade, loan_locked=locked,
        loan_no_candidate_reason=reason,
    )
    ctx.counters["loans_considered"] = n
    ctx.counters["candidate_count"] = len(loan_idx)
    ctx.counters["locked_loan_count"] = int(locked.sum())
