"""The `greedy` strategy: the staged greedy over the allocation arrays, never a loop over loans x trades.

Every round is a handful of sorts and grouped cumulative sums over the live proposals.

Greedy, in the spirit of the original (setup, first pass, substitution, orphan sweep):
1. setup: locked loans are fixed into their pool's trade and count towards its fill.
2. first pass, stage by stage (constraint priority): every unplaced loan proposes to its best
   remaining trade of the stage; each trade accepts proposals in score order while the running
   UPB stays within the trade amount and high-balance loans within the cap. A loan whose proposal
   cannot fit moves on to its next trade.
3. orphan sweep: loans still unplaced fill any eligible trade up to its max allowed.
4. substitution (up to 20 iterations): trades still short take loans from trades that stay above
   their own min allowed without them, then another orphan sweep.
"""

from __future__ import annotations

import numpy as np

from .. import reasons
from .problem import (
    EPS,
    PASS_FIRST,
    PASS_LOCKED,
    PASS_NONE,
    PASS_ORPHAN,
    PASS_SUBSTITUTION,
    AllocationProblem,
    AllocationResult,
)

STABILITY_BONUS = 1.0  # points added, for ordering only, to a pooled loan's current trade
MAX_SUBSTITUTION_ITERATIONS = 20


def _grouped_cumsum(groups_sorted: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Cumulative sum that restarts where the (sorted) group changes."""
    total = np.cumsum(values)
    if len(values) == 0:
        return total
    starts = np.flatnonzero(np.r_[True, groups_sorted[1:] != groups_sorted[:-1]])
    offsets = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return total - offsets


class _GreedyState:
    """The greedy's working assignment: placements, fills per trade, and the proposal priorities."""

    def __init__(self, p: AllocationProblem) -> None:
        self.p = p
        n, m = p.n_loans, p.n_trades
        self.limits = p.limits()
        self.min_allowed, self.max_allowed = self.limits.min_allowed, self.limits.max_allowed
        self.hb_cap = self.limits.hb_cap
        self.loan_trade = np.full(n, -1, dtype=np.int64)
        self.loan_pass = np.zeros(n, dtype=np.int8)
        self.hb_rejected = np.zeros(n, dtype=bool)
        self.fill = np.zeros(m)
        self.hb_fill = np.zeros(m)
        self.count = np.zeros(m, dtype=np.int64)
        self.upb = p.loan_upb.astype(float)
        self.hb = p.loan_high_balance.astype(bool)
        keep = p.loan_fixed_trade[p.cand_loan] < 0  # locked loans do not move
        self.cand = np.flatnonzero(keep)
        bonus = (p.cand_trade == p.loan_current_trade[p.cand_loan]) * STABILITY_BONUS
        self.priority = p.cand_score + bonus
        self.rounds = 0

    def place(self, loans: np.ndarray, trades: np.ndarray, pass_code: int) -> None:
        self.loan_trade[loans] = trades
        self.loan_pass[loans] = pass_code
        m = self.p.n_trades
        self.fill += np.bincount(trades, weights=self.upb[loans], minlength=m)
        self.hb_fill += np.bincount(trades, weights=self.upb[loans] * self.hb[loans], minlength=m)
        self.count += np.bincount(trades, minlength=m)

    def unplace(self, loans: np.ndarray) -> None:
        trades = self.loan_trade[loans]
        m = self.p.n_trades
        self.fill -= np.bincount(trades, weights=self.upb[loans], minlength=m)
        self.hb_fill -= np.bincount(trades, weights=self.upb[loans] * self.hb[loans], minlength=m)
        self.count -= np.bincount(trades, minlength=m)
        self.loan_trade[loans] = -1
        self.loan_pass[loans] = PASS_NONE

    def fill_rounds(self, pairs: np.ndarray, limit: np.ndarray, pass_code: int) -> None:
        """Proposal rounds over `pairs` (candidate indices) for unplaced loans, up to `limit` per trade."""
        p = self.p
        pairs = pairs[self.loan_trade[p.cand_loan[pairs]] < 0]
        if len(pairs) == 0:
            return
        order = pairs[np.lexsort((-self.priority[pairs], p.cand_loan[pairs]))]
        loans_sorted = p.cand_loan[order]
        _, first = np.unique(loans_sorted, return_index=True)
        ends = np.r_[first[1:], len(order)]
        ptr = first.copy()
        alive = np.ones(len(first), dtype=bool)
        while True:
            active = np.flatnonzero(alive & (ptr < ends))
            if len(active) == 0:
                break
            self.rounds += 1
            pair = order[ptr[active]]
            loan, trade = p.cand_loan[pair], p.cand_trade[pair]
            upb, hb = self.upb[loan], self.hb[loan]
            room = limit[trade] - self.fill[trade]
            hb_room = self.hb_cap[trade] - self.hb_fill[trade]
            too_big = upb > room + EPS
            hb_block = hb & (upb > hb_room + EPS)
            self.hb_rejected[loan[hb_block & ~too_big]] = True
            reject = too_big | hb_block
            ptr[active[reject]] += 1  # that trade can never take this loan now: try the next one
            fits = np.flatnonzero(~reject)
            if len(fits) == 0:
                continue
            o = fits[np.lexsort((-self.priority[pair[fits]], trade[fits]))]
            t_sorted = trade[o]
            cum = _grouped_cumsum(t_sorted, upb[o])
            hb_cum = _grouped_cumsum(t_sorted, upb[o] * hb[o])
            ok = (cum <= room[o] + EPS) & (~hb[o] | (hb_cum <= hb_room[o] + EPS))
            accepted = o[ok]
            self.place(loan[accepted], trade[accepted], pass_code)
            alive[active[accepted]] = False

    def substitute(self) -> int:
        """Move loans from trades with slack into short trades; returns the number of moves."""
        p = self.p
        moves = 0
        for _ in range(MAX_SUBSTITUTION_ITERATIONS):
            short = self.fill < self.min_allowed - EPS
            if not short.any():
                break
            c = self.cand
            loan, dest = p.cand_loan[c], p.cand_trade[c]
            donor = self.loan_trade[loan]
            upb = self.upb[loan]
            ok = (short[dest] & (donor >= 0) & (donor != dest) & (self.loan_pass[loan] != PASS_LOCKED))
            safe_donor = np.maximum(donor, 0)
            ok &= self.fill[safe_donor] - upb >= self.min_allowed[safe_donor] - EPS
            ok &= upb <= self.max_allowed[dest] - self.fill[dest] + EPS
            ok &= ~self.hb[loan]  # high-balance loans stay put here, so the caps need no re-check
            sel = c[ok]
            if len(sel) == 0:
                break
            # One move per loan (its best destination); prefix sums keep destinations within max
            # and donors within their min.
            sel = sel[np.lexsort((-self.priority[sel], p.cand_loan[sel]))]
            _, first = np.unique(p.cand_loan[sel], return_index=True)
            sel = sel[first]
            loan, dest = p.cand_loan[sel], p.cand_trade[sel]
            donor, upb = self.loan_trade[loan], self.upb[loan]
            o = np.lexsort((-upb, dest))
            in_dest = _grouped_cumsum(dest[o], upb[o]) <= (self.max_allowed - self.fill)[dest[o]] + EPS
            o = o[in_dest]
            o2 = o[np.lexsort((-upb[o], donor[o]))]
            in_donor = _grouped_cumsum(donor[o2], upb[o2]) <= (self.fill - self.min_allowed)[donor[o2]] + EPS
            chosen = o2[in_donor]
            if len(chosen) == 0:
                break
            self.unplace(loan[chosen])
            self.place(loan[chosen], dest[chosen], PASS_SUBSTITUTION)
            moves += len(chosen)
        return moves


def greedy(problem: AllocationProblem) -> AllocationResult:
    """The staged greedy (see the module docstring)."""
    p = problem
    s = _GreedyState(p)
    fixed = np.flatnonzero(p.loan_fixed_trade >= 0)
    s.place(fixed, p.loan_fixed_trade[fixed], PASS_LOCKED)
    for stage in np.unique(p.trade_stage):
        pairs = s.cand[p.trade_stage[p.cand_trade[s.cand]] == stage]
        s.fill_rounds(pairs, p.trade_amount, PASS_FIRST)
    s.fill_rounds(s.cand, s.max_allowed, PASS_ORPHAN)
    moves = s.substitute()
    if moves:
        s.fill_rounds(s.cand, s.max_allowed, PASS_ORPHAN)
    return _result(p, s, moves)


def _result(p: AllocationProblem, s: _GreedyState, moves: int) -> AllocationResult:
    unplaced = s.loan_trade < 0
    reason = np.where(p.loan_no_candidate_reason > 0, p.loan_no_candidate_reason,
                      np.where(s.hb_rejected, reasons.HIGH_BALANCE_CAP, reasons.TRADES_FULL))
    loan_reason = np.where(unplaced, reason, reasons.PLACED).astype(np.int8)
    chosen = (s.loan_trade[p.cand_loan] == p.cand_trade) & (s.loan_pass[p.cand_loan] != PASS_LOCKED)
    return AllocationResult(
        loan_trade=s.loan_trade, loan_pass=s.loan_pass, loan_reason=loan_reason,
        trade_allocated_upb=s.fill, trade_allocated_count=s.count, trade_high_balance_upb=s.hb_fill,
        trade_tolerance=s.limits.tolerance, trade_min=s.min_allowed, trade_max=s.max_allowed,
        trade_status=s.limits.status(s.fill, s.count), cand_chosen=chosen,
        stats={"rounds": s.rounds, "substitution_moves": moves},
    )
