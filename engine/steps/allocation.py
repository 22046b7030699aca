"""Step 4, allocation: fill trades from the candidates, per constraint stage, with a swappable strategy.

In:  ctx.cash, ctx.pricing, ctx.candidates, pfill_constraints.  Out (tables, one writer each):
pfill_powerfill_guide (with the chosen pair's score), pfill_trade_groups + pfill_candidate_options
(every eligible option; beside the solve in a large run), pfill_trade_base, pfill_cash_market_map
(every loan no trade took, slot fields NULL where no cell fits), pfill_kickouts (no trade and no cash
cell).  Out: ctx.allocation (state.Allocation: per loan its trade, target pool, cash or kicked out, and
why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import reasons, schema
from ..beside import Beside, can_run_beside
from ..context import RunContext
from ..inputs import Inputs
from ..market import DEFAULT_HIGH_BALANCE_CAP_PCT
from ..solver import PASS_LOCKED, PASS_NAMES, AllocationProblem, AllocationResult, allocate
from ..state import Allocation, required


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
    """The allocation problem from steps 1-3."""
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    cand = required(ctx.candidates, "candidates")
    stage, cap = trade_stages_and_caps(ctx)
    return AllocationProblem(
        loan_upb=loans["upb"], loan_high_balance=loans["high_balance"],
        loan_current_trade=cand.loan_current_trade, loan_fixed_trade=cand.loan_fixed_trade,
        loan_no_candidate_reason=cand.loan_no_candidate_reason,
        trade_amount=trades["trade_amount"], trade_tolerance_pct=trades["tolerance_pct"], trade_stage=stage,
        trade_high_balance_cap_pct=cap,
        trade_group=cand.trade_group, trade_premium=trades["price"], opt_loan=cand.loan, opt_group=cand.group,
        opt_score=cand.score, loan_cash_price=required(ctx.cash, "cash_grid").price,
    )


def run(ctx: RunContext) -> None:
    """Write the candidate tables (beside the solve in a large run: they need only the candidates),
    allocate, then write the other four tables (checking for cancel between the large ones)."""
    problem = build_problem(ctx)
    if can_run_beside(ctx):
        candidate_tables = Beside.start(ctx, "candidate tables", lambda mine: write_candidates(mine, problem))
    else:
        write_candidates(ctx, problem)
        candidate_tables = None
    try:
        result = allocate(problem, ctx.strategy)
        ctx.checkpoint()
        top = problem.top_pairs(ctx.candidates_kept_per_loan)
        placement = place(ctx, problem, result, top)
        if candidate_tables is not None:
            candidate_tables.wait()
    finally:  # a failure or a cancel: the writes beside end first (nothing lands after the cleanup)
        if candidate_tables is not None:
            candidate_tables.stop()
    write_guide(ctx, placement, result, problem)
    ctx.checkpoint()
    write_trade_base(ctx, placement, result, problem.trade_stage)
    ctx.allocation = outcome(ctx, result, placement)
    write_cash_market_map(ctx, ctx.allocation)
    write_kickouts(ctx, ctx.allocation)
    record_counters(ctx, placement, result, ctx.allocation)


TopPairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # (loan, trade, rank) of each loan's best few pairs


@dataclass
class Placement:
    """The placed loans (free and locked), their trade, pool and value: what the writers share."""

    loans: np.ndarray  # (p,) loan index of each placement, ascending
    trades: np.ndarray  # (p,) its trade index
    target_pool: np.ndarray  # (n,) object: the pool each loan is delivered in, None where not placed
    note_rate: np.ndarray  # (p,)
    price: np.ndarray  # (p,) trade price
    payup: np.ndarray  # (p,)
    carry: np.ndarray  # (p,)
    value: np.ndarray  # (p,) UPB x score / 100, rounded to cents
    loan_rank: np.ndarray  # (n,) rank of the chosen candidate pair, -1 where none (locked, not placed)


def trade_pools(inputs: Inputs) -> np.ndarray:
    """(m,) the pool a trade delivers new loans in: its first existing pool, else a new one."""
    trades = inputs.trades
    first_pool: dict[int, str] = {}
    trade_pos = {tid: i for i, tid in enumerate(trades["trade_id"])}
    for tid, pid in zip(inputs.relation["trade_id"], inputs.relation["pool_id"], strict=True):
        if tid in trade_pos:
            first_pool.setdefault(trade_pos[tid], pid)
    return np.array([first_pool.get(i, f"NEW-{tid}") for i, tid in enumerate(trades["trade_id"])], dtype=object)


def place(ctx: RunContext, problem: AllocationProblem, result: AllocationResult, top: TopPairs) -> Placement:
    """Pool and value of each placement. A placed loan stays in its own pool when that pool serves the
    trade; locked loans have no candidate option, so every placement is priced here. `top`: each loan's
    best few pairs (the rank of a chosen pair among them is read there, else worked out)."""
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    cand, pricing = required(ctx.candidates, "candidates"), required(ctx.pricing, "settle_price")
    n = ctx.inputs.n_loans
    placed = np.flatnonzero(result.loan_trade >= 0)
    t = result.loan_trade[placed]
    stays = cand.loan_current_trade[placed] == t
    target_pool = np.full(n, None, dtype=object)
    target_pool[placed] = np.where(stays, loans["pool_id"][placed], trade_pools(ctx.inputs)[t])

    rate = loans["note_rate"][placed]
    price = trades["price"][t]
    payup = pricing.payup_matrix[placed, pricing.trade_instrument_idx[t]]
    carry = np.round((rate - pricing.trade_fin_rate[t]) * pricing.trade_days[t] / 360.0, 6)
    score = price + payup + (carry if ctx.scoring == "price_carry" else 0.0)
    cl, ct, rank = top
    hit = result.loan_chosen[cl] & (result.loan_trade[cl] == ct)
    loan_rank = np.full(n, -1, dtype=np.int64)
    loan_rank[cl[hit]] = rank[hit]
    beyond = np.flatnonzero(result.loan_chosen & (loan_rank < 0))
    loan_rank[beyond] = problem.pair_rank(beyond, result.loan_trade[beyond])
    return Placement(loans=placed, trades=t, target_pool=target_pool, note_rate=rate, price=price, payup=payup,
                     carry=carry, value=np.round(loans["upb"][placed] * score / 100.0, 2), loan_rank=loan_rank)


def write_guide(ctx: RunContext, pl: Placement, result: AllocationResult, problem: AllocationProblem) -> None:
    """pfill_powerfill_guide: one row per placed loan, with its chosen candidate pair's score (NULL for a
    locked loan: it has no candidate)."""
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    placed, t = pl.loans, pl.trades
    rank = pl.loan_rank[placed]
    names = np.array([PASS_NAMES.get(k, "") for k in range(max(PASS_NAMES) + 1)], dtype=object)
    ctx.write(schema.pfill_powerfill_guide, {
        "loan_id": loans["loan_id"][placed], "trade_id": trades["trade_id"][t], "pool_id": pl.target_pool[placed],
        "agency": trades["agency"][t], "instrument": trades["instrument"][t], "coupon": trades["coupon"][t],
        "settlement_date": trades["settlement_date"][t], "product": loans["product"][placed],
        "upb": loans["upb"][placed], "note_rate": pl.note_rate, "high_balance": loans["high_balance"][placed],
        "price": pl.price, "payup": pl.payup, "carry": pl.carry, "value": pl.value,
        "rank": np.where(rank > 0, rank.astype(object), None),
        "pass_name": names[result.loan_pass[placed]],
        "score": np.where(result.loan_chosen[placed], problem.pair_score(placed, t), np.nan),
    })


def write_candidates(ctx: RunContext, problem: AllocationProblem) -> None:
    """Every eligible pair of the run, as the candidate step holds them: pfill_trade_groups (each trade's
    group, price and order) and pfill_candidate_options (each option, with the loan's pair count). Never
    pair by pair: the report expands and ranks the pairs (pool_candidates), and finds the chosen pair
    in the guide."""
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    cand = required(ctx.candidates, "candidates")
    m = ctx.inputs.n_trades
    start, by_group = problem.group_trades()  # each group's trades, best price first (ties: trade index)
    group_rank = np.empty(m, dtype=np.int64)
    group_rank[by_group] = np.arange(m) - np.repeat(start[:-1], np.diff(start)) + 1
    ctx.write(schema.pfill_trade_groups, {
        "trade_id": trades["trade_id"], "trade_group": cand.trade_group, "trade_order": np.arange(1, m + 1),
        "group_rank": group_rank, "agency": trades["agency"], "instrument": trades["instrument"],
        "coupon": trades["coupon"], "settlement_date": trades["settlement_date"], "price": trades["price"],
    })
    ctx.checkpoint()
    n = ctx.inputs.n_loans
    size = problem.group_size()[cand.group]
    loan_pairs = np.bincount(cand.loan, weights=size, minlength=n).astype(np.int64)
    # each option's best and worst pair score (its group's highest and lowest price): the report counts
    # the pairs of an option that beat a given pair without reading the option's trades, unless the
    # pair's score falls between the two
    best = trades["price"][by_group[start[:-1]]][cand.group]
    worst = trades["price"][by_group[start[1:] - 1]][cand.group]
    ol = cand.loan  # options are sorted by loan, then group: the table's key order
    ctx.write(schema.pfill_candidate_options, {
        "loan_id": loans["loan_id"][ol], "trade_group": cand.group, "upb": loans["upb"][ol],
        "note_rate": loans["note_rate"][ol], "payup": cand.payup, "carry": cand.carry, "score": cand.score,
        "pair_count": size, "best_pair_score": cand.score + best, "worst_pair_score": cand.score + worst,
        "loan_pair_count": loan_pairs[ol],
    })


def write_trade_base(ctx: RunContext, pl: Placement, result: AllocationResult, stage: np.ndarray) -> None:
    """pfill_trade_base: every trade with its limits, fill, status, pools and weighted averages."""
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    m, placed, t = ctx.inputs.n_trades, pl.loans, pl.trades
    upb = loans["upb"][placed]
    fill = result.trade_allocated_upb
    rate_by_trade = np.bincount(t, weights=upb * pl.note_rate, minlength=m)
    px_by_trade = np.bincount(t, weights=upb * (pl.price + pl.payup), minlength=m)
    locked_upb = np.bincount(t, weights=upb * (result.loan_pass[placed] == PASS_LOCKED), minlength=m)
    pools_used = np.zeros(m, dtype=np.int64)
    if len(placed):
        pool_code = np.unique(pl.target_pool[placed].astype(str), return_inverse=True)[1].reshape(-1)
        pairs = np.unique(t.astype(np.int64) * (int(pool_code.max()) + 1) + pool_code)
        pools_used = np.bincount(pairs // (int(pool_code.max()) + 1), minlength=m)
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
        "pool_count": pools_used, "total_value": np.round(np.bincount(t, weights=pl.value, minlength=m), 2),
        "wa_note_rate": wa_rate, "wa_price": wa_price,
    })


def outcome(ctx: RunContext, result: AllocationResult, pl: Placement) -> Allocation:
    """Where every loan ends up. Loans no trade took go to cash (a cell fits) or are kicked out; locked
    loans outside any open trade stay where they are."""
    assert ctx.inputs is not None
    loan_reason = result.loan_reason
    leftover = (result.loan_trade < 0) & (loan_reason != reasons.LOCKED_UNPOOLED)
    slotted = leftover & ~np.isnan(required(ctx.cash, "cash_grid").price)
    reason_text = np.full(ctx.inputs.n_loans, None, dtype=object)
    for code in np.unique(loan_reason[leftover]):
        reason_text[leftover & (loan_reason == code)] = reasons.text(int(code))
    return Allocation(loan_trade=result.loan_trade, loan_target_pool=pl.target_pool, loan_cash=slotted,
                      loan_kicked=leftover & ~slotted, loan_reason=loan_reason, loan_reason_text=reason_text,
                      stats=result.stats)


def write_cash_market_map(ctx: RunContext, alloc: Allocation) -> None:
    """pfill_cash_market_map: every loan no trade took, with its cash cell (NULL where none fits)."""
    assert ctx.inputs is not None
    loans, cash = ctx.inputs.loans, required(ctx.cash, "cash_grid")
    rows = np.flatnonzero(alloc.loan_cash | alloc.loan_kicked)
    slotted = alloc.loan_cash[rows]
    days = cash.commitment_days[rows]
    ctx.write(schema.pfill_cash_market_map, {
        "loan_id": loans["loan_id"][rows], "loan_product": loans["product"][rows], "upb": loans["upb"][rows],
        "note_rate": loans["note_rate"][rows], "lock_expiration_date": loans["lock_expiration_date"][rows],
        "agency": cash.agency[rows], "product": cash.product[rows],
        "pass_through_rate": cash.pass_through_rate[rows],
        "commitment_days": np.where(days > 0, days.astype(object), None),
        "cash_price": cash.price[rows],
        "cash_value": np.round(loans["upb"][rows] * cash.price[rows] / 100.0, 2),
        "slotted": slotted, "no_slot_reason": np.where(slotted, None, cash.no_slot_reason[rows]),
    })


def write_kickouts(ctx: RunContext, alloc: Allocation) -> None:
    """pfill_kickouts: loans with no trade and no cash cell, with both reasons."""
    assert ctx.inputs is not None
    loans, no_slot = ctx.inputs.loans, required(ctx.cash, "cash_grid").no_slot_reason
    kick = np.flatnonzero(alloc.loan_kicked)
    kick_text = [f"{alloc.loan_reason_text[i]}; cash window: {no_slot[i]}" for i in kick]
    ctx.write(schema.pfill_kickouts, {
        "loan_id": loans["loan_id"][kick], "pool_id": loans["pool_id"][kick], "product": loans["product"][kick],
        "upb": loans["upb"][kick], "note_rate": loans["note_rate"][kick],
        "reason_code": np.array([reasons.code(int(c)) for c in alloc.loan_reason[kick]], dtype=object),
        "reason": np.array(kick_text, dtype=object),
    })


def record_counters(ctx: RunContext, pl: Placement, result: AllocationResult, alloc: Allocation) -> None:
    """The allocation's summary counters (and the strategy's own stats) for the run history."""
    assert ctx.inputs is not None
    fill = result.trade_allocated_upb
    ctx.counters.update(
        allocated_loan_count=len(pl.loans), allocated_upb=round(float(fill.sum()), 2),
        kickout_count=int(alloc.loan_kicked.sum()), cash_loan_count=int(alloc.loan_cash.sum()),
        trade_count=ctx.inputs.n_trades, trades_filled_in_tolerance=int((result.trade_status == "Filled").sum()),
        total_value=round(float(pl.value.sum()), 2),
        short_trade_count=int((result.trade_status == "Short").sum()),
        # NaN (an LP stopped by its time limit proves no bound) is stored as NULL
        **{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.stats.items()},
    )
