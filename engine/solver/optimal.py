"""The `optimal` strategy: the allocation LP solved with HiGHS, rounded to whole loans, repaired and
repacked, and on components small enough to prove, the exact MIP warm-started from that allocation.

1. Economics (objective.py): a placement is worth UPB x (score - cash price, or 0 when the loan would be
   kicked out); a trade below its min allowed pays pair-off points on the shortfall.
2. The fill set: the trades the staged greedy fills inside tolerance must be filled (see fill_set).
3. Buckets (buckets.py): loans with identical options are one LP unit, so the LP over buckets has the
   same optimum as the loan-level relaxation at a fraction of the size.
4. Decomposition (components.py): connected components of the bucket-group graph (programs, coupons,
   settlements that share no loan) are separate LPs (lp_model.py: a flow bucket -> group -> trade, HiGHS
   dual simplex, one time limit for all).
5. Rounding (rounding.py): each bucket's dollars are dealt to its groups loan by loan, then each group's
   loans to its trades in proportion to the LP's dollars.
6. Repair (repair.py): trades over a hard limit give back loans; short trades pull loans from the cash
   window and from trades with room above their own min; every loan that still has a positive-gain move
   takes it. Packing (pack.py): a knapsack per trade exchanges several loans at once where whole loans
   miss the band (books of small trades), for PACK_SECONDS, longer while the gap stays large. Swaps
   (swap.py): while the gap stays large, loans exchanged between two trades (one for one, or two for
   one) where no single move keeps both bands, for SWAP_SECONDS_PER_LOAN per loan.
7. MIP (mip.py): a component with at most MIP_MAX_LOANS loans (and MIP_MAX_PAIRS pairs that fit) is
   solved exactly by HiGHS's branch and bound from the repaired allocation, within MIP_SECONDS_PER_LOAN
   per loan (MIP_SECONDS for all). Its dual bound replaces the LP's; its allocation is taken when it is
   worth more and fills the fill set. Then pooled loans go back to their pool's trade where that is
   (nearly) free (stay.py), and a last sweep puts unplaced loans into short trades they fit.

Bounds, per component and summed (plus the cash value of every free loan, less the pair-off of trades
no free loan can enter):
- `lp_bound`: an upper bound on the objective of every allocation that respects the hard limits and
  fills the fill set, i.e. of every allocation this strategy may return: the LP with the fill set
  required, or the MIP's dual bound (with the fill set when it binds). gap_pct = (bound - value) /
  (bound - baseline) is a certificate on the premium; `proven_optimal` means every component's value is
  within the MIP's stopping rule of its bound (a dollar, or 1e-7): no such allocation is worth more.
- `free_bound` / `free_gap_pct` (stats only): the same over every allocation, the fill set dropped (the
  plain LP relaxation or the MIP without the fill set); the difference is the most the fill set costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..arrays import ranges
from . import objective as ob
from .buckets import Buckets, loan_buckets
from .components import trade_components
from .greedy import greedy
from .lp_model import Arcs, Bands, ComponentLP
from .mip import ABS_GAP_DOLLARS, REL_GAP, ComponentMIP, fitting_pairs
from .pack import options_by_group, pack
from .problem import (
    EPS,
    PASS_LOCKED,
    PASS_LP,
    PASS_MIP,
    PASS_NONE,
    PASS_REPAIR,
    AllocationProblem,
    AllocationResult,
    build_result,
    fill_of,
    work_clock,
)
from .repair import RepairState
from .rounding import deal_to_trades, round_buckets
from .stay import keep_pools
from .swap import swap_pass

TIME_LIMIT_SECONDS = 40.0  # all LPs of a run together; past it the best basis so far is rounded
# the passes' seconds below are seconds of work (problem.work_clock), the LP's and MIP's wall seconds
PACK_SECONDS = 0.7  # knapsack repacking of trades (pack.py), best potential first, this long,
PACK_MAX_SECONDS = 4.0  # ... or this long when the gap is still above
PACK_MORE_GAP_PCT = 0.25  # ... this (percent of the premium) after PACK_SECONDS
PACK_MIN_DOLLARS = 50.0  # a trade whose repacking could gain less than this is left as it is
SWAP_SECONDS_PER_LOAN = 0.002  # loan swaps between trades (swap.py) while the gap is above PACK_MORE_GAP_PCT:
SWAP_MAX_SECONDS = 4.0  # this per loan, at most this long
MIP_MAX_LOANS = 2000  # a component with at most this many free loans (with options) may get the MIP
MIP_MAX_PAIRS = 50_000  # ... and at most this many (loan, trade) pairs that fit (larger: the root alone is slow)
MIP_SECONDS_PER_LOAN = 0.004  # a component's MIP time limit: this per free loan of it (at least
MIP_MIN_SECONDS = 1.0  # this), so the MIP's time grows with the component like everything else
MIP_SECONDS = 4.0  # all MIPs of a run together at most this (smallest components first)


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


def bucket_arcs(p: AllocationProblem, free_opts: np.ndarray, opt_points: np.ndarray, buckets: Buckets) -> Arcs:
    """The LP columns: the options of each bucket's representative loan."""
    rep_bucket = np.full(p.n_loans, -1, dtype=np.int64)
    rep_bucket[buckets.representative] = np.arange(buckets.n_buckets)
    rep_opts = free_opts[rep_bucket[p.opt_loan[free_opts]] >= 0]
    return Arcs(bucket=rep_bucket[p.opt_loan[rep_opts]], group=p.opt_group[rep_opts], points=opt_points[rep_opts])


