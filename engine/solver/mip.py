"""The exact allocation of one component as a MIP for HiGHS's branch and bound.

    max  sum_{i,j} v_ij x_ij - sum_j q_j s_j                    (dollars; v = UPB x (score - alternative))
    s.t. sum_j x_ij <= 1                                       (a loan at most once; else its alternative)
         L_j <= sum_i UPB_i x_ij + s_j <= M_j                  (fill band; s_j the shortfall)
         sum_{i high-balance} UPB_i x_ij <= H_j                (high-balance cap)
         x binary,  0 <= s_j <= L_j

One binary per (loan, trade) pair that can hold the loan at all (UPB within the trade's max, and within
its cap for a high-balance loan): the pairs that cannot are in no allocation, so dropping them changes
nothing but the size. L, M and H are net of locked loans, as in the LP (lp_model.py). The model starts
from a given allocation (`warm_start`), so HiGHS always has an incumbent, and its dual bound is a bound on
every allocation of the component: what `optimal` reports when the MIP is stopped by its time limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from ..arrays import ranges
from .lp_model import INF, OBJ_SCALE, ROW_SCALE, Bands, new_highs
from .problem import EPS, AllocationProblem

ABS_GAP_DOLLARS = 1.0  # HiGHS stops when its incumbent is within this of its dual bound,
REL_GAP = 1e-7  # ... or within this fraction of it


def fitting_pairs(p: AllocationProblem, loans: np.ndarray, bands: Bands) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loan, trade, option) of every pair of `loans` whose trade can hold the loan at all."""
    start = p.loan_options()
    count = start[loans + 1] - start[loans]
    loan, trade, _, option = p.pairs(ranges(start[loans], count))
    upb = p.loan_upb[loan]
    hb = p.loan_high_balance[loan].astype(bool)
    fit = (upb <= bands.upper[trade] + EPS) & (~hb | (upb <= bands.hb_room[trade] + EPS))
    return loan[fit], trade[fit], option[fit]


@dataclass
class MIPSolution:
    status: str
    loan_trade: np.ndarray | None  # per loan of the model (in the order given), -1: alternative; None: no solution
    objective: float  # dollars (premium over the alternatives, net of the component's pair-off)
    bound: float  # dollars: HiGHS's dual bound (inf when it has none)
    nodes: int
    seconds: float


