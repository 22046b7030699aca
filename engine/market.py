"""Market rules the engine encodes: instruments, coupon windows, loan limits, cash-grid slotting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pfill.errors import UsageError

CONFORMING_LIMIT = 806_500.0  # 2025 baseline conforming loan limit
HIGH_BALANCE_CEILING = 1_209_750.0  # 2025 high-cost area ceiling; above it no agency takes the loan
DEFAULT_HIGH_BALANCE_CAP_PCT = 10.0  # high-balance loans at most 10% of a TBA pool's balance
SERVICING_FEE = 0.25  # minimum servicing strip, percent
COMMITMENT_PERIODS = (10, 30, 60, 90)  # cash-window commitment days
PRODUCTS = ("C30", "C15", "F30", "V30")

# The business dates the engine accepts (`--as-of`, RunOptions.as_of, demo data): from 2000-01-01 (the
# market rules above are modern ones) to one year after today (planning ahead, not a typo like 2062).
# The lower bound is fixed and the upper one moves forward, so a run for a fixed past date keeps
# working and stays reproducible; 9999-12-31 or 1899 are refused instead of overflowing a date.
FIRST_BUSINESS_DATE = date(2000, 1, 1)
DAYS_AHEAD = 366


def check_business_date(day: date, where: str = "as_of") -> date:
    """`day` when it is inside the engine's window of business dates, else a UsageError naming `where`."""
    last = date.today() + timedelta(days=DAYS_AHEAD)
    if not FIRST_BUSINESS_DATE <= day <= last:
        raise UsageError(f"{where}: business date {day.isoformat()} is outside "
                         f"{FIRST_BUSINESS_DATE.isoformat()}..{last.isoformat()}",
                         hint="give a date from 2000-01-01 to one year from today, as YYYY-MM-DD")
    return day


@dataclass(frozen=True)
class Instrument:
    """A TBA program: which agency issues it, which loan products it takes, and the window of note
    rate over coupon a loan must sit in (Fannie/Freddie fixed: +0.25..+1.125; Ginnie II: +0.25..+0.75)."""

    code: str
    agency: str
    products: tuple[str, ...]
    min_spread: float
    max_spread: float
    term_years: int


INSTRUMENTS: dict[str, Instrument] = {
    i.code: i
    for i in (
        Instrument("FN30", "FNMA", ("C30",), 0.25, 1.125, 30),
        Instrument("FG30", "FHLMC", ("C30",), 0.25, 1.125, 30),
        Instrument("FN15", "FNMA", ("C15",), 0.25, 1.125, 15),
        Instrument("FG15", "FHLMC", ("C15",), 0.25, 1.125, 15),
        Instrument("G230", "GNMA", ("F30", "V30"), 0.25, 0.75, 30),
    )
}
INSTRUMENT_CODES = tuple(INSTRUMENTS)

# Cash window: which agency buys each product, and the guarantee fee taken off the note rate
# (with the servicing strip) to get the pass-through rate of the cash-grid cell.
CASH_AGENCY = {"C30": "FNMA", "C15": "FNMA", "F30": "GNMA", "V30": "GNMA"}
CASH_GFEE = {"C30": 0.50, "C15": 0.50, "F30": 0.375, "V30": 0.375}


def snap_down(value: float, step: float = 0.125) -> float:
    """Round down to the grid (with a tolerance for float noise)."""
    return round((value + 1e-9) // step * step, 3)
