"""Realistic, deterministic demo inputs for a tenant: loans, trades, pools, grids, curves, constraints.

The same seed and as-of date give the same data. The mix is tuned so that a run at the default size
shows every pool action and several kickout reasons: some trades are over-supplied, some short (late
settlements, thin coupons), one pool holds more than its trade can take, a few loans are locked down,
some locks are expired or expire before any settlement, a few loans exceed the high-balance ceiling.

    data = generate(n_loans=2000, n_trades=40, seed=42, as_of=date(2026, 11, 2))
    counts = replace_tenant_inputs(engine, "demo", data)   # rows per input table

Both are plain functions (the `pfill demo-data` command and `pfill demo` call them); the engine must
have its schema (db.open_engine or db.init_schema).
"""

from __future__ import annotations

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

Columns = dict[str, Any]

_MARKET_RATE = {"C30": 6.5, "C15": 5.875, "F30": 6.25, "V30": 6.125}
_PAR_COUPON = {"FN30": 5.75, "FG30": 5.75, "FN15": 5.25, "FG15": 5.25, "G230": 5.5}
_SETTLE_DAY = {"FN30": 13, "FG30": 13, "FN15": 18, "FG15": 18, "G230": 20}
_STATES = ("CA", "TX", "FL", "NY", "IL", "PA", "OH", "GA", "NC", "MI", "WA", "AZ", "CO", "NJ", "VA", "MA")
_STATE_W = (0.16, 0.11, 0.1, 0.07, 0.05, 0.05, 0.04, 0.05, 0.05, 0.04, 0.05, 0.05, 0.05, 0.04, 0.05, 0.04)
_DEALERS = ("JPM", "GS", "MS", "BAML", "WFS", "CITI", "BARC", "NOMURA")


def _snap(values: np.ndarray, step: float = 0.125) -> np.ndarray:
    return np.round(np.round(values / step) * step, 3)


def _add_months(day: date, months: int, day_of_month: int) -> date:
    month0 = day.month - 1 + months
    return date(day.year + month0 // 12, month0 % 12 + 1, day_of_month)


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
    loans = _loans(rng, n_loans, as_of)
    trades = _trades(rng, n_trades, as_of, loans)
    pools, relation = _pools(rng, trades, loans)
    return {
        "loan": loans,
        "pscat_trades": trades,
        "pscat_pools": pools,
        "pscat_trades_pools_relation": relation,
        "pscat_trade_cash_grid": _cash_grid(),
        "rmusr_payups": _payups(),
        "pfill_carry_cost": _carry_curve(),
        "pfill_constraints": _constraints(trades),
        "pfill_lockdown_guide": _lockdowns(rng, loans, pools, as_of),
    }


def _loans(rng: np.random.Generator, n: int, as_of: date) -> Columns:
    product = rng.choice(PRODUCTS, size=n, p=[0.6, 0.12, 0.16, 0.12])
    gov = np.isin(product, ("F30", "V30"))
    base = np.vectorize(_MARKET_RATE.get)(product).astype(float)
    note_rate = np.clip(_snap(base + rng.normal(0, 0.375, n)), 4.5, 8.5)
    note_rate[rng.random(n) < 0.003] = np.nan  # incomplete records: kicked out as INVALID_DATA
    upb = np.exp(rng.normal(np.where(gov, np.log(280_000), np.log(320_000)), np.where(gov, 0.45, 0.5)))
    upb = np.round(np.clip(upb, 40_000, 2_000_000), 0)
    high_balance = (upb > CONFORMING_LIMIT) & (upb <= HIGH_BALANCE_CEILING)
    fico = np.clip(rng.normal(np.where(gov, 680, 745), np.where(gov, 45, 40)), 580, 830).astype(int)
    # LTV: a smooth spread with the spikes real pipelines show at 80/90/95/97 (FHA 96.5, VA 100).
    u = rng.random(n)
    ltv = np.round(rng.uniform(30, 97, n), 1)
    ltv = np.where(u < 0.16, 80.0, np.where(u < 0.23, 90.0, np.where(u < 0.30, 95.0, np.where(u < 0.36, 97.0, ltv))))
    ltv = np.where((product == "F30") & (rng.random(n) < 0.5), 96.5, ltv)
    ltv = np.where((product == "V30") & (rng.random(n) < 0.4), 100.0, ltv)
    dti = np.round(np.clip(rng.normal(36, 8, n), 8, 50), 1)
    lock_period = rng.choice((30, 45, 60, 90, 120), size=n, p=(0.2, 0.3, 0.25, 0.15, 0.1))
    lock_age = np.floor(rng.uniform(0, 0.6, n) * lock_period).astype(int)
    fate = rng.random(n)
    lock_age = np.where(fate < 0.02, lock_period + rng.integers(1, 20, n), lock_age)  # already expired
    lock_age = np.where((fate >= 0.02) & (fate < 0.03), lock_period - rng.integers(0, 8, n), lock_age)  # days left
    as_of64 = np.datetime64(as_of, "D")
    lock_date = as_of64 - lock_age.astype("timedelta64[D]")
    lock_expiration = lock_date + lock_period.astype("timedelta64[D]")
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
        "status": rng.choice(("Locked", "Closed", "Shipped"), n, p=(0.55, 0.4, 0.05)),
        "servicing": rng.choice(("Retained", "Released"), n, p=(0.7, 0.3)),
        "pool_id": np.full(n, None, dtype=object),
    }