class ComponentMIP:
    """The MIP of one component over `pairs` (from fitting_pairs) and its `trades`."""

    def __init__(self, p: AllocationProblem, loans: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
                 trades: np.ndarray, opt_points: np.ndarray, bands: Bands) -> None:
        pair_loan, pair_trade, pair_opt = pairs
        self.loans, self.trades = loans, trades
        self.pair_loan, self.pair_trade = pair_loan, pair_trade
        self.lower = bands.lower[trades]
        n_l, n_t, n_a = len(loans), len(trades), len(pair_loan)
        loan_local = np.searchsorted(loans, pair_loan)
        trade_local = np.searchsorted(trades, pair_trade)
        upb = p.loan_upb[pair_loan] * ROW_SCALE
        hb = p.loan_high_balance[pair_loan].astype(bool)
        capped = np.isfinite(bands.hb_room[trades])
        cap_row = np.full(n_t, -1, dtype=np.int64)
        cap_row[capped] = n_l + n_t + np.arange(int(capped.sum()))
        hb_row = np.where(hb, cap_row[trade_local], -1)

        # rows: loans | trades | capped trades; columns: s (n_t) | x (n_a)
        per_col = np.r_[np.ones(n_t, dtype=np.int64), 2 + (hb_row >= 0)]
        starts = np.r_[0, np.cumsum(per_col)]
        index = np.empty(int(starts[-1]), dtype=np.int32)
        value = np.empty(len(index))
        index[:n_t], value[:n_t] = n_l + np.arange(n_t), 1.0
        x0 = starts[n_t:-1]
        index[x0], value[x0] = loan_local, 1.0
        index[x0 + 1], value[x0 + 1] = n_l + trade_local, upb
        has = np.flatnonzero(hb_row >= 0)
        index[x0[has] + 2], value[x0[has] + 2] = hb_row[has], upb[has]

        points = opt_points[pair_opt] + p.trade_premium[pair_trade]
        lp = highspy.HighsLp()
        lp.num_row_ = n_l + n_t + int(capped.sum())
        lp.num_col_ = n_t + n_a
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.row_lower_ = np.r_[np.full(n_l, -INF), self.lower * ROW_SCALE, np.full(int(capped.sum()), -INF)]
        lp.row_upper_ = np.r_[np.ones(n_l), bands.upper[trades] * ROW_SCALE, bands.hb_room[trades[capped]] * ROW_SCALE]
        per_m = 1.0 / 100.0 / ROW_SCALE * OBJ_SCALE  # points on $M -> $k
        lp.col_cost_ = np.r_[-bands.pair_off[trades] * per_m, upb * points * per_m]
        lp.col_lower_ = np.zeros(n_t + n_a)
        lp.col_upper_ = np.r_[self.lower * ROW_SCALE, np.ones(n_a)]
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_t + [highspy.HighsVarType.kInteger] * n_a
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        self.highs = new_highs()
        self.highs.setOptionValue("mip_rel_gap", REL_GAP)
        self.highs.setOptionValue("mip_abs_gap", ABS_GAP_DOLLARS * OBJ_SCALE)
        self.highs.passModel(lp)
        self.upb = p.loan_upb
        self.cost = np.asarray(lp.col_cost_)
        self._start: highspy.HighsSolution | None = None

    def require(self, required: np.ndarray) -> None:
        """From now on the `required` trades ((m,) bool, the fill set) must reach their min: no shortfall."""
        idx = np.flatnonzero(required[self.trades]).astype(np.int32)
        if len(idx):
            self.highs.changeColsBounds(len(idx), idx, np.zeros(len(idx)), np.zeros(len(idx)))

    def warm_start(self, loan_trade: np.ndarray) -> None:
        """Start from an allocation (loan -> trade for every loan of the problem; it must respect the hard
        limits, as a repaired allocation does)."""
        x = (loan_trade[self.pair_loan] == self.pair_trade).astype(float)
        fill = np.bincount(np.searchsorted(self.trades, self.pair_trade), weights=x * self.upb[self.pair_loan],
                           minlength=len(self.trades))
        s = np.maximum(0.0, self.lower - fill) * ROW_SCALE
        sol = highspy.HighsSolution()
        sol.col_value = np.r_[s, x].tolist()
        sol.value_valid = True
        self._start = sol
        self.highs.setSolution(sol)

    def _consistent(self) -> bool:
        """The solution HiGHS returns is worth the objective it reports (a cent of slack)."""
        info = self.highs.getInfo()
        if info.primal_solution_status != 2:
            return True
        cols = np.asarray(self.highs.getSolution().col_value)
        worth = float(np.dot(self.cost, cols)) if len(cols) == len(self.cost) else np.nan
        return abs(worth - float(info.objective_function_value)) <= 0.01 * OBJ_SCALE

    def solve(self, time_limit: float) -> MIPSolution:
        h = self.highs
        deadline = time.monotonic() + time_limit
        h.setOptionValue("time_limit", max(0.05, float(time_limit)))
        h.run()
        if not self._consistent() and deadline - time.monotonic() > 0.05:
            # HiGHS 1.16: when presolve solves a model given a start (setSolution), the solution it returns
            # can be the start, not its optimum; solve it again without presolve
            h.setOptionValue("presolve", "off")
            h.setOptionValue("time_limit", max(0.05, deadline - time.monotonic()))
            h.setSolution(self._start)
            h.run()
            h.setOptionValue("presolve", "choose")
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        loan_trade = None
        cols = np.asarray(h.getSolution().col_value)
        if len(cols) and info.primal_solution_status == 2:  # kSolutionStatusFeasible
            x = cols[len(self.trades):] > 0.5
            loan_trade = np.full(len(self.loans), -1, dtype=np.int64)
            loan_trade[np.searchsorted(self.loans, self.pair_loan[x])] = self.pair_trade[x]
        bound = float(info.mip_dual_bound) / OBJ_SCALE
        return MIPSolution(status=status, loan_trade=loan_trade,
                           objective=float(info.objective_function_value) / OBJ_SCALE,
                           bound=bound if np.isfinite(bound) and abs(bound) < 1e300 else np.inf,
                           nodes=int(info.mip_node_count), seconds=float(h.getRunTime()))
