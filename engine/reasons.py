"""Why a loan was not placed in a trade: the reason codes of `pfill_kickouts` and the pool guide."""

from __future__ import annotations

# Code 0 means "placed". The integer is what the allocation arrays carry; the text goes to the tables.
PLACED = 0
INVALID_DATA = 1
UPB_OVER_CEILING = 2
LOCK_EXPIRED = 3
NO_ELIGIBLE_TRADE = 4
LOCK_BEFORE_SETTLEMENT = 5
HIGH_BALANCE_CAP = 6
TRADES_FULL = 7
LOCKED_UNPOOLED = 8  # in the lockdown guide and in no pool: left where it is (not a kickout)
CASH_BETTER = 9  # a trade had room, but the cash window pays more (net of pair-off): optimising strategies

CODES = {
    INVALID_DATA: "INVALID_DATA",
    UPB_OVER_CEILING: "UPB_OVER_CEILING",
    LOCK_EXPIRED: "LOCK_EXPIRED",
    NO_ELIGIBLE_TRADE: "NO_ELIGIBLE_TRADE",
    LOCK_BEFORE_SETTLEMENT: "LOCK_BEFORE_SETTLEMENT",
    HIGH_BALANCE_CAP: "HIGH_BALANCE_CAP",
    TRADES_FULL: "TRADES_FULL",
    LOCKED_UNPOOLED: "LOCKED",
    CASH_BETTER: "CASH_BETTER",
}

TEXT = {
    INVALID_DATA: "loan data incomplete (note rate or UPB missing or not positive)",
    UPB_OVER_CEILING: "UPB above the high-balance ceiling ($1,209,750): no agency takes it",
    LOCK_EXPIRED: "rate lock already expired",
    NO_ELIGIBLE_TRADE: "no open trade of a matching agency/program with a coupon the note rate fits",
    LOCK_BEFORE_SETTLEMENT: "every eligible trade settles after the rate lock expires",
    HIGH_BALANCE_CAP: "eligible trades are at their high-balance share cap",
    TRADES_FULL: "eligible trades are already filled to their maximum allowed",
    LOCKED_UNPOOLED: "in the lockdown guide: left untouched",
    CASH_BETTER: "an eligible trade had room, but the cash window pays more for this loan",
}


def code(reason: int) -> str:
    return CODES[reason]


def text(reason: int) -> str:
    return TEXT[reason]
