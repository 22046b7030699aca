"""Repair a rounded allocation: back inside every hard limit, then take every move that still pays.

Hard limits: a trade's max allowed and its high-balance cap (over them, the least valuable loans go
back to their alternative). Moves that pay, best first, re-checked when their turn comes:
- insert: a loan at its alternative (cash, or kickout) goes to a trade with room, worth
  UPB x (score - alternative) plus the pair-off it saves if the trade is short;
- shift: a loan moves from a trade to a short one, when the pair-off saved there outweighs the value
  and pair-off lost at the source; completing a required trade (optimal.fill_set) wins outright and
  breaking one is never worth it. Every accepted move raises value + that bonus, so it terminates.
Each round scores the candidate moves at once (numpy), then walks them best first, re-checking each
in turn, since each accepted move changes its trades' room and shortfall (take_in_order re-checks a
chunk at a time: a move not taken changes nothing). Candidate moves go
through the loans' options: into every short trade of the option's group, and (for a loan at its
alternative) into the best-premium trade of the group that has room for it; so a round costs the options
times the short trades, never every eligible pair.
"""

from __future__ import annotations

import numpy as np

from ..arrays import ranges
from .problem import EPS, AllocationProblem, _segment_search

MAX_ROUNDS = 20
MAX_MOVES_PER_ROUND = 400_000  # candidate moves walked per round
FIRST_CHUNK = 16  # moves checked at once after a move is taken (see take_in_order)
MIN_GAIN = 0.005  # dollars: below this a move is float noise
REQUIRED_FILL_DOLLARS = 1e6  # completing a required trade outweighs any value a single move can lose


