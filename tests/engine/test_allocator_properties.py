"""Property tests of the allocation invariants over generated problems (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfill.engine import reasons
from pfill.engine.solver import EPS, PASS_LOCKED, AllocationProblem, AllocationResult, allocate
from pfill.engine.solver import greedy as staged
from tests.engine.test_optimal import _problem


@st.composite
def problems(draw: st.DrawFn) -> AllocationProblem:
    n = draw(st.integers(1, 40))
    m = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    upb = np.round(rng.lognormal(np.log(300_000), 0.6, n), 2)
    eligible = rng.random((n, m)) < draw(st.floats(0.1, 0.9))
    loan, trade = np.nonzero(eligible)
    current = np.where(rng.random(n) < 0.3, rng.integers(0, m, n), -1)
    fixed = np.where((current >= 0) & (rng.random(n) < 0.2), current, -1)
    no_pair = ~eligible.any(axis=1) & (fixed < 0)
    reason = np.where(no_pair, reasons.NO_ELIGIBLE_TRADE, 0).astype(np.int8)
    amount = np.round(rng.uniform(0.2, 3.0, m) * 1_000_000, -3)
    return AllocationProblem.from_pairs(
        loan_upb=upb, loan_high_balance=rng.random(n) < 0.15, loan_current_trade=current,
        loan_fixed_trade=fixed, loan_no_candidate_reason=reason, trade_amount=amount,
        trade_tolerance_pct=rng.choice([0.5, 1.0, 2.5, 5.0, 10.0], m), trade_stage=rng.integers(1, 3, m),
        trade_high_balance_cap_pct=np.where(rng.random(m) < 0.8, 10.0, np.nan),
        cand_loan=loan, cand_trade=trade, cand_score=np.round(rng.uniform(98, 104, len(loan)), 3),
    )


@st.composite
def grouped_problems(draw: st.DrawFn) -> AllocationProblem:
    """Trades in groups (several trades per group, premiums apart), options per loan and group, some
    loans with a cash alternative: the shape the engine's candidate builder produces."""
    n = draw(st.integers(1, 40))
    g = draw(st.integers(1, 4))
    m = draw(st.integers(g, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    trade_group = np.r_[np.arange(g), rng.integers(0, g, m - g)]
    eligible = rng.random((n, g)) < draw(st.floats(0.2, 0.9))
    loan, group = np.nonzero(eligible)
    current = np.where(rng.random(n) < 0.3, rng.integers(0, m, n), -1)
    fixed = np.where((current >= 0) & (rng.random(n) < 0.2), current, -1)
    reason = np.where(~eligible.any(axis=1) & (fixed < 0), reasons.NO_ELIGIBLE_TRADE, 0).astype(np.int8)
    cash = draw(st.booleans())
    return AllocationProblem(
        loan_upb=np.round(rng.lognormal(np.log(300_000), 0.6, n), 2), loan_high_balance=rng.random(n) < 0.15,
        loan_current_trade=current, loan_fixed_trade=fixed, loan_no_candidate_reason=reason,
        trade_amount=np.round(rng.uniform(0.2, 3.0, m) * 1_000_000, -3),
        trade_tolerance_pct=rng.choice([0.5, 1.0, 2.5, 5.0, 10.0], m), trade_stage=rng.integers(1, 3, m),
        trade_high_balance_cap_pct=np.where(rng.random(m) < 0.8, 10.0, np.nan),
        trade_group=trade_group, trade_premium=np.round(rng.uniform(99, 101, m), 3),
        opt_loan=loan, opt_group=group, opt_score=np.round(rng.uniform(-1, 3, len(loan)), 3),
        loan_cash_price=np.where(rng.random(n) < 0.7, np.round(rng.uniform(99, 102, n), 3), np.nan) if cash else None,
    )


def check_invariants(p: AllocationProblem, r: AllocationResult, every_loan_pays: bool = True) -> None:
    """The allocation invariants: one placement per loan, eligible pairs only, locked loans in place,
    fills inside the max and the high-balance cap (free loans), statuses that match the fills, a reason
    for every unplaced loan. every_loan_pays: no loan has a cash alternative (or the strategy ignores it),
    so a short trade must have been unable to take any unplaced loan eligible for it."""
    n, m = p.n_loans, p.n_trades
    placed = r.loan_trade >= 0
    pair_loan, pair_trade, _, _ = p.pairs()
    pairs = set(zip(pair_loan.tolist(), pair_trade.tolist(), strict=True))
    fixed = p.loan_fixed_trade >= 0

    # each loan at most once (one trade per loan), locked loans stay in their trade
    assert r.loan_trade.shape == (n,)
    assert (r.loan_trade[fixed] == p.loan_fixed_trade[fixed]).all()
    assert (r.loan_pass[fixed] == PASS_LOCKED).all()
    # only eligible pairs
    for loan in np.flatnonzero(placed & ~fixed):
        assert (int(loan), int(r.loan_trade[loan])) in pairs
    # fill counters agree with the placements
    fill = np.bincount(r.loan_trade[placed], weights=p.loan_upb[placed], minlength=m)
    assert np.allclose(fill, r.trade_allocated_upb)
    tol = np.round(p.trade_amount * p.trade_tolerance_pct / 100, 2)
    assert np.allclose(r.trade_min, p.trade_amount - tol) and np.allclose(r.trade_max, p.trade_amount + tol)
    # free placements never push a trade past its max (only locked loans can)
    fixed_fill = np.bincount(p.loan_fixed_trade[fixed], weights=p.loan_upb[fixed], minlength=m)
    assert (fill <= np.maximum(r.trade_max, fixed_fill) + EPS).all()
    # high-balance cap: free high-balance UPB within the cap (locked ones count but are not moved)
    hb = p.loan_high_balance.astype(bool)
    cap = np.where(np.isnan(p.trade_high_balance_cap_pct), np.inf, p.trade_high_balance_cap_pct) / 100 * p.trade_amount
    hb_fill = np.bincount(r.loan_trade[placed], weights=(p.loan_upb * hb)[placed], minlength=m)
    hb_fixed = np.bincount(p.loan_fixed_trade[fixed], weights=(p.loan_upb * hb)[fixed], minlength=m)
    assert (hb_fill <= np.maximum(cap, hb_fixed) + EPS).all()
    # inside tolerance, or reported short/over/empty
    inside = (fill >= r.trade_min - EPS) & (fill <= r.trade_max + EPS)
    assert ((r.trade_status == "Filled") == (inside & (r.trade_allocated_count > 0))).all()
    if every_loan_pays:
        # a short trade could not have taken any unplaced loan eligible for it
        for loan, trade in pairs:
            if not placed[loan] and r.trade_status[trade] in ("Short", "Empty"):
                room = r.trade_max[trade] - fill[trade]
                hb_room = cap[trade] - hb_fill[trade]
                assert p.loan_upb[loan] > room + EPS or (hb[loan] and p.loan_upb[loan] > hb_room + EPS)
    # every unplaced loan has a reason; placed loans have none
    assert (r.loan_reason[~placed] > 0).all()
    assert (r.loan_reason[placed] == 0).all()
    # chosen flags mark exactly the placed free loans' pairs
    assert r.loan_chosen.sum() == int((placed & ~fixed).sum())


@pytest.mark.parametrize("strategy", ["greedy", "optimal"])
@settings(max_examples=150, deadline=None)
@given(p=problems())
def test_allocation_invariants(strategy: str, p: AllocationProblem) -> None:
    check_invariants(p, allocate(p, strategy))


@pytest.mark.parametrize("strategy", ["greedy", "optimal"])
@settings(max_examples=80, deadline=None)
@given(p=grouped_problems())
def test_allocation_invariants_with_trade_groups(strategy: str, p: AllocationProblem) -> None:
    r = allocate(p, strategy)
    # the greedy ignores cash, so it places every loan a trade can take; the optimiser may prefer cash
    check_invariants(p, r, every_loan_pays=strategy == "greedy" or p.loan_cash_price is None)
    if strategy == "optimal":
        g = allocate(p, "greedy")
        assert r.stats["objective_value"] >= g.stats["objective_value"] - 0.02
        assert (r.trade_status == "Filled").sum() >= (g.trade_status == "Filled").sum()
        assert r.stats["free_bound"] >= r.stats["lp_bound"] - 0.02 >= r.stats["objective_value"] - 0.04


def test_unknown_strategy_is_refused() -> None:
    empty = AllocationProblem(*(np.zeros(0) for _ in range(14)))
    with pytest.raises(ValueError, match="unknown allocation strategy"):
        allocate(empty, "mip")


@pytest.mark.parametrize("seed", range(12))
def test_the_sweep_after_substitution_offers_only_the_givers_and_loses_nothing(seed: int) -> None:
    """greedy's second orphan sweep walks only the trades substitution took loans from; walking every
    trade (the plain staged greedy) places the same loans in the same trades."""
    p = _problem(np.random.default_rng(seed), 300, 60, with_cash=False, density=0.2)
    s = staged._GreedyState(p)
    for stage in np.unique(p.trade_stage):
        s.fill_rounds(p.trade_stage == stage, p.trade_amount, staged.PASS_FIRST)
    everywhere = np.ones(p.n_trades, dtype=bool)
    s.fill_rounds(everywhere, s.max_allowed, staged.PASS_ORPHAN)
    moves, _ = s.substitute()
    before = int(np.sum(s.loan_trade >= 0))
    s.fill_rounds(everywhere, s.max_allowed, staged.PASS_ORPHAN)
    assert moves > 0 and np.sum(s.loan_trade >= 0) > before  # the second sweep places loans
    result = staged.greedy(p)
    assert result.stats["substitution_moves"] == moves
    assert result.loan_trade.tolist() == s.loan_trade.tolist()
    assert result.loan_pass.tolist() == s.loan_pass.tolist()
