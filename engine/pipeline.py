"""Running the pipeline: statuses as it goes, seconds per step, counters, cancel and failure handling.

    run = execute_run(engine, RunOptions(tenant="demo"), progress=print)

`execute_run` is the engine's API for one run (the `pfill run` command, the demo and the benchmarks
call it); it needs no click context. The run service splits it in two: `submit_run(..., queued=True)`
writes the Pending row (the queue entry) and answers at once; an executor later calls
`execute_queued(run_id)`, which claims the row (exactly once) and runs it.

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
from .beside import Beside, can_run_beside
from .context import RunContext, utcnow
from .inputs import check_inputs, check_loan_ids, load_inputs
from .market import check_business_date
from .schema import ACTIVE_STATUSES
from .solver import DEFAULT_STRATEGY, STRATEGIES
from .steps import BESIDE, STEPS

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
    loan_ids: list[str] | None = None  # a subset of the tenant's loans, None: all (kept in input_loan_ids_json)

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
        if self.loan_ids is not None and not self.loan_ids:
            raise UsageError("loan_ids is empty: leave it out to run the whole pipeline")

    def stored(self) -> dict[str, Any]:
        """The options_json of the run row (the loan subset has its own column)."""
        return {"strategy": self.strategy, "keep_runs": self.keep_runs, "as_of": self.as_of}

    @classmethod
    def of_run(cls, run: dict[str, Any]) -> RunOptions:
        """The options a run row was submitted with."""
        stored = json.loads(run["options_json"] or "{}")
        as_of = stored.get("as_of")
        return cls(tenant=run["tenant_id"], scoring=run["scoring"], strategy=stored.get("strategy", DEFAULT_STRATEGY),
                   keep_runs=stored.get("keep_runs") or runs.DEFAULT_KEEP_RUNS,
                   as_of=date.fromisoformat(as_of) if as_of else None,
                   loan_ids=json.loads(run["input_loan_ids_json"]) if run.get("input_loan_ids_json") else None)


SCORINGS = ("price", "price_carry")


def _quiet(_message: str) -> None:
    pass


def submit_run(engine: sa.Engine, options: RunOptions, *, queued: bool = False,
               before_insert: Callable[[sa.Connection], None] | None = None, requested_by: str | None = None) -> str:
    """Check the options and the tenant's inputs, clear runs whose process stopped, and write the
    Pending run row (BR-8: ConflictError when the tenant has an active run). Returns the run id.

    Options no run can honour, a tenant with no loans or no open trades and unknown loan ids are
    refused before a run is recorded (UsageError, inputs.InputError)."""
    options.check()
    runs.heartbeat_seconds()  # settings from the environment are checked before a run exists
    runs.reconcile(engine, options.tenant)
    with engine.connect() as conn:
        check_inputs(conn, options.tenant)
        if options.loan_ids is not None:
            check_loan_ids(conn, options.tenant, options.loan_ids)
    return runs.create_run(engine, options.tenant, options.scoring, options.stored(), loan_ids=options.loan_ids,
                           queued=queued, before_insert=before_insert, requested_by=requested_by)


def execute_run(engine: sa.Engine, options: RunOptions, progress: Progress = _quiet) -> dict[str, Any]:
    """Submit a run and execute it in this process. Returns the run row (the pfill_run_history
    columns, plus `rows_written` per table).

    Raises what submit_run raises, RunWasCancelled when a cancel was requested, and RunFailed when a
    step raised (the run is then recorded as Failed, BR-9 applied)."""
    run_id = submit_run(engine, options)
    return _execute(engine, run_id, options, progress)


def execute_queued(engine: sa.Engine, run_id: str, worker: str, progress: Progress = _quiet) -> dict[str, Any] | None:
    """Claim a queued run and execute it; None when it was not there to claim (another executor has
    it, or it was cancelled while it waited). Raises as execute_run does."""
    if not runs.claim_run(engine, run_id, worker):
        return None
    return _execute(engine, run_id, RunOptions.of_run(runs.get_run(engine, run_id)), progress)


def _execute(engine: sa.Engine, run_id: str, options: RunOptions, progress: Progress) -> dict[str, Any]:
    """Run the six steps of a claimed run and finish it (Complete, Cancelled or Failed)."""
    progress(f"run {run_id} (tenant {options.tenant}, scoring {options.scoring})")
    ctx = RunContext(engine=engine, run_id=run_id, tenant=options.tenant, scoring=options.scoring,
                     strategy=options.strategy, as_of=options.as_of or date.today(),
                     checkpoint=runs.cancel_checkpoint(engine, run_id))
    tracker = _Tracker(ctx, progress, loan_ids=options.loan_ids)
    with runs.Heartbeat(engine, run_id):
        try:
            tracker.run_steps()
        except runs.RunCancelled:
            raise tracker.cancelled() from None
        except Exception as exc:
            raise tracker.failed(exc) from exc
    try:
        tracker.complete(options.strategy)
    except Exception as exc:  # recording the end failed: never leave the run active (it would block BR-8)
        if runs.get_run(engine, run_id)["status"] in ACTIVE_STATUSES:
            raise tracker.failed(exc) from exc
        raise
    removed = runs.apply_retention(engine, options.tenant, options.keep_runs)
    if removed:
        progress(f"  retention: removed the output of {len(removed)} old run(s) (their history and log stay), "
                 f"keeping {options.keep_runs}")
    result = runs.get_run(engine, run_id)
    result["rows_written"] = ctx.rows_written
    return result


@dataclass
class _Tracker:
    """One run's progress through the steps: the current step and status, and seconds per step."""

    ctx: RunContext
    progress: Progress
    loan_ids: list[str] | None = None
    current: str = "load_inputs"
    status: str = "Pending"
    step_seconds: dict[str, float] = field(default_factory=dict)
    beside: dict[str, Beside] = field(default_factory=dict)  # steps running in a process of their own

    def run_steps(self) -> None:
        ctx = self.ctx
        runs.update_run(ctx.engine, ctx.run_id, status="PreProcessing", started_at=utcnow(),
                        current_step=self.current)
        self.status = "PreProcessing"
        started = time.monotonic()
        with ctx.engine.connect() as conn:
            ctx.inputs = load_inputs(conn, ctx.tenant, self.loan_ids)
        self.step_seconds[self.current] = round(time.monotonic() - started, 3)
        self.progress(f"  {self.current:<13} {self.step_seconds[self.current]:7.2f}s  {ctx.inputs.n_loans} loans, "
                      f"{ctx.inputs.n_trades} trades")
        try:
            for name, step_status, step_fn in STEPS:
                if name in self.beside:
                    self.join_beside(name, step_status)
                else:
                    self.run_step(name, step_status, step_fn)
                self.start_beside(after=name)
        finally:  # a failure or a cancel: a step beside and the writes in flight end before the run records it
            for side in self.beside.values():
                side.stop()
            ctx.close_writes()
        self.current = "finish"
        _test_fault("finish", ctx.checkpoint)
        ctx.checkpoint()

    def enter(self, name: str, step_status: str) -> None:
        """A step's turn: check for cancel, then record the step (and the run's status when it changes)."""
        ctx = self.ctx
        self.current = name
        ctx.checkpoint()
        values: dict[str, Any] = {"current_step": name, "heartbeat_at": utcnow()}
        if step_status != self.status:
            values["status"] = self.status = step_status
        runs.update_run(ctx.engine, ctx.run_id, **values)

    def run_step(self, name: str, step_status: str, step_fn: Callable[[RunContext], None]) -> None:
        ctx = self.ctx
        self.enter(name, step_status)
        ctx.log(name, "step_start", f"{name} started")
        started = time.monotonic()
        _test_fault(name, ctx.checkpoint)
        step_fn(ctx)
        ctx.settle_writes()  # a step is done when its rows are written
        self.step_seconds[name] = round(time.monotonic() - started, 3)
        ctx.log(name, "step_end", f"{name} done in {self.step_seconds[name]:.3f}s")
        self.progress(f"  {name:<13} {self.step_seconds[name]:7.2f}s")

    def start_beside(self, after: str) -> None:
        """Start the steps that may run beside the rest once `after` is done (large runs only)."""
        ctx = self.ctx
        for name, needs in BESIDE.items():
            if needs == after and can_run_beside(ctx):
                step_fn = next(fn for step, _, fn in STEPS if step == name)

                def work(mine: RunContext, name: str = name,
                         step_fn: Callable[[RunContext], None] = step_fn) -> None:
                    _test_fault(name, mine.checkpoint)
                    step_fn(mine)

                ctx.log(name, "step_start", f"{name} started beside the steps after {after}")
                self.beside[name] = Beside.start(ctx, name, work)

    def join_beside(self, name: str, step_status: str) -> None:
        """A step's turn when it runs beside: wait for it and record it as run_step does."""
        ctx = self.ctx
        self.enter(name, step_status)
        waited = time.monotonic()
        self.step_seconds[name] = self.beside[name].wait()
        waited = time.monotonic() - waited
        ctx.log(name, "step_end", f"{name} done in {self.step_seconds[name]:.3f}s beside the run "
                                  f"(waited {waited:.3f}s for it)")
        self.progress(f"  {name:<13} {self.step_seconds[name]:7.2f}s  beside the run (waited {waited:.2f}s)")

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
