"""Pack trades with whole loans: a knapsack per trade over its cheapest loans and the loans it could take.

The LP fills a trade to the dollar; whole loans hit a band [min, max] only in the combinations whose
UPBs add up inside it. On a book of small trades (a few loans each, a band a fraction of a loan wide)
rounding then leaves most trades well below their max or short, and no single move fixes that: it
takes exchanging several loans at once. So, trade by trade (most promising first, see
optimal.pack_order), a 0/1 knapsack chooses the trade's loans from
- its own least valuable ordinary loans (all of them in a small trade), and
- the ordinary loans of its group that could come: those at their alternative (cash or kickout), and
  those in another trade that stays at its min without them, best gain first,
maximising their gain over where they are less the pair-off of any shortfall, with the UPB of the loans
it keeps counted against the band. UPBs are rounded up to a unit (at most MAX_UNITS units per trade), so
a chosen set never exceeds the max; the exact sums, and every donor trade's min, are re-checked before a
set is taken. A trade is repacked only when the new set is worth more, and a required trade (the fill
set) is never left short, so each repacking can only raise the objective.
"""

from __future__ import annotations

import numpy as np

from .problem import EPS, work_clock
from .repair import MIN_GAIN, RepairState

MAX_UNITS = 2000  # knapsack capacity in units of UPB
MIN_UNIT = 100.0  # dollars
OWN_LOANS = 12  # a trade's least valuable loans that may leave it
DONOR_RETRIES = 3  # knapsacks per trade when a chosen set takes more from a donor trade than it can give
POOL_LOANS = 160  # loans at their alternative (or spare in other trades) offered to a trade


def pack(state: RepairState, trades: np.ndarray, deadline: float = np.inf) -> list[int]:
    """Repack `trades` (in that order, until `deadline` on problem.work_clock); returns the trades that
    changed."""
    p = state.p
    by_group = options_by_group(state)
    # each trade's ordinary free loans as the pass starts (a pass only ever moves loans into the trade it
    # packs, or out to their alternative, so a trade's loans are these or fewer until its turn)
    sits = np.flatnonzero((state.loan_trade >= 0) & (p.loan_fixed_trade < 0) & ~state.hb)
    sits = sits[np.argsort(state.loan_trade[sits], kind="stable")]
    bounds = np.searchsorted(state.loan_trade[sits], np.arange(p.n_trades + 1))
    changed = []
    for j in trades.tolist():
        if work_clock() > deadline:
            break
        g = int(p.trade_group[j])
        # its own ordinary free loans, least valuable first
        own = sits[bounds[j]:bounds[j + 1]]
        own = own[state.loan_trade[own] == j]
        own = own[np.argsort(state.loan_points[own], kind="stable")][:OWN_LOANS]
        kept_upb = float(state.fill[j] - state.upb[own].sum())
        room = float(state.max_allowed[j]) - kept_upb
        opts = by_group[g]
        loans = p.opt_loan[opts]
        src = state.loan_trade[loans]
        safe = np.maximum(src, 0)
        # at their alternative, or in another trade that stays at its min without them
        slack = state.fill[safe] - state.min_allowed[safe] - state.upb[loans]
        movable = (src < 0) | ((src != j) & (slack >= -EPS))
        fits = movable & ~state.hb[loans] & (state.upb[loans] <= room + EPS)
        opts, loans, src = opts[fits], loans[fits], src[fits]
        points = state.opt_points[opts] + p.trade_premium[j]
        gain = points - state.loan_points[loans]
        good = (src < 0) & (gain > 0) | (src >= 0)
        opts, loans, points, gain, src = opts[good], loans[good], points[good], gain[good], src[good]
        if len(loans) > POOL_LOANS:
            top = np.argpartition(-gain, POOL_LOANS)[:POOL_LOANS]
            loans, points, gain, src = loans[top], points[top], gain[top], src[top]
        if len(loans) == 0 and len(own) == 0:
            continue
        items = np.r_[own, loans]
        item_points = np.r_[state.loan_points[own], points]
        value = state.upb[items] * np.r_[state.loan_points[own], gain] / 100.0
        need = max(0.0, float(state.min_allowed[j]) - kept_upb)  # UPB the items must bring to avoid pair-off
        q = float(state.pair_off[j]) / 100.0
        must = bool(state.required[j]) and state.fill[j] >= state.min_allowed[j] - EPS
        current = float(value[:len(own)].sum()) - q * max(0.0, need - float(state.upb[own].sum()))
        source = state.loan_trade[items]
        for _ in range(DONOR_RETRIES):
            chosen = _best_set(state.upb[items], value, room, need, q, must)
            if chosen is None:
                break
            # every donor must keep its min: at most its slack may leave it; else offer the set without
            # the loans of the donors it would break
            other = chosen[(source[chosen] >= 0) & (source[chosen] != j)]
            taken = np.bincount(source[other], weights=state.upb[items[other]], minlength=p.n_trades)
            donors = np.unique(source[other])
            broken = donors[taken[donors] > state.fill[donors] - state.min_allowed[donors] + EPS]
            if len(broken) == 0:
                break
            value = np.where(np.isin(source, broken), -np.inf, value)
            chosen = None
        if chosen is None:
            continue
        new_value = float(value[chosen].sum()) - q * max(0.0, need - float(state.upb[items[chosen]].sum()))
        if new_value <= current + MIN_GAIN:
            continue
        take = set(items[chosen].tolist())
        for loan in own.tolist():
            if loan not in take:
                state._move(loan, -1, 0.0)
        for k, loan in enumerate(items.tolist()):
            if loan in take and state.loan_trade[loan] != j:
                state._move(loan, j, float(item_points[k]))
        changed.append(j)
    return changed


