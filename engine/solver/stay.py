"""Stability: a loan already in an existing pool stays in that pool's trade when moving it gains nothing.

The LP, the rounding and the MIP decide how many dollars of which loans go to each trade, not which
loan of a group goes to which of the group's trades: within a group every trade takes the same loans
(only the price differs), so among allocations of the same value they pick one without regard to where
a loan already sits, and about two thirds of the pooled loans of the demo book switched pools for no gain
(a noisy switching report, and pools to re-cut for nothing). This pass runs on the final allocation: each
pooled loan that was placed elsewhere goes back to its current trade when that costs at most
STAY_POINTS of its UPB (ties and near-ties stay put):

- directly, when its trade has room and the trade it leaves stays inside its band (or was short anyway);
- or by a swap with a loan of its current trade that is not at home there (taking the moving loan's place,
  or its alternative when the moving loan was at cash), choosing the swap worth the most.

Largest loans first, for at most STAY_SECONDS.

Every move keeps the hard limits (max allowed, high-balance cap), never breaks a trade that was inside
its band, and is valued with the same objective as everything else (objective.py), so the value and the
bound stay those of one objective: the bound is unchanged, the value drops by at most the near-ties'
cents, limited per component so that a proven component stays proven and in all to what the allocation
is worth above the greedy's.
"""

from __future__ import annotations

import numpy as np

from .problem import EPS, AllocationProblem, work_clock

STAY_POINTS = 0.001  # points of the loan's UPB a move back to its pool's trade may cost ($2.50 on $250k)
STAY_SECONDS = 1.0  # the pass stops after this long (largest loans first), like the knapsack repacking


