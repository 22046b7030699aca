"""The `optimal` strategy: matches brute force on tiny instances, beats the greedy, reports shortfalls,
and its LP bound is a true bound; plus the large-instance path (buckets, LP, rounding, repair)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfill.engine.solver import EPS, AllocationProblem, allocate
from pfill.engine.solver import objective as ob
from pfill.engine.solver import optimal as opt
from pfill.engine.solver.greedy import greedy


def _problem(rng: np.random.Generator, n: int, m: int, with_cash: bool = True,
             density: float = 0.6) -> AllocationProblem:
    upb = np.round(rng.lognormal(np.log(300_000), 0.5, n), 2)
    eligible = rng.random((n, m)) < density
    loan, trade = np.nonzero(eligible)
    cash = np.where(rng.random(n) < 0.8, np.round(rng.uniform(99, 102, n), 3), np.nan) if with_cash else None
    return AllocationProblem.from_pairs(
        loan_upb=upb, loan_high_balance=rng.random(n) < 0.2, loan_current_trade=np.full(n, -1),
        loan_fixed_trade=np.full(n, -1), loan_no_candidate_reason=np.where(eligible.any(1), 0, 4).astype(np.int8),
        trade_amount=np.round(rng.uniform(0.3, 1.5, m) * 1_000_000, -3),
        trade_tolerance_pct=rng.choice([2.5, 5.0, 10.0, 25.0], m), trade_stage=rng.integers(1, 3, m),
        trade_high_balance_cap_pct=np.where(rng.random(m) < 0.7, 30.0, np.nan),
        cand_loan=loan, cand_trade=trade, cand_score=np.round(rng.uniform(99, 103, len(loan)), 3),
        loan_cash_price=cash,
    )


def _brute_force(p: AllocationProblem, required: np.ndarray) -> float:
    """Best objective over every assignment that respects eligibility, max, caps and the fill set."""
    pair_loan, pair_trade, _, _ = p.pairs()
    options = [[-1, *pair_trade[pair_loan == i].tolist()] for i in range(p.n_loans)]
    tol = p.tolerance()
    max_allowed, min_allowed = p.trade_amount + tol, p.trade_amount - tol
    cap = np.where(np.isnan(p.trade_high_balance_cap_pct), np.inf, p.trade_high_balance_cap_pct) / 100 * p.trade_amount
    best = -np.inf
    for combo in itertools.product(*options):
        lt = np.array(combo)
        placed = lt >= 0
        fill = np.bincount(lt[placed], weights=p.loan_upb[placed], minlength=p.n_trades)
        hb = np.bincount(lt[placed], weights=(p.loan_upb * p.loan_high_balance)[placed], minlength=p.n_trades)
        if (fill > max_allowed + EPS).any() or (hb > cap + EPS).any():
            continue
        if (fill[required] < min_allowed[required] - EPS).any():
            continue
        best = max(best, ob.evaluate(p, lt).objective)
    return best


def _grouped_problem(rng: np.random.Generator, n: int, m: int) -> AllocationProblem:
    """Trades in groups (premiums apart), options per loan and group: the engine's shape."""
    g = int(rng.integers(1, m + 1))
    group = np.r_[np.arange(g), rng.integers(0, g, m - g)]
    eligible = rng.random((n, g)) < 0.7
    loan, opt_group = np.nonzero(eligible)
    return AllocationProblem(
        loan_upb=np.round(rng.lognormal(np.log(300_000), 0.5, n), 2), loan_high_balance=rng.random(n) < 0.2,
        loan_current_trade=np.full(n, -1), loan_fixed_trade=np.full(n, -1),
        loan_no_candidate_reason=np.where(eligible.any(1), 0, 4).astype(np.int8),
        trade_amount=np.round(rng.uniform(0.3, 1.5, m) * 1_000_000, -3),
        trade_tolerance_pct=rng.choice([2.5, 5.0, 10.0, 25.0], m), trade_stage=rng.integers(1, 3, m),
        trade_high_balance_cap_pct=np.where(rng.random(m) < 0.7, 30.0, np.nan),
        trade_group=group, trade_premium=np.round(rng.uniform(99, 101, m), 3),
        opt_loan=loan, opt_group=opt_group, opt_score=np.round(rng.uniform(-0.5, 2.5, len(loan)), 3),
        loan_cash_price=np.where(rng.random(n) < 0.8, np.round(rng.uniform(99, 102, n), 3), np.nan),
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 7), m=st.integers(1, 3), grouped=st.booleans())
def test_matches_brute_force_on_tiny_instances(seed: int, n: int, m: int, grouped: bool) -> None:
    """The optimum over allocations that fill the fill set, and bounds that no allocation beats: lp_bound
    over those allocations, free_bound over all of them."""
    rng = np.random.default_rng(seed)
    p = _grouped_problem(rng, n, m) if grouped else _problem(rng, n, m)
    required = greedy(p).trade_status == "Filled"
    r = allocate(p, "optimal")
    best = _brute_force(p, required)
    assert r.stats["objective_value"] == pytest.approx(best, abs=0.02)
    assert r.stats["lp_bound"] >= best - 0.02
    assert r.stats["free_bound"] >= _brute_force(p, np.zeros(p.n_trades, dtype=bool)) - 0.02


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 60), m=st.integers(1, 6))
def test_never_worse_than_greedy_and_bound_holds(seed: int, n: int, m: int) -> None:
    p = _problem(np.random.default_rng(seed), n, m)
    g, r = allocate(p, "greedy"), allocate(p, "optimal")
    assert r.stats["objective_value"] >= g.stats["objective_value"] - 0.02
    assert (r.trade_status == "Filled").sum() >= (g.trade_status == "Filled").sum()
    assert r.stats["lp_bound"] >= r.stats["objective_value"] - 0.02
    assert r.stats["gap_pct"] >= 0