@dataclass
class Component:
    """One independent block: its groups, trades and free loans, and what is known of its optimum."""

    groups: np.ndarray
    trades: np.ndarray
    arc_ids: np.ndarray  # its LP arcs
    bound: float = np.inf  # dollars of premium (over the alternatives, net of pair-off of its trades) of any allocation
    bound_fill: float = np.inf  # ... of any allocation that fills the fill set (<= bound)
    exact: bool = False  # the bounds are certificates (its LP or MIP ended Optimal or with a dual bound)
    proven: bool = False
    loans: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class Relaxation:
    """The LPs of all components together: what to round, and the bound per component."""

    dollars: np.ndarray  # (a,) LP dollars per arc, fill set required (what gets rounded)
    trade_dollars: np.ndarray  # (m,) ordinary dollars per trade
    trade_hb_dollars: np.ndarray  # (m,) high-balance dollars per trade
    components: list[Component]
    iterations: int


def open_trades(p: AllocationProblem, free_opts: np.ndarray, bands: Bands) -> tuple[np.ndarray, np.ndarray]:
    """(m,) whether some ordinary / some high-balance loan of the trade's group fits into it at all."""
    upb, hb = p.loan_upb[p.opt_loan[free_opts]], p.loan_high_balance[p.opt_loan[free_opts]].astype(bool)
    g = p.n_groups
    smallest = np.full(g, np.inf)
    smallest_hb = np.full(g, np.inf)
    np.minimum.at(smallest, p.opt_group[free_opts[~hb]], upb[~hb])
    np.minimum.at(smallest_hb, p.opt_group[free_opts[hb]], upb[hb])
    tg = p.trade_group
    return (smallest[tg] <= bands.upper + EPS,
            smallest_hb[tg] <= np.minimum(bands.upper, bands.hb_room) + EPS)