def _trades(rng: np.random.Generator, m: int, as_of: date, loans: Columns) -> Columns:
    codes = np.array(list(INSTRUMENTS))
    instrument = rng.choice(codes, size=m, p=(0.33, 0.22, 0.1, 0.05, 0.3))
    month = rng.choice((1, 2, 3), size=m, p=(0.6, 0.3, 0.1))
    settle_dates = [_add_months(as_of, int(k), _SETTLE_DAY[i]) for i, k in zip(instrument, month, strict=True)]
    settlement = np.array(settle_dates, dtype="datetime64[D]")
    product = np.asarray(loans["product"])
    rate = np.asarray(loans["note_rate"])
    upb = np.asarray(loans["upb"])
    coupon = np.empty(m)
    amount = np.empty(m)
    for code in codes:  # a handful of instruments, not loans x trades
        spec = INSTRUMENTS[code]
        mine = np.flatnonzero(instrument == code)
        pool = np.flatnonzero(np.isin(product, spec.products) & ~np.isnan(rate))
        if len(mine) == 0 or len(pool) == 0:
            coupon[mine] = _PAR_COUPON[code]
            amount[mine] = 1_000_000
            continue
        # Coupons follow the loans: the highest coupon a sampled loan's note rate supports.
        sampled = rate[rng.choice(pool, size=len(mine))]
        coupon[mine] = np.floor((sampled - spec.min_spread) / 0.5) * 0.5
        # Sell about 80% of the program's supply (shared between FN and FG), unevenly across trades.
        share = {"FN30": 0.6, "FG30": 0.4, "FN15": 0.65, "FG15": 0.35, "G230": 1.0}[code]
        budget = 0.8 * share * upb[pool].sum()
        weights = rng.lognormal(0, 0.5, len(mine))
        amount[mine] = np.maximum(1_000_000, np.round(budget * weights / weights.sum() / 250_000) * 250_000)
    par = np.vectorize(_PAR_COUPON.get)(instrument).astype(float)
    price = np.round(100 + (coupon - par) * 3.2 - 0.15 * (month - 1) + rng.normal(0, 0.04, m), 4)
    status = np.full(m, "Open", dtype=object)
    if m >= 20:
        status[-1] = "Closed"
    return {
        "trade_id": [f"T{i:05d}" for i in range(1, m + 1)],
        "agency": np.array([INSTRUMENTS[i].agency for i in instrument], dtype=object),
        "instrument": instrument,
        "coupon": coupon,
        "trade_amount": amount,
        "price": price,
        "trade_date": np.datetime64(as_of, "D") - rng.integers(1, 60, m).astype("timedelta64[D]"),
        "settlement_date": settlement,
        "counterparty": rng.choice(_DEALERS, m),
        "tolerance_pct": rng.choice((1.0, 2.0, 2.5, 5.0), m),
        "trade_type": rng.choice(("TBA", "Spec"), m, p=(0.93, 0.07)),
        "status": status,
    }


def _pools(rng: np.random.Generator, trades: Columns, loans: Columns) -> tuple[Columns, Columns]:
    """Existing pools for about a third of the trades, with loans in them (loan.pool_id)."""
    m = len(trades["trade_id"])
    product = np.asarray(loans["product"])
    rate = np.asarray(loans["note_rate"])
    upb = np.asarray(loans["upb"])
    expiry = np.asarray(loans["lock_expiration_date"])
    ok_status = np.asarray(loans["status"]) != "Shipped"
    pool_of = loans["pool_id"]
    chosen = np.sort(rng.choice(m, size=max(1, m // 3), replace=False))
    pools: Columns = {k: [] for k in ("pool_id", "agency", "instrument", "coupon", "pool_status", "created_date")}
    relation: Columns = {"trade_id": [], "pool_id": []}
    for number, t in enumerate(chosen, start=1):  # one pool per chosen trade
        if trades["status"][t] != "Open":
            continue
        spec = INSTRUMENTS[trades["instrument"][t]]
        cpn = trades["coupon"][t]
        settle = trades["settlement_date"][t]
        fits = (np.isin(product, spec.products) & ok_status & (rate >= cpn + spec.min_spread - 1e-9)
                & (rate <= cpn + spec.max_spread + 1e-9) & np.array([p is None for p in pool_of]))
        good = np.flatnonzero(fits & (expiry >= settle))
        stale = np.flatnonzero(fits & (expiry < settle))  # these will have to leave
        target = trades["trade_amount"][t] * (1.3 if number == 1 else rng.uniform(0.4, 0.8))
        good = rng.permutation(good)
        members = good[: int(np.searchsorted(np.cumsum(upb[good]), target)) + 1]
        members = np.concatenate([members, rng.permutation(stale)[:2]])
        if len(members) == 0:
            continue
        pool_id = f"P{number:05d}"
        for i in members:
            pool_of[i] = pool_id
        pools["pool_id"].append(pool_id)
        pools["agency"].append(spec.agency)
        pools["instrument"].append(spec.code)
        pools["coupon"].append(cpn)
        pools["pool_status"].append("Open")
        pools["created_date"].append(trades["trade_date"][t])
        relation["trade_id"].append(trades["trade_id"][t])
        relation["pool_id"].append(pool_id)
    pools["created_date"] = np.array(pools["created_date"], dtype="datetime64[D]")
    return pools, relation


def _cash_grid() -> Columns:
    rows: Columns = {k: [] for k in ("agency", "product", "pass_through_rate", "commitment_days", "cash_price")}
    for product, agency, par in (("C30", "FNMA", 5.75), ("C15", "FNMA", 5.25), ("F30", "GNMA", 5.5),
                                 ("V30", "GNMA", 5.5)):
        for ptr in np.arange(3.5, 7.0001, 0.125):
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


def _lockdowns(rng: np.random.Generator, loans: Columns, pools: Columns, as_of: date) -> Columns:
    pool_of = np.array(loans["pool_id"], dtype=object)
    pooled = np.flatnonzero(pool_of != None)  # noqa: E711 (element-wise)
    unpooled = np.flatnonzero(pool_of == None)  # noqa: E711
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
