"""Step 5, pool guide: a pool action for every loan (a switch is two rows: source and destination).

In:  ctx.candidates, ctx.allocation.  Out: pfill_pool_guide.
- Locked: in the lockdown guide (untouched).        - Remaining: pooled, stays in its pool.
- Switching + Swapped In: pooled, moves to another pool (source row + destination row).
- Leaving: pooled, no trade takes it (to cash or kicked out; the reason says which).
- Joining: not pooled, enters a trade's pool.       - Cash / Kicked Out: not pooled, no trade.
"""

from __future__ import annotations

import numpy as np

from .. import schema
from ..context import RunContext
from ..state import required


def actions(pooled: np.ndarray, locked: np.ndarray, placed: np.ndarray, stays: np.ndarray,
            cash: np.ndarray) -> np.ndarray:
    """The primary action per loan (the Swapped In rows are added for Switching loans)."""
    return np.select(
        [locked, pooled & placed & stays, pooled & placed, pooled, placed, cash],
        ["Locked", "Remaining", "Switching", "Leaving", "Joining", "Cash"],
        default="Kicked Out",
    ).astype(object)


def run(ctx: RunContext) -> None:
    assert ctx.inputs is not None
    loans, trades = ctx.inputs.loans, ctx.inputs.trades
    cand, alloc = required(ctx.candidates, "candidates"), required(ctx.allocation, "allocation")
    pool = loans["pool_id"]
    pooled = pool != None  # noqa: E711 (element-wise)
    loan_trade = alloc.loan_trade
    placed = loan_trade >= 0
    target = alloc.loan_target_pool
    stays = placed & (target == pool)
    action = actions(pooled, cand.loan_locked, placed, stays, alloc.loan_cash)

    trade_ids = np.append(trades["trade_id"], None)  # index -1 -> None
    current = cand.loan_current_trade
    reason = np.full(len(action), None, dtype=object)
    reason[action == "Remaining"] = "stays in its pool's trade"
    reason[action == "Locked"] = "lockdown guide: not moved"
    reason[action == "Joining"] = "allocated to a trade"
    reason[action == "Switching"] = "better placed in another trade"
    reason[action == "Cash"] = "no trade takes it: sold to the cash window"
    leaving = action == "Leaving"
    cash_text = np.where(alloc.loan_cash, "to the cash window", "kicked out")
    text = alloc.loan_reason_text
    reason[leaving] = [f"{r}; {c}" for r, c in zip(text[leaving], cash_text[leaving], strict=True)]
    kicked = action == "Kicked Out"
    reason[kicked] = text[kicked]

    pool_col = np.where(placed & ~stays & ~pooled, target, pool)  # Joining counts in its destination
    switch = np.flatnonzero(action == "Switching")
    columns = {
        "loan_id": loans["loan_id"], "pool_action": action, "pool_id": pool_col,
        "from_pool_id": pool, "to_pool_id": target, "trade_id": trade_ids[loan_trade],
        "from_trade_id": trade_ids[current], "upb": loans["upb"], "note_rate": loans["note_rate"],
        "product": loans["product"], "reason": reason,
    }
    swapped_in = {k: v[switch] for k, v in columns.items()}
    swapped_in["pool_action"] = np.full(len(switch), "Swapped In", dtype=object)
    swapped_in["pool_id"] = target[switch]
    swapped_in["reason"] = np.full(len(switch), "destination of a switch", dtype=object)
    # rows in the table's key order (loan id, action): each Swapped In row after its loan's Switching row
    order = np.argsort(np.r_[np.arange(len(action)), switch + 0.5], kind="stable")
    both = {k: np.concatenate([columns[k], swapped_in[k]])[order] for k in columns}
    ctx.write(schema.pfill_pool_guide, both)
    counts = {a: int((both["pool_action"] == a).sum()) for a in schema.POOL_ACTIONS}
    ctx.counters["pool_action_counts"] = counts
