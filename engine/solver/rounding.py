"""From LP dollars to whole loans: bucket -> group, then group -> trade.

1. Buckets to groups. A vertex of the LP splits few buckets: most buckets go whole to one group (or
   whole to cash) and are assigned in one vectorised step. A split bucket (at most about one per binding
   row) is dealt loan by loan, largest UPB first, each loan to the destination with the most target
   dollars left (cash is a destination too): every destination ends within about one loan of its target.
2. Groups to trades. Inside a group every loan is worth the same in every trade up to the trade's
   premium, so the group's loans are laid end to end (largest first) against the trades' LP dollars laid
   end to end, and each loan goes to the trade its middle falls in: each trade ends within about one
   loan of its target. Ordinary and high-balance loans are dealt separately (the cap is per trade).
"""

from __future__ import annotations

import numpy as np

from .buckets import Buckets
from .lp_model import Arcs

MIN_DOLLARS = 1.0  # LP dollars below this are solver noise, not a destination


def round_buckets(n_loans: int, loan_upb: np.ndarray, buckets: Buckets, arcs: Arcs,
                  dollars: np.ndarray) -> np.ndarray:
    """(n,) group per loan from the LP (-1: the loan's alternative, cash or kickout)."""
    loan_group = np.full(n_loans, -1, dtype=np.int64)
    used = np.flatnonzero(dollars >= MIN_DOLLARS)
    b, t, z = arcs.bucket[used], arcs.group[used], dollars[used]
    per_bucket = np.bincount(b, minlength=buckets.n_buckets)
    placed_dollars = np.bincount(b, weights=z, minlength=buckets.n_buckets)
    cash_left = buckets.upb - placed_dollars
    whole = (per_bucket == 1) & (cash_left < MIN_DOLLARS)
    # one destination, the whole bucket: assign all its loans at once
    dest = np.full(buckets.n_buckets, -1, dtype=np.int64)
    single = whole[b]
    dest[b[single]] = t[single]
    members = np.flatnonzero(buckets.loan_bucket >= 0)
    loan_group[members] = dest[buckets.loan_bucket[members]]

    split = np.flatnonzero((per_bucket > 1) | ((per_bucket == 1) & ~whole))
    if len(split) == 0:
        return loan_group
    in_split = members[np.isin(buckets.loan_bucket[members], split)]
    order = in_split[np.lexsort((-loan_upb[in_split], buckets.loan_bucket[in_split]))]
    arc_order = np.argsort(b, kind="stable")
    arc_start = np.r_[0, np.cumsum(per_bucket)]
    loan_start = np.searchsorted(buckets.loan_bucket[order], split, side="left")
    loan_end = np.searchsorted(buckets.loan_bucket[order], split, side="right")
    for k, bucket in enumerate(split.tolist()):
        arcs_of = arc_order[arc_start[bucket]:arc_start[bucket + 1]]
        dests = [*t[arcs_of].tolist(), -1]
        left = [*z[arcs_of].tolist(), float(cash_left[bucket])]
        for loan in order[loan_start[k]:loan_end[k]].tolist():
            i = max(range(len(left)), key=left.__getitem__)
            loan_group[loan] = dests[i]
            left[i] -= float(loan_upb[loan])
    return loan_group


def deal_to_trades(loan_group: np.ndarray, loan_upb: np.ndarray, loan_hb: np.ndarray, trades: np.ndarray,
                   trade_group: np.ndarray, target: np.ndarray, hb_target: np.ndarray) -> np.ndarray:
    """(n,) trade per loan: each group's loans dealt to its `trades` in proportion to their LP dollars
    (`target` for ordinary loans, `hb_target` for high-balance ones; both per entry of `trades`). Loans of
    a group whose targets are all zero go back to their alternative (-1)."""
    loan_trade = np.full(len(loan_group), -1, dtype=np.int64)
    for hb, want in ((False, target), (True, hb_target)):
        loans = np.flatnonzero((loan_group >= 0) & (loan_hb == hb))
        take = want >= MIN_DOLLARS
        t, w = trades[take], want[take]
        if len(loans) == 0 or len(t) == 0:
            continue
        g_of_t = trade_group[t]
        # trades and loans laid end to end per group; loans scaled to the group's total target
        t_order = np.lexsort((t, g_of_t))
        t, w, g_of_t = t[t_order], w[t_order], g_of_t[t_order]
        groups, t_first = np.unique(g_of_t, return_index=True)
        total = np.add.reduceat(w, t_first)
        loans = loans[np.isin(loan_group[loans], groups)]
        l_order = np.lexsort((-loan_upb[loans], loan_group[loans]))
        loans = loans[l_order]
        lg = loan_group[loans]
        gi = np.searchsorted(groups, lg)
        upb = loan_upb[loans]
        l_first = np.flatnonzero(np.r_[True, lg[1:] != lg[:-1]])
        cum = np.cumsum(upb)
        size = np.diff(np.r_[l_first, len(loans)])
        group_start = np.repeat(cum[l_first] - upb[l_first], size)
        group_total = np.repeat(np.add.reduceat(upb, l_first), size)
        middle = (cum - group_start - upb / 2) / group_total * total[gi]
        # position on one global axis: each group's targets start where the previous group's end
        base = np.r_[0.0, np.cumsum(total)[:-1]]
        ends = np.cumsum(w)
        pos = np.searchsorted(ends, base[gi] + middle, side="right")
        group_last = np.r_[t_first[1:], len(t)] - 1
        loan_trade[loans] = t[np.minimum(pos, group_last[gi])]
    return loan_trade
