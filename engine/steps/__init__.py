"""The six pipeline steps, in order. Each is `run(ctx: RunContext) -> None`: it reads the inputs and
the typed outputs of earlier steps (`ctx.cash`, `ctx.pricing`, `ctx.candidates`, `ctx.allocation`; see
state.py), sets its own, and writes its output tables."""

from __future__ import annotations

from collections.abc import Callable

from ..context import RunContext
from . import allocation, candidates, cash_grid, pool_guide, settle_price, synthetic

# (step name, run status while it runs, function)
STEPS: list[tuple[str, str, Callable[[RunContext], None]]] = [
    ("cash_grid", "PreProcessing", cash_grid.run),
    ("settle_price", "PreProcessing", settle_price.run),
    ("candidates", "Allocating", candidates.run),
    ("allocation", "Allocating", allocation.run),
    ("pool_guide", "PostProcessing", pool_guide.run),
    ("synthetic", "PostProcessing", synthetic.run),
]
STEP_NAMES = [name for name, _, _ in STEPS]
# steps that need nothing after the named step: in a large run they start once it is done and run
# beside the steps between (engine/beside.py); the run waits for them at their own turn
BESIDE = {"synthetic": "settle_price"}
