"""The PowerFill data model: SQLAlchemy Core tables for the inputs and the `pfill_*` outputs.

Conventions (the contract the report queries build on):
- Inputs (`loan`, `pscat_*`, `rmusr_payups`, `pfill_carry_cost`, `pfill_constraints`,
  `pfill_lockdown_guide`) carry `tenant_id`; their keys start with it.
- Every output row carries `run_id` (a UUID string, 36 chars) and `tenant_id`. Reports pick a run
  (default: the latest Complete run of the tenant in `pfill_run_history`) and filter on run_id,
  which is why every output index starts with run_id.
- Money (UPB, amounts, dollar values) is in dollars; rates (note rate, coupon) are in percent
  (6.125 means 6.125%); prices and pay-ups are in points per 100 of UPB (101.5 = 101.5% of par).
- Timestamps are naive UTC; dates are calendar dates.
- Float (double precision) is used for numbers: the engine computes in float64 with numpy, and
  the reports round for display.

The same metadata creates the schema on SQLite and PostgreSQL and compiles for SQL Server.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Run statuses. Active runs block another run of the same tenant (BR-8).
ACTIVE_STATUSES = ("Pending", "PreProcessing", "Allocating", "PostProcessing")
TERMINAL_STATUSES = ("Complete", "Failed", "Cancelled")
STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES

# The eight pool actions of `pfill_pool_guide.pool_action`.
POOL_ACTIONS = ("Remaining", "Leaving", "Joining", "Switching", "Swapped In", "Locked", "Cash", "Kicked Out")

_ID = 36  # loan, trade, pool ids and run UUIDs
_CODE = 32  # short codes: product, agency, status, reason codes


def _id(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.String(_ID), **kw)


def _tenant() -> sa.Column:
    return sa.Column("tenant_id", sa.String(64), nullable=False, comment="Tenant the row belongs to")


def _run() -> sa.Column:
    return sa.Column("run_id", sa.String(_ID), nullable=False, comment="Run (UUID) that wrote the row")


# ============================================================================================
# Inputs (the tenant database, upstream of PowerFill)
# ============================================================================================

loan = sa.Table(
    "loan",
    metadata,
    _tenant(),
    _id("loan_id", nullable=False, comment="Loan number"),
    sa.Column("note_rate", sa.Float, comment="Note rate, percent (on the 1/8 grid)"),
    sa.Column("upb", sa.Float, nullable=False, comment="Unpaid principal balance, dollars"),
    sa.Column("product", sa.String(_CODE), nullable=False,
              comment="C30, C15 (conventional), F30 (FHA), V30 (VA)"),
    sa.Column("loan_term_months", sa.Integer, comment="Amortisation term in months (360, 180)"),
    sa.Column("fico", sa.Integer, comment="Credit score"),
    sa.Column("ltv", sa.Float, comment="Loan-to-value, percent"),
    sa.Column("dti", sa.Float, comment="Debt-to-income, percent"),
    sa.Column("state", sa.String(2), comment="Property state (USPS code)"),
    sa.Column("occupancy", sa.String(_CODE), comment="Primary, Second, Investment"),
    sa.Column("purpose", sa.String(_CODE), comment="Purchase, Refinance, CashOut"),
    sa.Column("property_type", sa.String(_CODE), comment="SFR, Condo, PUD, 2-4 Unit"),
    sa.Column("high_balance", sa.Boolean, nullable=False, default=False,
              comment="UPB above the conforming limit ($806,500) and at most the ceiling ($1,209,750)"),
    sa.Column("lock_date", sa.Date, comment="Rate lock date"),
    sa.Column("lock_expiration_date", sa.Date,
              comment="Rate lock expiration; delivery must settle on or before"),
    sa.Column("status", sa.String(_CODE), nullable=False,
              comment="Locked, Closed, Shipped (Shipped is not considered)"),
    sa.Column("servicing", sa.String(_CODE), comment="Retained or Released"),
    _id("pool_id", nullable=True, comment="Existing pool the loan sits in (NULL: not pooled)"),
    sa.PrimaryKeyConstraint("tenant_id", "loan_id", name="pk_loan"),
    comment="The loan pipeline: closed and rate-locked loans to place",
)
sa.Index("ix_loan_tenant_pool", loan.c.tenant_id, loan.c.pool_id)

pscat_trades = sa.Table(
    "pscat_trades",
    metadata,
    _tenant(),
    _id("trade_id", nullable=False, comment="Trade id"),
    sa.Column("agency", sa.String(_CODE), nullable=False, comment="FNMA, FHLMC, GNMA"),
    sa.Column("instrument", sa.String(_CODE), nullable=False,
              comment="Program: FN30, FN15, FG30, FG15 (conventional), G230 (Ginnie II 30: FHA/VA)"),
    sa.Column("coupon", sa.Float, nullable=False, comment="Pass-through rate, percent (0.5 steps)"),
    sa.Column("trade_amount", sa.Float, nullable=False, comment="Original face sold, dollars"),
    sa.Column("price", sa.Float, nullable=False, comment="Trade price, points"),
    sa.Column("trade_date", sa.Date, comment="Date the trade was made"),
    sa.Column("settlement_date", sa.Date, nullable=False, comment="TBA settlement date"),
    sa.Column("counterparty", sa.String(64), comment="Dealer the trade is with"),
    sa.Column("tolerance_pct", sa.Float, nullable=False, comment="Delivery tolerance, percent of amount"),
    sa.Column("trade_type", sa.String(_CODE), nullable=False, comment="TBA, Spec, Cash"),
    sa.Column("status", sa.String(_CODE), nullable=False, comment="Open (allocated), Closed (ignored)"),
    sa.PrimaryKeyConstraint("tenant_id", "trade_id", name="pk_pscat_trades"),
    comment="Forward MBS trades to fill",
)

pscat_pools = sa.Table(
    "pscat_pools",
    metadata,
    _tenant(),
    _id("pool_id", nullable=False, comment="Pool id"),
    sa.Column("agency", sa.String(_CODE), nullable=False),
    sa.Column("instrument", sa.String(_CODE), nullable=False),
    sa.Column("coupon", sa.Float, nullable=False, comment="Pool pass-through rate, percent"),
    sa.Column("pool_status", sa.String(_CODE), nullable=False, comment="Open, Notified, Settled"),
    sa.Column("created_date", sa.Date),
    sa.PrimaryKeyConstraint("tenant_id", "pool_id", name="pk_pscat_pools"),
    comment="Existing pools (their loans are loan.pool_id)",
)

pscat_trades_pools_relation = sa.Table(
    "pscat_trades_pools_relation",
    metadata,
    _tenant(),
    _id("trade_id", nullable=False),
    _id("pool_id", nullable=False),
    sa.PrimaryKeyConstraint("tenant_id", "trade_id", "pool_id", name="pk_pscat_trades_pools_relation"),
    comment="Which trade each existing pool is designated to",
)

pscat_trade_cash_grid = sa.Table(
    "pscat_trade_cash_grid",
    metadata,
    _tenant(),
    sa.Column("agency", sa.String(_CODE), nullable=False, comment="FNMA, FHLMC, GNMA"),
    sa.Column("product", sa.String(_CODE), nullable=False, comment="Loan product: C30, C15, F30, V30"),
    sa.Column("pass_through_rate", sa.Float, nullable=False, comment="Percent, 0.125 steps"),
    sa.Column("commitment_days", sa.Integer, nullable=False, comment="Commitment period: 10, 30, 60, 90"),
    sa.Column("cash_price", sa.Float, nullable=False, comment="Cash-window price, points"),
    sa.PrimaryKeyConstraint("tenant_id", "agency", "product", "pass_through_rate", "commitment_days",
                            name="pk_pscat_trade_cash_grid"),
    comment="Agency cash-window prices",
)

rmusr_payups = sa.Table(
    "rmusr_payups",
    metadata,
    _tenant(),
    sa.Column("payup_id", sa.Integer, nullable=False),
    sa.Column("instrument", sa.String(_CODE), nullable=False, comment="Instrument the pay-up applies to"),
    sa.Column("characteristic", sa.String(_CODE), nullable=False,
              comment="Loan bucket kind: upb (loan balance), fico, ltv, state"),
    sa.Column("low_value", sa.Float, comment="Bucket lower bound, inclusive (upb, fico, ltv)"),
    sa.Column("high_value", sa.Float, comment="Bucket upper bound, inclusive (upb, fico, ltv)"),
    sa.Column("text_value", sa.String(_CODE), comment="Bucket value for text characteristics (state)"),
    sa.Column("payup", sa.Float, nullable=False, comment="Price premium in points (negative: a give-up)"),
    sa.PrimaryKeyConstraint("tenant_id", "payup_id", name="pk_rmusr_payups"),
    comment="Pay-ups by instrument and loan characteristic bucket (they add up)",
)

pfill_carry_cost = sa.Table(
    "pfill_carry_cost",
    metadata,
    _tenant(),
    sa.Column("instrument", sa.String(_CODE), nullable=False),
    sa.Column("day", sa.Integer, nullable=False, comment="Days from the run date to settlement"),
    sa.Column("rate", sa.Float, nullable=False,
              comment="Annual financing rate, percent; carry = (note_rate - rate) * days / 360 points"),
    sa.PrimaryKeyConstraint("tenant_id", "instrument", "day", name="pk_pfill_carry_cost"),
    comment="Carry curve: interpolated linearly between days",
)

pfill_constraints = sa.Table(
    "pfill_constraints",
    metadata,
    _tenant(),
    sa.Column("constraint_id", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, comment="Lower first"),
    sa.Column("constraint_type", sa.String(_CODE), nullable=False,
              comment="investor | instrument (a fill stage), high_balance_cap (percent of trade UPB), "
                      "state_cap (percent of trade UPB per state), max_pools_per_lot"),
    sa.Column("instrument", sa.String(_CODE), comment="Instrument a stage or cap applies to (NULL: all)"),
    sa.Column("counterparty", sa.String(64), comment="Investor of an investor stage"),
    sa.Column("value", sa.Float, comment="The cap (percent or count)"),
    sa.Column("description", sa.String(200)),
    sa.PrimaryKeyConstraint("tenant_id", "constraint_id", name="pk_pfill_constraints"),
    comment="Allocation constraints in priority order",
)

pfill_lockdown_guide = sa.Table(
    "pfill_lockdown_guide",
    metadata,
    _tenant(),
    sa.Column("lockdown_id", sa.Integer, nullable=False),
    _id("loan_id", nullable=True, comment="Locked loan (NULL when a whole pool is locked)"),
    _id("pool_id", nullable=True, comment="Locked pool: all its loans stay"),
    sa.Column("reason", sa.String(200)),
    sa.Column("locked_by", sa.String(64)),
    sa.Column("locked_at", sa.DateTime),
    sa.PrimaryKeyConstraint("tenant_id", "lockdown_id", name="pk_pfill_lockdown_guide"),
    comment="Loans or pools that must not move",
)

INPUT_TABLES = (
    loan, pscat_trades, pscat_pools, pscat_trades_pools_relation, pscat_trade_cash_grid,
    rmusr_payups, pfill_carry_cost, pfill_constraints, pfill_lockdown_guide,
)

# ============================================================================================
# Outputs: every row carries run_id and tenant_id
# ============================================================================================

_active = "status IN ('Pending', 'PreProcessing', 'Allocating', 'PostProcessing')"

pfill_run_history = sa.Table(
    "pfill_run_history",
    metadata,
    sa.Column("run_id", sa.String(_ID), primary_key=True, comment="UUID of the run"),
    _tenant(),
    sa.Column("status", sa.String(_CODE), nullable=False,
              comment="Pending, PreProcessing, Allocating, PostProcessing (active); "
                      "Complete, Failed, Cancelled (terminal)"),
    sa.Column("scoring", sa.String(_CODE), nullable=False, comment="price or price_carry"),
    sa.Column("requested_by", sa.String(128), comment="user@host that asked for the run"),
    sa.Column("options_json", sa.Text, comment="Run options as JSON"),
    sa.Column("input_loan_ids_json", sa.Text, comment="JSON list of loan ids when a subset was requested"),
    sa.Column("created_at", sa.DateTime, nullable=False, comment="Requested (UTC)"),
    sa.Column("started_at", sa.DateTime, comment="First step began (UTC)"),
    sa.Column("completed_at", sa.DateTime, comment="Reached a terminal status (UTC)"),
    sa.Column("heartbeat_at", sa.DateTime, comment="Last sign of life of the running process (UTC)"),
    sa.Column("cancel_requested_at", sa.DateTime,
              comment="Set by `pfill runs cancel`; honoured at a step boundary"),
    sa.Column("pid", sa.Integer, comment="Process id running it"),
    sa.Column("host", sa.String(128), comment="Host running it"),
    sa.Column("current_step", sa.String(_CODE), comment="Step in progress (or the last one)"),
    sa.Column("failure_step", sa.String(_CODE), comment="Step that failed (Failed runs)"),
    sa.Column("failure_message", sa.Text, comment="Why it failed or was cancelled"),
    # summary counters (flat so dashboards can chart them)
    sa.Column("loans_considered", sa.Integer, comment="Loans read (status Locked/Closed)"),
    sa.Column("candidate_count", sa.Integer, comment="Eligible loan x trade pairs"),
    sa.Column("allocated_loan_count", sa.Integer, comment="Loans placed in trades"),
    sa.Column("allocated_upb", sa.Float, comment="UPB placed in trades"),
    sa.Column("kickout_count", sa.Integer, comment="Loans placed nowhere"),
    sa.Column("cash_loan_count", sa.Integer, comment="Loans sent to the cash window"),
    sa.Column("trade_count", sa.Integer, comment="Open trades considered"),
    sa.Column("trades_filled_in_tolerance", sa.Integer, comment="Trades filled within min..max allowed"),
    sa.Column("total_value", sa.Float, comment="Execution value of the allocations, dollars"),
    # allocation quality (nullable: added to older databases by `pfill db init`)
    sa.Column("strategy", sa.String(_CODE), comment="Allocation strategy: optimal (LP + repair) or greedy"),
    sa.Column("objective_value", sa.Float,
              comment="Trade value + cash value - pair-off cost of the allocation, dollars (solver/objective.py)"),
    sa.Column("lp_bound", sa.Float,
              comment="Upper bound on objective_value over every allocation that keeps the hard limits and fills "
                      "the trades the greedy fills (per component: the LP with those fills required, or the MIP's "
                      "dual bound); optimal strategy"),
    sa.Column("gap_pct", sa.Float,
              comment="(lp_bound - objective_value) / (lp_bound - do-nothing value) x 100: premium left on the table"),
    sa.Column("solver_seconds", sa.Float, comment="Seconds spent in HiGHS: the LPs and the MIPs (optimal strategy)"),
    sa.Column("duration_seconds", sa.Float, comment="started_at to completed_at"),
    sa.Column("step_seconds_json", sa.Text, comment='Seconds per step as JSON: {"cash_grid": 0.1, ...}'),
    sa.Column("response_json", sa.Text, comment="Summary document as JSON (counters + step seconds)"),
    # retention (revision 0002)
    sa.Column("output_removed_at", sa.DateTime,
              comment="When retention removed the run's user-facing rows (UTC); the log and synthetic rows are kept"),
    comment="One row per run; statuses persist as they change",
)
# BR-8: one active run per tenant, enforced by the database.
sa.Index(
    "ux_pfill_run_history_active_tenant",
    pfill_run_history.c.tenant_id,
    unique=True,
    sqlite_where=sa.text(_active),
    postgresql_where=sa.text(_active),
    mssql_where=sa.text(_active),
)
sa.Index("ix_pfill_run_history_tenant_created", pfill_run_history.c.tenant_id, pfill_run_history.c.created_at)

# Candidates (revision 0003): every eligible loan x trade pair of a run, stored as its options (a loan and
# a trade group: a few per loan) and the run's trade groups (trade -> group), never pair by pair (a
# 100k-loan book has millions of pairs). A pair is an option and one trade of its group, scored
# option score + trade price; queries/pool_candidates.sql.j2 expands and ranks them.
pfill_candidate_options = sa.Table(
    "pfill_candidate_options",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    sa.Column("trade_group", sa.Integer, nullable=False,
              comment="Trade group (pfill_trade_groups): the option's pairs are the group's trades"),
    sa.Column("upb", sa.Float),
    sa.Column("note_rate", sa.Float),
    sa.Column("payup", sa.Float, comment="Pay-up for this loan in the group's instrument, points"),
    sa.Column("carry", sa.Float, comment="Carry to the group's settlement, points"),
    sa.Column("score", sa.Float,
              comment="The loan's part of a pair's score, points: payup (+carry with price_carry); "
                      "a pair adds its trade's price"),
    sa.Column("pair_count", sa.Integer, nullable=False, comment="The option's pairs: trades in its group"),
    sa.Column("best_pair_score", sa.Float, comment="score + the group's highest price: the option's best pair"),
    sa.Column("worst_pair_score", sa.Float, comment="score + the group's lowest price: the option's worst pair"),
    sa.Column("loan_pair_count", sa.Integer, nullable=False, comment="Eligible pairs of the loan (all its options)"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", "trade_group", name="pk_pfill_candidate_options"),
    comment="Candidates: every eligible option (loan x trade group) of the run; its pairs are the group's trades",
)
sa.Index("ix_pfill_candidate_options_run_group", pfill_candidate_options.c.run_id,
         pfill_candidate_options.c.trade_group)

pfill_trade_groups = sa.Table(
    "pfill_trade_groups",
    metadata,
    _run(),
    _tenant(),
    _id("trade_id", nullable=False),
    sa.Column("trade_group", sa.Integer, nullable=False,
              comment="Trades of one instrument, coupon and settlement date: the same loans are eligible for them"),
    sa.Column("trade_order", sa.Integer, nullable=False,
              comment="Position of the trade in the run (by trade id): equal scores rank the lower first"),
    sa.Column("group_rank", sa.Integer, nullable=False,
              comment="Position in its group by price, best first (ties: trade_order)"),
    sa.Column("agency", sa.String(_CODE)),
    sa.Column("instrument", sa.String(_CODE)),
    sa.Column("coupon", sa.Float),
    sa.Column("settlement_date", sa.Date),
    sa.Column("price", sa.Float, comment="Trade price, points"),
    sa.PrimaryKeyConstraint("run_id", "trade_id", name="pk_pfill_trade_groups"),
    comment="The run's open trades by candidate group (a pair's score is its option's score + the trade's price)",
)
# covers the report's count of an option's pairs that beat a given one (an index-only scan per option)
sa.Index("ix_pfill_trade_groups_run_group", pfill_trade_groups.c.run_id, pfill_trade_groups.c.trade_group,
         pfill_trade_groups.c.price, pfill_trade_groups.c.trade_order)

pfill_trade_base = sa.Table(
    "pfill_trade_base",
    metadata,
    _run(),
    _tenant(),
    _id("trade_id", nullable=False),
    sa.Column("agency", sa.String(_CODE)),
    sa.Column("instrument", sa.String(_CODE)),
    sa.Column("coupon", sa.Float),
    sa.Column("price", sa.Float),
    sa.Column("settlement_date", sa.Date),
    sa.Column("counterparty", sa.String(64)),
    sa.Column("stage", sa.Integer, comment="Constraint priority of the fill stage (stages fill in order)"),
    sa.Column("trade_amount", sa.Float, nullable=False),
    sa.Column("tolerance_pct", sa.Float),
    sa.Column("tolerance", sa.Float, comment="round(trade_amount * tolerance_pct / 100, 2)"),
    sa.Column("min_allowed", sa.Float, comment="trade_amount - tolerance"),
    sa.Column("max_allowed", sa.Float, comment="trade_amount + tolerance"),
    sa.Column("allocated_upb", sa.Float, nullable=False),
    sa.Column("allocated_count", sa.Integer, nullable=False),
    sa.Column("high_balance_upb", sa.Float, comment="UPB of high-balance loans allocated"),
    sa.Column("locked_upb", sa.Float, comment="UPB of locked loans kept in the trade's pools"),
    sa.Column("fill_pct", sa.Float, comment="allocated_upb / trade_amount * 100"),
    sa.Column("shortfall", sa.Float, comment="max(0, min_allowed - allocated_upb)"),
    sa.Column("fill_status", sa.String(_CODE), nullable=False,
              comment="Filled (within min..max), Short (below min), "
                      "Over (above max: locked loans only), Empty (nothing allocated)"),
    sa.Column("pool_count", sa.Integer, comment="Pools the allocation uses"),
    sa.Column("total_value", sa.Float, comment="Sum of allocation values, dollars"),
    sa.Column("wa_note_rate", sa.Float, comment="UPB-weighted average note rate"),
    sa.Column("wa_price", sa.Float, comment="UPB-weighted average price + pay-up"),
    sa.PrimaryKeyConstraint("run_id", "trade_id", name="pk_pfill_trade_base"),
    comment="Per-trade fill state after allocation",
)

pfill_powerfill_guide = sa.Table(
    "pfill_powerfill_guide",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    _id("trade_id", nullable=False),
    _id("pool_id", nullable=False, comment="Pool the loan is delivered in (existing or NEW-<trade_id>)"),
    sa.Column("agency", sa.String(_CODE)),
    sa.Column("instrument", sa.String(_CODE)),
    sa.Column("coupon", sa.Float),
    sa.Column("settlement_date", sa.Date),
    sa.Column("product", sa.String(_CODE)),
    sa.Column("upb", sa.Float, nullable=False),
    sa.Column("note_rate", sa.Float),
    sa.Column("high_balance", sa.Boolean),
    sa.Column("price", sa.Float, comment="Trade price, points"),
    sa.Column("payup", sa.Float, comment="Points"),
    sa.Column("carry", sa.Float, comment="Points"),
    sa.Column("value", sa.Float, comment="Dollar value: upb * (price + payup [+ carry]) / 100"),
    sa.Column("rank", sa.Integer, comment="Candidate rank of the chosen pair (1 = the loan's best)"),
    sa.Column("pass_name", sa.String(_CODE), comment="locked, first_pass, substitution, orphan_sweep"),
    sa.Column("score", sa.Float, comment="Score of the chosen candidate pair, points: the option's score + the "
                                         "trade's price (NULL: a locked loan, placed without a candidate)"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", name="pk_pfill_powerfill_guide"),
    comment="Allocations: one row per loan placed in a trade",
)
sa.Index("ix_pfill_powerfill_guide_run_trade",
         pfill_powerfill_guide.c.run_id, pfill_powerfill_guide.c.trade_id)
sa.Index("ix_pfill_powerfill_guide_run_pool", pfill_powerfill_guide.c.run_id, pfill_powerfill_guide.c.pool_id)

pfill_kickouts = sa.Table(
    "pfill_kickouts",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    _id("pool_id", nullable=True, comment="Existing pool the loan leaves (NULL: not pooled)"),
    sa.Column("product", sa.String(_CODE)),
    sa.Column("upb", sa.Float),
    sa.Column("note_rate", sa.Float),
    sa.Column("reason_code", sa.String(_CODE), nullable=False,
              comment="INVALID_DATA, UPB_OVER_CEILING, LOCK_EXPIRED, NO_ELIGIBLE_TRADE, "
                      "LOCK_BEFORE_SETTLEMENT, HIGH_BALANCE_CAP, TRADES_FULL (see engine/reasons.py)"),
    sa.Column("reason", sa.String(400), nullable=False, comment="Readable reason"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", name="pk_pfill_kickouts"),
    comment="Loans placed nowhere (neither a trade nor the cash window)",
)
sa.Index("ix_pfill_kickouts_run_reason", pfill_kickouts.c.run_id, pfill_kickouts.c.reason_code)

pfill_cash_market_map = sa.Table(
    "pfill_cash_market_map",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    sa.Column("loan_product", sa.String(_CODE)),
    sa.Column("upb", sa.Float),
    sa.Column("note_rate", sa.Float),
    sa.Column("lock_expiration_date", sa.Date),
    sa.Column("agency", sa.String(_CODE), comment="Slot: cash-grid agency (NULL: no cell fits)"),
    sa.Column("product", sa.String(_CODE), comment="Slot: cash-grid product (NULL: no cell fits)"),
    sa.Column("pass_through_rate", sa.Float,
              comment="Slot: note rate minus servicing and g-fee (NULL: no cell)"),
    sa.Column("commitment_days", sa.Integer,
              comment="Slot: shortest period covering the lock (NULL: no cell)"),
    sa.Column("cash_price", sa.Float, comment="Slot: price of the cell (NULL: no cell)"),
    sa.Column("cash_value", sa.Float, comment="upb * cash_price / 100 (NULL: no cell)"),
    sa.Column("slotted", sa.Boolean, nullable=False, comment="A cell fits (the loan goes to cash)"),
    sa.Column("no_slot_reason", sa.String(200), comment="Why no cell fits"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", name="pk_pfill_cash_market_map"),
    comment="Loans not placed in a trade, slotted to cash-grid cells",
)

pfill_pool_guide = sa.Table(
    "pfill_pool_guide",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    sa.Column("pool_action", sa.String(_CODE), nullable=False,
              comment="Remaining, Leaving, Joining, Switching, Swapped In, Locked, Cash, Kicked Out"),
    _id("pool_id", nullable=True,
        comment="Pool the row counts in: the loan's pool (Remaining, Leaving, Locked, Switching source) "
                "or its destination (Joining, Swapped In); NULL for Cash/Kicked Out of unpooled loans"),
    _id("from_pool_id", nullable=True, comment="Existing pool (pooled loans)"),
    _id("to_pool_id", nullable=True, comment="Destination pool (loans allocated to a trade)"),
    _id("trade_id", nullable=True, comment="Trade the loan is allocated to (NULL: none)"),
    _id("from_trade_id", nullable=True, comment="Trade the existing pool is designated to"),
    sa.Column("upb", sa.Float),
    sa.Column("note_rate", sa.Float),
    sa.Column("product", sa.String(_CODE)),
    sa.Column("reason", sa.String(400), comment="Why this action"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", "pool_action", name="pk_pfill_pool_guide"),
    comment="A pool action for every loan. A switch is a pair of rows for the same loan: 'Switching' "
            "(pool_id = source pool) and 'Swapped In' (pool_id = destination), both with from/to_pool_id",
)
sa.Index("ix_pfill_pool_guide_run_pool", pfill_pool_guide.c.run_id, pfill_pool_guide.c.pool_id)
sa.Index("ix_pfill_pool_guide_run_action", pfill_pool_guide.c.run_id, pfill_pool_guide.c.pool_action)

pfill_syn_trade_base = sa.Table(
    "pfill_syn_trade_base",
    metadata,
    _run(),
    _tenant(),
    _id("syn_trade_id", nullable=False, comment="SYN-<instrument>-<coupon>"),
    sa.Column("agency", sa.String(_CODE)),
    sa.Column("instrument", sa.String(_CODE)),
    sa.Column("coupon", sa.Float),
    sa.Column("settlement_date", sa.Date, comment="Next settlement the synthetic trade assumes"),
    sa.Column("price", sa.Float, comment="Market price interpolated from the open trades, points"),
    sa.Column("eligible_loan_count", sa.Integer),
    sa.Column("eligible_upb", sa.Float),
    sa.PrimaryKeyConstraint("run_id", "syn_trade_id", name="pk_pfill_syn_trade_base"),
    comment="Synthetic alternative trades (one per instrument x coupon the loans could go to)",
)

pfill_syn_powerfill_guide = sa.Table(
    "pfill_syn_powerfill_guide",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    sa.Column("ranking", sa.String(_CODE), nullable=False, comment="payup or payup_carry"),
    _id("syn_trade_id", nullable=False, comment="Best synthetic trade under this ranking"),
    sa.Column("upb", sa.Float),
    sa.Column("price", sa.Float),
    sa.Column("payup", sa.Float),
    sa.Column("carry", sa.Float),
    sa.Column("score", sa.Float),
    sa.Column("value", sa.Float),
    sa.PrimaryKeyConstraint("run_id", "loan_id", "ranking", name="pk_pfill_syn_powerfill_guide"),
    comment="Best synthetic trade per loan, by pay-up only and by pay-up plus carry",
)

pfill_syn_powerfill_guide_all_rank = sa.Table(
    "pfill_syn_powerfill_guide_all_rank",
    metadata,
    _run(),
    _tenant(),
    _id("loan_id", nullable=False),
    _id("syn_trade_id", nullable=False),
    sa.Column("price", sa.Float),
    sa.Column("payup", sa.Float),
    sa.Column("carry", sa.Float),
    sa.Column("rank_payup", sa.Integer, comment="Rank by price + payup (1 = best)"),
    sa.Column("rank_payup_carry", sa.Integer, comment="Rank by price + payup + carry (1 = best)"),
    sa.PrimaryKeyConstraint("run_id", "loan_id", "syn_trade_id", name="pk_pfill_syn_all_rank"),
    comment="Every loan x synthetic trade option with both ranks",
)

pfill_powerfill_log = sa.Table(
    "pfill_powerfill_log",
    metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
    _run(),
    _tenant(),
    sa.Column("logged_at", sa.DateTime, nullable=False),
    sa.Column("step", sa.String(_CODE), comment="Step (or 'run' for lifecycle events)"),
    sa.Column("level", sa.String(8), nullable=False, comment="INFO, WARN, ERROR"),
    sa.Column("event", sa.String(_CODE), nullable=False,
              comment="status, step_start, step_end, counters, error"),
    sa.Column("message", sa.Text),
    sa.Column("details_json", sa.Text),
    comment="Forensic event log of each run (kept for Failed and Cancelled runs)",
)
sa.Index("ix_pfill_powerfill_log_run", pfill_powerfill_log.c.run_id, pfill_powerfill_log.c.log_id)

# BR-9: what a Failed or Cancelled run loses (user-facing) and keeps (forensics). Retention removes the
# user-facing rows of old runs too and keeps the rest; only `pfill runs purge` deletes a run entirely.
USER_FACING_OUTPUTS = (
    pfill_candidate_options, pfill_trade_groups, pfill_trade_base, pfill_powerfill_guide, pfill_kickouts,
    pfill_cash_market_map, pfill_pool_guide,
)
FORENSIC_OUTPUTS = (
    pfill_syn_trade_base, pfill_syn_powerfill_guide, pfill_syn_powerfill_guide_all_rank, pfill_powerfill_log,
)
OUTPUT_TABLES = (pfill_run_history, *USER_FACING_OUTPUTS, *FORENSIC_OUTPUTS)
