"""The `greedy` strategy: the staged greedy over the allocation arrays, never a loop over loans x trades.

Every round is a handful of sorts and grouped cumulative sums over the live proposals. Loans walk the
trades of their options' groups (best premium first, merged across groups by score), so a round costs
the live options, not the eligible pairs.

Greedy, in the spirit of the original (setup, first pass, substitution, orphan sweep):
1. setup: locked loans are fixed into their pool's trade and count towards its fill.
2. first pass, stage by stage (constraint priority): every unplaced loan proposes to its best
   remaining trade of the stage that can still take it (room and high-balance cap); each trade
   accepts proposals in score order while the running UPB stays within the trade amount and
   high-balance loans within the cap. A loan not accepted proposes again next round.
3. orphan sweep: loans still unplaced fill any eligible trade up to its max allowed.
4. substitution (up to 20 iterations): trades still short take loans from trades that stay above
   their own min allowed without them, then another orphan sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    best_per_segment,
    ranges,
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
    """The greedy's working assignment: placements, fills per trade, and the options still to try."""

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
        self.free_opt = np.flatnonzero(p.loan_fixed_trade[p.opt_loan] < 0)  # locked loans do not move
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

    def _walks(self, allowed: np.ndarray) -> _Walks:
        """The lists the unplaced loans walk: per option the allowed trades of its group, best premium
        first; a loan's current trade (its pool's) is a list of its own, tried at its score plus the
        stability bonus, and skipped in its group's list."""
        p = self.p
        _, trades = p.group_trades()
        listed = trades[allowed[trades]]
        list_start = np.r_[0, np.cumsum(np.bincount(p.trade_group[listed], minlength=p.n_groups))]
        opts = self.free_opt[self.loan_trade[p.opt_loan[self.free_opt]] < 0]
        g = p.opt_group[opts]
        opts = opts[list_start[g + 1] > list_start[g]]
        loan, g = p.opt_loan[opts], p.opt_group[opts]
        current = p.loan_current_trade[loan]
        safe = np.maximum(current, 0)
        own = (current >= 0) & (p.trade_group[safe] == g) & allowed[safe]
        k = int(own.sum())
        entry_loan = np.r_[loan, loan[own]]
        lo = np.r_[list_start[g], len(listed) + np.arange(k)]
        order = np.argsort(entry_loan, kind="stable")
        return _Walks(
            trades=np.r_[listed, current[own]], loan=entry_loan[order],
            score=np.r_[p.opt_score[opts], p.opt_score[opts[own]]][order],
            bonus=np.r_[np.zeros(len(opts)), np.full(k, STABILITY_BONUS)][order],
            skip=np.r_[np.where(own, current, -1), np.full(k, -1)][order],
            ptr=lo[order], end=np.r_[list_start[g + 1], lo[len(opts):] + 1][order],
        )

    def _skip_dead(self, w: _Walks, idx: np.ndarray, limit: np.ndarray, changed: np.ndarray | None) -> np.ndarray:
        """Move each walk in `idx` past the trades that cannot take its loan now (too little room, or the
        high-balance cap); returns the walks with a trade left. Rooms only shrink within a fill round, so
        only walks whose head is a `changed` trade (one that took loans since; None: every trade) can
        have died."""
        room = limit - self.fill + EPS
        hb_room = self.hb_cap - self.hb_fill + EPS
        check = idx if changed is None else idx[changed[w.head[idx]]]
        while len(check):
            head = w.head[check]
            upb = w.upb[check]
            too_big = upb > room[head]
            hb_block = w.hb[check] & (upb > hb_room[head])
            skip = head == w.skip[check]
            self.hb_rejected[w.loan[check[hb_block & ~too_big & ~skip]]] = True
            dead = check[skip | too_big | hb_block]
            w.ptr[dead] += 1
            more = w.ptr[dead] < w.end[dead]
            w.head[dead[~more]] = -1
            check = dead[more]
            w.head[check] = w.trades[w.ptr[check]]
        return idx[w.head[idx] >= 0]

    def fill_rounds(self, allowed: np.ndarray, limit: np.ndarray, pass_code: int) -> None:
        """Proposal rounds for the unplaced loans over the `allowed` trades, up to `limit` per trade: each
        loan proposes to its best trade that can still take it; each trade accepts in priority order
        while its running UPB (and high-balance UPB) fits."""
        p = self.p
        w = self._walks(allowed)
        w.upb, w.hb = self.upb[w.loan], self.hb[w.loan]
        idx = np.flatnonzero(w.ptr < w.end)
        w.head = np.full(len(w.loan), -1, dtype=np.int64)
        w.head[idx] = w.trades[w.ptr[idx]]
        changed = None
        while True:
            idx = self._skip_dead(w, idx, limit, changed)
            if len(idx) == 0:
                break
            self.rounds += 1
            changed = np.zeros(p.n_trades, dtype=bool)
            head = w.head[idx]
            loan = w.loan[idx]
            priority = w.base[idx] + p.trade_premium[head]
            first = best_per_segment(loan, priority, head)  # each loan's best walk (idx is sorted by loan)
            loan, trade, priority = loan[first], head[first], priority[first]
            # each trade takes its proposals in priority order while they fit (first fit: a proposal
            # that no longer fits is passed over; it finds the trade full next round)
            o = np.lexsort((-priority, trade))
            while len(o):
                t_sorted, upb, hb = trade[o], self.upb[loan[o]], self.hb[loan[o]]
                cum = _grouped_cumsum(t_sorted, upb)
                hb_cum = _grouped_cumsum(t_sorted, upb * hb)
                room = (limit - self.fill)[t_sorted]
                hb_room = (self.hb_cap - self.hb_fill)[t_sorted]
                ok = (cum <= room + EPS) & (~hb | (hb_cum <= hb_room + EPS))
                accepted = o[ok]
                if len(accepted) == 0:
                    break
                self.place(loan[accepted], trade[accepted], pass_code)
                changed[trade[accepted]] = True
                o = o[~ok]
                left = (upb[~ok] <= (limit - self.fill)[trade[o]] + EPS) & (
                    ~hb[~ok] | (upb[~ok] <= (self.hb_cap - self.hb_fill)[trade[o]] + EPS))
                o = o[left]
            idx = idx[self.loan_trade[w.loan[idx]] < 0]

    def substitute(self) -> int:
        """Move loans from trades with slack into short trades; returns the number of moves."""
        p = self.p
        moves = 0
        _, trades = p.group_trades()
        for _ in range(MAX_SUBSTITUTION_ITERATIONS):
            short = self.fill < self.min_allowed - EPS
            if not short.any():
                break
            # loans that can leave their trade (it stays above its min without them), per loan first
            donor = self.loan_trade
            safe_donor = np.maximum(donor, 0)
            can_leave = (donor >= 0) & (self.loan_pass != PASS_LOCKED) & ~self.hb
            can_leave &= self.fill[safe_donor] - self.upb >= self.min_allowed[safe_donor] - EPS
            short_trades = trades[short[trades]]
            short_start = np.r_[0, np.cumsum(np.bincount(p.trade_group[short_trades], minlength=p.n_groups))]
            opts = self.free_opt
            opts = opts[can_leave[p.opt_loan[opts]]]
            g = p.opt_group[opts]
            opts = opts[short_start[g + 1] > short_start[g]]
            if len(opts) == 0:
                break
            # every (loan, short trade of its group) pair
            g = p.opt_group[opts]
            count = short_start[g + 1] - short_start[g]
            rep = np.repeat(opts, count)
            dest = short_trades[ranges(short_start[g], count)]
            loan, upb = p.opt_loan[rep], self.upb[p.opt_loan[rep]]
            donor = self.loan_trade[loan]
            fits = (dest != donor) & (upb <= self.max_allowed[dest] - self.fill[dest] + EPS)
            rep, dest, loan, upb, donor = rep[fits], dest[fits], loan[fits], upb[fits], donor[fits]
            if len(rep) == 0:
                break
            bonus = (dest == p.loan_current_trade[loan]) * STABILITY_BONUS
            priority = p.opt_score[rep] + p.trade_premium[dest] + bonus
            # One move per loan (its best destination; the pairs are sorted by loan); prefix sums keep
            # destinations within max and donors within their min.
            sel = best_per_segment(loan, priority, dest)
            loan, dest, donor, upb = loan[sel], dest[sel], donor[sel], upb[sel]
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


