"""Step 4, allocation: fill trades from the candidates, per constraint stage, with a swappable strategy.

In:  step 1-3 arrays, pfill_constraints.  Out (tables): pfill_trade_base, pfill_powerfill_guide,
pfill_loan2trade_candy_level_01 (best few per loan + the chosen pair), pfill_cash_market_map (every
loan no trade took, slot fields NULL where no cell fits), pfill_kickouts (no trade and no cash cell).
Out (ctx.state): loan_trade, loan_target_pool, loan_cash, loan_kicked, loan_reason, loan_reason_text.
"""

from __future__ import annotations

import math

import numpy as np

from .. import reasons, schema
from ..allocator import PASS_NAMES, AllocationProblem, allocate
from ..context import RunContext
from ..market import DEFAULT_HIGH_BALANCE_CAP_PCT


def trade_stages_and_caps(ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    """Stage per trade (the priority of the first investor/instrument constraint it matches; unmatched
    trades fill last) and its high-balance cap in percent."""
    assert ctx.inputs is not None
    trades, cons = ctx.inputs.trades, ctx.inputs.constraints
    m = ctx.inputs.n_trades
    unmatched = int(cons["priority"].max()) + 1 if len(cons["priority"]) else 1
    stage = np.full(m, unmatched, dtype=np.int64)
    cap = np.full(m, DEFAULT_HIGH_BALANCE_CAP_PCT)
    for i in np.argsort(-cons["priority"]):  # highest priority number first, so lower ones win
        kind, pri = cons["constraint_type"][i], int(cons["priority"][i])
        instrument, counterparty = cons["instrument"][i], cons["counterparty"][i]
        match = np.ones(m, dtype=bool)
        if instrument is not None:
            match &= trades["instrument"] == instrument
        if counterparty is not None:
            match &= trades["counterparty"] == counterparty
        if kind in ("investor", "instrument"):
            stage[match] = np.minimum(stage[match], pri)
        elif kind == "high_balance_cap" and not np.isnan(cons["value"][i]):
            cap[match] = cons["value"][i]
    return stage, cap


def build_problem(ctx: RunContext) -> AllocationProblem:
    """The allocation problem from steps 1-3 (also used by the allocation benchmark)."""
    assert ctx.inputs is not None
    loans, trades, st = ctx.inputs.loans, ctx.inputs.trades, ctx.state
    stage, cap = trade_stages_and_caps(ctx)
    return AllocationProblem(
        loan_upb=loans["upb"], loan_high_balance=loans["high_balance"],
        loan_current_trade=st["loan_current_trade"], loan_fixed_trade=st["loan_fixed_trade"],
        loan_no_candidate_reason=st["loan_no_candidate_reason"],
        trade_amount=trades["trade_amount"], trade_tolerance_pct=trades["tolerance_pct"], trade_stage=stage,
        trade_high_balance_cap_pct=cap,
        cand_loan=st["cand_loan"], cand_trade=st["cand_trade"], cand_score=st["cand_score"],
        loan_cash_price=st["cash_price"],
    )


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    loans, trades, st = ctx.inputs.loans, ctx.inputs.trades, ctx.state
    n = ctx.inputs.n_loans
    problem = build_problem(ctx)
    stage = problem.trade_stage
    result = allocate(problem, ctx.strategy)
    ctx.checkpoint()

    loan_trade = result.loan_trade
    placed = np.flatnonzero(loan_trade >= 0)
    t = loan_trade[placed]
    # The pool each placed loan is delivered in: its own pool when that pool serves the trade,
    # else the trade's first existing pool, else a new pool for the trade.
    first_pool: dict[int, str] = {}
    trade_pos = {tid: i for i, tid in enumerate(trades["trade_id"])}
    for tid, pid in zip(ctx.inputs.relation["trade_id"], ctx.inputs.relation["pool_id"], strict=True):
        if tid in trade_pos:
            first_pool.setdefault(trade_pos[tid], pid)
    trade_pool = np.array([first_pool.get(i, f"NEW-{tid}") for i, tid in enumerate(trades["trade_id"])],
                          dtype=object)
    stays = st["loan_current_trade"][placed] == t
    target_pool = np.full(n, None, dtype=object)
    target_pool[placed] = np.where(stays, loans["pool_id"][placed], trade_pool[t])

    # Value of each placement (locked loans have no candidate row, so price them here).
    rate = loans["note_rate"][placed]
    price = trades["price"][t]
    payup = st["payup_matrix"][placed, st["trade_instrument_idx"][t]]
    carry = np.round((rate - st["trade_fin_rate"][t]) * st["trade_days"][t] / 360.0, 6)
    score = price + payup + (carry if ctx.scoring == "price_carry" else 0.0)
    value = np.round(loans["upb"][placed] * score / 100.0, 2)
    chosen = result.cand_chosen
    loan_rank = np.full(n, -1, dtype=np.int64)
    loan_rank[st["cand_loan"][chosen]] = st["cand_rank"][chosen]
    pass_name = np.array([PASS_NAMES.get(int(p), "") for p in result.loan_pass[placed]], dtype=object)

    ctx.write(schema.pfill_powerfill_guide, {
        "loan_id": loans["loan_id"][placed], "trade_id": trades["trade_id"][t], "pool_id": target_pool[placed],
        "agency": trades["agency"][t], "instrument": trades["instrument"][t], "coupon": trades["coupon"][t],
        "settlement_date": trades["settlement_date"][t], "product": loans["product"][placed],
        "upb": loans["upb"][placed], "note_rate": rate, "high_balance": loans["high_balance"][placed],
        "price": price, "payup": payup, "carry": carry, "value": value,
        "rank": np.where(loan_rank[placed] > 0, loan_rank[placed].astype(object), None), "pass_name": pass_name,
    })
    ctx.checkpoint()

    keep = (st["cand_rank"] <= ctx.candidates_kept_per_loan) | chosen
    cl, ct = st["cand_loan"][keep], st["cand_trade"][keep]
    ctx.write(schema.pfill_loan2trade_candy_level_01, {
        "loan_id": loans["loan_id"][cl], "trade_id": trades["trade_id"][ct], "agency": trades["agency"][ct],
        "instrument": trades["instrument"][ct], "coupon": trades["coupon"][ct],
        "settlement_date": trades["settlement_date"][ct], "upb": loans["upb"][cl],
        "note_rate": loans["note_rate"][cl], "price": st["cand_price"][keep], "payup": st["cand_payup"][keep],
        "carry": st["cand_carry"][keep], "score": st["cand_score"][keep],
        "value": np.round(loans["upb"][cl] * st["cand_score"][keep] / 100.0, 2),
        "rank": st["cand_rank"][keep], "chosen": chosen[keep],
    })
    ctx.checkpoint()

    m = ctx.inputs.n_trades
    fill = result.trade_allocated_upb
    value_by_trade = np.bincount(t, weights=value, minlength=m)
    rate_by_trade = np.bincount(t, weights=loans["upb"][placed] * rate, minlength=m)
    px_by_trade = np.bincount(t, weights=loans["upb"][placed] * (price + payup), minlength=m)
    locked_upb = np.bincount(t, weights=loans["upb"][placed] * (result.loan_pass[placed] == 1), minlength=m)
    pools_used = np.zeros(m, dtype=np.int64)
    if len(placed):
        pair_keys = np.unique(np.char.add(t.astype(str), "|" + target_pool[placed].astype(str)))
        pools_used = np.bincount(np.array([int(k.split("|")[0]) for k in pair_keys]), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        wa_rate = np.where(fill > 0, rate_by_trade / fill, np.nan)
        wa_price = np.where(fill > 0, px_by_trade / fill, np.nan)
    ctx.write(schema.pfill_trade_base, {
        "trade_id": trades["trade_id"], "agency": trades["agency"], "instrument": trades["instrument"],
        "coupon": trades["coupon"], "price": trades["price"], "settlement_date": trades["settlement_date"],
        "counterparty": trades["counterparty"], "stage": stage, "trade_amount": trades["trade_amount"],
        "tolerance_pct": trades["tolerance_pct"], "tolerance": result.trade_tolerance,
        "min_allowed": result.trade_min, "max_allowed": result.trade_max, "allocated_upb": np.round(fill, 2),
        "allocated_count": result.trade_allocated_count, "high_balance_upb": result.trade_high_balance_upb,
        "locked_upb": locked_upb, "fill_pct": np.round(fill / trades["trade_amount"] * 100, 4),
        "shortfall": np.round(np.maximum(0, result.trade_min - fill), 2), "fill_status": result.trade_status,
        "pool_count": pools_used, "total_value": np.round(value_by_trade, 2), "wa_note_rate": wa_rate,
        "wa_price": wa_price,
    })

    # Loans no trade took (locked loans outside any open trade stay where they are): cash or kick out.
    loan_reason = result.loan_reason
    leftover = (loan_trade < 0) & (loan_reason != reasons.LOCKED_UNPOOLED)
    slotted = leftover & ~np.isnan(st["cash_price"])
    kicked = leftover & ~slotted
    rows = np.flatnonzero(leftover)
    ctx.write(schema.pfill_cash_market_map, {
        "loan_id": loans["loan_id"][rows], "loan_product": loans["product"][rows], "upb": loans["upb"][rows],
        "note_rate": loans["note_rate"][rows], "lock_expiration_date": loans["lock_expiration_date"][rows],
        "agency": st["cash_agency"][rows], "product": st["cash_product"][rows],
        "pass_through_rate": st["cash_ptr"][rows],
        "commitment_days": np.where(st["cash_days"][rows] > 0, st["cash_days"][rows].astype(object), None),
        "cash_price": st["cash_price"][rows],
        "cash_value": np.round(loans["upb"][rows] * st["cash_price"][rows] / 100.0, 2),
        "slotted": slotted[rows], "no_slot_reason": np.where(slotted[rows], None, st["cash_no_slot"][rows]),
    })
    reason_text = np.full(n, None, dtype=object)
    for code in np.unique(loan_reason[leftover]):
        reason_text[leftover & (loan_reason == code)] = reasons.text(int(code))
    kick = np.flatnonzero(kicked)
    kick_text = [f"{reason_text[i]}; cash window: {st['cash_no_slot'][i]}" for i in kick]
    ctx.write(schema.pfill_kickouts, {
        "loan_id": loans["loan_id"][kick], "pool_id": loans["pool_id"][kick], "product": loans["product"][kick],
        "upb": loans["upb"][kick], "note_rate": loans["note_rate"][kick],
        "reason_code": np.array([reasons.code(int(c)) for c in loan_reason[kick]], dtype=object),
        "reason": np.array(kick_text, dtype=object),
    })

    st.update(loan_trade=loan_trade, loan_target_pool=target_pool, loan_cash=slotted, loan_kicked=kicked,
              loan_reason=loan_reason, loan_reason_text=reason_text, allocation_stats=result.stats)
    in_tol = result.trade_status == "Filled"
    ctx.counters.update(
        allocated_loan_count=len(placed), allocated_upb=round(float(fill.sum()), 2),
        kickout_count=len(kick), cash_loan_count=int(slotted.sum()), trade_count=m,
        trades_filled_in_tolerance=int(in_tol.sum()), total_value=round(float(value.sum()), 2),
        short_trade_count=int((result.trade_status == "Short").sum()),
        # NaN (an LP stopped by its time limit proves no bound) is stored as NULL
        **{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.stats.items()},
    )
