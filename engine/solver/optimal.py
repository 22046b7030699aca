"""The `optimal` strategy: the allocation LP solved with HiGHS, rounded to whole loans, repaired.

1. Economics (objective.py): a placement is worth UPB x (score - cash price, or 0 when the loan would be
   kicked out); a trade below its min allowed pays pair-off points on the shortfall.
2. Buckets (buckets.py): loans with identical options are one LP unit, so the LP over buckets has the
   same optimum as the loan-level relaxation at a fraction of the size.
3. Decomposition (components.py): connected components of the bucket-trade graph are solved as
   separate LPs (lp_model.py, HiGHS dual simplex, one time limit for all). Small instances (up to
   EXACT_MIP_MAX_LOANS loans with options) skip the buckets and solve the exact MIP instead.
4. Rounding (rounding.py): each bucket's dollars are dealt to its trades loan by loan; trades over their
   max or high-balance cap give back their least valuable loans.
5. Repair (repair.py): short trades pull loans from the cash window and from trades with room above
   their own min; then every loan that still has a positive-gain move takes it.
The LP value is an upper bound on any allocation, so gap = (bound - value) / (bound - baseline) is a
certificate: the allocation is provably within that fraction of the best premium.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from . import objective as ob
from .buckets import Buckets, loan_buckets
from .components import trade_components
from .greedy import greedy
from .lp_model import Arcs, Bands, ComponentLP
from .problem import PASS_LOCKED, PASS_LP, PASS_NONE, PASS_REPAIR, AllocationProblem, AllocationResult, build_result
from .repair import RepairState
from .rounding import round_buckets

TIME_LIMIT_SECONDS = 40.0  # all LPs of a run together; past it the best basis so far is rounded
EXACT_MIP_MAX_LOANS = 120  # up to this many free loans with options, solve the exact MIP instead
EXACT_MIP_SECONDS = 2.0  # per component; past it the MIP's incumbent is used (then repaired)


def bands_of(p: AllocationProblem) -> Bands:
    """The trades' fill bands and high-balance room left after the locked loans, with pair-off points."""
    fixed_upb, fixed_hb = ob.fixed_fill(p)
    limits = p.limits()
    return Bands(
        lower=np.maximum(0.0, limits.min_allowed - fixed_upb),
        upper=np.maximum(0.0, limits.max_allowed - fixed_upb),
        hb_room=np.maximum(0.0, limits.hb_cap - fixed_hb),
        pair_off=ob.pair_off_points(p),
    )


def bucket_arcs(p: AllocationProblem, free_pairs: np.ndarray, pair_points: np.ndarray,
                buckets: Buckets) -> Arcs:
    """The LP columns: the pairs of each bucket's representative loan."""
    rep_bucket = np.full(p.n_loans, -1, dtype=np.int64)
    rep_bucket[buckets.representative] = np.arange(buckets.n_buckets)
    rep_pairs = free_pairs[rep_bucket[p.cand_loan[free_pairs]] >= 0]
    return Arcs(bucket=rep_bucket[p.cand_loan[rep_pairs]], trade=p.cand_trade[rep_pairs],
                points=pair_points[rep_pairs])


@dataclass
class Relaxation:
    """The LPs of all components together: what to round, and the bound."""

    dollars: np.ndarray  # (a,) LP dollars per arc, fill set required (what gets rounded)
    bound: float  # LP objective without the fill set (dollars of premium): an upper bound
    exact: bool  # every LP solved to optimality (else the bound is not a certificate)
    iterations: int
    components: int


def solve_relaxation(p: AllocationProblem, arcs: Arcs, buckets: Buckets, bands: Bands, required: np.ndarray,
                     time_limit: float, mip: bool = False) -> Relaxation:
    """Per component: the LP with the fill set required (to round), then relaxed (the bound)."""
    if len(arcs.bucket) == 0:
        return Relaxation(dollars=np.zeros(0), bound=0.0, exact=True, iterations=0, components=0)
    label = trade_components(buckets.n_buckets, p.n_trades, arcs.bucket, arcs.trade)
    arc_label = label[arcs.trade]
    order = np.argsort(arc_label, kind="stable")
    edges = np.flatnonzero(np.r_[True, arc_label[order][1:] != arc_label[order][:-1], True])
    dollars = np.zeros(len(arcs.bucket))
    bound, proven, iterations = 0.0, True, 0
    deadline = time.monotonic() + time_limit
    # smallest components first: the largest gets whatever time the small ones left
    blocks = sorted(itertools.pairwise(edges.tolist()), key=lambda b: b[1] - b[0])
    for start, end in blocks:
        arc_ids = order[start:end]
        local_buckets, bucket_local = np.unique(arcs.bucket[arc_ids], return_inverse=True)
        trades = np.unique(arcs.trade[arc_ids])
        sub = Arcs(bucket=bucket_local.reshape(-1), trade=arcs.trade[arc_ids], points=arcs.points[arc_ids])
        lp = ComponentLP(sub, buckets.upb[local_buckets], buckets.high_balance[local_buckets], trades, bands,
                         required, exact=mip)
        budget = deadline - time.monotonic()
        sol = lp.solve(min(budget, EXACT_MIP_SECONDS) if mip else budget)
        iterations += sol.iterations
        if sol.status not in ("Optimal", "Time limit reached") and lp.relax():
            # the fill set cannot be met here: round the free LP instead
            sol = lp.solve(deadline - time.monotonic())
            iterations += sol.iterations
        dollars[arc_ids] = sol.dollars
        if lp.relax():
            relaxed = lp.solve(deadline - time.monotonic())
            iterations += relaxed.iterations
        else:
            relaxed = sol
        bound += relaxed.objective
        proven &= relaxed.status == "Optimal"
    return Relaxation(dollars=dollars, bound=bound, exact=proven, iterations=iterations, components=len(blocks))


