"""Realistic, deterministic demo inputs for a tenant: a lender's pipeline and the book that hedges it.

The same seed and as-of date give the same data. The book is built the way a secondary desk builds it:

- the pipeline: closed and locked loans (a few shipped, a few with expired or expiring locks, some
  over the high-balance ceiling, a few with missing data) and a high-rate tail of government loans;
- the hedge: every loan is bucketed by program (30-year conventional, 15-year conventional, Ginnie II),
  its best-execution coupon (the highest TBA coupon its note rate can be delivered into) and the last
  settlement month its lock still reaches; the desk sells HEDGE_RATIO (75%, its pull-through
  estimate) of each bucket as forward trades, FNMA or FHLMC for conventional buckets, trades going to
  the largest buckets first (thin coupons stay unhedged), the largest split into several trades. The
  allocation fills trades up to their tolerance, so most fill inside it, and a fifth to a quarter of
  the pipeline (the unhedged part, and the loans whose lock ends before the front month) goes to the
  cash window;
- a few back-month trades were sold ahead of production not locked yet: they end Short;
- the high-rate government tail above the cash grid (government pass-through rates up to 6.5%) has
  two trades of its own: Ginnie 7.0 sold at the hedge ratio (what does not fit is kicked out as
  TRADES_FULL), Ginnie 7.5 sold ahead (Short, and its jumbo loans hit the 10% high-balance cap:
  HIGH_BALANCE_CAP); above 8.25% no coupon is sold (NO_ELIGIBLE_TRADE). With expired locks, locks
  that end before any settlement, loans over the ceiling and incomplete records, every kickout reason
  shows up;
- existing pools designated to about a third of the trades hold loans of the trade's bucket: one pool
  holds more than its trade can take (Switching, Swapped In, Leaving), each pool holds a couple of loans
  whose lock ends before the trade settles (Leaving), a few pooled loans and one whole pool are locked
  down (Locked). Every pool action occurs at the default size.

    data = generate(n_loans=2000, n_trades=40, seed=42, as_of=date(2026, 11, 2))
    counts = replace_tenant_inputs(engine, "demo", data)   # rows per input table

Both are plain functions (the `pfill demo-data` command and `pfill demo` call them); the engine must
have its schema (`pfill db init`, or db.create_schema).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from pfill.errors import UsageError
from pfill.tenants import check_tenant

from . import schema
from .bulk import insert_columns
from .market import CONFORMING_LIMIT, HIGH_BALANCE_CEILING, INSTRUMENTS, PRODUCTS, check_business_date

DEFAULT_LOANS = 2000
DEFAULT_TRADES = 40
DEFAULT_SEED = 42

HEDGE_RATIO = 0.75  # share of each hedge bucket the desk sells forward (its pull-through estimate)
SHORT_SHARE = 0.08  # share of trades sold ahead of production (back month): they end Short
TAIL_SHARE = 0.02  # share of loans in the high-rate government tail
MONTHS = 3  # settlement months the desk trades: the front month and the next two
NOTIFICATION_DAYS = 2  # pool notification is due 48 hours before settlement: the front month is later

Columns = dict[str, Any]

_MARKET_RATE = {"C30": 6.5, "C15": 5.875, "F30": 6.25, "V30": 6.125}
_PAR_COUPON = {"FN30": 5.75, "FG30": 5.75, "FN15": 5.25, "FG15": 5.25, "G230": 5.5}
_SETTLE_DAY = {"FN30": 13, "FG30": 13, "FN15": 18, "FG15": 18, "G230": 20}
# Hedge programs: the instruments a bucket is sold as (with their odds), the coupons the desk sells.
_PROGRAMS = {
    "FN30": (("FN30", "FG30"), (0.6, 0.4), 4.0, 7.0),
    "FN15": (("FN15", "FG15"), (0.65, 0.35), 3.5, 6.5),
    "G230": (("G230",), (1.0,), 4.0, 6.5),  # 7.0 and 7.5 belong to the tail's own trades
}
_PROGRAM_OF = {"C30": "FN30", "C15": "FN15", "F30": "G230", "V30": "G230"}
_CASH_GRID_TOP = {"C30": 7.0, "C15": 7.0, "F30": 6.5, "V30": 6.5}  # highest pass-through rate quoted
_GOV_RATE_CAP = 7.125  # the ordinary government pipeline stays below the tail's coupons
_TAIL_RATES = ((7.375, 7.5, 7.625), (7.875, 8.0, 8.125), (8.375, 8.5))  # Ginnie 7.0, 7.5, none
_TAIL_GROUP_P = (0.6, 0.3, 0.1)
_STATES = ("CA", "TX", "FL", "NY", "IL", "PA", "OH", "GA", "NC", "MI", "WA", "AZ", "CO", "NJ", "VA", "MA")
_STATE_W = (0.16, 0.11, 0.1, 0.07, 0.05, 0.05, 0.04, 0.05, 0.05, 0.04, 0.05, 0.05, 0.05, 0.04, 0.05, 0.04)
_DEALERS = ("JPM", "GS", "MS", "BAML", "WFS", "CITI", "BARC", "NOMURA")


def _snap(values: np.ndarray, step: float = 0.125) -> np.ndarray:
    return np.round(np.round(values / step) * step, 3)


def _add_months(day: date, months: int, day_of_month: int) -> date:
    month0 = day.month - 1 + months
    return date(day.year + month0 // 12, month0 % 12 + 1, day_of_month)


def settlement_dates(as_of: date) -> dict[str, list[date]]:
    """Per instrument, the MONTHS TBA settlement dates the desk trades: the first one at least
    NOTIFICATION_DAYS after `as_of` (this month's or next month's), then the following months'."""
    out: dict[str, list[date]] = {}
    for code, day in _SETTLE_DAY.items():
        first = 0 if _add_months(as_of, 0, day) >= as_of + timedelta(days=NOTIFICATION_DAYS) else 1
        out[code] = [_add_months(as_of, first + k, day) for k in range(MONTHS)]
    return out


