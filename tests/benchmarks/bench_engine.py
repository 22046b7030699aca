"""End-to-end engine benchmark: demo data, then one run; seconds per step, rows/s, peak RSS.

    .venv/bin/python tests/benchmarks/bench_engine.py [--sizes 10000:200,100000:1000] [--db sqlite|postgresql]

PostgreSQL uses a throw-away database on PFILL_TEST_PG_URL (default postgres@127.0.0.1:5432).
Targets: 10k loans <= 5 s, 100k loans <= 60 s, peak RSS <= 2 GiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from datetime import date

import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import demo_data
from pfill.engine.db import init_schema
from pfill.engine.pipeline import RunOptions, execute_run

PG_ADMIN = os.environ.get("PFILL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _database(kind: str) -> tuple[str, callable]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="pfill-bench-")
        return f"sqlite:///{folder}/bench.db", lambda: None
    name = f"pfill_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def bench(kind: str, loans: int, trades: int) -> None:
    url, drop = _database(kind)
    try:
        engine = open_database(url)
        init_schema(engine)
        started = time.monotonic()
        demo_data.replace_tenant_inputs(engine, "bench", demo_data.generate(loans, trades, 42, date(2025, 3, 3)))
        load = time.monotonic() - started
        started = time.monotonic()
        run = execute_run(engine, RunOptions(tenant="bench", as_of=date(2025, 3, 3)))
        total = time.monotonic() - started
        rows = sum(run["rows_written"].values())
        import json

        steps = json.loads(run["step_seconds_json"])
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{kind:<10} {loans:>7} loans {trades:>5} trades  run {total:6.2f}s  (demo data {load:5.2f}s)  "
              f"rows {rows:>8} = {rows / total:>9,.0f} rows/s  peak RSS {rss_mib:,.0f} MiB")
        print("           steps: " + "  ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
        print(f"           allocated {run['allocated_loan_count']}, cash {run['cash_loan_count']}, kicked out "
              f"{run['kickout_count']}, trades in tolerance {run['trades_filled_in_tolerance']}/{run['trade_count']},"
              f" candidates {run['candidate_count']}")
    finally:
        open_database(url).dispose()
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000:200,100000:1000", help="loans:trades,...")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for size in args.sizes.split(","):
        loans, trades = (int(x) for x in size.split(":"))
        for kind in kinds:
            bench(kind, loans, trades)


if __name__ == "__main__":
    main()
