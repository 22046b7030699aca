"""What every allocation strategy takes and gives: the problem, the trade limits, the result.

The problem is plain numpy arrays so that any strategy can take the same input. Eligible pairs are not
listed one by one: trades come in *groups* (in the engine: one instrument, coupon and settlement date)
that every loan either may enter as a whole or not at all, and a pair's score splits into a part of the
loan in the group and a part of the trade:

    loan i may enter trade j  <=>  (i, group[j]) is an option
    score(i, j) = option score(i, group[j]) + trade premium[j]

So a loan eligible for 80 trades of 6 groups costs 6 options, not 80 pairs: the allocation scales with
loans x groups, not loans x trades. A problem given as explicit pairs (`from_pairs`) has one group per
trade. `pairs()` lists the explicit pairs when a caller needs them (small problems, tests).

`TradeLimits` holds the one copy of the trade-limit arithmetic (tolerance, min and max allowed,
high-balance cap) and of the fill-status classification; `build_result` turns any assignment of loans
to trades into an `AllocationResult`. This module imports nothing from the rest of the solver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import reasons
from ..arrays import ranges

EPS = 0.005  # half a cent: money compares within float noise
# (loan, group) cells of option_of's table (int32: 32 MiB at most; 100k loans x 64 groups is 25 MiB); a
# larger problem searches the sorted option keys instead
DENSE_OPTION_CELLS = 1 << 23
# The budgets of the allocation's own passes (knapsack repacking, swaps, staying in pools) count the
# CPU seconds of the thread doing the work: on a busy machine a pass does the same work as on a quiet
# one (it takes longer by the wall clock), so its answer does not depend on the load. HiGHS's LP and
# MIP keep wall-clock limits, the only kind HiGHS has.
work_clock = time.thread_time

PASS_NONE, PASS_LOCKED, PASS_FIRST, PASS_SUBSTITUTION, PASS_ORPHAN, PASS_LP, PASS_REPAIR, PASS_MIP = range(8)
PASS_NAMES = {PASS_LOCKED: "locked", PASS_FIRST: "first_pass", PASS_SUBSTITUTION: "substitution",
              PASS_ORPHAN: "orphan_sweep", PASS_LP: "lp", PASS_REPAIR: "lp_repair", PASS_MIP: "mip"}


@dataclass
class AllocationProblem:
    """Loans (n), trades (m) in groups (g), and options (k): the (loan, group) pairs that are eligible."""

    loan_upb: np.ndarray  # (n,) float
    loan_high_balance: np.ndarray  # (n,) bool
    loan_current_trade: np.ndarray  # (n,) int: trade of the loan's existing pool, -1 none
    loan_fixed_trade: np.ndarray  # (n,) int: locked into this trade (lockdown), -1 none
    loan_no_candidate_reason: np.ndarray  # (n,) int: reasons.* when the loan has no pair, else 0
    trade_amount: np.ndarray  # (m,) float
    trade_tolerance_pct: np.ndarray  # (m,) float
    trade_stage: np.ndarray  # (m,) int: lower stages fill first
    trade_high_balance_cap_pct: np.ndarray  # (m,) float, NaN: no cap
    trade_group: np.ndarray  # (m,) int: the trade's group, 0..g-1
    trade_premium: np.ndarray  # (m,) float: the trade's part of every pair's score
    opt_loan: np.ndarray  # (k,) int
    opt_group: np.ndarray  # (k,) int
    opt_score: np.ndarray  # (k,) float: the loan's part of its pairs' score in that group (higher is better)
    # Cash-window price per loan (points), NaN: no cash cell (the loan is kicked out if no trade takes
    # it). None: no loan has a cash alternative. Only the optimising strategies compare against it.
    loan_cash_price: np.ndarray | None = None
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Options sorted by (loan, group), one per pair of them (the index arrays as int64)."""
        self.trade_group = np.asarray(self.trade_group, dtype=np.int64)
        loan, group = np.asarray(self.opt_loan, dtype=np.int64), np.asarray(self.opt_group, dtype=np.int64)
        key = loan * max(self.n_groups, 1) + group
        if len(key) and not np.all(key[1:] > key[:-1]):
            order = np.argsort(key, kind="stable")
            keep = np.r_[True, key[order][1:] != key[order][:-1]]
            order = order[keep]
            loan, group, key = loan[order], group[order], key[order]
            self.opt_score = np.asarray(self.opt_score, dtype=float)[order]
        self.opt_loan, self.opt_group = loan, group
        self.opt_score = np.asarray(self.opt_score, dtype=float)
        self._cache["key"], self._cache["key_stride"] = key, max(self.n_groups, 1)

    @classmethod
    def from_pairs(cls, *, cand_loan: np.ndarray, cand_trade: np.ndarray, cand_score: np.ndarray,
                   **fields: Any) -> AllocationProblem:
        """A problem given as explicit eligible pairs: every trade is a group of its own."""
        m = len(fields["trade_amount"])
        return cls(trade_group=np.arange(m), trade_premium=np.zeros(m), opt_loan=np.asarray(cand_loan),
                   opt_group=np.asarray(cand_trade), opt_score=np.asarray(cand_score, dtype=float), **fields)

    # --- sizes ---------------------------------------------------------------------------------------

    @property
    def n_loans(self) -> int:
        return len(self.loan_upb)

    @property
    def n_trades(self) -> int:
        return len(self.trade_amount)

    @property
    def n_groups(self) -> int:
        return int(self.trade_group.max()) + 1 if len(self.trade_group) else 0

    @property
    def n_pairs(self) -> int:
        """Eligible loan x trade pairs (what `pairs()` would list)."""
        return int(self.group_size()[self.opt_group].sum())

    # --- trades by group -----------------------------------------------------------------------------

    def group_size(self) -> np.ndarray:
        return np.bincount(self.trade_group, minlength=self.n_groups)

    def group_trades(self) -> tuple[np.ndarray, np.ndarray]:
        """(start (g+1,), trades (m,)): each group's trades, best premium first (then by index)."""
        if "group_trades" not in self._cache:
            order = np.lexsort((np.arange(self.n_trades), -self.trade_premium, self.trade_group))
            start = np.r_[0, np.cumsum(self.group_size())]
            self._cache["group_trades"] = (start.astype(np.int64), order.astype(np.int64))
        return self._cache["group_trades"]

    def loan_options(self) -> np.ndarray:
        """(n+1,) start of each loan's options (options are sorted by loan)."""
        if "loan_options" not in self._cache:
            self._cache["loan_options"] = np.r_[0, np.cumsum(np.bincount(self.opt_loan, minlength=self.n_loans))]
        return self._cache["loan_options"]

    def option_of(self, loan: np.ndarray, trade: np.ndarray) -> np.ndarray:
        """Index of the option (loan, group of trade), -1 where the pair is not eligible (or trade < 0)."""
        loan, trade = np.asarray(loan, dtype=np.int64), np.asarray(trade, dtype=np.int64)
        key = self._cache["key"]
        if len(key) == 0 or len(loan) == 0:
            return np.full(len(loan), -1, dtype=np.int64)
        # (few numpy calls: the stay pass asks for a few hundred random pairs at a time, thousands of times)
        want = loan * self._cache["key_stride"] + self.trade_group[trade]  # trade -1 reads a group, masked below
        table = self._option_table()
        if table is not None:  # one read per pair instead of a binary search missing the cache at each step
            opt = table[want].astype(np.int64)
            opt[trade < 0] = -1
            return opt
        pos = np.searchsorted(key, want)
        np.minimum(pos, len(key) - 1, out=pos)
        found = key[pos] == want
        found &= trade >= 0
        return np.where(found, pos, -1)

    def _option_table(self) -> np.ndarray | None:
        """Each (loan, group) cell's option, -1 none, by the option key (built on first use); None when
        the problem has more than DENSE_OPTION_CELLS cells."""
        if "option_table" not in self._cache:
            key, table = self._cache["key"], None
            cells = self.n_loans * self._cache["key_stride"]  # every key is a cell: len(key) <= cells
            if cells <= DENSE_OPTION_CELLS:  # (so every option's index fits an int32)
                table = np.full(cells, -1, dtype=np.int32)
                table[key] = np.arange(len(key), dtype=np.int32)
            self._cache["option_table"] = table
        return self._cache["option_table"]

    def pair_score(self, loan: np.ndarray, trade: np.ndarray) -> np.ndarray:
        """Score of each (loan, trade) pair, NaN where not eligible."""
        opt = self.option_of(loan, trade)
        return np.where(opt >= 0, self.opt_score[np.maximum(opt, 0)] + self.trade_premium[np.maximum(trade, 0)],
                        np.nan)

    def pairs(self, options: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(loan, trade, score, option) of every eligible pair of `options` (all by default), option by
        option and inside an option best premium first."""
        opts = np.arange(len(self.opt_loan)) if options is None else np.asarray(options, dtype=np.int64)
        start, trades = self.group_trades()
        g = self.opt_group[opts]
        count = start[g + 1] - start[g]
        option = np.repeat(opts, count)
        trade = trades[ranges(start[g], count)]
        return self.opt_loan[option], trade, self.opt_score[option] + self.trade_premium[trade], option

    def top_pairs(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loan, trade, rank) of each loan's k best pairs (rank 1 = best score; ties: lower trade index),
        by loan then rank: k merge rounds over the options, never a sort of every pair."""
        start, trades = self.group_trades()
        size = (start[1:] - start[:-1])[self.opt_group]
        ptr = np.zeros(len(self.opt_loan), dtype=np.int64)
        live = np.flatnonzero(size > 0)
        out_l, out_t, out_r = [], [], []
        for rank in range(1, k + 1):
            if len(live) == 0:
                break
            head = trades[start[self.opt_group[live]] + ptr[live]]
            best = best_per_segment(self.opt_loan[live], self.opt_score[live] + self.trade_premium[head], head)
            out_l.append(self.opt_loan[live[best]])
            out_t.append(head[best])
            out_r.append(np.full(len(best), rank))
            ptr[live[best]] += 1
            live = live[ptr[live] < size[live]]
        if not out_l:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        loan, trade, rank_ = np.concatenate(out_l), np.concatenate(out_t), np.concatenate(out_r)
        order = np.lexsort((rank_, loan))
        return loan[order], trade[order], rank_[order]

    def pair_rank(self, loan: np.ndarray, trade: np.ndarray) -> np.ndarray:
        """1-based rank of each eligible (loan, trade) pair among the loan's pairs, exactly as top_pairs
        ranks them (two binary searches per option of the loan, never a list of the loan's pairs)."""
        loan, trade = np.asarray(loan, dtype=np.int64), np.asarray(trade, dtype=np.int64)
        score = self.pair_score(loan, trade)
        start, trades = self.group_trades()
        ostart = self.loan_options()
        count = ostart[loan + 1] - ostart[loan]
        query = np.repeat(np.arange(len(loan)), count)
        opt = ranges(ostart[loan], count)
        g, base, s = self.opt_group[opt], self.opt_score[opt], score[query]

        def below(pos: np.ndarray, live: np.ndarray, strict: bool) -> np.ndarray:
            sums = base[live] + self.trade_premium[trades[np.minimum(pos, len(trades) - 1)]]
            return sums < s[live] if strict else sums <= s[live]

        # scores fall along each group's list: pairs before `ties` beat the query, [ties, after) tie with it
        ties = _segment_search(below, start, g, strict=False)
        after = _segment_search(below, start, g, strict=True)
        beat = ties - start[g]
        tied = np.flatnonzero(after > ties)  # equal scores: the lower trade index first
        count = after[tied] - ties[tied]
        lower = trades[ranges(ties[tied], count)] < np.repeat(trade[query[tied]], count)
        beat[tied] += np.bincount(np.repeat(np.arange(len(tied)), count), weights=lower, minlength=len(tied)
                                  ).astype(np.int64)
        return 1 + np.bincount(query, weights=beat, minlength=len(loan)).astype(np.int64)

    # --- economics inputs ----------------------------------------------------------------------------

    def cash_price(self) -> np.ndarray:
        """(n,) cash price in points, NaN where the loan has no cash cell."""
        if self.loan_cash_price is None:
            return np.full(self.n_loans, np.nan)
        return np.asarray(self.loan_cash_price, dtype=float)

    def tolerance(self) -> np.ndarray:
        """Legacy rule: round(amount * tol_pct / 100, 2)."""
        return np.round(self.trade_amount * self.trade_tolerance_pct / 100.0, 2)

    def limits(self) -> TradeLimits:
        """The trades' tolerance, min/max allowed and high-balance cap, in dollars."""
        if "limits" not in self._cache:
            self._cache["limits"] = TradeLimits.of(self)
        return self._cache["limits"]


@dataclass(frozen=True)
class TradeLimits:
    """Per trade (m,), in dollars: how far a fill may miss the amount, and how much high-balance UPB
    it may hold. A fill inside [min_allowed, max_allowed] (within EPS) is Filled."""

    tolerance: np.ndarray  # round(amount * tolerance_pct / 100, 2)
    min_allowed: np.ndarray  # amount - tolerance
    max_allowed: np.ndarray  # amount + tolerance
    hb_cap: np.ndarray  # cap_pct / 100 * amount; inf where the trade has no cap

    @classmethod
    def of(cls, p: AllocationProblem) -> TradeLimits:
        tolerance = p.tolerance()
        cap_pct = np.where(np.isnan(p.trade_high_balance_cap_pct), np.inf, p.trade_high_balance_cap_pct)
        with np.errstate(invalid="ignore"):  # no cap on a zero amount: inf * 0
            hb_cap = cap_pct / 100.0 * p.trade_amount
        return cls(tolerance=tolerance, min_allowed=p.trade_amount - tolerance,
                   max_allowed=p.trade_amount + tolerance, hb_cap=hb_cap)

    def status(self, fill: np.ndarray, count: np.ndarray) -> np.ndarray:
        """(m,) fill status: Empty (no loan), Short (below min allowed), Over (above max), else Filled."""
        return np.where(count == 0, "Empty",
                        np.where(fill < self.min_allowed - EPS, "Short",
                                 np.where(fill > self.max_allowed + EPS, "Over", "Filled")))


@dataclass
class AllocationResult:
    loan_trade: np.ndarray  # (n,) int, -1: not placed
    loan_pass: np.ndarray  # (n,) int8: PASS_*
    loan_reason: np.ndarray  # (n,) int8: reasons.* for unplaced loans, 0 for placed
    trade_allocated_upb: np.ndarray
    trade_allocated_count: np.ndarray
    trade_high_balance_upb: np.ndarray
    trade_tolerance: np.ndarray
    trade_min: np.ndarray
    trade_max: np.ndarray
    trade_status: np.ndarray  # (m,) str: Filled, Short, Over, Empty
    stats: dict[str, float] = field(default_factory=dict)  # strategy counters, objective_value, lp_bound, ...

    @property
    def loan_chosen(self) -> np.ndarray:
        """(n,) the loans whose eligible pair the allocation chose (placed, not locked in place)."""
        return (self.loan_trade >= 0) & (self.loan_pass != PASS_LOCKED)


def fill_of(p: AllocationProblem, loan_trade: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UPB, high-balance UPB, loan count) per trade of an assignment."""
    m = p.n_trades
    placed = loan_trade >= 0
    trades, upb = loan_trade[placed], p.loan_upb[placed].astype(float)
    return (np.bincount(trades, weights=upb, minlength=m),
            np.bincount(trades, weights=upb * p.loan_high_balance[placed], minlength=m),
            np.bincount(trades, minlength=m))


def build_result(p: AllocationProblem, loan_trade: np.ndarray, loan_pass: np.ndarray,
                 stats: dict[str, float]) -> AllocationResult:
    """The result of any assignment (locked loans already in place): fills, statuses and, for each
    unplaced loan, why (no pair; every eligible trade full or at its high-balance cap; or it had room
    somewhere but its cash price was worth more, net of pair-off)."""
    limits = p.limits()
    fill, hb_fill, count = fill_of(p, loan_trade)
    upb, hb = p.loan_upb.astype(float), p.loan_high_balance.astype(bool)
    room = limits.max_allowed - fill
    hb_room = limits.hb_cap - hb_fill

    # options of unplaced free loans: did a trade of the group have room for the loan?
    placed = loan_trade >= 0
    open_opt = np.flatnonzero(~placed[p.opt_loan] & (p.loan_fixed_trade[p.opt_loan] < 0))
    had_room = np.zeros(p.n_loans, dtype=bool)
    hb_blocked = np.zeros(p.n_loans, dtype=bool)
    if len(open_opt):
        g = p.n_groups
        best_room = np.full(g, -np.inf)
        np.maximum.at(best_room, p.trade_group, room)
        best_hb_room = np.full(g, -np.inf)
        np.maximum.at(best_hb_room, p.trade_group, np.minimum(room, hb_room))
        loan, group = p.opt_loan[open_opt], p.opt_group[open_opt]
        need = upb[loan] - EPS
        fits = np.where(hb[loan], best_hb_room[group] >= need, best_room[group] >= need)
        had_room[loan[fits]] = True
        # a high-balance loan blocked by a cap somewhere: list its pairs (few loans)
        hb_open = open_opt[hb[loan]]
        if len(hb_open):
            pl, pt, _, _ = p.pairs(hb_open)
            blocked = (room[pt] >= upb[pl] - EPS) & (hb_room[pt] < upb[pl] - EPS)
            hb_blocked[pl[blocked]] = True
    has_cash = ~np.isnan(p.cash_price())
    reason = np.where(p.loan_no_candidate_reason > 0, p.loan_no_candidate_reason,
                      np.where(had_room & has_cash, reasons.CASH_BETTER,
                               np.where(hb_blocked, reasons.HIGH_BALANCE_CAP, reasons.TRADES_FULL)))
    return AllocationResult(
        loan_trade=loan_trade, loan_pass=loan_pass,
        loan_reason=np.where(placed, reasons.PLACED, reason).astype(np.int8),
        trade_allocated_upb=fill, trade_allocated_count=count, trade_high_balance_upb=hb_fill,
        trade_tolerance=limits.tolerance, trade_min=limits.min_allowed, trade_max=limits.max_allowed,
        trade_status=limits.status(fill, count), stats=stats,
    )


def best_per_segment(segment: np.ndarray, score: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Positions of the best entry of each run of equal `segment` values (sorted): highest score, then
    lowest `tie`."""
    if len(segment) == 0:
        return np.zeros(0, dtype=np.int64)
    seg = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    size = np.diff(np.r_[seg, len(segment)])
    best = score == np.repeat(np.maximum.reduceat(score, seg), size)
    hit = np.flatnonzero(best)
    if len(hit) == len(seg):  # no ties (the usual case)
        return hit
    key = np.where(best, tie, np.iinfo(np.int64).max)
    hit = np.flatnonzero(best & (tie == np.repeat(np.minimum.reduceat(key, seg), size)))
    return hit[np.r_[True, segment[hit][1:] != segment[hit][:-1]]]


def _segment_search(reached, start: np.ndarray, seg: np.ndarray, **kw: Any) -> np.ndarray:
    """Per query k: the first position of segment seg[k] (start (g+1,)) where `reached(positions,
    queries, **kw)` is true (it must be monotone along the segment); start[seg + 1] where it never is.
    A binary search per query, all queries at once."""
    lo, hi = start[seg].copy(), start[seg + 1].copy()
    while True:
        live = np.flatnonzero(lo < hi)
        if len(live) == 0:
            return lo
        mid = (lo[live] + hi[live]) // 2
        reach = reached(mid, live, **kw)
        hi[live[reach]] = mid[reach]
        lo[live[~reach]] = mid[~reach] + 1
