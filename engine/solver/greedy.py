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
   their own min allowed without them, then another orphan sweep (into the trades that gave loans:
   no other can take a loan the first sweep left).
"""

from __future__ import annotations

import numpy as np

from .. import reasons
from ..arrays import ranges
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
        stability bonus, and skipped in its group's list. Every list ends in the marker trade m (no
        trade), so a walk never needs to know where its list ends."""
        p = self.p
        m = p.n_trades
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
        # group g's list at list_start[g] + g (one marker after each list), then [current, m] per own walk
        own_start = len(listed) + p.n_groups
        lists = np.full(own_start + 2 * k, m, dtype=np.int64)
        lists[np.arange(len(listed)) + p.trade_group[listed]] = listed
        lists[own_start::2] = current[own]
        entry_loan = np.r_[loan, loan[own]]
        order = np.argsort(entry_loan, kind="stable")
        ptr = np.r_[list_start[g] + g, own_start + 2 * np.arange(k)][order]
        hb = self.hb[entry_loan[order]]
        return _Walks(
            lists=lists, loan=entry_loan[order], ptr=ptr, head=lists[ptr],
            base=(np.r_[p.opt_score[opts], p.opt_score[opts[own]]]
                  + np.r_[np.zeros(len(opts)), np.full(k, STABILITY_BONUS)])[order],
            skip=np.r_[np.where(own, current, -1), np.full(k, -1)][order],
            upb=self.upb[entry_loan[order]], hb_offset=hb * (m + 1),
        )

    def _advance(self, w: _Walks, check: np.ndarray, limit: np.ndarray, premium: np.ndarray) -> int:
        """Move each walk in `check` past the trades that cannot take its loan now (too little room, or
        the high-balance cap, or the trade its current-trade walk tries); returns how many walks reached
        the end of their list. Rooms only shrink within a fill round, so only walks whose head took
        loans since can have died. The walks are copied out once and shrink to the ones still moving."""
        m = self.p.n_trades
        room = limit - self.fill + EPS
        hb_room = self.hb_cap - self.hb_fill + EPS
        # what a walk's UPB must not exceed, by head + hb_offset: the room, then for a high-balance loan
        # also the cap's room; the end marker stops every walk
        fits_within = np.r_[room, np.inf, np.fmin(room, hb_room), np.inf]
        head, ptr, upb = w.head[check], w.ptr[check], w.upb[check]
        hb_offset, skip = w.hb_offset[check], w.skip[check]
        moved = False
        ended = 0
        while len(check):
            dead = (upb > fits_within[head + hb_offset]) | (head == skip)
            hb_dead = np.flatnonzero(dead & (hb_offset > 0))
            if len(hb_dead):  # blocked by the cap alone (it fits the room, and is not skipped)
                blocked = ~(upb[hb_dead] > room[head[hb_dead]]) & (head[hb_dead] != skip[hb_dead])
                self.hb_rejected[w.loan[check[hb_dead[blocked]]]] = True
            if moved:  # the walks that stop here: write their new head back
                stop = ~dead
                stopped, stop_head = check[stop], head[stop]
                w.head[stopped], w.ptr[stopped] = stop_head, ptr[stop]
                w.priority[stopped] = w.base[stopped] + premium[stop_head]
                ended += int(np.count_nonzero(stop_head == m))
            check, ptr, upb, hb_offset, skip = check[dead], ptr[dead] + 1, upb[dead], hb_offset[dead], skip[dead]
            head = w.lists[ptr]
            moved = True
        return ended

    def fill_rounds(self, allowed: np.ndarray, limit: np.ndarray, pass_code: int) -> None:
        """Proposal rounds for the unplaced loans over the `allowed` trades, up to `limit` per trade: each
        loan proposes to its best trade that can still take it; each trade accepts in priority order
        while its running UPB (and high-balance UPB) fits.

        The walks stay in arrays of their own, by loan; a walk that ends or whose loan is placed gets
        the end marker and priority -inf, and the arrays drop such walks once they are half of them."""
        p = self.p
        m = p.n_trades
        premium = np.r_[p.trade_premium, -np.inf]  # the end marker's: never a loan's best
        w = self._walks(allowed)
        w.priority = w.base + premium[w.head]
        w.segment()
        changed = np.zeros(m + 1, dtype=bool)
        check = np.arange(len(w.loan))
        while True:
            w.gone += self._advance(w, check, limit, premium)
            if 2 * w.gone > len(w.loan):
                w.compact(m)
            # each loan's best walk: highest priority, then lowest trade (a loan with no walk left has
            # the maximum -inf, made NaN so that no walk equals it)
            best_priority = np.maximum.reduceat(w.priority, w.seg_start) if len(w.loan) else np.zeros(0)
            best_priority[best_priority == -np.inf] = np.nan
            best = np.flatnonzero(w.priority == np.repeat(best_priority, w.seg_len))
            seg = w.walk_seg[best]
            if len(seg) > 1 and np.any(seg[1:] == seg[:-1]):
                best = best[best_per_segment(seg, w.priority[best], w.head[best])]
            if len(best) == 0:
                break
            self.rounds += 1
            changed[:] = False
            loan, trade, priority = w.loan[best], w.head[best], w.priority[best]
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
            placed = w.walk_seg[best[self.loan_trade[loan] >= 0]]
            w.gone += w.end_segments(placed, m)
            check = np.flatnonzero(changed[w.head])

    def substitute(self) -> tuple[int, np.ndarray]:
        """Move loans from trades with slack into short trades; returns the number of moves and (m,)
        which trades gave loans."""
        p = self.p
        moves = 0
        gave = np.zeros(p.n_trades, dtype=bool)
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
            gave[donor[chosen]] = True
            self.unplace(loan[chosen])
            self.place(loan[chosen], dest[chosen], PASS_SUBSTITUTION)
            moves += len(chosen)
        return moves, gave


