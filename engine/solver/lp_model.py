"""The LP relaxation of the allocation (one component, over loan buckets), solved with HiGHS.

    max  sum_{b,j} v_bj z_bj - sum_j q_j s_j                    (dollars; v, q in points per 100)
    s.t. sum_j z_bj <= U_b                                      (a bucket's UPB at most once; rest: cash)
         L_j <= sum_b z_bj + s_j <= M_j                         (fill band; s_j the shortfall)
         sum_{b high-balance} z_bj <= H_j                       (high-balance cap)
         z >= 0,  0 <= s_j <= L_j

z_bj: dollars of bucket b placed in trade j; v_bj = score - alternative (cash price, or 0 for a loan
that would be kicked out), so the objective is the premium over sending every loan to its alternative,
net of pair-off. L, M and H are net of what locked loans already put in the trade. One ranged row per
trade is exact: s_j is penalised, so s_j = max(0, L_j - fill_j) and fill_j + s_j = max(fill_j, L_j) <= M_j.

Required trades (the fill set, see optimal.py) have no shortfall column: they must reach their min.

Rows are in $M and the objective in $k, so coefficients stay near 1. The model goes to HiGHS as one
column-wise sparse matrix (passModel), never row by row from Python.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import highspy
import numpy as np

ROW_SCALE = 1e-6  # dollars -> $M on the rows
OBJ_SCALE = 1e-3  # dollars -> $k in the objective
INF = highspy.kHighsInf
_banner_shown = False


def new_highs() -> highspy.Highs:
    """A silent solver. HiGHS writes its banner to the C-level stdout when a process makes its first
    instance, before any option can be set; it goes to stderr, so `pfill run --json` stays JSON."""
    global _banner_shown
    if _banner_shown:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_shown = True
    highs.setOptionValue("output_flag", False)
    return highs


@dataclass
class Bands:
    """Per-trade right-hand sides net of locked loans (dollars) and pair-off points."""

    lower: np.ndarray  # (m,) min allowed still to fill
    upper: np.ndarray  # (m,) max allowed still free
    hb_room: np.ndarray  # (m,) high-balance UPB still allowed (inf: no cap)
    pair_off: np.ndarray  # (m,) points per 100 of shortfall


@dataclass
class Arcs:
    """Columns of the LP: bucket -> trade with the per-dollar value in points."""

    bucket: np.ndarray  # (a,)
    trade: np.ndarray  # (a,)
    points: np.ndarray  # (a,)


@dataclass
class LPSolution:
    status: str  # HiGHS model status ("Optimal", "Infeasible", "Time limit reached", ...)
    objective: float  # dollars
    dollars: np.ndarray  # (a,) z per arc
    iterations: int
    seconds: float


def _column_matrix(arcs: Arcs, bucket_hb: np.ndarray, trades: np.ndarray, capped: np.ndarray,
                   n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """The constraint matrix column-wise (all ones): column starts and row indices. Rows: buckets, then
    one fill row per trade, then one high-balance row per capped trade; columns: the shortfall of each
    trade, then the arcs (bucket row, fill row, and the high-balance row for a high-balance bucket)."""
    n_t = len(trades)
    trade_local = np.full(int(trades.max()) + 1 if n_t else 0, -1, dtype=np.int64)
    trade_local[trades] = np.arange(n_t)
    hb_row = np.full(n_t, -1, dtype=np.int64)
    hb_row[capped] = n_b + n_t + np.arange(int(capped.sum()))

    t_of_arc = trade_local[arcs.trade]
    arc_hb_row = np.where(bucket_hb[arcs.bucket], hb_row[t_of_arc], -1)
    per_col = np.r_[np.ones(n_t, dtype=np.int64), 2 + (arc_hb_row >= 0)]  # shortfall columns first
    starts = np.r_[0, np.cumsum(per_col)]
    index = np.empty(int(starts[-1]), dtype=np.int32)
    index[:n_t] = n_b + np.arange(n_t)  # s_j sits in its trade's fill row
    arc_start = starts[n_t:-1]
    index[arc_start] = arcs.bucket
    index[arc_start + 1] = n_b + t_of_arc
    has_hb = np.flatnonzero(arc_hb_row >= 0)
    index[arc_start[has_hb] + 2] = arc_hb_row[has_hb]
    return starts, index


class ComponentLP:
    """The LP of one component, built once; `required` trades first must reach their min (no shortfall
    column), then `relax()` gives them their shortfall back for the bound (a warm restart in HiGHS)."""

    def __init__(self, arcs: Arcs, bucket_upb: np.ndarray, bucket_hb: np.ndarray, trades: np.ndarray,
                 bands: Bands, required: np.ndarray, exact: bool = False) -> None:
        """exact: every bucket is one loan; its columns become semi-continuous (0 or the loan's whole
        UPB), which makes the model the exact MIP for HiGHS's branch and bound."""
        n_b, n_t = len(bucket_upb), len(trades)
        self.n_trades = n_t
        self.n_arcs = len(arcs.bucket)
        capped = np.isfinite(bands.hb_room[trades])
        starts, index = _column_matrix(arcs, bucket_hb, trades, capped, n_b)

        self.shortfall_upper = bands.lower[trades] * ROW_SCALE
        self.required = required[trades]
        lp = highspy.HighsLp()
        lp.num_row_ = n_b + n_t + int(capped.sum())
        lp.num_col_ = n_t + self.n_arcs
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.row_lower_ = np.r_[np.full(n_b, -INF), self.shortfall_upper, np.full(int(capped.sum()), -INF)]
        lp.row_upper_ = np.r_[bucket_upb * ROW_SCALE, bands.upper[trades] * ROW_SCALE,
                              bands.hb_room[trades[capped]] * ROW_SCALE]
        per_m = 1.0 / 100.0 / ROW_SCALE * OBJ_SCALE  # points on $M -> $k
        lp.col_cost_ = np.r_[-bands.pair_off[trades] * per_m, arcs.points * per_m]
        lp.col_lower_ = np.zeros(lp.num_col_)
        lp.col_upper_ = np.r_[np.where(self.required, 0.0, self.shortfall_upper), np.full(self.n_arcs, INF)]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = np.ones(len(index))
        self.exact_columns = np.zeros(0, dtype=np.int32)
        if exact:
            whole = bucket_upb[arcs.bucket] * ROW_SCALE
            lp.col_lower_ = np.r_[np.zeros(n_t), whole]
            lp.col_upper_ = np.r_[lp.col_upper_[:n_t], whole]
            lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_t + \
                [highspy.HighsVarType.kSemiContinuous] * self.n_arcs
            self.exact_columns = np.arange(n_t, n_t + self.n_arcs, dtype=np.int32)
        self.highs = new_highs()
        self.highs.setOptionValue("mip_rel_gap", 1e-7)  # on the premium: cents on a small instance
        self.highs.passModel(lp)

    def solve(self, time_limit: float) -> LPSolution:
        h = self.highs
        h.setOptionValue("time_limit", max(0.1, float(time_limit)))
        h.run()
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        cols = np.asarray(h.getSolution().col_value)
        dollars = cols[self.n_trades:] / ROW_SCALE if len(cols) else np.zeros(self.n_arcs)
        return LPSolution(status=status, objective=float(info.objective_function_value) / OBJ_SCALE,
                          dollars=dollars, iterations=int(info.simplex_iteration_count),
                          seconds=float(h.getRunTime()))

    def relax(self) -> bool:
        """The plain LP relaxation: required trades get their shortfall column back and semi-continuous
        columns become continuous. False when it was that already."""
        idx = np.flatnonzero(self.required).astype(np.int32)
        if len(idx) == 0 and len(self.exact_columns) == 0:
            return False
        if len(idx):
            self.highs.changeColsBounds(len(idx), idx, np.zeros(len(idx)), self.shortfall_upper[idx])
            self.required = np.zeros_like(self.required)
        cols = self.exact_columns
        if len(cols):
            upper = np.asarray(self.highs.getLp().col_upper_)[cols]
            self.highs.changeColsBounds(len(cols), cols, np.zeros(len(cols)), upper)
            self.highs.changeColsIntegrality(len(cols), cols,
                                             np.full(len(cols), highspy.HighsVarType.kContinuous))
            self.exact_columns = np.zeros(0, dtype=np.int32)
        return True
