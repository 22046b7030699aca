"""Running the pipeline: statuses as it goes, seconds per step, counters, cancel and failure handling.

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
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from pfill.errors import PfillError

from . import runs
from .allocator import DEFAULT_STRATEGY
from .context import RunContext, utcnow
from .inputs import load_inputs
from .steps import STEPS


class RunFailed(PfillError):
    pass


class RunWasCancelled(PfillError):
    pass


@dataclass
class RunOptions:
    tenant: str
    scoring: str = "price"
    strategy: str = DEFAULT_STRATEGY
    keep_runs: int = runs.DEFAULT_KEEP_RUNS
    as_of: date | None = None


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


def execute_run(engine: sa.Engine, options: RunOptions,
                progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Reconcile dead runs, start a run (BR-8), run the six steps, finish it. Returns the run row."""
    runs.reconcile(engine, options.tenant)
    run_id = runs.create_run(engine, options.tenant, options.scoring,
                             {"strategy": options.strategy, "keep_runs": options.keep_runs,
                              "as_of": options.as_of})
    progress(f"run {run_id} (tenant {options.tenant}, scoring {options.scoring})")

    def checkpoint() -> None:
        if runs.cancel_requested(engine, run_id):
            raise runs.RunCancelled()

    ctx = RunContext(engine=engine, run_id=run_id, tenant=options.tenant, scoring=options.scoring,
                     strategy=options.strategy, as_of=options.as_of or date.today(), checkpoint=checkpoint)
    step_seconds: dict[str, float] = {}
    current = "load_inputs"
    status = "Pending"
    with runs.Heartbeat(engine, run_id):
        try:
            runs.update_run(engine, run_id, status="PreProcessing", started_at=utcnow(), current_step=current)
            status = "PreProcessing"
            started = time.monotonic()
            with engine.connect() as conn:
                ctx.inputs = load_inputs(conn, options.tenant)
            step_seconds[current] = round(time.monotonic() - started, 3)
            progress(f"  {current:<13} {step_seconds[current]:7.2f}s  {ctx.inputs.n_loans} loans, "
                     f"{ctx.inputs.n_trades} trades")
            for name, step_status, step_fn in STEPS:
                current = name
                checkpoint()
                values: dict[str, Any] = {"current_step": name, "heartbeat_at": utcnow()}
                if step_status != status:
                    values["status"] = status = step_status
                runs.update_run(engine, run_id, **values)
                ctx.log(name, "step_start", f"{name} started")
                started = time.monotonic()
                _sleep_checking(_test_delay(name), checkpoint)
                if os.environ.get("PFILL_TEST_FAIL_STEP") == name:
                    raise RuntimeError(f"injected failure in {name} (PFILL_TEST_FAIL_STEP)")
                step_fn(ctx)
                step_seconds[name] = round(time.monotonic() - started, 3)
                ctx.log(name, "step_end", f"{name} done in {step_seconds[name]:.3f}s")
                progress(f"  {name:<13} {step_seconds[name]:7.2f}s")
            current = "finish"
            if os.environ.get("PFILL_TEST_FAIL_STEP") == current:
                raise RuntimeError("injected failure after the last step (PFILL_TEST_FAIL_STEP=finish)")
            checkpoint()
        except runs.RunCancelled:
            runs.finish_run(engine, run_id, options.tenant, "Cancelled", failure_step=current,
                            failure_message="cancelled by request", step_seconds_json=json.dumps(step_seconds))
            raise RunWasCancelled(f"run {run_id} was cancelled during {current}") from None
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"[:2000]
            ctx.log(current, "error", message, level="ERROR")
            runs.finish_run(engine, run_id, options.tenant, "Failed", failure_step=current,
                            failure_message=message, step_seconds_json=json.dumps(step_seconds))
            raise RunFailed(f"run {run_id} failed in step {current}: {message}") from exc
    summary = {k: v for k, v in ctx.counters.items() if isinstance(v, (int, float))}
    response = {"counters": ctx.counters, "step_seconds": step_seconds, "rows_written": ctx.rows_written}
    flat = {k: ctx.counters.get(k) for k in (
        "loans_considered", "candidate_count", "allocated_loan_count", "allocated_upb", "kickout_count",
        "cash_loan_count", "trade_count", "trades_filled_in_tolerance", "total_value", "objective_value",
        "lp_bound", "gap_pct", "solver_seconds")}
    flat["strategy"] = options.strategy
    ctx.log("run", "counters", "summary counters", **summary)
    runs.finish_run(engine, run_id, options.tenant, "Complete", current_step=None,
                    step_seconds_json=json.dumps(step_seconds), response_json=json.dumps(response, default=str),
                    **flat)
    removed = runs.apply_retention(engine, options.tenant, options.keep_runs)
    if removed:
        progress(f"  retention: removed {len(removed)} old run(s), keeping {options.keep_runs}")
    result = runs.get_run(engine, run_id)
    result["rows_written"] = ctx.rows_written
    return result
