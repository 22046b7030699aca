"""The `optimal` strategy keeps a pooled loan in its pool's trade when moving it gains nothing (stay.py):
on books where staying is as good as any move, nothing moves, and the value and the bound are those the
allocation had without the preference (one objective: the bound is untouched, the value is optimal)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pfill.engine.solver import AllocationProblem, allocate, stay
from pfill.engine.solver import objective as ob
from tests.engine.test_optimal import _problem


def _tied_book(seed: int, n_trades: int = 4, per: int = 6, prices_apart: bool = False) -> AllocationProblem:
    """Trades of one group (the same loans fit all of them), each sized to its pooled loans (loans of one
    size, scores of their own): every loan is worth as much in any trade (equal prices), so staying is
    an optimum; the pooled loans are spread over the trades in a random order, so an allocation that
    ignores where they sit moves most of them. (Loans of different sizes in tight bands may need several
    loans exchanged at once to go home; stay.py exchanges one for one.)"""
    rng = np.random.default_rng(seed)
    n = n_trades * per
    upb = np.full(n, 250_000.0)
    current = rng.permutation(np.repeat(np.arange(n_trades), per))
    amount = np.bincount(current, weights=upb, minlength=n_trades)
    price = np.full(n_trades, 100.5) + (np.arange(n_trades) * 0.25 if prices_apart else 0.0)
    return AllocationProblem(
        loan_upb=upb, loan_high_balance=np.zeros(n, dtype=bool), loan_current_trade=current,
        loan_fixed_trade=np.full(n, -1), loan_no_candidate_reason=np.zeros(n, dtype=np.int8),
        trade_amount=amount, trade_tolerance_pct=np.full(n_trades, 0.5), trade_stage=np.ones(n_trades, dtype=np.int64),
        trade_high_balance_cap_pct=np.full(n_trades, np.nan), trade_group=np.zeros(n_trades, dtype=np.int64),
        trade_premium=price, opt_loan=np.arange(n), opt_group=np.zeros(n, dtype=np.int64),
        opt_score=np.round(rng.uniform(0.0, 0.5, n), 3), loan_cash_price=np.full(n, 99.0),
    )


@pytest.mark.parametrize("seed", range(5))
def test_nothing_moves_where_staying_is_as_good(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _tied_book(seed)
    r = allocate(p, "optimal")
    assert np.array_equal(r.loan_trade, p.loan_current_trade)
    assert r.stats["stayed_in_pool"] > 0  # the allocation before the preference had moved them
    assert r.stats["objective_value"] == pytest.approx(r.stats["lp_bound"], abs=0.02)
    assert r.stats["proven_optimal"] == 1 and (r.trade_status == "Filled").all()

    monkeypatch.setattr(stay, "STAY_POINTS", -1.0)  # no preference: the same value, most loans moved
    before = allocate(p, "optimal")
    assert before.stats["objective_value"] == pytest.approx(r.stats["objective_value"], abs=0.02)
    assert before.stats["lp_bound"] == pytest.approx(r.stats["lp_bound"], abs=0.02)
    assert (before.loan_trade != p.loan_current_trade).sum() > p.n_loans // 2


@pytest.mark.parametrize("seed", range(3))
def test_a_move_that_pays_is_kept(seed: int) -> None:
    """Prices apart: each loan is worth more in the dearer trades, so the optimum moves loans where that
    pays; the preference never gives that up (the value stays the bound, within cents)."""
    p = _tied_book(seed, prices_apart=True)
    r = allocate(p, "optimal")
    assert r.stats["objective_value"] >= ob.evaluate(p, p.loan_current_trade).objective - 0.02
    assert r.stats["objective_value"] == pytest.approx(r.stats["lp_bound"], abs=1.0)


@pytest.mark.parametrize("seed", range(8))
def test_the_size_check_skips_only_loans_no_swap_takes_home(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """keep_pools passes over a pooled loan when no partner's UPB lies in stay.swap_sizes; checking every
    loan's every swap instead (the window made infinite) moves the same loans. Loans of mixed sizes,
    pooled at random, placed at random within the trades' max: many swaps fail a band, some pass."""
    rng = np.random.default_rng(seed)
    base = _problem(rng, 200, 10, density=0.7)
    pooled = np.where(rng.random(200) < 0.5, rng.integers(0, 10, 200), -1)
    p = dataclasses.replace(base, loan_current_trade=pooled)
    opt_points = p.opt_score - ob.alternative_points(p)[p.opt_loan]
    pair_loan, pair_trade, _, _ = p.pairs()
    start = np.full(p.n_loans, -1)
    fill = np.zeros(p.n_trades)
    for i in rng.permutation(len(pair_loan)).tolist():  # random placements within each trade's max
        loan, trade = pair_loan[i], pair_trade[i]
        if start[loan] < 0 and fill[trade] + p.loan_upb[loan] <= p.limits().max_allowed[trade]:
            start[loan], fill[trade] = trade, fill[trade] + p.loan_upb[loan]

    def moved(window: bool) -> list[int]:
        if not window:
            monkeypatch.setattr(stay, "swap_sizes", lambda *_: (-np.inf, np.inf))
        loan_trade = start.copy()
        stay.keep_pools(p, loan_trade, opt_points, ob.pair_off_points(p), np.array([1e12]), np.zeros(200, np.int64))
        return loan_trade.tolist()

    with_window = moved(True)
    assert with_window == moved(False)
    assert with_window != start.tolist()  # some loans went home