def singleton_buckets(p: AllocationProblem, free_pairs: np.ndarray) -> Buckets:
    """One bucket per free loan with options (for the exact MIP)."""
    loans = np.unique(p.cand_loan[free_pairs])
    loan_bucket = np.full(p.n_loans, -1, dtype=np.int64)
    loan_bucket[loans] = np.arange(len(loans))
    return Buckets(loan_bucket=loan_bucket, representative=loans, upb=p.loan_upb[loans].astype(float),
                   high_balance=p.loan_high_balance[loans].astype(bool))


def lp_units(p: AllocationProblem, free_pairs: np.ndarray, pair_points: np.ndarray) -> tuple[Buckets, bool]:
    """The LP's units and whether the model is the exact MIP: small instances (up to EXACT_MIP_MAX_LOANS
    free loans with options) get one bucket per loan and the exact MIP; larger ones, loan buckets."""
    exact = len(np.unique(p.cand_loan[free_pairs])) <= EXACT_MIP_MAX_LOANS
    if exact:
        return singleton_buckets(p, free_pairs), True
    return loan_buckets(p.n_loans, p.loan_upb, p.loan_high_balance, p.cand_loan[free_pairs],
                        p.cand_trade[free_pairs], pair_points[free_pairs]), False


def fill_set(p: AllocationProblem) -> np.ndarray:
    """(m,) trades the allocation must fill: those the staged greedy fills inside tolerance.

    The LP prices pair-off linearly, so it is indifferent between one trade $1M short and ten trades
    $100k short; operators are not (a short trade is a failed delivery). Requiring the greedy's filled
    trades keeps the optimum at least as good as the greedy on fills and on value (the greedy's own
    allocation satisfies the requirement), while the LP re-decides every loan."""
    return greedy(p).trade_status == "Filled"


def optimal(problem: AllocationProblem, time_limit: float = TIME_LIMIT_SECONDS) -> AllocationResult:
    """Allocate by LP relaxation + rounding + repair; stats carry the value, LP bound and gap."""
    p = problem
    started = time.monotonic()
    free_pairs = np.flatnonzero(p.loan_fixed_trade[p.cand_loan] < 0)
    alt = ob.alternative_points(p)
    pair_points = p.cand_score - alt[p.cand_loan]  # premium over the loan's alternative, per 100
    bands = bands_of(p)
    required = fill_set(p)
    fill_set_seconds = time.monotonic() - started
    buckets, exact = lp_units(p, free_pairs, pair_points)
    arcs = bucket_arcs(p, free_pairs, pair_points, buckets)
    lp_started = time.monotonic()
    relaxation = solve_relaxation(p, arcs, buckets, bands, required, time_limit, mip=exact)
    lp_seconds = time.monotonic() - lp_started

    loan_trade = round_buckets(p.n_loans, p.loan_upb, buckets, arcs, relaxation.dollars)
    fixed = p.loan_fixed_trade >= 0
    loan_trade[fixed] = p.loan_fixed_trade[fixed]
    lp_trade = loan_trade.copy()
    repair_started = time.monotonic()
    repair = RepairState(p, loan_trade, pair_points, bands.pair_off, free_pairs, required)
    repair.fix_limits()
    repair.improve()
    repair_seconds = time.monotonic() - repair_started
    loan_trade = repair.loan_trade

    value = ob.evaluate(p, loan_trade)
    # trades outside every LP component can only be short by their whole remaining min
    in_lp = np.zeros(p.n_trades, dtype=bool)
    in_lp[arcs.trade] = True
    outside_pair_off = float(np.sum(bands.lower[~in_lp] * bands.pair_off[~in_lp]) / 100.0)
    bound = ob.cash_only_value(p) + relaxation.bound - outside_pair_off if relaxation.exact else float("nan")
    loan_pass = np.where(fixed, PASS_LOCKED, np.where(loan_trade < 0, PASS_NONE,
                                                      np.where(loan_trade == lp_trade, PASS_LP, PASS_REPAIR)))
    stats: dict[str, float] = {
        "objective_value": round(value.objective, 2),
        "lp_bound": round(bound, 2),
        "gap_pct": round(gap_pct(bound, value), 6),
        "solver_seconds": round(lp_seconds, 3),
        "fill_set_seconds": round(fill_set_seconds, 3), "repair_seconds": round(repair_seconds, 3),
        "optimal_seconds": round(time.monotonic() - started, 3),
        "lp_buckets": buckets.n_buckets, "lp_columns": len(arcs.bucket), "lp_components": relaxation.components,
        "lp_iterations": relaxation.iterations, "exact_mip": int(exact), "required_fills": int(required.sum()),
        "repair_moves": repair.moves,
    }
    return build_result(p, loan_trade, loan_pass.astype(np.int8), stats)


def gap_pct(bound: float, value: ob.Valuation) -> float:
    """Percent of the best achievable premium (bound - baseline) that the allocation leaves on the table."""
    room = bound - value.baseline_value
    if not np.isfinite(bound) or room <= 0:
        return 0.0 if np.isfinite(bound) else float("nan")
    return max(0.0, (bound - value.objective) / room * 100.0)
