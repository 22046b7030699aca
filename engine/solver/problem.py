"""What every allocation strategy takes and gives: the problem, the trade limits, the result.

The problem is plain numpy arrays (loans, trades, eligible pairs) so that any strategy can take the same
input. `TradeLimits` holds the one copy of the trade-limit arithmetic (tolerance, min and max allowed,
high-balance cap) and of the fill-status classification; `build_result` turns any assignment of loans
to trades into an `AllocationResult`. This module imports nothing from the rest of the solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import reasons

EPS = 0.005  # half a cent: money compares within float noise

PASS_NONE, PASS_LOCKED, PASS_FIRST, PASS_SUBSTITUTION, PASS_ORPHAN, PASS_LP, PASS_REPAIR = 0, 1, 2, 3, 4, 5, 6
PASS_NAMES = {PASS_LOCKED: "locked", PASS_FIRST: "first_pass", PASS_SUBSTITUTION: "substitution",
              PASS_ORPHAN: "orphan_sweep", PASS_LP: "lp", PASS_REPAIR: "lp_repair"}


@dataclass
class AllocationProblem:
    """Loans (n), trades (m) and eligible pairs (k). Pairs must already be eligible."""

    loan_upb: np.ndarray  # (n,) float
    loan_high_balance: np.ndarray  # (n,) bool
    loan_current_trade: np.ndarray  # (n,) int: trade of the loan's existing pool, -1 none
    loan_fixed_trade: np.ndarray  # (n,) int: locked into this trade (lockdown), -1 none
    loan_no_candidate_reason: np.ndarray  # (n,) int: reasons.* when the loan has no pair, else 0
    trade_amount: np.ndarray  # (m,) float
    trade_tolerance_pct: np.ndarray  # (m,) float
    trade_stage: np.ndarray  # (m,) int: lower stages fill first
    trade_high_balance_cap_pct: np.ndarray  # (m,) float, NaN: no cap
    cand_loan: np.ndarray  # (k,) int
    cand_trade: np.ndarray  # (k,) int
    cand_score: np.ndarray  # (k,) float: higher is better
    # Cash-window price per loan (points), NaN: no cash cell (the loan is kicked out if no trade takes
    # it). None: no loan has a cash alternative. Only the optimising strategies compare against it.
    loan_cash_price: np.ndarray | None = None

    def cash_price(self) -> np.ndarray:
        """(n,) cash price in points, NaN where the loan has no cash cell."""
        if self.loan_cash_price is None:
            return np.full(self.n_loans, np.nan)
        return np.asarray(self.loan_cash_price, dtype=float)

    @property
    def n_loans(self) -> int:
        return len(self.loan_upb)

    @property
    def n_trades(self) -> int:
        return len(self.trade_amount)

    def tolerance(self) -> np.ndarray:
        """Legacy rule: round(amount * tol_pct / 100, 2)."""
        return np.round(self.trade_amount * self.trade_tolerance_pct / 100.0, 2)

    def limits(self) -> TradeLimits:
        """The trades' tolerance, min/max allowed and high-balance cap, in dollars."""
        return TradeLimits.of(self)


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
    cand_chosen: np.ndarray  # (k,) bool
    stats: dict[str, float] = field(default_factory=dict)  # strategy counters, objective_value, lp_bound, ...


def build_result(p: AllocationProblem, loan_trade: np.ndarray, loan_pass: np.ndarray,
                 stats: dict[str, float]) -> AllocationResult:
    """The result of any assignment (locked loans already in place): fills, statuses and, for each
    unplaced loan, why (no pair; every eligible trade full or at its high-balance cap; or it had room
    somewhere but its cash price was worth more, net of pair-off)."""
    m = p.n_trades
    upb, hb = p.loan_upb.astype(float), p.loan_high_balance.astype(bool)
    limits = p.limits()
    placed = loan_trade >= 0
    fill = np.bincount(loan_trade[placed], weights=upb[placed], minlength=m)
    hb_fill = np.bincount(loan_trade[placed], weights=(upb * hb)[placed], minlength=m)
    count = np.bincount(loan_trade[placed], minlength=m)

    open_pair = ~placed[p.cand_loan] & (p.loan_fixed_trade[p.cand_loan] < 0)
    loan, trade = p.cand_loan[open_pair], p.cand_trade[open_pair]
    fits_max = upb[loan] <= limits.max_allowed[trade] - fill[trade] + EPS
    fits = fits_max & (~hb[loan] | (upb[loan] <= limits.hb_cap[trade] - hb_fill[trade] + EPS))
    had_room = np.bincount(loan[fits], minlength=p.n_loans) > 0
    hb_blocked = np.bincount(loan[fits_max & ~fits], minlength=p.n_loans) > 0
    has_cash = ~np.isnan(p.cash_price())
    reason = np.where(p.loan_no_candidate_reason > 0, p.loan_no_candidate_reason,
                      np.where(had_room & has_cash, reasons.CASH_BETTER,
                               np.where(hb_blocked, reasons.HIGH_BALANCE_CAP, reasons.TRADES_FULL)))
    return AllocationResult(
        loan_trade=loan_trade, loan_pass=loan_pass,
        loan_reason=np.where(placed, reasons.PLACED, reason).astype(np.int8),
        trade_allocated_upb=fill, trade_allocated_count=count, trade_high_balance_upb=hb_fill,
        trade_tolerance=limits.tolerance, trade_min=limits.min_allowed, trade_max=limits.max_allowed,
        trade_status=limits.status(fill, count),
        cand_chosen=(loan_trade[p.cand_loan] == p.cand_trade) & (loan_pass[p.cand_loan] != PASS_LOCKED),
        stats=stats,
    )