def keep_pools(p: AllocationProblem, loan_trade: np.ndarray, opt_points: np.ndarray, pair_off: np.ndarray,
               budget: np.ndarray, loan_budget: np.ndarray) -> int:
    """Move pooled loans back to their current trade where it costs at most STAY_POINTS each, changing
    `loan_trade` in place. `budget`: dollars each budget group (component) may lose in all, `loan_budget`:
    (n,) each loan's budget group (-1: none, the loan is not moved). Returns the loans moved back."""
    current = p.loan_current_trade
    free = p.loan_fixed_trade < 0
    away = np.flatnonzero(free & (current >= 0) & (loan_trade != current) & (loan_budget >= 0))
    if len(away) == 0:
        return 0
    home_opt = p.option_of(away, current[away])
    away = away[home_opt >= 0]  # its pool's trade is still eligible
    if len(away) == 0:
        return 0
    upb = p.loan_upb.astype(float)
    hb = p.loan_high_balance.astype(bool)
    limits = p.limits()
    lo, hi, cap = limits.min_allowed, limits.max_allowed, limits.hb_cap
    placed = loan_trade >= 0
    fill = np.bincount(loan_trade[placed], weights=upb[placed], minlength=p.n_trades)
    hb_upb = upb * hb
    hb_fill = np.bincount(loan_trade[placed], weights=hb_upb[placed], minlength=p.n_trades)
    left = budget.astype(float).copy()
    # each trade's free loans that are not at home there (the swap partners), sorted by trade; kept
    # as arrays, a trade's rebuilt when a move touches it
    guests = np.flatnonzero(placed & free & (loan_trade != current))
    guests = guests[np.argsort(loan_trade[guests], kind="stable")]
    edges = np.searchsorted(loan_trade[guests], np.arange(p.n_trades + 1))
    partners = {t: guests[edges[t]:edges[t + 1]] for t in np.unique(loan_trade[guests]).tolist()}
    deadline = work_clock() + STAY_SECONDS

    def points(loans: np.ndarray, trades: np.ndarray) -> np.ndarray:
        """Premium points of each loan in its trade over its alternative (0 at its alternative, trade -1;
        NaN: not eligible)."""
        opt = p.option_of(loans, trades)
        return np.where(trades < 0, 0.0,
                        np.where(opt >= 0, opt_points[np.maximum(opt, 0)] + p.trade_premium[np.maximum(trades, 0)],
                                 np.nan))

    # each loan's points where it is now, and its gain from going home from there (apply keeps both)
    now_points = points(np.arange(p.n_loans), loan_trade)
    home_gain = np.zeros(p.n_loans)
    home_gain[away] = points(away, current[away]) - now_points[away]

    def band_ok(trade: int, change: np.ndarray, hb_change: np.ndarray) -> np.ndarray:
        """Whether the trade may take `change` dollars (negative: give): never over max or the cap when
        growing, never out of its band when it was inside."""
        if trade < 0:
            return np.ones(len(change), dtype=bool)
        new = fill[trade] + change
        ok = (new <= hi[trade] + EPS) | (change <= 0)
        ok &= (hb_fill[trade] + hb_change <= cap[trade] + EPS) | (hb_change <= 0)
        if fill[trade] >= lo[trade] - EPS:
            ok &= new >= lo[trade] - EPS
        return ok

    def pair_off_change(trade: int, change: np.ndarray) -> np.ndarray:
        """Dollars of pair-off the change adds (negative: saves)."""
        if trade < 0:
            return np.zeros(len(change))
        before = max(0.0, lo[trade] - fill[trade])
        return (np.maximum(0.0, lo[trade] - fill[trade] - change) - before) * pair_off[trade] / 100.0

    def apply(loan: int, source: int, target: int) -> None:
        if source >= 0:
            fill[source] -= upb[loan]
            hb_fill[source] -= upb[loan] * hb[loan]
            partners[source] = partners.get(source, guests[:0])[partners.get(source, guests[:0]) != loan]
        if target >= 0:
            fill[target] += upb[loan]
            hb_fill[target] += upb[loan] * hb[loan]
            if current[loan] != target:
                partners[target] = np.append(partners.get(target, guests[:0]), loan)
        loan_trade[loan] = target
        now_points[loan] = points(np.array([loan]), np.array([target]))[0]
        home_gain[loan] = points(np.array([loan]), current[[loan]])[0] - now_points[loan]

    moved = 0
    for loan in away[np.argsort(-upb[away], kind="stable")].tolist():
        if work_clock() > deadline:
            break
        home, there = int(current[loan]), int(loan_trade[loan])
        group = int(loan_budget[loan])
        u, h = upb[loan], upb[loan] * hb[loan]
        others = partners.get(home, guests[:0])
        if not len(others) and (fill[home] + u > hi[home] + EPS or hb_fill[home] + h > cap[home] + EPS):
            continue  # no room at home and no one to swap with
        low, high = swap_sizes(fill, lo, hi, home, there, u)
        sizes = upb[others]
        if (low > 0 or high < 0) and (not len(others) or sizes.max() < low or sizes.min() > high):
            continue  # neither the direct move nor any swap keeps both bands (checked exactly below)
        gain = home_gain[loan] * u / 100.0
        # the direct move first (partner -1), then every swap with a loan of the home trade not at home there
        partner = np.concatenate(([-1], others))
        v = np.concatenate(([0.0], sizes))
        hv = np.concatenate(([0.0], hb_upb[others]))
        ok = band_ok(home, u - v, h - hv) & band_ok(there, v - u, hv - h)
        if not ok.any():
            continue
        # what each partner the bands allow gains by going to `there` (NaN: not eligible there)
        back = np.zeros(len(partner))
        allowed = others[ok[1:]]
        back[1:][ok[1:]] = (points(allowed, np.full(len(allowed), there)) - now_points[allowed]) * upb[allowed] / 100.0
        ok &= ~np.isnan(back)
        if not ok.any():
            continue
        worth = gain + np.nan_to_num(back) - pair_off_change(home, u - v) - pair_off_change(there, v - u)
        worth = np.where(ok, worth + 1e-9 * (current[np.maximum(partner, 0)] == there) * (partner >= 0), -np.inf)
        k = int(np.argmax(worth))
        best, loss = float(worth[k]), max(0.0, -float(worth[k]))
        if best < -STAY_POINTS * u / 100.0 or loss > left[group] + 1e-9:
            continue
        left[group] -= loss
        if partner[k] >= 0:
            apply(int(partner[k]), home, there)
        apply(loan, there, home)
        moved += 1
    return moved


def swap_sizes(fill: np.ndarray, lo: np.ndarray, hi: np.ndarray, home: int, there: int, u: float
               ) -> tuple[float, float]:
    """The UPBs a partner (a loan of `home` going to `there` in exchange for one of `u` coming home) may
    have for both trades to keep their bands, the caps aside, a dollar wider than keep_pools' exact
    check: no partner outside them can be taken (a partner of 0: the direct move)."""
    low = min(u, u + fill[home] - hi[home] - 1.0)
    high = u + fill[home] - lo[home] + 1.0 if fill[home] >= lo[home] - EPS else np.inf
    if there >= 0:
        high = min(high, max(u, u + hi[there] - fill[there] + 1.0))
        if fill[there] >= lo[there] - EPS:
            low = max(low, u + lo[there] - fill[there] - 1.0)
    return low, high