def solve_relaxation(p: AllocationProblem, arcs: Arcs, buckets: Buckets, bands: Bands, required: np.ndarray,
                     trade_open: tuple[np.ndarray, np.ndarray], time_limit: float) -> Relaxation:
    """Per component: the LP with the fill set required (to round), then relaxed (the bound)."""
    m = p.n_trades
    out = Relaxation(dollars=np.zeros(len(arcs.bucket)), trade_dollars=np.zeros(m), trade_hb_dollars=np.zeros(m),
                     components=[], iterations=0)
    if len(arcs.bucket) == 0:
        return out
    label = trade_components(buckets.n_buckets, p.n_groups, arcs.bucket, arcs.group)
    arc_label = label[arcs.group]
    order = np.argsort(arc_label, kind="stable")
    edges = np.flatnonzero(np.r_[True, arc_label[order][1:] != arc_label[order][:-1], True])
    start, group_trades = p.group_trades()
    deadline = time.monotonic() + time_limit
    blocks = [order[a:b] for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)]
    # smallest components first: the largest gets whatever time the small ones left
    for arc_ids in sorted(blocks, key=len):
        local_buckets, bucket_local = np.unique(arcs.bucket[arc_ids], return_inverse=True)
        groups = np.unique(arcs.group[arc_ids])
        trades = np.sort(np.concatenate([group_trades[start[g]:start[g + 1]] for g in groups.tolist()]))
        sub = Arcs(bucket=bucket_local.reshape(-1), group=arcs.group[arc_ids], points=arcs.points[arc_ids])
        lp = ComponentLP(sub, buckets.upb[local_buckets], buckets.high_balance[local_buckets], trades, p.trade_group,
                         p.trade_premium, bands, required, trade_open[0], trade_open[1])
        sol = lp.solve(deadline - time.monotonic())
        out.iterations += sol.iterations
        with_fill_set = lp.required.any() and sol.status == "Optimal"
        if sol.status not in ("Optimal", "Time limit reached") and lp.relax():
            # the fill set cannot be met here: round the free LP instead
            sol = lp.solve(deadline - time.monotonic())
            out.iterations += sol.iterations
        out.dollars[arc_ids] = sol.dollars
        out.trade_dollars[trades] = sol.trade_dollars
        out.trade_hb_dollars[trades] = sol.trade_hb_dollars
        if lp.relax():
            relaxed = lp.solve(deadline - time.monotonic())
            out.iterations += relaxed.iterations
        else:
            relaxed = sol
        bound = relaxed.objective
        out.components.append(Component(groups=groups, trades=trades, arc_ids=arc_ids, bound=bound,
                                         bound_fill=min(bound, sol.objective) if with_fill_set else bound,
                                         exact=relaxed.status == "Optimal"))
    return out


def fill_set(p: AllocationProblem) -> tuple[np.ndarray, AllocationResult]:
    """((m,) trades the allocation must fill: those the staged greedy fills inside tolerance; the greedy's
    allocation, which fills them).

    The LP prices pair-off linearly, so it is indifferent between one trade $1M short and ten trades
    $100k short; operators are not (a short trade is a failed delivery). Requiring the greedy's filled
    trades keeps the optimum at least as good as the greedy on fills and on value (the greedy's own
    allocation satisfies the requirement), while the LP re-decides every loan."""
    reference = greedy(p)
    return reference.trade_status == "Filled", reference


def component_value(p: AllocationProblem, loan_trade: np.ndarray, loans: np.ndarray, trades: np.ndarray,
                    opt_points: np.ndarray, bands: Bands) -> float:
    """Dollars of premium of an assignment on one component: its free loans' premium over their
    alternative, less the pair-off of its trades (on the shortfall net of locked loans)."""
    placed = loans[loan_trade[loans] >= 0]
    opt = p.option_of(placed, loan_trade[placed])
    points = opt_points[opt] + p.trade_premium[loan_trade[placed]]
    value = float(np.sum(p.loan_upb[placed] * points) / 100.0)
    in_trade = np.bincount(loan_trade[placed], weights=p.loan_upb[placed], minlength=p.n_trades)[trades]
    short = np.maximum(0.0, bands.lower[trades] - in_trade)
    return value - float(np.sum(short * bands.pair_off[trades]) / 100.0)