def generate(n_loans: int = DEFAULT_LOANS, n_trades: int = DEFAULT_TRADES, seed: int = DEFAULT_SEED,
             as_of: date | None = None) -> dict[str, Columns]:
    """All input tables as columns (numpy arrays or lists), keyed by table name (tenant_id excluded).
    At least one loan and one trade, a seed of 0 or more and a business date in the engine's window
    (market.check_business_date), else a UsageError naming the argument."""
    for name, value, least in (("n_loans", n_loans, 1), ("n_trades", n_trades, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise UsageError(f"{name}={value!r}: expected a whole number of at least {least}")
    as_of = check_business_date(as_of or date.today())
    rng = np.random.default_rng(seed)
    schedule = settlement_dates(as_of)
    loans, tail = _loans(rng, n_loans, as_of)
    trades, cohorts = _trades(rng, n_trades, as_of, loans, schedule)
    pools, relation = _pools(rng, trades, loans, cohorts, schedule, as_of)
    return {
        "loan": loans,
        "pscat_trades": trades,
        "pscat_pools": pools,
        "pscat_trades_pools_relation": relation,
        "pscat_trade_cash_grid": _cash_grid(),
        "rmusr_payups": _payups(),
        "pfill_carry_cost": _carry_curve(),
        "pfill_constraints": _constraints(trades),
        "pfill_lockdown_guide": _lockdowns(rng, loans, pools, as_of, tail),
    }


# ============================================================================================
# The pipeline
# ============================================================================================

def _loans(rng: np.random.Generator, n: int, as_of: date) -> tuple[Columns, np.ndarray]:
    """The loan table, and which loans are the high-rate government tail."""
    product = rng.choice(PRODUCTS, size=n, p=[0.6, 0.12, 0.16, 0.12])
    tail = rng.random(n) < TAIL_SHARE  # high-rate FHA loans (low FICO), above the cash grid
    product[tail] = "F30"
    gov = np.isin(product, ("F30", "V30"))
    base = np.vectorize(_MARKET_RATE.get)(product).astype(float)
    note_rate = np.clip(_snap(base + rng.normal(0, 0.375, n)), 4.5, np.where(gov, _GOV_RATE_CAP, 8.5))
    group = rng.choice(len(_TAIL_RATES), size=n, p=_TAIL_GROUP_P)
    width = np.array([len(r) for r in _TAIL_RATES])
    table = np.array([[*r, *[r[-1]] * (width.max() - len(r))] for r in _TAIL_RATES])
    tail_rate = table[group, np.floor(rng.random(n) * width[group]).astype(np.int64)]
    note_rate = np.where(tail, tail_rate, note_rate)
    note_rate[(rng.random(n) < 0.003) & ~tail] = np.nan  # incomplete records: kicked out as INVALID_DATA
    upb = np.exp(rng.normal(np.where(gov, np.log(280_000), np.log(320_000)), np.where(gov, 0.45, 0.5)))
    in_75 = rng.permutation(np.flatnonzero(tail & (group == 1)))
    jumbo_tail = np.isin(np.arange(n), in_75[: max(2, round(0.4 * len(in_75)))])  # high-balance, Ginnie 7.5
    upb = np.where(jumbo_tail, rng.uniform(815_000, 960_000, n), np.where(tail, np.minimum(upb, 600_000), upb))
    upb = np.round(np.clip(upb, 40_000, 2_000_000), 0)
    high_balance = (upb > CONFORMING_LIMIT) & (upb <= HIGH_BALANCE_CEILING)
    fico = np.clip(rng.normal(np.where(gov, 680, 745), np.where(gov, 45, 40)), 580, 830).astype(int)
    fico = np.where(tail, rng.integers(600, 660, n), fico)
    # LTV: a smooth spread with the spikes real pipelines show at 80/90/95/97 (FHA 96.5, VA 100).
    u = rng.random(n)
    ltv = np.round(rng.uniform(30, 97, n), 1)
    ltv = np.where(u < 0.16, 80.0, np.where(u < 0.23, 90.0, np.where(u < 0.30, 95.0, np.where(u < 0.36, 97.0, ltv))))
    ltv = np.where((product == "F30") & (rng.random(n) < 0.5), 96.5, ltv)
    ltv = np.where((product == "V30") & (rng.random(n) < 0.4), 100.0, ltv)
    dti = np.round(np.clip(rng.normal(36, 8, n), 8, 50), 1)
    lock_period = rng.choice((30, 45, 60, 90, 120), size=n, p=(0.1, 0.3, 0.3, 0.2, 0.1))
    lock_period = np.where(tail, 120, lock_period)
    lock_age = np.floor(rng.uniform(0, 0.4, n) * lock_period).astype(int)
    lock_age = np.where(tail, rng.integers(0, 20, n), lock_age)
    fate = np.where(tail, 1.0, rng.random(n))
    lock_age = np.where(fate < 0.02, lock_period + rng.integers(1, 20, n), lock_age)  # already expired
    lock_age = np.where((fate >= 0.02) & (fate < 0.03), lock_period - rng.integers(0, 8, n), lock_age)  # days left
    as_of64 = np.datetime64(as_of, "D")
    lock_date = as_of64 - lock_age.astype("timedelta64[D]")
    lock_expiration = lock_date + lock_period.astype("timedelta64[D]")
    status = rng.choice(("Locked", "Closed", "Shipped"), n, p=(0.55, 0.4, 0.05))
    status = np.where(tail & (status == "Shipped"), "Locked", status)
    return {
        "loan_id": [f"L{i:07d}" for i in range(1, n + 1)],
        "note_rate": note_rate,
        "upb": upb,
        "product": product,
        "loan_term_months": np.where(product == "C15", 180, 360),
        "fico": fico,
        "ltv": ltv,
        "dti": dti,
        "state": rng.choice(_STATES, size=n, p=np.array(_STATE_W) / sum(_STATE_W)),
        "occupancy": np.where(gov, "Primary", rng.choice(("Primary", "Second", "Investment"), n, p=(0.88, 0.04, 0.08))),
        "purpose": rng.choice(("Purchase", "Refinance", "CashOut"), n, p=(0.6, 0.25, 0.15)),
        "property_type": rng.choice(("SFR", "PUD", "Condo", "2-4 Unit"), n, p=(0.68, 0.17, 0.1, 0.05)),
        "high_balance": high_balance,
        "lock_date": lock_date,
        "lock_expiration_date": lock_expiration,
        "status": status,
        "servicing": rng.choice(("Retained", "Released"), n, p=(0.7, 0.3)),
        "pool_id": np.full(n, None, dtype=object),
    }, tail


# ============================================================================================
# The book: trades sized to the hedge buckets
# ============================================================================================

class _Cohorts:
    """Per loan its hedge bucket: program (FN30, FN15, G230), best-execution coupon and the index of
    the last settlement month its lock reaches; `hedgeable` is False where the loan cannot be hedged
    (shipped, incomplete, over the ceiling, lock expired or ending before the front month, no coupon)."""

    def __init__(self, loans: Columns, schedule: dict[str, list[date]], as_of: date) -> None:
        product = np.asarray(loans["product"])
        rate = np.asarray(loans["note_rate"], dtype=float)
        upb = np.asarray(loans["upb"], dtype=float)
        expiry = np.asarray(loans["lock_expiration_date"], dtype="datetime64[D]")
        n = len(product)
        self.program = np.array([_PROGRAM_OF[p] for p in product], dtype=object)
        self.coupon = np.full(n, np.nan)
        self.month = np.full(n, -1, dtype=np.int64)
        for code in _PROGRAMS:
            mine = self.program == code
            self.coupon[mine] = best_coupon(code, rate[mine], top=_TAIL_TOP if code == "G230" else None)
            settles = np.array(schedule[code], dtype="datetime64[D]")
            self.month[mine] = np.searchsorted(settles, expiry[mine], side="right") - 1
        self.hedgeable = ((np.asarray(loans["status"]) != "Shipped") & ~np.isnan(rate) & (upb <= HIGH_BALANCE_CEILING)
                          & (expiry >= np.datetime64(as_of, "D")) & (self.month >= 0) & ~np.isnan(self.coupon))
        self.tail = (self.program == "G230") & (self.coupon > _PROGRAMS["G230"][3])
        self.upb = upb


_TAIL_TOP = 7.5  # Ginnie coupons sold for the tail: 7.0 and 7.5


def best_coupon(program: str, rate: np.ndarray, top: float | None = None) -> np.ndarray:
    """The highest coupon the program sells (its range, or up to `top`) that a note rate can be delivered
    into (coupon + min spread <= rate <= coupon + max spread); NaN where none."""
    spec = INSTRUMENTS[program]
    low, high = _PROGRAMS[program][2], top if top is not None else _PROGRAMS[program][3]
    with np.errstate(invalid="ignore"):
        coupon = np.minimum(np.floor((rate - spec.min_spread + 1e-9) / 0.5) * 0.5, high)
        fits = (coupon >= low) & (rate <= coupon + spec.max_spread + 1e-9)
    return np.where(fits, coupon, np.nan)


def _dhondt(weights: np.ndarray, seats: int) -> np.ndarray:
    """Seats per bucket in proportion to its weight (D'Hondt: the largest quotients weight / (k + 1))."""
    if seats <= 0 or len(weights) == 0:
        return np.zeros(len(weights), dtype=np.int64)
    k = np.arange(1, seats + 1)
    quotients = (weights[:, None] / k[None, :]).ravel()
    owner = np.repeat(np.arange(len(weights)), seats)
    top = np.argsort(-quotients, kind="stable")[:seats]
    return np.bincount(owner[top], minlength=len(weights))


def _hedge_buckets(cohorts: _Cohorts, mask: np.ndarray, seats: int) -> list[tuple[str, float, int, float, int]]:
    """(program, coupon, settlement month, hedged UPB, trades) for the buckets that get trades.

    Trades go to program x coupon buckets in proportion to their UPB (D'Hondt), then to the settlement
    months inside each. A month cohort without a trade of its own is hedged in the latest earlier month
    that has one (its locks reach that month too); a coupon with no trade stays unhedged (cash)."""
    program, coupon, month, upb = cohorts.program[mask], cohorts.coupon[mask], cohorts.month[mask], cohorts.upb[mask]
    pairs = sorted({(p, float(c)) for p, c in zip(program, coupon, strict=True)})
    totals = np.array([upb[(program == p) & (coupon == c)].sum() for p, c in pairs])
    out = []
    for (p, c), count in zip(pairs, _dhondt(totals, seats), strict=True):
        if count == 0:
            continue
        mine = (program == p) & (coupon == c)
        cohort = np.bincount(month[mine], weights=upb[mine], minlength=MONTHS)
        per_month = _dhondt(cohort, count)
        for k in range(MONTHS):
            if per_month[k] == 0:
                continue
            later = next((j for j in range(k + 1, MONTHS) if per_month[j]), MONTHS)
            out.append((p, c, k, float(cohort[k:later].sum()), int(per_month[k])))
    return out


def _round_amount(amount: np.ndarray) -> np.ndarray:
    """Trade amounts as desks write them: $250,000 steps from $5M, $50,000 below, at least $100,000."""
    step = np.where(amount >= 5_000_000, 250_000, 50_000)
    return np.maximum(100_000, np.round(amount / step) * step)


def _trades(rng: np.random.Generator, m: int, as_of: date, loans: Columns,
            schedule: dict[str, list[date]]) -> tuple[Columns, _Cohorts]:
    cohorts = _Cohorts(loans, schedule, as_of)
    hedge = cohorts.hedgeable
    extra = m >= 20  # a book of some size also has the tail's two trades and one Closed trade
    main = hedge & ~cohorts.tail
    n_main = m - 3 if extra else m
    rows: list[tuple[str, float, int, float, str]] = []  # program, coupon, month, amount, why
    for program, coupon, month, upb, count in _hedge_buckets(cohorts, main, n_main):
        weights = rng.lognormal(0, 0.35, count)
        for share in weights / weights.sum():
            rows.append((program, coupon, month, HEDGE_RATIO * upb * share, "hedge"))
    while len(rows) < n_main:  # no hedgeable loans at all: par trades nobody can fill
        rows.append(("FN30", _PAR_COUPON["FN30"], 0, 1_000_000.0, "hedge"))
    # Sold ahead of production: a few back-month trades, sized for loans not locked yet.
    # (alone in its bucket and month: several trades would share one shortfall however the allocation spreads it)
    trades_in = Counter(r[:3] for r in rows)
    alone = [i for i, r in enumerate(rows) if trades_in[r[:3]] == 1]
    back = ([i for i in alone if rows[i][2] == MONTHS - 1] or [i for i, r in enumerate(rows) if r[2] == MONTHS - 1]
            or list(range(len(rows))))
    n_short = min(len(back), round(SHORT_SHARE * len(rows)))
    for i in rng.choice(back, size=n_short, replace=False) if n_short else []:
        program, coupon, month, amount, _ = rows[i]
        rows[i] = (program, coupon, month, amount * rng.uniform(1.8, 2.2), "ahead")
    if extra:
        tail = hedge & cohorts.tail
        sure = tail & (cohorts.month == MONTHS - 1)
        g70 = cohorts.upb[sure & (cohorts.coupon == 7.0)].sum()
        g75 = cohorts.upb[sure & (cohorts.coupon == 7.5) & (cohorts.upb <= CONFORMING_LIMIT)].sum()
        rows.append(("G230", 7.0, 1, max(HEDGE_RATIO * g70, 500_000), "tail"))
        rows.append(("G230", 7.5, 1, g75 + 1_250_000, "ahead"))  # short, with room for the jumbos (capped)
        rows.append(("FN30", 6.0, -1, 10_000_000.0, "closed"))  # delivered last month
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return _book(rng, rows, as_of, schedule), cohorts


def _book(rng: np.random.Generator, rows: list[tuple[str, float, int, float, str]], as_of: date,
          schedule: dict[str, list[date]]) -> Columns:
    m = len(rows)
    program = [r[0] for r in rows]
    instrument = np.array([rng.choice(_PROGRAMS[p][0], p=_PROGRAMS[p][1]) for p in program], dtype=object)
    coupon = np.array([r[1] for r in rows])
    month = np.array([r[2] for r in rows])
    amount = _round_amount(np.array([r[3] for r in rows]))
    closed = np.array([r[4] == "closed" for r in rows])
    settlement = np.array([_add_months(as_of, -1, _SETTLE_DAY[i]) if k < 0 else schedule[i][k]
                           for i, k in zip(instrument, month, strict=True)], dtype="datetime64[D]")
    par = np.vectorize(_PAR_COUPON.get)(instrument).astype(float)
    price = np.round(100 + (coupon - par) * 3.2 - 0.15 * np.maximum(month, 0) + rng.normal(0, 0.04, m), 4)
    days_sold = rng.integers(1, 60, m) + np.where(closed, 45, 0)
    return {
        "trade_id": [f"T{i:05d}" for i in range(1, m + 1)],
        "agency": np.array([INSTRUMENTS[i].agency for i in instrument], dtype=object),
        "instrument": instrument,
        "coupon": coupon,
        "trade_amount": amount,
        "price": price,
        "trade_date": np.datetime64(as_of, "D") - days_sold.astype("timedelta64[D]"),
        "settlement_date": settlement,
        "counterparty": rng.choice(_DEALERS, m),
        "tolerance_pct": rng.choice((1.0, 2.0, 2.5, 5.0), m, p=(0.15, 0.3, 0.3, 0.25)),
        "trade_type": rng.choice(("TBA", "Spec"), m, p=(0.93, 0.07)),
        "status": np.where(closed, "Closed", "Open").astype(object),
    }


def _pools(rng: np.random.Generator, trades: Columns, loans: Columns, cohorts: _Cohorts,
           schedule: dict[str, list[date]], as_of: date) -> tuple[Columns, Columns]:
    """Existing pools for about a third of the hedge trades, holding loans of the trade's bucket
    (loan.pool_id): the first one more than its trade can take, each with a couple of loans whose lock
    ends before the trade settles."""
    program_of = {code: program for program, (codes, *_rest) in _PROGRAMS.items() for code in codes}
    m = len(trades["trade_id"])
    upb = cohorts.upb
    expiry = np.asarray(loans["lock_expiration_date"], dtype="datetime64[D]")
    pool_of = loans["pool_id"]
    tail = (np.asarray(trades["instrument"]) == "G230") & (np.asarray(trades["coupon"]) > _PROGRAMS["G230"][3])
    open_trades = (np.asarray(trades["status"]) == "Open") & ~tail
    # pools are being formed for the front month first (the loans closest to delivery)
    front = np.asarray(trades["settlement_date"]) == np.array(
        [schedule[c][0] for c in trades["instrument"]], dtype="datetime64[D]")
    ranked = np.concatenate([rng.permutation(np.flatnonzero(open_trades & front)),
                             rng.permutation(np.flatnonzero(open_trades & ~front))])
    chosen = np.sort(ranked[: max(1, m // 3)])
    pools: Columns = {k: [] for k in ("pool_id", "agency", "instrument", "coupon", "pool_status", "created_date")}
    relation: Columns = {"trade_id": [], "pool_id": []}
    free = np.array([p is None for p in pool_of])
    deliverable = ((np.asarray(loans["status"]) != "Shipped") & ~np.isnan(np.asarray(loans["note_rate"], dtype=float))
                   & (expiry >= np.datetime64(as_of, "D")) & (upb <= HIGH_BALANCE_CEILING))
    # loans by bucket (program, coupon) in a random order, so each pool reads only a window of its bucket
    programs = list(_PROGRAMS)
    bucket = np.where(np.isnan(cohorts.coupon), -1,
                      np.array([programs.index(p) for p in cohorts.program]) * 1000 + np.nan_to_num(cohorts.coupon) * 8)
    order = np.lexsort((rng.random(len(bucket)), bucket))
    by_bucket = bucket[order]
    for number, t in enumerate(chosen, start=1):  # one pool per chosen trade
        code = trades["instrument"][t]
        spec = INSTRUMENTS[code]
        key = programs.index(program_of[code]) * 1000 + trades["coupon"][t] * 8
        same = order[np.searchsorted(by_bucket, key - 0.5):np.searchsorted(by_bucket, key + 0.5)]
        same = np.roll(same, -int(rng.integers(0, max(1, len(same)))))
        settle = trades["settlement_date"][t]
        target = trades["trade_amount"][t] * (1.3 if number == 1 else rng.uniform(0.4, 0.8))
        size = 256
        while True:
            window = same[:size]
            window = window[free[window]]
            good = window[cohorts.hedgeable[window] & (expiry[window] >= settle)]
            if upb[good].sum() >= target or size >= len(same):
                break
            size *= 4
        stale = window[deliverable[window] & (expiry[window] < settle)]  # these will have to leave
        members = good[: int(np.searchsorted(np.cumsum(upb[good]), target)) + 1]
        members = np.concatenate([members, stale[:2]]).astype(np.int64)
        if len(members) == 0:
            continue
        pool_id = f"P{number:05d}"
        for i in members:
            pool_of[i] = pool_id
        free[members] = False
        pools["pool_id"].append(pool_id)
        pools["agency"].append(spec.agency)
        pools["instrument"].append(spec.code)
        pools["coupon"].append(trades["coupon"][t])
        pools["pool_status"].append("Open")
        pools["created_date"].append(trades["trade_date"][t])
        relation["trade_id"].append(trades["trade_id"][t])
        relation["pool_id"].append(pool_id)
    pools["created_date"] = np.array(pools["created_date"], dtype="datetime64[D]")
    return pools, relation


def _cash_grid() -> Columns:
    """The agency cash window: conventional pass-through rates 3.5-7.0%, government ones 3.5-6.5%
    (high-coupon Ginnie loans prepay fast: the window does not buy them)."""
    rows: Columns = {k: [] for k in ("agency", "product", "pass_through_rate", "commitment_days", "cash_price")}
    for product, agency, par in (("C30", "FNMA", 5.75), ("C15", "FNMA", 5.25), ("F30", "GNMA", 5.5),
                                 ("V30", "GNMA", 5.5)):
        for ptr in np.arange(3.5, _CASH_GRID_TOP[product] + 0.0001, 0.125):
            for days in (10, 30, 60, 90):
                rows["agency"].append(agency)
                rows["product"].append(product)
                rows["pass_through_rate"].append(round(float(ptr), 3))
                rows["commitment_days"].append(days)
                rows["cash_price"].append(round(100 + (ptr - par) * 3.0 - 0.35 - days / 30 * 0.1, 4))
    return rows


def _payups() -> Columns:
    """Loan-balance (LLB) pay-ups, low-FICO and high-LTV specs, NY and TX stories, high-balance give-up."""
    rules: list[tuple[str, float | None, float | None, str | None, float]] = [
        ("upb", 0, 85_000, None, 1.25), ("upb", 85_000.01, 110_000, None, 0.9),
        ("upb", 110_000.01, 125_000, None, 0.7), ("upb", 125_000.01, 150_000, None, 0.5),
        ("upb", 150_000.01, 175_000, None, 0.35), ("upb", 175_000.01, 200_000, None, 0.2),
        ("upb", CONFORMING_LIMIT + 0.01, HIGH_BALANCE_CEILING, None, -0.75),
        ("fico", 0, 680, None, 0.15), ("ltv", 95, 200, None, 0.1),
        ("state", None, None, "NY", 0.25), ("state", None, None, "TX", 0.1),
    ]
    out: Columns = {k: [] for k in ("payup_id", "instrument", "characteristic", "low_value", "high_value",
                                    "text_value", "payup")}
    for code in INSTRUMENTS:
        scale = 0.6 if code == "G230" else 1.0
        for kind, low, high, text, payup in rules:
            out["payup_id"].append(len(out["payup_id"]) + 1)
            out["instrument"].append(code)
            out["characteristic"].append(kind)
            out["low_value"].append(low)
            out["high_value"].append(high)
            out["text_value"].append(text)
            out["payup"].append(round(payup * scale, 4))
    return out


def _carry_curve() -> Columns:
    out: Columns = {"instrument": [], "day": [], "rate": []}
    for code in INSTRUMENTS:
        for day, rate in ((0, 5.0), (30, 5.1), (60, 5.2), (90, 5.3), (120, 5.45)):
            out["instrument"].append(code)
            out["day"].append(day)
            out["rate"].append(rate + (0.05 if code == "G230" else 0.0))
    return out


def _constraints(trades: Columns) -> Columns:
    first_dealer = trades["counterparty"][0] if len(trades["counterparty"]) else "JPM"
    return {
        "constraint_id": [1, 2, 3],
        "priority": [1, 2, 3],
        "constraint_type": ["investor", "instrument", "high_balance_cap"],
        "instrument": [None, "G230", None],
        "counterparty": [first_dealer, None, None],
        "value": [None, None, 10.0],
        "description": [f"Fill {first_dealer} trades first", "Then Ginnie II 30 trades",
                        "High-balance loans at most 10% of a trade"],
    }


def _lockdowns(rng: np.random.Generator, loans: Columns, pools: Columns, as_of: date, tail: np.ndarray) -> Columns:
    """A few pooled loans (notified), a few unpooled ones outside the tail, and the last pool (certified)."""
    pool_of = np.array(loans["pool_id"], dtype=object)
    pooled = np.flatnonzero(pool_of != None)  # noqa: E711 (element-wise)
    unpooled = np.flatnonzero((pool_of == None) & ~tail)  # noqa: E711
    locked_loans = np.concatenate([
        rng.choice(pooled, size=min(len(pooled), max(1, len(pooled) // 50)), replace=False),
        rng.choice(unpooled, size=min(len(unpooled), max(1, len(unpooled) // 200)), replace=False),
    ])
    loan_ids = [loans["loan_id"][i] for i in np.sort(locked_loans)]
    pool_ids = [pools["pool_id"][-1]] if len(pools["pool_id"]) >= 3 else []
    n = len(loan_ids) + len(pool_ids)
    stamp = datetime.combine(as_of, datetime.min.time()) - timedelta(days=1)
    return {
        "lockdown_id": list(range(1, n + 1)),
        "loan_id": loan_ids + [None] * len(pool_ids),
        "pool_id": [None] * len(loan_ids) + pool_ids,
        "reason": ["Pool notified to the investor"] * len(loan_ids) + ["Pool certified"] * len(pool_ids),
        "locked_by": ["secondary.desk"] * n,
        "locked_at": [stamp.isoformat(sep=" ")] * n,
    }


def replace_tenant_inputs(engine: sa.Engine, tenant: str, data: dict[str, Columns]) -> dict[str, int]:
    """Delete the tenant's inputs and insert `data`, in one transaction (idempotent)."""
    check_tenant(tenant, "tenant", UsageError)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table in schema.INPUT_TABLES:
            conn.execute(table.delete().where(table.c.tenant_id == tenant))
        for table in schema.INPUT_TABLES:
            counts[table.name] = insert_columns(conn, table, data[table.name], {"tenant_id": tenant})
    return counts
