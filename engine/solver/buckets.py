"""Interchangeable loans: buckets of loans whose every option is worth the same per dollar.

A pair's value is UPB x (score - alternative): linear in UPB. Loans with the same high-balance flag,
the same options (trade groups, see problem.py; or trades) and the same per-dollar value for each are
interchangeable in the LP relaxation, so the LP can move dollars of a bucket instead of single loans and
still have exactly the optimum of the loan-level relaxation (spread a bucket's dollars over its loans
pro rata). At 100k demo loans ~95k loans with options fall into ~4k buckets.

The key is an order-free 2 x 64-bit hash of the loan's (group, value) pairs (a sum of mixed pair
hashes), so no Python loop over loans; a collision needs two equal 128-bit sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VALUE_QUANTUM = 1e-7  # points: values closer than this count as equal (scores carry <= 6 decimals)


@dataclass
class Buckets:
    loan_bucket: np.ndarray  # (n,) bucket per loan, -1: no free pair
    representative: np.ndarray  # (b,) one loan of each bucket (its pairs are the bucket's pairs)
    upb: np.ndarray  # (b,) total UPB
    high_balance: np.ndarray  # (b,) bool

    @property
    def n_buckets(self) -> int:
        return len(self.upb)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _loan_hash(order: np.ndarray, starts: np.ndarray, pair_trade: np.ndarray, quantised: np.ndarray,
               salt: int) -> np.ndarray:
    """Per-loan sum of mixed pair hashes; `order` sorts the pairs by loan, `starts` begins each loan's run."""
    trade = pair_trade.astype(np.uint64)
    h = _mix(_mix(trade * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)) ^ quantised)
    return np.add.reduceat(h[order], starts) if len(starts) else np.zeros(0, dtype=np.uint64)


def loan_buckets(n: int, loan_upb: np.ndarray, loan_high_balance: np.ndarray, pair_loan: np.ndarray,
                 pair_trade: np.ndarray, pair_points: np.ndarray) -> Buckets:
    """Buckets over the loans that appear in (pair_loan, pair_trade) with per-dollar points `pair_points`."""
    # a sorted reduce per loan: faster than ufunc.at on millions of pairs
    order = np.argsort(pair_loan, kind="stable")
    loans_sorted = pair_loan[order]
    starts = np.flatnonzero(np.r_[True, loans_sorted[1:] != loans_sorted[:-1]]) if len(order) else order
    loans = loans_sorted[starts]
    quantised = np.round(pair_points / VALUE_QUANTUM).astype(np.int64).astype(np.uint64)
    keys = np.stack([_loan_hash(order, starts, pair_trade, quantised, salt) for salt in (1, 2)], axis=1)
    keys[:, 0] ^= loan_high_balance[loans].astype(np.uint64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    loan_bucket = np.full(n, -1, dtype=np.int64)
    loan_bucket[loans] = inverse
    return Buckets(
        loan_bucket=loan_bucket, representative=loans[first],
        upb=np.bincount(inverse, weights=loan_upb[loans], minlength=len(first)),
        high_balance=loan_high_balance[loans[first]].astype(bool),
    )