def total_bound(p: AllocationProblem, components: list[Component], bands: Bands, fill: bool = True) -> float:
    """The objective's upper bound from the components' bounds (dollars): over allocations that fill the
    fill set (`fill`), or over every allocation. Trades outside every component (no free loan can enter
    them) can only be short by their whole remaining min."""
    in_lp = np.zeros(p.n_trades, dtype=bool)
    for comp in components:
        in_lp[comp.trades] = True
    outside_pair_off = float(np.sum(bands.lower[~in_lp] * bands.pair_off[~in_lp]) / 100.0)
    parts = sum(c.bound_fill if fill else c.bound for c in components)
    return ob.cash_only_value(p) + parts - outside_pair_off


def _gap_meter(p: AllocationProblem, components: list[Component], bands: Bands) -> Callable[[np.ndarray], float]:
    """gap_pct of an assignment against the components' current bounds."""
    bound = total_bound(p, components, bands)

    def gap(loan_trade: np.ndarray) -> float:
        return gap_pct(bound, ob.evaluate(p, loan_trade))

    return gap


def pack_trades(state: RepairState, opt_points: np.ndarray, gap: Callable[[], float]) -> int:
    """Knapsack repacking (pack.py), most promising trades first, again for the groups that changed, for
    PACK_SECONDS; as long as PACK_MAX_SECONDS when the gap is still above PACK_MORE_GAP_PCT by then (a book
    of small trades, where whole loans matter). Returns how many trades changed."""
    p = state.p
    start = work_clock()
    deadline, extended = start + PACK_SECONDS, False
    todo = pack_order(state, opt_points)
    packed: set[int] = set()
    while True:
        changed = pack(state, todo, deadline)
        if changed:
            state.improve()
            packed.update(changed)
        late = work_clock() >= deadline
        if late and not extended and PACK_MAX_SECONDS > PACK_SECONDS and gap() > PACK_MORE_GAP_PCT:
            deadline, extended = start + PACK_MAX_SECONDS, True
            todo = pack_order(state, opt_points)
            continue
        if late or not changed:
            return len(packed)
        todo = pack_order(state, opt_points, groups=np.unique(p.trade_group[changed]))


def swap_trades(state: RepairState, opt_points: np.ndarray, gap: Callable[[], float]) -> int:
    """Rounds of swaps between trades (swap.py: one for one, then also two for one), most promising
    trades first, each followed by the repair's moves, while they pay and the gap stays above
    PACK_MORE_GAP_PCT (a book of small trades), for SWAP_SECONDS_PER_LOAN per loan (at most
    SWAP_MAX_SECONDS). Returns the swaps made."""
    deadline = work_clock() + min(SWAP_MAX_SECONDS, SWAP_SECONDS_PER_LOAN * state.p.n_loans)
    if gap() <= PACK_MORE_GAP_PCT:
        return 0
    p = state.p
    by_group = options_by_group(state)
    start = p.loan_options()
    swaps, give_two = 0, False
    live = np.ones(p.n_trades, dtype=bool)  # trades whose swaps may have changed since they were last tried
    while work_clock() < deadline and gap() > PACK_MORE_GAP_PCT:
        before = state.loan_trade.copy()
        order = pack_order(state, opt_points)
        made = swap_pass(state, order[live[order]], by_group, deadline, give_two)
        if made:
            swaps += made
            state.improve()
            # swaps open new knapsack repackings, in the groups whose trades changed
            changed = state.loan_trade != before
            touched = np.r_[state.loan_trade[changed], before[changed]]
            if pack(state, pack_order(state, opt_points, np.unique(p.trade_group[touched[touched >= 0]])), deadline):
                state.improve()
            # next round: only the trades of the groups a moved loan belongs to
            moved = np.flatnonzero(state.loan_trade != before)
            groups = p.opt_group[ranges(start[moved], start[moved + 1] - start[moved])]
            live = np.isin(p.trade_group, groups)
        elif give_two:
            break
        else:  # one for one until that stops paying, then two for one too, on every trade again
            give_two, live = True, np.ones(p.n_trades, dtype=bool)
    return swaps


