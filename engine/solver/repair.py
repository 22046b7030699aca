"""Repair a rounded allocation: back inside every hard limit, then take every move that still pays.

Hard limits: a trade's max allowed and its high-balance cap (over them, the least valuable loans go
back to their alternative). Moves that pay, best first, re-checked when their turn comes:
- insert: a loan at its alternative (cash, or kickout) goes to a trade with room, worth
  UPB x (score - alternative) plus the pair-off it saves if the trade is short;
- shift: a loan moves from a trade to a short one, when the pair-off saved there outweighs the value
  and pair-off lost at the source; completing a required trade (optimal.fill_set) wins outright and
  breaking one is never worth it. Every accepted move raises value + that bonus, so it terminates.
Each round scores all candidate moves at once (numpy), then walks them best first in Python with
scalar re-checks, since each accepted move changes its trades' room and shortfall.
"""

from __future__ import annotations

import numpy as np

from .problem import EPS, AllocationProblem

MAX_ROUNDS = 20
MAX_MOVES_PER_ROUND = 400_000  # candidate moves walked per round (each is a few scalar checks)
MIN_GAIN = 0.005  # dollars: below this a move is float noise
REQUIRED_FILL_DOLLARS = 1e6  # completing a required trade outweighs any value a single move can lose


class RepairState:
    """A rounded assignment being repaired: fills, high-balance fills and each loan's points, kept current."""

    def __init__(self, p: AllocationProblem, loan_trade: np.ndarray, pair_points: np.ndarray,
                 pair_off: np.ndarray, free_pairs: np.ndarray, required: np.ndarray) -> None:
        self.p, self.points, self.pair_off, self.required = p, pair_points, pair_off, required
        self.free_pairs = free_pairs
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
        sits = free_pairs[self.loan_trade[p.cand_loan[free_pairs]] == p.cand_trade[free_pairs]]
        self.loan_points[p.cand_loan[sits]] = pair_points[sits]
        self.moves = 0

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
        free = self.p.loan_fixed_trade < 0
        over = np.flatnonzero((self.fill > self.max_allowed + EPS) | (self.hb_fill > self.hb_cap + EPS))
        for trade in over.tolist():
            loans = np.flatnonzero((self.loan_trade == trade) & free)
            loans = loans[np.argsort(self.loan_points[loans], kind="stable")].tolist()
            for loan in loans:  # high-balance loans first while the cap is exceeded, cheapest first
                if self.hb_fill[trade] <= self.hb_cap[trade] + EPS:
                    break
                if self.hb[loan]:
                    self._move(loan, -1, 0.0)
            for loan in loans:
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

    def _gain_one(self, loan: int, dest: int, points: float) -> float:
        """`gains` for one move, in plain Python floats (the accept loop runs it per move)."""
        upb, src = float(self.upb[loan]), int(self.loan_trade[loan])
        fill_d = float(self.fill[dest])
        if fill_d + upb > self.max_allowed[dest] + EPS:
            return -1.0
        if self.hb[loan] and float(self.hb_fill[dest]) + upb > self.hb_cap[dest] + EPS:
            return -1.0
        short_d = max(0.0, float(self.min_allowed[dest]) - fill_d)
        gain = upb * (points - float(self.loan_points[loan])) / 100.0
        gain += float(self.pair_off[dest]) * min(upb, short_d) / 100.0
        if self.required[dest] and short_d > EPS and upb >= short_d - EPS:
            gain += REQUIRED_FILL_DOLLARS
        if src >= 0:
            fill_s, min_s = float(self.fill[src]), float(self.min_allowed[src])
            short_s, new_short_s = max(0.0, min_s - fill_s), max(0.0, min_s - fill_s + upb)
            gain -= float(self.pair_off[src]) * (new_short_s - short_s) / 100.0
            if self.required[src] and short_s <= EPS < new_short_s:
                gain -= REQUIRED_FILL_DOLLARS
        return gain

    def improve(self) -> None:
        """Rounds of positive-gain moves (inserts from the alternative, shifts into short trades)."""
        p = self.p
        pairs = self.free_pairs
        pair_loan, pair_trade = p.cand_loan[pairs], p.cand_trade[pairs]
        for _ in range(MAX_ROUNDS):
            src = self.loan_trade[pair_loan]
            short = self.shortfall() > EPS
            # inserts from the alternative anywhere; shifts only into short trades
            maybe = np.flatnonzero((src != pair_trade) & ((src < 0) | short[pair_trade]))
            maybe = maybe[self.fits(pair_loan[maybe], pair_trade[maybe])]
            gain = self.gains(pair_loan[maybe], pair_trade[maybe], self.points[pairs[maybe]])
            good = gain > MIN_GAIN
            cand, gain = pairs[maybe[good]], gain[good]
            if len(cand) == 0:
                return
            # best first; a loan whose best move is gone tries its next one in the same round
            order = np.argsort(-gain, kind="stable")[:MAX_MOVES_PER_ROUND]
            accepted = 0
            for pair in cand[order].tolist():
                loan, dest, points = int(p.cand_loan[pair]), int(p.cand_trade[pair]), float(self.points[pair])
                if self._gain_one(loan, dest, points) > MIN_GAIN:
                    self._move(loan, dest, points)
                    accepted += 1
            if accepted == 0:
                return
