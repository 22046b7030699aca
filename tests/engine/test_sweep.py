"""Moves of the `optimal` strategy that the repair's single moves cannot make. The final sweep
(repair.RepairState.fill_short): a MIP stopped by its time limit may keep an incumbent that leaves a
trade short beside an unplaced loan that fits it; the sweep puts such loans in, within the band's max,
the high-balance cap and eligibility. Swaps between trades (swap.py) on a book of small trades."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from pfill.engine.solver import AllocationProblem, allocate
from pfill.engine.solver import objective as ob
from pfill.engine.solver import optimal as opt
from pfill.engine.solver.pack import MIN_UNIT, _best_set, options_by_group
from pfill.engine.solver.repair import MIN_GAIN, RepairState
from pfill.engine.solver.swap import swap_pass
from tests.engine.test_allocator_properties import check_invariants
from tests.engine.test_optimal import _problem


def _short_book() -> tuple[AllocationProblem, np.ndarray]:
    """Trade 0 ([950k, 1,050k], high-balance cap $100k) holds loan 0 ($600k) and is short. Unplaced: loan 1
    ($400k, fits), loan 2 ($500k, over the max), loan 3 (high-balance $300k, over the cap), loan 4
    ($400k, eligible only for trade 1, which is inside its band)."""
    upb = np.array([600_000.0, 400_000.0, 500_000.0, 300_000.0, 400_000.0, 1_000_000.0])
    loan = np.array([0, 1, 2, 3, 4, 5])
    trade = np.array([0, 0, 0, 0, 1, 1])
    p = AllocationProblem.from_pairs(
        loan_upb=upb, loan_high_balance=np.array([0, 0, 0, 1, 0, 0], dtype=bool),
        loan_current_trade=np.full(6, -1), loan_fixed_trade=np.full(6, -1),
        loan_no_candidate_reason=np.zeros(6, dtype=np.int8), trade_amount=np.array([1_000_000.0, 1_000_000.0]),
        trade_tolerance_pct=np.array([5.0, 50.0]), trade_stage=np.array([1, 1]),
        trade_high_balance_cap_pct=np.array([10.0, np.nan]),
        cand_loan=loan, cand_trade=trade, cand_score=np.full(len(loan), 101.0),
    )
    return p, np.array([0, -1, -1, -1, -1, 1])


def _state(p: AllocationProblem, loan_trade: np.ndarray) -> RepairState:
    free_opts = np.flatnonzero(p.loan_fixed_trade[p.opt_loan] < 0)
    opt_points = p.opt_score - ob.alternative_points(p)[p.opt_loan]
    return RepairState(p, loan_trade, opt_points, ob.pair_off_points(p), free_opts, np.zeros(p.n_trades, dtype=bool))


def test_the_sweep_fills_a_short_trade_with_a_loan_that_fits() -> None:
    p, loan_trade = _short_book()
    state = _state(p, loan_trade)
    assert state.fill_short() == 1
    # only loan 1: the others do not fit, or their trade is not short
    assert state.loan_trade.tolist() == [0, 0, -1, -1, -1, 1]
    assert ob.evaluate(p, state.loan_trade).objective > ob.evaluate(p, loan_trade).objective
    assert state.fill_short() == 0  # trade 0 is inside its band now


@pytest.mark.parametrize("seed", range(4))
def test_a_short_trade_left_beside_a_loan_that_fits_is_filled(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a MIP stopped at its time limit can leave (the flake of test_allocation_invariants[optimal]
    under load), made deterministic: just before the sweep, one loan leaves a trade inside its band,
    which goes short; the result still passes every invariant, among them that no short trade could
    have taken an unplaced loan (no cash here: every loan pays in a trade)."""
    p = _problem(np.random.default_rng(seed), 30, 5, with_cash=False)
    real = opt.stay_in_pools
    taken = []

    def stay_then_drop_a_loan(p_: AllocationProblem, loan_trade: np.ndarray, *args, **kwargs) -> int:
        moved = real(p_, loan_trade, *args, **kwargs)
        limits = p_.limits()
        placed = loan_trade >= 0
        fill = np.bincount(loan_trade[placed], weights=p_.loan_upb[placed], minlength=p_.n_trades)
        for loan in np.flatnonzero(placed).tolist():
            t = loan_trade[loan]
            if fill[t] >= limits.min_allowed[t] and fill[t] - p_.loan_upb[loan] < limits.min_allowed[t]:
                loan_trade[loan] = -1
                taken.append(loan)
                break
        return moved

    monkeypatch.setattr(opt, "stay_in_pools", stay_then_drop_a_loan)
    r = allocate(p, "optimal")
    assert taken  # a trade went short
    check_invariants(p, r)
    assert r.stats["swept_into_short"] >= 1


