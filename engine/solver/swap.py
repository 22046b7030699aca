"""Swap loans between two trades: the exchange the repair and the knapsack repacking do not make.

On a book of small trades (a few loans each, bands a fraction of a loan wide) a trade is often short,
or well below its max, with no loan at its alternative that fits, while a loan of the right size sits in
another trade that could not give it up alone (it would leave its band). Exchanging it for one of the
trade's own loans keeps both trades inside their bands: trade j gives loan a (or nothing, or two of its
loans) and takes loan b, b's trade k (or b's alternative) takes what j gives. For each trade, most
promising first, every such exchange is valued at once (numpy) with the objective everything else uses
(points over the alternative, pair-off on shortfalls) and the best one taken when it pays. The hard
limits (max allowed, high-balance cap) hold after every swap, a trade of the fill set that reached its
min keeps it, and every swap raises the objective, so the pass only improves the allocation.
"""

from __future__ import annotations

import functools

import numpy as np

from .problem import EPS, work_clock
from .repair import RepairState

MAX_PAIRS = 20_000  # exchanges valued per trade
OWN_LOANS = 8  # a trade's least valuable loans that may leave it (alone or two together)
MIN_SWAP_DOLLARS = 0.10  # a swap must gain this much (below: float noise and churn that ends only at the deadline)


def swap_pass(state: RepairState, trades: np.ndarray, by_group: list[np.ndarray], deadline: float,
              give_two: bool = False) -> int:
    """One swap (the best that pays) per trade of `trades`, in that order, until `deadline`
    (on problem.work_clock); `by_group`: the free options of each group (pack.options_by_group); `give_two`:
    a trade may also give two of its loans for one. Returns the swaps made."""
    p = state.p
    swaps = 0
    for j in trades.tolist():
        if work_clock() > deadline:
            break
        opts = by_group[int(p.trade_group[j])]
        b = p.opt_loan[opts]
        mine = state.loan_trade[b] == j  # its own free loans are loans of its group
        own = b[mine]
        opts, b = opts[~mine], b[~mine]
        if len(b) == 0:
            continue
        own = own[np.argsort(state.loan_points[own], kind="stable")][:OWN_LOANS]  # its least valuable
        room = MAX_PAIRS // (1 + len(own) * (len(own) + 1) // 2 if give_two else 1 + len(own))
        if len(b) > room:  # a large group: the loans that would gain most in j
            keep = np.argpartition(state.loan_points[b] - state.opt_points[opts], room)[:room]
            opts, b = opts[keep], b[keep]
        # each of its loans, where b was (its alternative when b was at its alternative); row len(own): none
        k = state.loan_trade[b]
        ka = np.maximum(k, 0)
        opt_ab = p.option_of(np.repeat(own, len(b)), np.tile(ka, len(own))).reshape(len(own), len(b))
        pts_ab = np.where(k >= 0, state.opt_points[np.maximum(opt_ab, 0)] + p.trade_premium[ka], 0.0)
        ok_ab = np.r_[(k < 0) | (opt_ab >= 0), np.ones((1, len(b)), dtype=bool)]
        own_u = np.r_[state.upb[own], 0.0]
        own_h = own_u * np.r_[state.hb[own], False]
        gain_ab = np.r_[own_u[:-1, None] * (pts_ab - state.loan_points[own][:, None]) / 100.0, np.zeros((1, len(b)))]
        # what j gives: nothing, one of its loans, or two (indices into own, len(own): none)
        none = len(own)
        one, two = _pairs(len(own) if give_two else 0)
        first, second = np.r_[none, np.arange(len(own)), one], np.r_[none, np.full(len(own), none), two]
        u_b, h_b = state.upb[b], state.upb[b] * state.hb[b]
        b_pts = state.opt_points[opts] + p.trade_premium[j]
        u_a = (own_u[first] + own_u[second])[:, None]
        h_a = (own_h[first] + own_h[second])[:, None]
        gain = u_b * (b_pts - state.loan_points[b]) / 100.0 + gain_ab[first] + gain_ab[second]
        ok = ok_ab[first] & ok_ab[second] & _fits(state, j, u_b - u_a, h_b - h_a)
        ok &= (k < 0) | _fits(state, ka, u_a - u_b, h_a - h_b)
        gain -= _pair_off_change(state, j, u_b - u_a)
        gain -= np.where(k >= 0, _pair_off_change(state, ka, u_a - u_b), 0.0)
        best = np.unravel_index(int(np.argmax(np.where(ok, gain, -np.inf))), gain.shape)
        if not (ok[best] and gain[best] > MIN_SWAP_DOLLARS):
            continue
        g, i = int(best[0]), int(best[1])
        to = int(k[i])
        for a in (first[g], second[g]):
            if a < none:
                state._move(int(own[a]), to, float(pts_ab[a, i]) if to >= 0 else 0.0)
        state._move(int(b[i]), j, float(b_pts[i]))
        swaps += 1
    return swaps


@functools.lru_cache(maxsize=16)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs i < j of n things."""
    return np.triu_indices(n, 1)


def _fits(state: RepairState, trade: int | np.ndarray, change: np.ndarray, hb_change: np.ndarray) -> np.ndarray:
    """Whether the trade(s) may take `change` dollars (negative: give): within max and the high-balance
    cap when growing, and a trade of the fill set that reached its min keeps it."""
    fill = state.fill[trade] + change
    ok = (fill <= state.max_allowed[trade] + EPS) | (change <= 0)
    ok &= (state.hb_fill[trade] + hb_change <= state.hb_cap[trade] + EPS) | (hb_change <= 0)
    kept = state.required[trade] & (state.fill[trade] >= state.min_allowed[trade] - EPS)
    return ok & (~kept | (fill >= state.min_allowed[trade] - EPS))


def _pair_off_change(state: RepairState, trade: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Dollars of pair-off the change of fill adds (negative: saves)."""
    below = state.min_allowed[trade] - state.fill[trade]
    return (np.maximum(0.0, below - change) - np.maximum(0.0, below)) * state.pair_off[trade] / 100.0
