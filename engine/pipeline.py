"""Running the pipeline: statuses as it goes, seconds per step, counters, cancel and failure handling.

    run = execute_run(engine, RunOptions(tenant="demo"), progress=print)

`execute_run` is the engine's API for one run (the `pfill run` command, the demo and the benchmarks
call it); it needs no click context.

Hidden test hooks (fault injection for the lifecycle tests; harmless when unset):
- PFILL_TEST_STEP_DELAY: seconds to sleep at the start of every step, or `step=seconds[,step=seconds]`
  (the sleep checks for cancel every 0.1 s).
- PFILL_TEST_FAIL_STEP: name of a step that raises an injected error (`finish`: after the last step).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from pfill.database import first_line
from pfill.errors import PfillError, UsageError
from pfill.secrets import mask_text
from pfill.tenants import check_tenant

from . import runs
from .context import RunContext, utcnow
from .inputs import check_inputs, load_inputs
from .market import check_business_date
from .solver import DEFAULT_STRATEGY, STRATEGIES
from .steps import STEPS

Progress = Callable[[str], None]

# run-history columns filled from the counters when a run completes
SUMMARY_COLUMNS = (
    "loans_considered", "candidate_count", "allocated_loan_count", "allocated_upb", "kickout_count",
    "cash_loan_count", "trade_count", "trades_filled_in_tolerance", "total_value", "objective_value",
    "lp_bound", "gap_pct", "solver_seconds")


class RunFailed(PfillError):
    pass


class RunWasCancelled(PfillError):
    pass


@dataclass
class RunOptions:
    """What to run: the tenant and the run's options (defaults as `pfill run` has them)."""

    tenant: str
    scoring: str = "price"  # price | price_carry
    strategy: str = DEFAULT_STRATEGY  # a key of solver.STRATEGIES
    keep_runs: int = field(default_factory=runs.default_keep_runs)  # env PFILL_KEEP_RUNS, else 10
    as_of: date | None = None  # business date, None: today

    def check(self) -> None:
        """Refuse options no run can honour, each error naming the option (before any run starts)."""
        check_tenant(self.tenant, "tenant", UsageError)
        if self.scoring not in SCORINGS:
            raise UsageError(f"scoring {self.scoring!r} is not one of {', '.join(SCORINGS)}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"strategy {self.strategy!r} is not one of {', '.join(sorted(STRATEGIES))}")
        runs.check_keep(self.keep_runs)
        if self.as_of is not None:
            check_business_date(self.as_of)


SCORINGS = ("price", "price_carry")


def _quiet(_message: str) -> None:
    pass


def execute_run(engine: sa.Engine, options: RunOptions, progress: Progress = _quiet) -> dict[str, Any]:
    """Reconcile dead runs, start a run (BR-8), run the six steps, finish it. Returns the run row
    (the pfill_run_history columns, plus `rows_written` per table).

    Raises ConflictError (exit 3) when the tenant has an active run, RunWasCancelled when a cancel was
    requested, and RunFailed when a step raised (the run is then recorded as Failed, BR-9 applied).
    Options no run can honour, and a tenant with no loans or no open trades, are refused before a run
    is recorded (UsageError, inputs.InputError)."""
    options.check()
    heartbeat = runs.heartbeat_seconds()  # settings from the environment are checked before a run exists
    runs.reconcile(engine, options.tenant)
    with engine.connect() as conn:
        check_inputs(conn, options.tenant)
    run_id = runs.create_run(engine, options.tenant, options.scoring,
                             {"strategy": options.strategy, "keep_runs": options.keep_runs,
                              "as_of": options.as_of})
    progress(f"run {run_id} (tenant {options.tenant}, scoring {options.scoring})")
    ctx = RunContext(engine=engine, run_id=run_id, tenant=options.tenant, scoring=options.scoring,
                     strategy=options.strategy, as_of=options.as_of or date.today(),
                     checkpoint=_cancel_checkpoint(engine, run_id))
    tracker = _Tracker(ctx, progress)
    with runs.Heartbeat(engine, run_id, heartbeat):
        try:
            tracker.run_steps()
        except runs.RunCancelled:
            raise tracker.cancelled() from None
        except Exception as exc:
            raise tracker.failed(exc) from exc
    tracker.complete(options.strategy)
    removed = runs.apply_retention(engine, options.tenant, options.keep_runs)
    if removed:
        progress(f"  retention: removed {len(removed)} old run(s), keeping {options.keep_runs}")
    result = runs.get_run(engine, run_id)
    result["rows_written"] = ctx.rows_written
    return result


def _cancel_checkpoint(engine: sa.Engine, run_id: str) -> Callable[[], None]:
    def checkpoint() -> None:
        if runs.cancel_requested(engine, run_id):
            raise runs.RunCancelled()

    return checkpoint


@dataclass
class _Tracker:
    """One run's progress through the steps: the current step and status, and seconds per step."""

    ctx: RunContext
    progress: Progress
    current: str = "load_inputs"
    status: str = "Pending"
    step_seconds: dict[str, float] = field(default_factory=dict)

    def run_steps(self) -> None:
        ctx = self.ctx
        runs.update_run(ctx.engine, ctx.run_id, status="PreProcessing", started_at=utcnow(),
                        current_step=self.current)
        self.status = "PreProcessing"
        started = time.monotonic()
        with ctx.engine.connect() as conn:
            ctx.inputs = load_inputs(conn, ctx.tenant)
        self.step_seconds[self.current] = round(time.monotonic() - started, 3)
        self.progress(f"  {self.current:<13} {self.step_seconds[self.current]:7.2f}s  {ctx.inputs.n_loans} loans, "
                      f"{ctx.inputs.n_trades} trades")
        for name, step_status, step_fn in STEPS:
            self.run_step(name, step_status, step_fn)
        self.current = "finish"
        _test_fault("finish", ctx.checkpoint)
        ctx.checkpoint()

    def run_step(self, name: str, step_status: str, step_fn: Callable[[RunContext], None]) -> None:
        ctx = self.ctx
        self.current = name
        ctx.checkpoint()
        values: dict[str, Any] = {"current_step": name, "heartbeat_at": utcnow()}
        if step_status != self.status:
            values["status"] = self.status = step_status
        runs.update_run(ctx.engine, ctx.run_id, **values)
        ctx.log(name, "step_start", f"{name} started")
        started = time.monotonic()
        _test_fault(name, ctx.checkpoint)
        step_fn(ctx)
        self.step_seconds[name] = round(time.monotonic() - started, 3)
        ctx.log(name, "step_end", f"{name} done in {self.step_seconds[name]:.3f}s")
        self.progress(f"  {name:<13} {self.step_seconds[name]:7.2f}s")

    def cancelled(self) -> RunWasCancelled:
        """Record the run as Cancelled; returns the error to raise."""
        ctx = self.ctx
        runs.finish_run(ctx.engine, ctx.run_id, ctx.tenant, "Cancelled", failure_step=self.current,
                        failure_message="cancelled by request", step_seconds_json=json.dumps(self.step_seconds))
        return RunWasCancelled(f"run {ctx.run_id} was cancelled during {self.current}")

    def failed(self, exc: Exception) -> RunFailed:
        """Record the run as Failed (logged, BR-9 applied); returns the error to raise."""
        ctx = self.ctx
        # the history keeps the whole message; the user gets its first line (no SQL, no driver noise)
        message = mask_text(str(exc) if isinstance(exc, PfillError) else f"{type(exc).__name__}: {exc}")[:2000]
        ctx.log(self.current, "error", message, level="ERROR")
        runs.finish_run(ctx.engine, ctx.run_id, ctx.tenant, "Failed", failure_step=self.current,
                        failure_message=message, step_seconds_json=json.dumps(self.step_seconds))
        cause = first_line(exc) if isinstance(exc, PfillError) else f"{type(exc).__name__}: {first_line(exc)}"
        cause = mask_text(cause)
        return RunFailed(f"run {ctx.run_id} failed in step {self.current}: {cause}",
                         hint=getattr(exc, "hint", None) or "see `pfill runs show " + ctx.run_id + "`")

    def complete(self, strategy: str) -> None:
        """Record the run as Complete with its counters, summary columns and seconds per step."""
        ctx = self.ctx
        summary = {k: v for k, v in ctx.counters.items() if isinstance(v, (int, float))}
        response = {"counters": ctx.counters, "step_seconds": self.step_seconds, "rows_written": ctx.rows_written}
        flat = {k: ctx.counters.get(k) for k in SUMMARY_COLUMNS}
        flat["strategy"] = strategy
        ctx.log("run", "counters", "summary counters", **summary)
        runs.finish_run(ctx.engine, ctx.run_id, ctx.tenant, "Complete", current_step=None,
                        step_seconds_json=json.dumps(self.step_seconds),
                        response_json=json.dumps(response, default=str), **flat)


def _test_fault(step: str, checkpoint: Callable[[], None]) -> None:
    """The PFILL_TEST_* hooks for `step`: its injected delay (steps only), then its injected failure."""
    if step == "finish":
        if os.environ.get("PFILL_TEST_FAIL_STEP") == step:
            raise RuntimeError("injected failure after the last step (PFILL_TEST_FAIL_STEP=finish)")
        return
    _sleep_checking(_test_delay(step), checkpoint)
    if os.environ.get("PFILL_TEST_FAIL_STEP") == step:
        raise RuntimeError(f"injected failure in {step} (PFILL_TEST_FAIL_STEP)")


def _test_delay(step: str) -> float:
    raw = os.environ.get("PFILL_TEST_STEP_DELAY", "").strip()
    if not raw:
        return 0.0
    if "=" not in raw:
        return float(raw)
    for part in raw.split(","):
        name, _, seconds = part.partition("=")
        if name.strip() == step:
            return float(seconds)
    return 0.0


def _sleep_checking(seconds: float, checkpoint: Callable[[], None]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        checkpoint()
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))
