"""Independent blocks of the allocation: connected components of the loan-trade bipartite graph.

Two trades interact only through loans eligible for both, so each component is a separate problem
(in practice one per program family: conventional 30-year, 15-year, Ginnie, and small blocks such as a
coupon no other coupon's loans reach). The solver runs it over buckets and trade groups (optimal.py); the
function is the same for any bipartite graph. Label propagation over the pair arrays: each round every
trade takes the smallest label among its loans and vice versa; it converges in as many rounds as the
graph is deep (a handful: coupon windows chain only so far).
"""

from __future__ import annotations

import numpy as np


def trade_components(n_loans: int, n_trades: int, pair_loan: np.ndarray, pair_trade: np.ndarray) -> np.ndarray:
    """(m,) component label per trade (the smallest trade index in its component)."""
    trade_label = np.arange(n_trades)
    if len(pair_loan) == 0:
        return trade_label
    big = np.iinfo(np.int64).max
    while True:
        loan_label = np.full(n_loans, big)
        np.minimum.at(loan_label, pair_loan, trade_label[pair_trade])
        new = trade_label.copy()
        np.minimum.at(new, pair_trade, loan_label[pair_loan])
        if np.array_equal(new, trade_label):
            return trade_label
        trade_label = new
