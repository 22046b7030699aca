"""Step 3, candidate builder: eligible loan-to-trade pairs with price, pay-up, carry and score.

Eligible: the product fits the instrument (agency/program), the note rate lies in coupon+0.25..+1.125
(FNMA/FHLMC) or +0.25..+0.75 (GNMA), the lock does not expire before settlement, the loan is not
locked down, its data is complete and its UPB within the high-balance ceiling.

Every rule but the trade's price depends on the trade's instrument, coupon and settlement date only, so
trades are grouped by those and eligibility, pay-up and carry are worked out per loan and group (a few
per loan), not per loan and trade (a hundred per loan in a large book): a pair is a loan's option on a
group and one trade of it, scored option score + trade price.

In: loans, trades, pools/relation, lockdowns, ctx.pricing.  Out: ctx.candidates (state.Candidates: the
options with pay-up, carry and score, the trades' groups; per loan its current and fixed trade, locked
flag and no-candidate reason). The options and trade groups are written by step 4 (pfill_candidate_options,
pfill_trade_groups), once the chosen pair is known; the Pool Candidates report expands them to pairs.
"""

from __future__ import annotations

import numpy as np

from .. import reasons
from ..context import RunContext
from ..market import HIGH_BALANCE_CEILING
from ..pairs import member, rate_window_pairs
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

    locked = member(loans["loan_id"], lockdowns["loan_id"]) | member(pool_id, lockdowns["pool_id"])

    pool_trade = _pool_trade_index(ctx)
    current_trade = np.array([pool_trade.get(p, -1) if p is not None else -1 for p in pool_id], dtype=np.int64)
    fixed_trade = np.where(locked, current_trade, -1)

    invalid = np.isnan(rate) | ~(upb > 0)
    over_ceiling = upb > HIGH_BALANCE_CEILING
    expired = expiry < ctx.as_of64
    ok = ~(invalid | over_ceiling | expired | locked)

    first, trade_group = trade_groups(trades)
    loan_idx, group_idx = rate_window_pairs(rate, loans["product"], ok, trades["instrument"][first],
                                            trades["coupon"][first])
    rate_eligible = np.bincount(loan_idx, minlength=n) > 0
    in_time = expiry[loan_idx] >= trades["settlement_date"][first][group_idx]
    order = np.lexsort((group_idx[in_time], loan_idx[in_time]))  # options by (loan, group), as the solver keeps them
    loan_idx, group_idx = loan_idx[in_time][order], group_idx[in_time][order]
    has_pair = np.bincount(loan_idx, minlength=n) > 0
    reason = _no_candidate_reason(has_pair, rate_eligible, expired, over_ceiling, invalid, locked, fixed_trade)

    pricing = required(ctx.pricing, "settle_price")
    t = first[group_idx]
    days, fin = pricing.trade_days[t], pricing.trade_fin_rate[t]
    payup = pricing.payup_matrix[loan_idx, pricing.trade_instrument_idx[t]]
    carry = np.round((rate[loan_idx] - fin) * days / 360.0, 6)
    score = payup + (carry if ctx.scoring == "price_carry" else 0.0)
    pair_count = int(np.bincount(trade_group, minlength=len(first))[group_idx].sum())

    ctx.candidates = Candidates(
        loan=loan_idx, group=group_idx, payup=payup, carry=carry, score=score, trade_group=trade_group,
        pair_count=pair_count, loan_current_trade=current_trade, loan_fixed_trade=fixed_trade, loan_locked=locked,
        loan_no_candidate_reason=reason,
    )
    ctx.counters["loans_considered"] = n
    ctx.counters["candidate_count"] = pair_count
    ctx.counters["locked_loan_count"] = int(locked.sum())


def trade_groups(trades: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Trades grouped by instrument, coupon and settlement date: ((g,) a trade of each group, (m,) the
    group of each trade). Every rule of eligibility, pay-up and carry is the same across a group; only
    the price differs."""
    m = len(trades["trade_id"])
    if m == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    instrument = np.unique(trades["instrument"].astype(str), return_inverse=True)[1].reshape(-1)
    coupon = np.unique(trades["coupon"], return_inverse=True)[1].reshape(-1)
    settle = np.unique(trades["settlement_date"], return_inverse=True)[1].reshape(-1)
    key = np.stack([instrument, coupon, settle], axis=1)
    _, first, trade_group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return first.astype(np.int64), trade_group.reshape(-1).astype(np.int64)
