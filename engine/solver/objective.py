"""What an allocation is worth: the economics every strategy is measured by.

- A loan placed in a trade earns UPB x score (price + pay-up [+ carry]) / 100.
- A loan no trade takes goes to the cash window at its cash price, or is kicked out and earns nothing
  in this run. So placing a loan is worth (trade value - cash value): its *premium over cash*.
- A trade left below its min allowed is paired off: the shortfall costs `pair-off points` per 100 of
  shortfall UPB. Constraint priority (the stage) is encoded here: earlier stages cost more to leave
  short, so the optimiser fills them first when loans are contested, as the greedy does by order.

objective = execution value (trades + cash) - pair-off cost. The part an allocation decides is
`premium` = objective - baseline, the baseline being "do nothing" (every free loan at its alternative,
every trade paired off down to what locked loans fill). The optimality gap is reported on that part:
against the ~100-point total value any allocation would look optimal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .problem import AllocationProblem

PAIR_OFF_POINTS = 2.0  # cost of pairing off a short trade, points of the shortfall (market move + fees)
STAGE_PREMIUM_POINTS = 0.5  # extra pair-off points per stage of priority above the last stage


def pair_off_points(p: AllocationProblem) -> np.ndarray:
    """(m,) points charged per 100 of shortfall; higher for trades of earlier (more important) stages."""
    if len(p.trade_stage) == 0:
        return np.zeros(0)
    rank = np.unique(p.trade_stage, return_inverse=True)[1].reshape(-1)
    return PAIR_OFF_POINTS + STAGE_PREMIUM_POINTS * (rank.max() - rank)


def alternative_points(p: AllocationProblem) -> np.ndarray:
    """(n,) what a loan earns if no trade takes it: its cash price, or 0 when it would be kicked out."""
    return np.nan_to_num(p.cash_price(), nan=0.0)


def fixed_fill(p: AllocationProblem) -> tuple[np.ndarray, np.ndarray]:
    """UPB and high-balance UPB that locked loans put in each trade before anything is decided."""
    fixed = np.flatnonzero(p.loan_fixed_trade >= 0)
    trades, upb = p.loan_fixed_trade[fixed], p.loan_upb[fixed]
    m = p.n_trades
    return (np.bincount(trades, weights=upb, minlength=m),
            np.bincount(trades, weights=upb * p.loan_high_balance[fixed], minlength=m))


@dataclass
class Valuation:
    """An assignment's value in dollars, split the way the gap is reported."""

    trade_value: float  # dollars earned in trades (locked loans included)
    cash_value: float  # dollars from the cash window (loans no trade took that have a cash cell)
    pair_off_cost: float  # dollars charged for shortfalls below min allowed
    baseline_value: float  # doing nothing: every free loan at its alternative, every trade paired off

    @property
    def objective(self) -> float:
        return self.trade_value + self.cash_value - self.pair_off_cost

    @property
    def premium(self) -> float:
        return self.objective - self.baseline_value


def loan_trade_points(p: AllocationProblem, loan_trade: np.ndarray) -> np.ndarray:
    """(n,) the score of each free placed loan's pair (NaN where not placed, locked or not eligible)."""
    points = np.full(p.n_loans, np.nan)
    free = np.flatnonzero((loan_trade >= 0) & (p.loan_fixed_trade < 0))
    points[free] = p.pair_score(free, loan_trade[free])
    return points


def evaluate(p: AllocationProblem, loan_trade: np.ndarray) -> Valuation:
    """Value an assignment (loan -> trade index, -1: not placed). Locked loans count at no score: their
    placement is fixed, so it is the same constant for every strategy."""
    upb = p.loan_upb.astype(float)
    free = p.loan_fixed_trade < 0
    points = loan_trade_points(p, loan_trade)
    placed = free & (loan_trade >= 0)
    alt = alternative_points(p)
    trade_value = float(np.sum(upb[placed] * points[placed]) / 100.0)
    cash_value = float(np.sum(upb[free & ~placed] * alt[free & ~placed]) / 100.0)
    in_trade = loan_trade >= 0
    fill = np.bincount(loan_trade[in_trade], weights=upb[in_trade], minlength=p.n_trades)
    shortfall = np.maximum(0.0, p.limits().min_allowed - fill)
    pair_off = float(np.sum(shortfall * pair_off_points(p)) / 100.0)
    baseline = cash_only_value(p) - do_nothing_pair_off(p)
    return Valuation(trade_value, cash_value, pair_off, baseline)


def cash_only_value(p: AllocationProblem) -> float:
    """Every free loan at its alternative (cash price or nothing), dollars."""
    free = p.loan_fixed_trade < 0
    return float(np.sum(p.loan_upb[free] * alternative_points(p)[free]) / 100.0)


def do_nothing_pair_off(p: AllocationProblem) -> float:
    """Pair-off if no free loan went to any trade: each trade short of its min by what locked loans leave."""
    fixed_upb, _ = fixed_fill(p)
    short = np.maximum(0.0, p.limits().min_allowed - fixed_upb)
    return float(np.sum(short * pair_off_points(p)) / 100.0)