def pack_order(state: RepairState, opt_points: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Trades worth repacking (pack.py), most promising first: an optimistic bound on the gain, from
    filling the room left to max with the best loan at cash, upgrading each loan to that loan's points
    and saving the pair-off of a shortfall."""
    p = state.p
    loan = p.opt_loan[state.free_opts]
    at_cash = (state.loan_trade[loan] < 0) & ~state.hb[loan]
    best = np.full(p.n_groups, -np.inf)
    np.maximum.at(best, p.opt_group[state.free_opts[at_cash]], opt_points[state.free_opts[at_cash]])
    pts = best[p.trade_group] + p.trade_premium  # (m,) best points a loan at cash would earn in the trade
    pts = np.where(np.isfinite(pts), pts, 0.0)
    placed = np.flatnonzero((state.loan_trade >= 0) & (p.loan_fixed_trade < 0) & ~state.hb)
    t = state.loan_trade[placed]
    upgrade = np.bincount(t, weights=state.upb[placed] * np.maximum(0.0, pts[t] - state.loan_points[placed]),
                          minlength=p.n_trades)
    room = np.maximum(0.0, state.max_allowed - state.fill)
    potential = (room * np.maximum(pts, 0.0) + upgrade + state.pair_off * state.shortfall()) / 100.0
    potential += np.where(state.required & (state.shortfall() > EPS), 1e6, 0.0)
    keep = potential > PACK_MIN_DOLLARS
    if groups is not None:
        keep &= np.isin(p.trade_group, groups)
    trades = np.flatnonzero(keep)
    return trades[np.argsort(-potential[trades], kind="stable")]


def keep_the_better(p: AllocationProblem, loan_trade: np.ndarray, reference: np.ndarray, components: list[Component],
                    opt_points: np.ndarray, bands: Bands, required: np.ndarray,
                    fills_first: bool = True) -> np.ndarray:
    """Per component, the greedy's allocation where it is worth more than `loan_trade`, or (with
    `fills_first`) where `loan_trade` fills fewer of the component's trades inside tolerance: the strategy
    is never worse than its reference, on fills or on value. Changes `loan_trade` in place; returns the
    loans it took, (n,)."""
    taken = np.zeros(p.n_loans, dtype=bool)
    for comp in components:
        mine = component_value(p, loan_trade, comp.loans, comp.trades, opt_points, bands)
        theirs = component_value(p, reference, comp.loans, comp.trades, opt_points, bands)
        if theirs > mine + 0.005 or (fills_first and _filled(p, loan_trade, comp) < _filled(p, reference, comp)):
            loan_trade[comp.loans] = reference[comp.loans]
            taken[comp.loans] = True
    return taken


def improve_with_mip(p: AllocationProblem, loan_trade: np.ndarray, components: list[Component],
                     opt_points: np.ndarray, bands: Bands, required: np.ndarray, budget: float) -> dict[str, float]:
    """The exact MIP on every component small enough, smallest first, warm-started from `loan_trade`
    (changed in place where the MIP finds an allocation worth more that fills the fill set).

    The MIP is solved without the fill set first, so that its dual bound bounds every allocation; when
    its allocation leaves a trade of the fill set short, the same model is solved again with the fill
    set required (from `loan_trade`, which fills it) for the rest of the component's time."""
    stats = {"mip_components": 0, "mip_seconds": 0.0, "mip_nodes": 0, "mip_improved": 0}
    start = time.monotonic()
    small = [c for c in components if 0 < len(c.loans) <= MIP_MAX_LOANS]
    small.sort(key=lambda c: len(c.loans))
    for comp in small:
        left = budget - (time.monotonic() - start)
        if left <= 0.05:
            break
        pairs = fitting_pairs(p, comp.loans, bands)
        if len(pairs[0]) > MIP_MAX_PAIRS:
            continue
        deadline = time.monotonic() + min(left, max(MIP_MIN_SECONDS, MIP_SECONDS_PER_LOAN * len(comp.loans)))
        mip = ComponentMIP(p, comp.loans, pairs, comp.trades, opt_points, bands)
        mip.warm_start(loan_trade)
        sol = mip.solve(deadline - time.monotonic())
        stats["mip_components"] += 1
        stats["mip_nodes"] += sol.nodes
        if np.isfinite(sol.bound):
            comp.bound = min(comp.bound, sol.bound) if comp.exact else sol.bound
            comp.bound_fill = min(comp.bound_fill, comp.bound) if comp.exact else comp.bound
            comp.exact = True
        candidate = _with(loan_trade, comp.loans, sol.loan_trade)
        retry = candidate is not None and not _fills(p, candidate, comp, bands, required)
        if retry and deadline - time.monotonic() > 0.05:
            mip.require(required)
            mip.warm_start(loan_trade)
            again = mip.solve(deadline - time.monotonic())
            stats["mip_nodes"] += again.nodes
            if comp.exact and np.isfinite(again.bound):
                comp.bound_fill = min(comp.bound_fill, again.bound)
            candidate = _with(loan_trade, comp.loans, again.loan_trade)
        if candidate is None or not _fills(p, candidate, comp, bands, required):
            continue
        before = component_value(p, loan_trade, comp.loans, comp.trades, opt_points, bands)
        after = component_value(p, candidate, comp.loans, comp.trades, opt_points, bands)
        # the fill set comes first: an allocation that fills it replaces one that does not
        if after > before + 0.005 or not _fills(p, loan_trade, comp, bands, required):
            loan_trade[comp.loans] = candidate[comp.loans]
            stats["mip_improved"] += 1
    stats["mip_seconds"] = round(time.monotonic() - start, 3)
    return stats