class _Walks:
    """The lists a fill round walks, one per (loan, option) plus one per loan's current trade; sorted by
    loan. Walk e tries lists[ptr[e]], lists[ptr[e] + 1], ... up to the end marker m. Every per-walk
    array is compacted together (`compact`)."""

    def __init__(self, *, lists: np.ndarray, loan: np.ndarray, ptr: np.ndarray, head: np.ndarray,
                 base: np.ndarray, skip: np.ndarray, upb: np.ndarray, hb_offset: np.ndarray) -> None:
        self.lists = lists  # the concatenated lists, each ending in the marker m
        self.loan = loan
        self.ptr = ptr
        self.head = head  # lists[ptr]: the trade the walk tries now, m once it ended
        self.base = base  # the option's score (+ STABILITY_BONUS on a current-trade walk)
        self.skip = skip  # the trade this walk leaves to the current-trade walk, -1 none
        self.upb = upb  # the walk's loan's UPB
        self.hb_offset = hb_offset  # m + 1 for a high-balance loan (it looks up the cap's room too), else 0
        self.priority = base  # base + the head's premium, -inf once ended
        self.gone = 0  # walks ended or of placed loans since the last compaction (an upper bound)

    _PER_WALK = ("loan", "ptr", "head", "base", "skip", "upb", "hb_offset", "priority")

    def segment(self) -> None:
        """Each loan's run of walks: seg_start, seg_len, and walk_seg (the run of each walk)."""
        new = np.r_[True, self.loan[1:] != self.loan[:-1]] if len(self.loan) else np.zeros(0, dtype=bool)
        self.seg_start = np.flatnonzero(new)
        self.seg_len = np.diff(np.r_[self.seg_start, len(self.loan)])
        self.walk_seg = np.cumsum(new) - 1

    def end_segments(self, segments: np.ndarray, m: int) -> int:
        """End every walk of these runs (their loans are placed); returns how many walks that was."""
        walks = ranges(self.seg_start[segments], self.seg_len[segments])
        self.head[walks] = m
        self.priority[walks] = -np.inf
        return len(walks)

    def compact(self, m: int) -> None:
        """Drop the walks that ended."""
        keep = np.flatnonzero(self.head < m)
        for name in self._PER_WALK:
            setattr(self, name, getattr(self, name)[keep])
        self.segment()
        self.gone = 0


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
    moves, gave = s.substitute()
    if moves:
        # Every loan still unplaced was turned down by each of its trades (rooms only shrink within a
        # sweep), and substitution shrank every room but the givers': only they can take one now.
        s.fill_rounds(gave, s.max_allowed, PASS_ORPHAN)
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
