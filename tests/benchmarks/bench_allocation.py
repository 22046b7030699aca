"""Allocation benchmark: the `optimal` strategy against its LP bound and the staged greedy, same instance.

    .venv/bin/python tests/benchmarks/bench_allocation.py [--sizes 1000:10,10000:100,100000:1000]

Per size (demo data, SQLite): one end-to-end `pfill run` with each strategy (total seconds, allocation
step seconds), then a table: objective value, LP bound, gap %, trades filled inside tolerance, value
over the greedy. Targets: gap <= 0.1% at 10k and <= 0.5% at 100k; 10k run <= 10 s, 100k run <= 60 s;
value >= greedy and trades filled >= greedy on every instance.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date

from pfill.database import open_database
from pfill.engine import demo_data
from pfill.engine.db import init_schema
from pfill.engine.pipeline import RunOptions, execute_run

AS_OF = date(2025, 3, 3)


def run_once(url: str, strategy: str) -> dict:
    started = time.monotonic()
    run = execute_run(open_database(url), RunOptions(tenant="bench", strategy=strategy, as_of=AS_OF))
    run["wall_seconds"] = time.monotonic() - started
    run["allocation_seconds"] = json.loads(run["step_seconds_json"])["allocation"]
    return run


def bench(loans: int, trades: int) -> list[str]:
    url = f"sqlite:///{tempfile.mkdtemp(prefix='pfill-bench-alloc-')}/bench.db"
    engine = open_database(url)
    init_schema(engine)
    demo_data.replace_tenant_inputs(engine, "bench", demo_data.generate(loans, trades, 42, AS_OF))
    optimal, greedy = run_once(url, "optimal"), run_once(url, "greedy")
    engine.dispose()
    rows = []
    for name, run in (("optimal", optimal), ("greedy", greedy)):
        gap = "" if run["gap_pct"] is None else f"{run['gap_pct']:.4f}"
        bound = "" if run["lp_bound"] is None else f"{run['lp_bound']:,.0f}"
        solver = "" if run["solver_seconds"] is None else f"{run['solver_seconds']:.2f}"
        rows.append(f"| {loans:>7} | {trades:>5} | {name:<7} | {run['wall_seconds']:7.2f} | "
                    f"{run['allocation_seconds']:7.2f} | {solver:>6} | {run['objective_value']:>17,.0f} | "
                    f"{bound:>17} | {gap:>8} | {run['trades_filled_in_tolerance']:>4}/{run['trade_count']:<4} | "
                    f"{run['objective_value'] - greedy['objective_value']:>+12,.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000:10,10000:100,100000:1000", help="loans:trades,...")
    args = parser.parse_args()
    print("| loans   | trades| strategy| run s   | alloc s | LP s   | objective $       | LP bound $        | gap %    "
          "| filled    | vs greedy $  |")
    print("|---------|-------|---------|---------|---------|--------|-------------------|-------------------|----------"
          "|-----------|--------------|")
    for size in args.sizes.split(","):
        loans, trades = (int(x) for x in size.split(":"))
        for row in bench(loans, trades):
            print(row, flush=True)


if __name__ == "__main__":
    main()