def test_a_swap_fills_a_short_trade_that_no_single_move_can() -> None:
    """Trade 0 ([950k, 1,050k]) holds $300k + $600k and is short; trade 1 ([290k, 410k]) holds $400k. No
    loan is at its alternative and moving either loan alone breaks a band; exchanging the $300k and the
    $400k fills both (swap.py)."""
    upb = np.array([300_000.0, 600_000.0, 400_000.0])
    p = AllocationProblem.from_pairs(
        loan_upb=upb, loan_high_balance=np.zeros(3, dtype=bool), loan_current_trade=np.full(3, -1),
        loan_fixed_trade=np.full(3, -1), loan_no_candidate_reason=np.zeros(3, dtype=np.int8),
        trade_amount=np.array([1_000_000.0, 350_000.0]), trade_tolerance_pct=np.array([5.0, 60_000 / 3_500]),
        trade_stage=np.array([1, 1]), trade_high_balance_cap_pct=np.array([np.nan, np.nan]),
        cand_loan=np.array([0, 0, 1, 2, 2]), cand_trade=np.array([0, 1, 0, 0, 1]), cand_score=np.full(5, 101.0),
    )
    loan_trade = np.array([0, 0, 1])
    state = _state(p, loan_trade)
    state.improve()
    assert state.loan_trade.tolist() == [0, 0, 1]  # the repair's single moves cannot
    by_group = options_by_group(state)
    assert swap_pass(state, np.array([0, 1]), by_group, np.inf) == 1
    assert state.loan_trade.tolist() == [1, 0, 0]
    fill = np.bincount(state.loan_trade, weights=upb, minlength=2)
    limits = p.limits()
    assert ((fill >= limits.min_allowed - 0.01) & (fill <= limits.max_allowed + 0.01)).all()
    assert ob.evaluate(p, state.loan_trade).objective > ob.evaluate(p, loan_trade).objective


@pytest.mark.parametrize("seed", range(6))
def test_moves_checked_a_chunk_at_a_time_are_those_checked_one_by_one(seed: int) -> None:
    """take_in_order against the plain walk: every candidate move in turn, taken when it gains more than
    MIN_GAIN at that moment. Random books with cash, a random start, the repair's own candidates (many
    into the same trades, so most are refused after an earlier one)."""
    rng = np.random.default_rng(seed)
    p = _problem(rng, 120, 8, density=0.7)
    pair_loan, pair_trade, _, _ = p.pairs()
    start = np.full(p.n_loans, -1)
    some = rng.random(len(pair_loan)) < 0.15
    start[pair_loan[some]] = pair_trade[some]  # a loan's last pair drawn wins: one trade each
    limited = _state(p, start)
    limited.fix_limits()  # every trade within its max and cap: room for moves
    chunked, one_by_one = _state(p, limited.loan_trade), _state(p, limited.loan_trade)
    loan, dest, points = chunked.candidate_moves()
    order = rng.permutation(len(loan))
    taken = chunked.take_in_order(loan[order], dest[order], points[order])
    expected = 0
    for i, t, pts in zip(loan[order], dest[order], points[order], strict=True):
        one = (np.array([i]), np.array([t]), np.array([pts]))
        if one_by_one.loan_trade[i] != t and one_by_one.fits(*one[:2])[0] and one_by_one.gains(*one)[0] > MIN_GAIN:
            one_by_one._move(int(i), int(t), float(pts))
            expected += 1
    assert taken == expected > 3
    assert chunked.loan_trade.tolist() == one_by_one.loan_trade.tolist()


@pytest.mark.parametrize("seed", range(20))
def test_the_knapsack_finds_the_best_set(seed: int) -> None:
    """pack._best_set without pair-off is a 0/1 knapsack on UPB rounded up to units: its set is worth
    what the best of every subset is (brute force over up to 10 loans), and never over the room."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 11))
    upb = np.round(rng.uniform(50_000, 400_000, k), 2)
    value = np.round(rng.normal(500, 400, k), 2)
    room = float(rng.uniform(0.3, 0.8) * upb.sum())
    chosen = _best_set(upb, value, room, need=0.0, q=0.0, must=False)
    weight = np.ceil(upb / MIN_UNIT - 1e-9)
    cap = np.floor(room / MIN_UNIT + 1e-9)
    best = max(value[list(s)].sum() for r in range(k + 1) for s in combinations(range(k), r)
               if weight[list(s)].sum() <= cap)
    assert chosen is not None and upb[chosen].sum() <= room
    assert value[chosen].sum() == pytest.approx(best, abs=1e-6)