def test_too_few_loans_reports_the_shortfall_per_trade() -> None:
    n = 3
    p = AllocationProblem.from_pairs(
        loan_upb=np.array([300_000.0, 250_000.0, 200_000.0]), loan_high_balance=np.zeros(n, bool),
        loan_current_trade=np.full(n, -1), loan_fixed_trade=np.full(n, -1),
        loan_no_candidate_reason=np.zeros(n, np.int8), trade_amount=np.array([5_000_000.0, 2_000_000.0]),
        trade_tolerance_pct=np.array([1.0, 1.0]), trade_stage=np.array([1, 1]),
        trade_high_balance_cap_pct=np.array([10.0, 10.0]), cand_loan=np.array([0, 1, 2, 2]),
        cand_trade=np.array([0, 0, 0, 1]), cand_score=np.array([101.0, 101.0, 101.0, 101.5]),
        loan_cash_price=np.array([100.0, 100.0, 100.0]),
    )
    r = allocate(p, "optimal")
    assert (r.loan_trade >= 0).all()  # every loan is worth more in a short trade than in cash
    assert list(r.trade_status) == ["Short", "Short"]
    shortfall = r.trade_min - r.trade_allocated_upb
    assert shortfall == pytest.approx([4_950_000 - r.trade_allocated_upb[0], 1_980_000 - r.trade_allocated_upb[1]])
    assert (shortfall > 0).all() and r.trade_allocated_upb.sum() == pytest.approx(750_000)


def test_large_instance_uses_buckets_lp_and_repair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the bucket LP + rounding + repair path on a mid-size instance with duplicated loans."""
    monkeypatch.setattr(opt, "MIP_MAX_LOANS", 0)
    rng = np.random.default_rng(5)
    base = _problem(rng, 150, 8, density=0.5)
    # interchangeable loans (same options and values) so that buckets hold several loans
    copies = 4
    n = base.n_loans * copies
    base_loan, base_trade, base_score, _ = base.pairs()
    loan = np.concatenate([base_loan + k * base.n_loans for k in range(copies)])
    p = AllocationProblem.from_pairs(
        loan_upb=np.tile(base.loan_upb, copies), loan_high_balance=np.tile(base.loan_high_balance, copies),
        loan_current_trade=np.full(n, -1), loan_fixed_trade=np.full(n, -1),
        loan_no_candidate_reason=np.tile(base.loan_no_candidate_reason, copies),
        trade_amount=base.trade_amount * copies, trade_tolerance_pct=base.trade_tolerance_pct,
        trade_stage=base.trade_stage, trade_high_balance_cap_pct=base.trade_high_balance_cap_pct,
        cand_loan=loan, cand_trade=np.tile(base_trade, copies), cand_score=np.tile(base_score, copies),
        loan_cash_price=np.tile(base.loan_cash_price, copies),
    )
    g, r = allocate(p, "greedy"), allocate(p, "optimal")
    assert r.stats["mip_components"] == 0 and r.stats["lp_buckets"] < n
    assert r.stats["objective_value"] >= g.stats["objective_value"]
    assert (r.trade_status == "Filled").sum() >= (g.trade_status == "Filled").sum()
    assert 0 <= r.stats["gap_pct"] < 5.0  # includes the price of the fill set (the bound ignores it)
    placed = r.loan_trade >= 0
    pair_loan, pair_trade, _, _ = p.pairs()
    pairs = set(zip(pair_loan.tolist(), pair_trade.tolist(), strict=True))
    assert all((int(i), int(r.loan_trade[i])) in pairs for i in np.flatnonzero(placed))
    assert (r.trade_allocated_upb <= r.trade_max + EPS).all()
    assert (r.loan_reason[~placed] > 0).all()