class RepairState:
    """A rounded assignment being repaired: fills, high-balance fills and each loan's points, kept current."""

    def __init__(self, p: AllocationProblem, loan_trade: np.ndarray, opt_points: np.ndarray,
                 pair_off: np.ndarray, free_opts: np.ndarray, required: np.ndarray) -> None:
        """opt_points: per option, score - alternative (the trade's premium is added per trade)."""
        self.p, self.opt_points, self.pair_off, self.required = p, opt_points, pair_off, required
        self.free_opts = free_opts
        self.loan_trade = loan_trade.copy()
        self.upb = p.loan_upb.astype(float)
        self.hb = p.loan_high_balance.astype(bool)
        limits = p.limits()
        self.min_allowed, self.max_allowed, self.hb_cap = limits.min_allowed, limits.max_allowed, limits.hb_cap
        m = p.n_trades
        placed = self.loan_trade >= 0
        self.fill = np.bincount(self.loan_trade[placed], weights=self.upb[placed], minlength=m)
        self.hb_fill = np.bincount(self.loan_trade[placed], weights=(self.upb * self.hb)[placed], minlength=m)
        # per-dollar points of each free loan where it sits (0 at its alternative), kept up to date
        self.loan_points = np.zeros(p.n_loans)
        sits = np.flatnonzero(placed & (p.loan_fixed_trade < 0))
        opt = p.option_of(sits, self.loan_trade[sits])
        points = opt_points[np.maximum(opt, 0)] + p.trade_premium[self.loan_trade[sits]]
        self.loan_points[sits] = np.where(opt >= 0, points, 0.0)
        self.moves = 0
        # per free option: its loan, and whether it has points above the alternative in some trade
        self.free_loan = p.opt_loan[free_opts]
        best_premium = np.full(p.n_groups, -np.inf)
        np.maximum.at(best_premium, p.trade_group, p.trade_premium)
        self.free_gains_points = opt_points[free_opts] + best_premium[p.opt_group[free_opts]] > 0

    def shortfall(self) -> np.ndarray:
        return np.maximum(0.0, self.min_allowed - self.fill)

    def _move(self, loan: int, trade: int, points: float) -> None:
        old, upb = int(self.loan_trade[loan]), float(self.upb[loan])
        hb_upb = upb if self.hb[loan] else 0.0
        if old >= 0:
            self.fill[old] -= upb
            self.hb_fill[old] -= hb_upb
        if trade >= 0:
            self.fill[trade] += upb
            self.hb_fill[trade] += hb_upb
        self.loan_trade[loan] = trade
        self.loan_points[loan] = points
        self.moves += 1

    def fix_limits(self) -> None:
        """Trades over max allowed or over the high-balance cap give back their least valuable free loans."""
        over = np.flatnonzero((self.fill > self.max_allowed + EPS) | (self.hb_fill > self.hb_cap + EPS))
        if len(over) == 0:
            return
        free = self.p.loan_fixed_trade < 0
        loans = np.flatnonzero(free & np.isin(self.loan_trade, over))
        loans = loans[np.lexsort((self.loan_points[loans], self.loan_trade[loans]))]
        bounds = np.searchsorted(self.loan_trade[loans], np.r_[over, over[-1] + 1])
        for k, trade in enumerate(over.tolist()):
            mine = loans[bounds[k]:bounds[k + 1]].tolist()  # cheapest first
            for loan in mine:  # high-balance loans first while the cap is exceeded
                if self.hb_fill[trade] <= self.hb_cap[trade] + EPS:
                    break
                if self.hb[loan]:
                    self._move(loan, -1, 0.0)
            for loan in mine:
                if self.fill[trade] <= self.max_allowed[trade] + EPS:
                    break
                if self.loan_trade[loan] == trade:
                    self._move(loan, -1, 0.0)

    def gains(self, loan: np.ndarray, dest: np.ndarray, dest_points: np.ndarray) -> np.ndarray:
        """Dollars gained by moving each loan to dest, pair-off and required fills included."""
        upb = self.upb[loan]
        src = self.loan_trade[loan]
        safe_src = np.maximum(src, 0)
        short = self.shortfall()
        value = upb * (dest_points - self.loan_points[loan]) / 100.0
        saved = self.pair_off[dest] * np.minimum(upb, short[dest]) / 100.0
        new_short_src = np.maximum(0.0, self.min_allowed[safe_src] - (self.fill[safe_src] - upb))
        lost = np.where(src >= 0, self.pair_off[safe_src] * (new_short_src - short[safe_src]) / 100.0, 0.0)
        # a required trade's fill is a step, not a slope: completing one wins, breaking one loses
        completes = self.required[dest] & (short[dest] > EPS) & (upb >= short[dest] - EPS)
        breaks = (src >= 0) & self.required[safe_src] & (short[safe_src] <= EPS) & (new_short_src > EPS)
        return value + saved - lost + REQUIRED_FILL_DOLLARS * (completes.astype(float) - breaks)

    def fits(self, loan: np.ndarray, dest: np.ndarray) -> np.ndarray:
        upb = self.upb[loan]
        return ((self.fill[dest] + upb <= self.max_allowed[dest] + EPS)
                & (~self.hb[loan] | (self.hb_fill[dest] + upb <= self.hb_cap[dest] + EPS)))

    def take_in_order(self, loan: np.ndarray, dest: np.ndarray, points: np.ndarray, from_alt_into_short: bool = False
                      ) -> int:
        """Walk the moves in this order, taking each that gains more than MIN_GAIN when its turn comes (and,
        with from_alt_into_short, whose loan is still at its alternative and whose trade is still short);
        returns the moves taken. The same as checking them one by one, since a move not taken changes
        nothing: the moves are checked a chunk at a time (numpy), the chunk growing while none is taken
        and starting again small after the one that is (its trades changed)."""
        taken, at, chunk = 0, 0, FIRST_CHUNK
        while at < len(loan):
            i, t, pts = loan[at:at + chunk], dest[at:at + chunk], points[at:at + chunk]
            ok = (self.loan_trade[i] != t) & self.fits(i, t)
            if from_alt_into_short:
                ok &= (self.loan_trade[i] < 0) & (self.fill[t] < self.min_allowed[t] - EPS)
            hit = np.flatnonzero(ok)
            hit = hit[self.gains(i[hit], t[hit], pts[hit]) > MIN_GAIN][:1]
            if len(hit) == 0:
                at, chunk = at + chunk, chunk * 2
                continue
            k = at + int(hit[0])
            self._move(int(loan[k]), int(dest[k]), float(points[k]))
            taken += 1
            at, chunk = k + 1, FIRST_CHUNK
        return taken

    def candidate_moves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loan, destination, points there) of the moves worth scoring this round: every free option
        into each short trade of its group, and each loan at its alternative into the best-premium trade
        of each of its groups that has room for it (every trade of the group it fits for a high-balance
        loan), leaving out the moves from the alternative that can gain nothing (no points above it and
        no short trade to fill)."""
        p = self.p
        start, trades = p.group_trades()
        opts, loan = self.free_opts, self.free_loan
        short = self.shortfall() > EPS
        # a loan at its alternative gains only by points above it, or by filling a short trade
        group_short = np.bincount(p.trade_group[short], minlength=p.n_groups) > 0
        at_alt = (self.loan_trade[loan] < 0) & (self.free_gains_points | group_short[p.opt_group[opts]])
        out_l, out_t, out_o = [], [], []

        # into short trades of the group
        for out, part in zip((out_l, out_t, out_o), self._into_short(opts), strict=True):
            out.append(part)

        # a loan at its alternative: the first trade of the group (best premium first) with room
        room = self.max_allowed - self.fill
        alt_opts = opts[at_alt & ~self.hb[loan]]
        if len(alt_opts):
            ranked_room = room[trades]
            prefix = _segment_prefix_max(ranked_room, start)
            g = p.opt_group[alt_opts]
            need = self.upb[p.opt_loan[alt_opts]] - EPS
            pos = _segment_search(lambda at, live: prefix[at] >= need[live], start, g)
            ok = pos < start[g + 1]
            out_l.append(p.opt_loan[alt_opts[ok]])
            out_t.append(trades[pos[ok]])
            out_o.append(alt_opts[ok])
        hb_opts = opts[at_alt & self.hb[loan]]
        if len(hb_opts):
            pl, pt, _, po = p.pairs(hb_opts)
            worth = ((self.opt_points[po] + p.trade_premium[pt] > 0) | short[pt]) & self.fits(pl, pt)
            pl, pt, po = pl[worth], pt[worth], po[worth]
            out_l.append(pl)
            out_t.append(pt)
            out_o.append(po)
        if not out_l:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        loan, dest, opt = np.concatenate(out_l), np.concatenate(out_t), np.concatenate(out_o)
        return loan, dest, self.opt_points[opt] + p.trade_premium[dest]

    def _into_short(self, opts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loan, trade, option) for each of `opts` and each short trade of the option's group."""
        p = self.p
        _, trades = p.group_trades()
        short_trades = trades[self.shortfall()[trades] > EPS]
        s_start = np.r_[0, np.cumsum(np.bincount(p.trade_group[short_trades], minlength=p.n_groups))]
        g = p.opt_group[opts]
        count = s_start[g + 1] - s_start[g]
        has = count > 0
        o, g, count = opts[has], g[has], count[has]
        rep = np.repeat(o, count)
        return p.opt_loan[rep], short_trades[ranges(s_start[g], count)], rep

    def fill_short(self) -> int:
        """Loans at their alternative into short trades they fit (within max and the high-balance cap)
        where that pays, best gain first, until none does. Only ever adds loans to short trades, so it
        keeps every band and raises the value. Returns the loans placed."""
        p = self.p
        placed = 0
        while True:
            at_alt = self.free_opts[self.loan_trade[p.opt_loan[self.free_opts]] < 0]
            loan, dest, opt = self._into_short(at_alt)
            keep = self.fits(loan, dest)
            loan, dest, points = loan[keep], dest[keep], self.opt_points[opt[keep]] + p.trade_premium[dest[keep]]
            gain = self.gains(loan, dest, points)
            order = np.flatnonzero(gain > MIN_GAIN)
            order = order[np.argsort(-gain[order], kind="stable")]
            # re-checked in turn: an earlier move may have placed the loan or filled the trade
            accepted = self.take_in_order(loan[order], dest[order], points[order], from_alt_into_short=True)
            placed += accepted
            if accepted == 0:
                return placed

    def improve(self) -> None:
        """Rounds of positive-gain moves (inserts from the alternative, shifts into short trades)."""
        for _ in range(MAX_ROUNDS):
            loan, dest, points = self.candidate_moves()
            keep = (self.loan_trade[loan] != dest) & self.fits(loan, dest)
            loan, dest, points = loan[keep], dest[keep], points[keep]
            gain = self.gains(loan, dest, points)
            good = gain > MIN_GAIN
            loan, dest, points, gain = loan[good], dest[good], points[good], gain[good]
            if len(loan) == 0:
                return
            # best first; a loan whose best move is gone tries its next one in the same round
            order = np.argsort(-gain, kind="stable")[:MAX_MOVES_PER_ROUND]
            if self.take_in_order(loan[order], dest[order], points[order]) == 0:
                return


def _segment_prefix_max(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Running maximum of `values` that restarts at each segment (start (g+1,)); exact (on ranks)."""
    n = len(values)
    if n == 0:
        return values
    seg = np.repeat(np.arange(len(start) - 1), np.diff(start))
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    lifted = np.maximum.accumulate(seg * n + rank) - seg * n
    return values[order][lifted]