def stay_in_pools(p: AllocationProblem, loan_trade: np.ndarray, reference: np.ndarray, components: list[Component],
                  opt_points: np.ndarray, bands: Bands, required: np.ndarray) -> int:
    """Pooled loans back to their pool's trade where that costs at most stay.STAY_POINTS each (stay.py),
    changing `loan_trade` in place. What a component may lose in all: no more than keeps it worth at
    least the greedy's allocation (keep_the_better), and, when it is proven optimal, no more than keeps
    it proven. Returns the loans moved back."""
    budget = np.zeros(len(components))
    loan_budget = np.full(p.n_loans, -1, dtype=np.int64)
    for k, comp in enumerate(components):
        mine = component_value(p, loan_trade, comp.loans, comp.trades, opt_points, bands)
        allowed = mine - component_value(p, reference, comp.loans, comp.trades, opt_points, bands)
        if comp.exact and _fills(p, loan_trade, comp, bands, required):
            slack = proven_slack(comp.bound_fill) - (comp.bound_fill - mine)
            if slack >= 0:  # proven: stays so
                allowed = min(allowed, slack)
        budget[k] = max(0.0, allowed)
        loan_budget[comp.loans] = k
    return keep_pools(p, loan_trade, opt_points, bands.pair_off, budget, loan_budget)


def _with(loan_trade: np.ndarray, loans: np.ndarray, assigned: np.ndarray | None) -> np.ndarray | None:
    if assigned is None:
        return None
    out = loan_trade.copy()
    out[loans] = assigned
    return out


def _filled(p: AllocationProblem, loan_trade: np.ndarray, comp: Component) -> int:
    """How many of the component's trades the assignment fills inside tolerance."""
    fill, _, count = fill_of(p, loan_trade)
    return int(np.sum(p.limits().status(fill, count)[comp.trades] == "Filled"))


def _fills(p: AllocationProblem, loan_trade: np.ndarray, comp: Component, bands: Bands, required: np.ndarray) -> bool:
    """Whether the component's trades of the fill set reach their min (net of locked loans)."""
    loans = comp.loans[loan_trade[comp.loans] >= 0]
    fill = np.bincount(loan_trade[loans], weights=p.loan_upb[loans], minlength=p.n_trades)[comp.trades]
    need = required[comp.trades]
    return bool(np.all(fill[need] >= bands.lower[comp.trades][need] - EPS))


