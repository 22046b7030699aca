"""Eligible loan x trade pairs by agency/program and note-rate window, without a loans x trades loop:
loans are sorted by note rate once per instrument and each trade's window is two binary searches."""

from __future__ import annotations

import numpy as np

from .market import INSTRUMENTS


def member(values: np.ndarray, wanted: object) -> np.ndarray:
    """(len(values),) bool: each value is one of `wanted`. For object (text) arrays, where np.isin sorts
    Python objects and takes a second per 100k loans, a set lookup per value takes milliseconds."""
    allowed = {w for w in np.asarray(wanted, dtype=object).tolist() if w is not None}
    return np.fromiter((v in allowed for v in values.tolist()), dtype=bool, count=len(values))


def rate_window_pairs(loan_rate: np.ndarray, loan_product: np.ndarray, loan_ok: np.ndarray,
                      trade_instrument: np.ndarray, trade_coupon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(loan index, trade index) for every pair whose product fits the instrument and whose note rate
    lies in coupon + [min_spread, max_spread] (both ends inclusive)."""
    product = loan_product.astype(object)
    loans_out: list[np.ndarray] = []
    trades_out: list[np.ndarray] = []
    for code, spec in INSTRUMENTS.items():
        trade_idx = np.flatnonzero(trade_instrument == code)
        loan_idx = np.flatnonzero(loan_ok & member(product, spec.products))
        if len(trade_idx) == 0 or len(loan_idx) == 0:
            continue
        by_rate = loan_idx[np.argsort(loan_rate[loan_idx], kind="stable")]
        rates = loan_rate[by_rate]
        low = np.searchsorted(rates, trade_coupon[trade_idx] + spec.min_spread - 1e-9, side="left")
        high = np.searchsorted(rates, trade_coupon[trade_idx] + spec.max_spread + 1e-9, side="right")
        counts = high - low
        ends = np.cumsum(counts)
        # position k of trade j's block maps to low[j] + (k - start of block j)
        positions = np.arange(ends[-1] if len(ends) else 0) + np.repeat(low - (ends - counts), counts)
        loans_out.append(by_rate[positions])
        trades_out.append(np.repeat(trade_idx, counts))
    if not loans_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(loans_out).astype(np.int64), np.concatenate(trades_out).astype(np.int64)


def rank_within(groups: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score inside its group, best (highest) first; ties keep input order."""
    order = np.lexsort((-scores, groups))
    g = groups[order]
    starts = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, dtype=bool)
    start_pos = np.maximum.accumulate(np.where(starts, np.arange(len(g)), 0)) if len(g) else g
    ranks = np.empty(len(g), dtype=np.int64)
    ranks[order] = np.arange(len(g)) - start_pos + 1
    return ranks