def _best_set(upb: np.ndarray, value: np.ndarray, room: float, need: float, q: float, must: bool) -> np.ndarray | None:
    """Indices of the items to take: at most `room` UPB, maximising value - q * max(0, need - UPB); at
    least `need` UPB when `must`. None when no set qualifies."""
    unit = max(MIN_UNIT, room / MAX_UNITS)
    cap = int(np.floor(room / unit + 1e-9))
    if cap <= 0:
        return None
    weight = np.ceil(upb / unit - 1e-9).astype(np.int64)
    k = len(upb)
    dp = np.full(cap + 1, -np.inf)
    dp[0] = 0.0
    take = np.zeros((k, cap + 1), dtype=bool)
    for i, (w, v) in enumerate(zip(weight.tolist(), value.tolist(), strict=True)):
        if w > cap:
            continue
        cand = dp[:cap + 1 - w] + v
        rest = dp[w:]  # a view: written in place
        np.greater(cand, rest, out=take[i, w:])
        np.maximum(rest, cand, out=rest)
    # each capacity's set, scored on its rounded UPB (exact sums are checked below)
    filled = np.arange(cap + 1) * unit
    score = dp - q * np.maximum(0.0, need - filled)
    for c in np.argsort(-score, kind="stable")[:8].tolist():
        if not np.isfinite(score[c]):
            break
        chosen = _reconstruct(take, weight, c)
        total = float(upb[chosen].sum())
        if total <= room + EPS and (not must or total >= need - EPS):
            return chosen
    return None


def _reconstruct(take: np.ndarray, weight: np.ndarray, c: int) -> np.ndarray:
    chosen = []
    for i in range(take.shape[0] - 1, -1, -1):
        if c > 0 and take[i, c]:
            chosen.append(i)
            c -= int(weight[i])
    return np.array(chosen[::-1], dtype=np.int64)


def options_by_group(state: RepairState) -> list[np.ndarray]:
    """The free options of each group."""
    p = state.p
    opts = state.free_opts
    order = opts[np.argsort(p.opt_group[opts], kind="stable")]
    bounds = np.searchsorted(p.opt_group[order], np.arange(p.n_groups + 1))
    return [order[bounds[g]:bounds[g + 1]] for g in range(p.n_groups)]