def optimal(problem: AllocationProblem, time_limit: float | None = None,
            mip_seconds: float | None = None) -> AllocationResult:
    """Allocate by LP relaxation + rounding + repair (+ MIP on small components); stats carry the value,
    the bound, the gap and whether the allocation is proven optimal."""
    p = problem
    time_limit = TIME_LIMIT_SECONDS if time_limit is None else time_limit
    mip_seconds = MIP_SECONDS if mip_seconds is None else mip_seconds
    started = time.monotonic()
    free_opts = np.flatnonzero(p.loan_fixed_trade[p.opt_loan] < 0)
    alt = ob.alternative_points(p)
    opt_points = p.opt_score - alt[p.opt_loan]  # premium over the loan's alternative, per 100, before the trade's
    bands = bands_of(p)
    required, reference = fill_set(p)
    fill_set_seconds = time.monotonic() - started
    buckets = loan_buckets(p.n_loans, p.loan_upb, p.loan_high_balance, p.opt_loan[free_opts], p.opt_group[free_opts],
                           opt_points[free_opts])
    arcs = bucket_arcs(p, free_opts, opt_points, buckets)
    lp_started = time.monotonic()
    relaxation = solve_relaxation(p, arcs, buckets, bands, required, open_trades(p, free_opts, bands), time_limit)
    lp_seconds = time.monotonic() - lp_started

    loan_group = round_buckets(p.n_loans, p.loan_upb, buckets, arcs, relaxation.dollars)
    loan_trade = deal_to_trades(loan_group, p.loan_upb, p.loan_high_balance.astype(bool), np.arange(p.n_trades),
                                p.trade_group, relaxation.trade_dollars, relaxation.trade_hb_dollars)
    fixed = p.loan_fixed_trade >= 0
    loan_trade[fixed] = p.loan_fixed_trade[fixed]
    lp_trade = loan_trade.copy()
    repair_started = time.monotonic()
    repair = RepairState(p, loan_trade, opt_points, bands.pair_off, free_opts, required)
    repair.fix_limits()
    repair.improve()
    pack_started = time.monotonic()
    components = relaxation.components
    gap_now = _gap_meter(p, components, bands)
    packed = pack_trades(repair, opt_points, lambda: gap_now(repair.loan_trade))
    pack_seconds = time.monotonic() - pack_started
    swapped = swap_trades(repair, opt_points, lambda: gap_now(repair.loan_trade))
    swap_seconds = time.monotonic() - pack_started - pack_seconds
    repair_seconds = time.monotonic() - repair_started - pack_seconds - swap_seconds
    loan_trade = repair.loan_trade

    _assign_loans(p, free_opts, components)
    better = keep_the_better(p, loan_trade, reference.loan_trade, components, opt_points, bands, required,
                             fills_first=False)  # the MIP starts from the better of the two
    repaired = loan_trade.copy()
    mip_stats = improve_with_mip(p, loan_trade, components, opt_points, bands, required, mip_seconds)
    from_greedy = better | keep_the_better(p, loan_trade, reference.loan_trade, components, opt_points, bands,
                                           required)
    before_stay, stay_started = loan_trade.copy(), time.monotonic()
    stayed = stay_in_pools(p, loan_trade, reference.loan_trade, components, opt_points, bands, required)
    stay_seconds = time.monotonic() - stay_started
    # a MIP stopped by its time limit may keep an incumbent that leaves a trade short beside an unplaced
    # loan that fits it (and stay may shorten a trade that was short anyway): such loans go in
    sweep = RepairState(p, loan_trade, opt_points, bands.pair_off, free_opts, required)
    swept = sweep.fill_short()
    loan_trade = sweep.loan_trade
    moved_late = loan_trade != before_stay

    value = ob.evaluate(p, loan_trade)
    for comp in components:
        if not _fills(p, loan_trade, comp, bands, required):
            comp.bound_fill = comp.bound  # (the repair could not fill it: only the plain bound holds)
        worth = component_value(p, loan_trade, comp.loans, comp.trades, opt_points, bands)
        comp.proven = comp.exact and worth >= comp.bound_fill - proven_slack(comp.bound_fill)
    exact = all(c.exact for c in components)
    bound = total_bound(p, components, bands) if exact else float("nan")
    free_bound = total_bound(p, components, bands, fill=False) if exact else float("nan")
    proven = exact and all(c.proven for c in components)
    from_greedy &= loan_trade == reference.loan_trade
    from_greedy &= ~moved_late
    loan_pass = np.select([fixed, loan_trade < 0, moved_late, from_greedy, loan_trade != repaired,
                           loan_trade == lp_trade],
                          [PASS_LOCKED, PASS_NONE, PASS_REPAIR, reference.loan_pass, PASS_MIP, PASS_LP],
                          default=PASS_REPAIR)
    stats: dict[str, float] = {
        "objective_value": round(value.objective, 2),
        "lp_bound": round(bound, 2),
        "gap_pct": round(gap_pct(bound, value), 6),
        "proven_optimal": int(proven),
        "free_bound": round(free_bound, 2), "free_gap_pct": round(gap_pct(free_bound, value), 6),
        "solver_seconds": round(lp_seconds + mip_stats["mip_seconds"], 3),
        "lp_seconds": round(lp_seconds, 3),
        "fill_set_seconds": round(fill_set_seconds, 3), "repair_seconds": round(repair_seconds, 3),
        "optimal_seconds": round(time.monotonic() - started, 3),
        "lp_buckets": buckets.n_buckets, "lp_columns": len(arcs.bucket), "lp_components": len(components),
        "components_proven": sum(c.proven for c in components),
        "lp_iterations": relaxation.iterations, "required_fills": int(required.sum()),
        "repair_moves": repair.moves, "packed_trades": packed, "pack_seconds": round(pack_seconds, 3),
        "swaps": swapped, "swap_seconds": round(swap_seconds, 3),
        "greedy_components": sum(bool(from_greedy[c.loans].any()) for c in components),
        "stayed_in_pool": stayed, "stay_seconds": round(stay_seconds, 3), "swept_into_short": swept, **mip_stats,
    }
    return build_result(p, loan_trade, loan_pass.astype(np.int8), stats)


