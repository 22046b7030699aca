"""The allocation solver: which loan goes into which trade, as arrays in and arrays out.

    result = allocate(problem, "optimal")      # or "greedy"; see STRATEGIES

- problem.py     AllocationProblem (loans, trades in groups, options: the (loan, group) pairs), TradeLimits,
                 AllocationResult, build_result, PASS_* codes, EPS
- greedy.py      the staged greedy (setup, first pass by stage, orphan sweep, substitution): the reference
- optimal.py     LP relaxation (HiGHS) + rounding + repair + packing, and the exact MIP (HiGHS branch and
                 bound) on components small enough to prove, with a true bound; built from objective.py
                 (what an allocation is worth), buckets.py (interchangeable loans), components.py
                 (independent blocks), lp_model.py (the LP), rounding.py, repair.py, pack.py (knapsack
                 per trade), mip.py (the MIP)

Imports point one way: this module imports the strategies; no solver module imports this one or
anything of the engine above the solver (only the leaf `pfill.engine.reasons` codes).
"""

from __future__ import annotations

from collections.abc import Callable

from . import greedy, objective, optimal
from .problem import (
    EPS,
    PASS_LOCKED,
    PASS_NAMES,
    AllocationProblem,
    AllocationResult,
    TradeLimits,
    build_result,
)

Strategy = Callable[[AllocationProblem], AllocationResult]
STRATEGIES: dict[str, Strategy] = {"greedy": greedy.greedy, "optimal": optimal.optimal}
DEFAULT_STRATEGY = "optimal"

__all__ = ["DEFAULT_STRATEGY", "EPS", "PASS_LOCKED", "PASS_NAMES", "STRATEGIES", "AllocationProblem",
           "AllocationResult", "Strategy", "TradeLimits", "allocate", "build_result"]


def allocate(problem: AllocationProblem, strategy: str = DEFAULT_STRATEGY) -> AllocationResult:
    """Solve `problem` with a named strategy; every result's stats carry its objective value (objective.py)."""
    try:
        solve = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown allocation strategy {strategy!r}; known: {', '.join(STRATEGIES)}") from None
    result = solve(problem)
    result.stats.setdefault("objective_value", round(objective.evaluate(problem, result.loan_trade).objective, 2))
    return result
