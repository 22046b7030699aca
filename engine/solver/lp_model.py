"""The LP relaxation of the allocation (one component), solved with HiGHS: a flow through trade groups.

Loans reach trades through their group (solver/problem.py): a pair's value is the loan's part in the
group plus the trade's premium, so a flow bucket -> group -> trade has exactly the value of the pair it
decomposes into, and the LP needs bucket x group arcs plus one column per trade, not bucket x trade:

    max  sum_{b,G} v_bG z_bG + sum_j p_j (y_j + h_j) - sum_j q_j s_j        (dollars; v, p, q in points)
    s.t. sum_G z_bG <= U_b                                     (a bucket's UPB at most once; rest: cash)
         sum_{b not high-balance} z_bG = sum_{j in G} y_j      (group G passes on what enters it)
         sum_{b high-balance} z_bG     = sum_{j in G} h_j      (the same for high-balance dollars)
         L_j <= y_j + h_j + s_j <= M_j                         (fill band; s_j the shortfall)
         0 <= h_j <= H_j,  z, y >= 0,  0 <= s_j <= L_j         (high-balance cap; shortfall)

z_bG: dollars of bucket b placed in group G; v_bG = the bucket's score in G - alternative (cash price,
or 0 for a loan that would be kicked out); y_j, h_j: ordinary and high-balance dollars G puts in trade j.
The objective is the premium over sending every loan to its alternative, net of pair-off. L, M and H are
net of what locked loans already put in the trade. One ranged row per trade is exact: s_j is penalised,
so s_j = max(0, L_j - fill_j) and fill_j + s_j = max(fill_j, L_j) <= M_j. A trade no loan of its group
can fit into (every loan larger than its max, or every high-balance loan larger than its cap) gets no
column: a valid cut that the whole-loan problem implies and the relaxation would otherwise miss.

Required trades (the fill set, see optimal.py) have no shortfall column: they must reach their min.

Rows are in $M and the objective in $k, so coefficients stay near 1 (each group's premiums are shifted
by the group's best premium, which the conservation rows make free). The model goes to HiGHS as one
column-wise sparse matrix (passModel), never row by row from Python. `new_highs` is the one way to make
a HiGHS instance (the LP here, the MIP in mip.py): it keeps the banner off stdout.
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
    """A silent solver. HiGHS writes its banner (version, copyright) to the C-level stdout when a
    process makes its first instance, before any option can be set: it goes to the null device, so
    `pfill run --json` stays JSON and the run's progress on stderr stays the kit's own lines."""
    global _banner_shown
    if _banner_shown:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)
        _banner_shown = True
    highs.setOptionValue("output_flag", False)
    # One thread: on its own, HiGHS's branch and bound keeps a second worker that took a third more CPU
    # than the MIP's wall time (0.3 s in 0.5 s at 100k loans, 0.5 s in 1 s at 500) and finished no
    # sooner, nor better; on a busy machine that CPU comes out of the run and the work beside it.
    highs.setOptionValue("threads", 1)
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
    """Columns of the LP: bucket -> group with the per-dollar value in points (premium excluded)."""

    bucket: np.ndarray  # (a,)
    group: np.ndarray  # (a,)
    points: np.ndarray  # (a,)


@dataclass
class LPSolution:
    status: str  # HiGHS model status ("Optimal", "Infeasible", "Time limit reached", ...)
    objective: float  # dollars
    dollars: np.ndarray  # (a,) z per arc
    trade_dollars: np.ndarray  # (t,) y per trade of the component (ordinary loans)
    trade_hb_dollars: np.ndarray  # (t,) h per trade (high-balance loans)
    iterations: int
    seconds: float


class ComponentLP:
    """The LP of one component, built once; `required` trades first must reach their min (no shortfall
    column), then `relax()` gives them their shortfall back for the bound (a warm restart in HiGHS)."""

    def __init__(self, arcs: Arcs, bucket_upb: np.ndarray, bucket_hb: np.ndarray, trades: np.ndarray,
                 trade_group: np.ndarray, premium: np.ndarray, bands: Bands, required: np.ndarray,
                 trade_open: np.ndarray, trade_hb_open: np.ndarray) -> None:
        """arcs: local bucket index, global group; trades: the component's trades (global indices);
        trade_group, premium, bands, required, trade_open (some ordinary loan of the group fits),
        trade_hb_open (some high-balance loan fits): per trade, global."""
        n_b, n_t, n_a = len(bucket_upb), len(trades), len(arcs.bucket)
        groups, arc_g = np.unique(arcs.group, return_inverse=True)
        t_group = np.searchsorted(groups, trade_group[trades])
        n_g = len(groups)
        self.n_trades, self.n_arcs = n_t, n_a
        shift = np.full(n_g, -np.inf)
        np.maximum.at(shift, t_group, premium[trades])
        shift = np.where(np.isfinite(shift), shift, 0.0)

        # rows: buckets | group ordinary | group high-balance | trades
        r_group, r_hb, r_trade = n_b, n_b + n_g, n_b + 2 * n_g
        t = np.arange(n_t)
        arc_row = np.where(bucket_hb[arcs.bucket], r_hb, r_group) + arc_g.reshape(-1)
        # columns: s (n_t) | y (n_t) | h (n_t) | z (n_a); s has 1 entry, the others 2
        per_col = np.r_[np.ones(n_t, dtype=np.int64), np.full(2 * n_t + n_a, 2, dtype=np.int64)]
        starts = np.r_[0, np.cumsum(per_col)]
        index = np.empty(int(starts[-1]), dtype=np.int32)
        value = np.ones(len(index))
        index[:n_t] = r_trade + t
        y0, h0, z0 = starts[n_t:2 * n_t], starts[2 * n_t:3 * n_t], starts[3 * n_t:-1]
        index[y0], index[y0 + 1], value[y0] = r_group + t_group, r_trade + t, -1.0
        index[h0], index[h0 + 1], value[h0] = r_hb + t_group, r_trade + t, -1.0
        index[z0], index[z0 + 1] = arcs.bucket, arc_row

        self.shortfall_upper = bands.lower[trades] * ROW_SCALE
        self.required = required[trades]
        per_m = 1.0 / 100.0 / ROW_SCALE * OBJ_SCALE  # points on $M -> $k
        lp = highspy.HighsLp()
        lp.num_row_ = n_b + 2 * n_g + n_t
        lp.num_col_ = 3 * n_t + n_a
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.row_lower_ = np.r_[np.full(n_b, -INF), np.zeros(2 * n_g), self.shortfall_upper]
        lp.row_upper_ = np.r_[bucket_upb * ROW_SCALE, np.zeros(2 * n_g), bands.upper[trades] * ROW_SCALE]
        net = premium[trades] - shift[t_group]
        lp.col_cost_ = np.r_[-bands.pair_off[trades], net, net, arcs.points + shift[arc_g]] * per_m
        lp.col_lower_ = np.zeros(lp.num_col_)
        lp.col_upper_ = np.r_[np.where(self.required, 0.0, self.shortfall_upper),
                              np.where(trade_open[trades], INF, 0.0),
                              np.where(trade_hb_open[trades], np.minimum(bands.hb_room[trades] * ROW_SCALE, INF), 0.0),
                              np.full(n_a, INF)]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        self.highs = new_highs()
        self.highs.passModel(lp)

    def solve(self, time_limit: float) -> LPSolution:
        h = self.highs
        h.setOptionValue("time_limit", max(0.1, float(time_limit)))
        h.run()
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        cols = np.asarray(h.getSolution().col_value) / ROW_SCALE
        n_t = self.n_trades
        if len(cols) == 0:
            cols = np.zeros(3 * n_t + self.n_arcs)
        return LPSolution(status=status, objective=float(info.objective_function_value) / OBJ_SCALE,
                          dollars=cols[3 * n_t:], trade_dollars=cols[n_t:2 * n_t],
                          trade_hb_dollars=cols[2 * n_t:3 * n_t],
                          iterations=int(info.simplex_iteration_count), seconds=float(h.getRunTime()))

    def relax(self) -> bool:
        """The plain LP relaxation: required trades get their shortfall column back. False when it was
        that already."""
        idx = np.flatnonzero(self.required).astype(np.int32)
        if len(idx) == 0:
            return False
        self.highs.changeColsBounds(len(idx), idx, np.zeros(len(idx)), self.shortfall_upper[idx])
        self.required = np.zeros_like(self.required)
        return True