def _assign_loans(p: AllocationProblem, free_opts: np.ndarray, components: list[Component]) -> None:
    """Each component's free loans (those with an option in one of its groups)."""
    label = np.full(p.n_groups, -1, dtype=np.int64)
    for k, comp in enumerate(components):
        label[comp.groups] = k
    loan_label = np.full(p.n_loans, -1, dtype=np.int64)
    loan_label[p.opt_loan[free_opts]] = label[p.opt_group[free_opts]]
    order = np.argsort(loan_label, kind="stable")
    bounds = np.searchsorted(loan_label[order], np.arange(len(components) + 1))
    for k, comp in enumerate(components):
        comp.loans = np.sort(order[bounds[k]:bounds[k + 1]])


def proven_slack(bound: float) -> float:
    """Dollars by which a component's value may miss its bound and still count as proven optimal: the
    MIP's own stopping rule (mip.py), plus a cent."""
    return max(ABS_GAP_DOLLARS, REL_GAP * abs(bound)) + 0.01


def gap_pct(bound: float, value: ob.Valuation) -> float:
    """Percent of the best achievable premium (bound - baseline) that the allocation leaves on the table."""
    room = bound - value.baseline_value
    if not np.isfinite(bound) or room <= 0:
        return 0.0 if np.isfinite(bound) else float("nan")
    return max(0.0, (bound - value.objective) / room * 100.0)