@dataclass
class _Walks:
    """The lists a fill round walks, one per (loan, option) plus one per loan's current trade; sorted by
    loan. Walk e tries trades[ptr[e]:end[e]] in order."""

    trades: np.ndarray  # the concatenated lists
    loan: np.ndarray
    score: np.ndarray  # the option's score (the trade's premium is added per trade)
    bonus: np.ndarray  # STABILITY_BONUS on a current-trade walk
    skip: np.ndarray  # the trade this walk leaves to the current-trade walk, -1 none
    ptr: np.ndarray
    end: np.ndarray
    head: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # trades[ptr], -1 past the end
    upb: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the walk's loan's UPB
    hb: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # ... and high-balance flag

    @property
    def base(self) -> np.ndarray:
        """score + bonus: the walk's priority before the trade's premium."""
        if not hasattr(self, "_base"):
            self._base = self.score + self.bonus
        return self._base


def greedy(problem: AllocationProblem) -> AllocationResult:
    """The staged greedy (see the module docstring)."""
    p = problem
    s = _GreedyState(p)
    fixed = np.flatnonzero(p.loan_fixed_trade >= 0)
    s.place(fixed, p.loan_fixed_trade[fixed], PASS_LOCKED)
    for stage in np.unique(p.trade_stage):
        s.fill_rounds(p.trade_stage == stage, p.trade_amount, PASS_FIRST)
    everywhere = np.ones(p.n_trades, dtype=bool)
    s.fill_rounds(everywhere, s.max_allowed, PASS_ORPHAN)
    moves = s.substitute()
    if moves:
        s.fill_rounds(everywhere, s.max_allowed, PASS_ORPHAN)
    return _result(p, s, moves)


def _result(p: AllocationProblem, s: _GreedyState, moves: int) -> AllocationResult:
    unplaced = s.loan_trade < 0
    reason = np.where(p.loan_no_candidate_reason > 0, p.loan_no_candidate_reason,
                      np.where(s.hb_rejected, reasons.HIGH_BALANCE_CAP, reasons.TRADES_FULL))
    loan_reason = np.where(unplaced, reason, reasons.PLACED).astype(np.int8)
    return AllocationResult(
        loan_trade=s.loan_trade, loan_pass=s.loan_pass, loan_reason=loan_reason,
        trade_allocated_upb=s.fill, trade_allocated_count=s.count, trade_high_balance_upb=s.hb_fill,
        trade_tolerance=s.limits.tolerance, trade_min=s.min_allowed, trade_max=s.max_allowed,
        trade_status=s.limits.status(s.fill, s.count),
        stats={"rounds": s.rounds, "substitution_moves": moves},
    )
