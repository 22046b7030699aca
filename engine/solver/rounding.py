"""From LP dollars per (bucket, trade) to whole loans.

A vertex of the LP splits few buckets: most buckets go whole to one trade (or whole to cash) and are
assigned in one vectorised step. A split bucket (at most about one per binding trade row) is dealt loan
by loan, largest UPB first, each loan to the destination with the most target dollars left (cash is a
destination too): every destination ends within about one loan of its LP target.
"""

from __future__ import annotations

import numpy as np

from .buckets import Buckets
from .lp_model import Arcs

MIN_DOLLARS = 1.0  # LP dollars below this are solver noise, not a destination


def round_buckets(n_loans: int, loan_upb: np.ndarray, buckets: Buckets, arcs: Arcs,
                  dollars: np.ndarray) -> np.ndarray:
    """(n,) trade per loan from the LP (-1: the loan's alternative, cash or kickout)."""
    loan_trade = np.full(n_loans, -1, dtype=np.int64)
    used = np.flatnonzero(dollars >= MIN_DOLLARS)
    b, t, z = arcs.bucket[used], arcs.trade[used], dollars[used]
    per_bucket = np.bincount(b, minlength=buckets.n_buckets)
    placed_dollars = np.bincount(b, weights=z, minlength=buckets.n_buckets)
    cash_left = buckets.upb - placed_dollars
    whole = (per_bucket == 1) & (cash_left < MIN_DOLLARS)
    # one destination, the whole bucket: assign all its loans at once
    dest = np.full(buckets.n_buckets, -1, dtype=np.int64)
    single = whole[b]
    dest[b[single]] = t[single]
    members = np.flatnonzero(buckets.loan_bucket >= 0)
    loan_trade[members] = dest[buckets.loan_bucket[members]]

    split = np.flatnonzero((per_bucket > 1) | ((per_bucket == 1) & ~whole))
    if len(split) == 0:
        return loan_trade
    in_split = members[np.isin(buckets.loan_bucket[members], split)]
    order = in_split[np.lexsort((-loan_upb[in_split], buckets.loan_bucket[in_split]))]
    arc_order = np.argsort(b, kind="stable")
    arc_start = np.r_[0, np.cumsum(per_bucket)]
    loan_start = np.searchsorted(buckets.loan_bucket[order], split, side="left")
    loan_end = np.searchsorted(buckets.loan_bucket[order], split, side="right")
    for k, bucket in enumerate(split):
        arcs_of = arc_order[arc_start[bucket]:arc_start[bucket + 1]]
        dests = [*t[arcs_of].tolist(), -1]
        left = [*z[arcs_of].tolist(), float(cash_left[bucket])]
        for loan in order[loan_start[k]:loan_end[k]].tolist():
            i = max(range(len(left)), key=left.__getitem__)
            loan_trade[loan] = dests[i]
            left[i] -= float(loan_upb[loan])
    return loan_trade
