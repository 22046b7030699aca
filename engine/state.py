"""The run state: what each pipeline step hands to the later ones, one typed record per step output.

Each record is a field of RunContext that is None until its step has run:

    cash_grid    -> ctx.cash        CashSlots       per loan: its cash-window cell and price
    settle_price -> ctx.pricing     Pricing         per trade: days and financing; pay-ups per loan
    candidates   -> ctx.candidates  Candidates      eligible options (loan x trade group); per-loan flags
    allocation   -> ctx.allocation  Allocation      per loan: trade, target pool, cash or kicked out
    pool_guide, synthetic                           write tables only

Arrays are indexed like the inputs: (n,) per loan of `ctx.inputs.loans`, (m,) per trade of
`ctx.inputs.trades`, (k,) per candidate option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class CashSlots:
    """Step 1 (cash_grid): the cash-window cell of each loan (n,), or why none fits."""

    agency: np.ndarray  # object, None where no cell
    product: np.ndarray  # object, None where no cell
    pass_through_rate: np.ndarray  # float, NaN where no cell
    commitment_days: np.ndarray  # int, -1 where no cell
    price: np.ndarray  # float points, NaN: no cell (the loan is kicked out if no trade takes it)
    no_slot_reason: np.ndarray  # object text, None where a cell fits


@dataclass
class Pricing:
    """Step 2 (settle_price): settlement horizon and financing per trade (m,), pay-ups per loan."""

    trade_days: np.ndarray  # days from the business date to settlement (>= 0)
    trade_fin_rate: np.ndarray  # carry-curve rate at that horizon
    trade_instrument_idx: np.ndarray  # column of the trade's instrument in payup_matrix, -1: unknown
    payup_matrix: np.ndarray  # (n, instruments) pay-up points per loan and instrument


@dataclass
class Candidates:
    """Step 3 (candidates): the eligible options (k,) and per-loan facts (n,).

    Trades come in groups (one instrument, coupon and settlement date: the same loans are eligible for
    all of them, at the same pay-up and carry). An option is a loan and a group; the pairs are every
    trade of the group, each priced at the trade's price: score(loan, trade) = option score + price."""

    loan: np.ndarray  # (k,) loan index (options sorted by loan, then group)
    group: np.ndarray  # (k,) trade group index
    payup: np.ndarray  # (k,) pay-up points
    carry: np.ndarray  # (k,) carry points to settlement
    score: np.ndarray  # (k,) pay-up [+ carry]: the loan's part of the score (the pair adds the trade's price)
    trade_group: np.ndarray  # (m,) group of each trade
    pair_count: int  # eligible loan x trade pairs
    loan_current_trade: np.ndarray  # (n,) trade of the loan's existing pool, -1 none
    loan_fixed_trade: np.ndarray  # (n,) trade a locked loan stays in, -1 none
    loan_locked: np.ndarray  # (n,) bool: in the lockdown guide
    loan_no_candidate_reason: np.ndarray  # (n,) reasons.* when the loan has no pair, else 0


@dataclass
class Allocation:
    """Step 4 (allocation): where every loan (n,) ends up."""

    loan_trade: np.ndarray  # trade index, -1: no trade
    loan_target_pool: np.ndarray  # object pool id the loan is delivered in, None: no trade
    loan_cash: np.ndarray  # bool: no trade, sold to the cash window
    loan_kicked: np.ndarray  # bool: no trade and no cash cell
    loan_reason: np.ndarray  # int8 reasons.* (0: placed)
    loan_reason_text: np.ndarray  # object text for loans no trade took, else None
    stats: dict[str, float] = field(default_factory=dict)  # the strategy's counters


def required(value: T | None, what: str) -> T:
    """`value`, or an error naming the step that should have produced it."""
    if value is None:
        raise RuntimeError(f"{what} is not available yet: its step has not run")
    return value
