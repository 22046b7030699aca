"""End-to-end engine benchmark: demo data, then one run; seconds per step, rows/s, peak RSS, and how the
run time grows from the small size to the large one.

    .venv/bin/python tests/benchmarks/bench_engine.py [--sizes 10000:200,100000:1000] [--db sqlite|postgresql|both]
                                                      [--rounds 3]

Every round runs every size on every database in turn (interleaved, each run on a fresh database with
fresh demo data), so machine noise spreads over all of them; the figures are medians over the rounds.
Memory is measured in one more round of its own (see MemorySampler): its sampling costs about a second
of CPU in a 100k run, which the timed rounds must not carry. PostgreSQL uses a throw-away database on
PFILL_TEST_PG_URL (default postgres@127.0.0.1:5432).

Targets: the largest size (100k loans / 1,000 trades) end to end <= 20 s on SQLite and on PostgreSQL,
peak memory <= 1 GiB (the run's process and the forks beside it together: see MemorySampler),
and time(largest) / time(smallest) <= 12 (printed with and without the MIP's seconds: the MIP gets a
time per loan of the components small enough to prove, so it is the part of a small run that a large
one, made of large components, mostly does not have). Beside the seconds, the CPU seconds of this
process during the run: on a busy machine the wall time waits for a core, the CPU time does not
(PostgreSQL's own work is in the server, not counted there).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import demo_data
from pfill.engine.db import init_schema
from pfill.engine.pipeline import RunOptions, execute_run
from pfill.processes import release_free_memory

PG_ADMIN = os.environ.get("PFILL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AS_OF = date(2025, 3, 3)
TARGET_SECONDS, TARGET_RSS_MIB, TARGET_RATIO = 20.0, 1024.0, 12.0


def _database(kind: str) -> tuple[str, Callable[[], None]]:
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
        admin.dispose()

    return sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


class MemorySampler:
    """The peak memory of one run: the run's process and the forks beside it together, as the sum of
    their PSS (smaps_rollup: a page shared by the three counts a third in each, so the sum is the
    memory they hold), sampled every 100 ms; and the exact peak RSS of the run's process alone (VmHWM,
    reset before the run through /proc/self/clear_refs), which bounds the sum from below. A fork's own
    RSS counts the pages it shares with the run: adding the peaks of RSS over-counts. Each sample costs
    about a millisecond per 500 MB held (the kernel walks the processes' pages), so `sample=False`
    keeps only the exact peak of the run's process, for the timed rounds."""

    INTERVAL = 0.1

    def __init__(self, sample: bool = True) -> None:
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True) if sample else None

    def __enter__(self) -> MemorySampler:
        Path("/proc/self/clear_refs").write_text("5")
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_mib = max(self.peak_mib, self.peak_rss_mib())

    @staticmethod
    def peak_rss_mib() -> float:
        return _kib(Path("/proc/self/status"), "VmHWM:") / 1024

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.INTERVAL):
            forks = [c for task in Path(f"/proc/{me}/task").iterdir() for c in _read(task / "children").split()]
            kib = sum(_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") for pid in [me, *forks])
            self.peak_mib = max(self.peak_mib, kib / 1024)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process or thread ended between the listing and the read
        return ""


def _kib(path: Path, key: str) -> int:
    return next((int(line.split()[1]) for line in _read(path).splitlines() if line.startswith(key)), 0)


def bench(kind: str, loans: int, trades: int, sample_memory: bool = False) -> dict:
    """One run on a fresh database: seconds, steps, rows, the run's counters; with `sample_memory` the
    peak memory of the run and its forks too (MemorySampler; its sampling slows the run)."""
    url, drop = _database(kind)
    try:
        engine = open_database(url)
        init_schema(engine)
        started = time.monotonic()
        demo_data.replace_tenant_inputs(engine, "bench", demo_data.generate(loans, trades, 42, AS_OF))
        load = time.monotonic() - started
        gc.collect()  # the demo data's pages back to the system: the run starts as in a fresh `pfill run`
        release_free_memory()
        with MemorySampler(sample_memory) as memory:
            started, cpu = time.monotonic(), time.process_time()
            run = execute_run(engine, RunOptions(tenant="bench", as_of=AS_OF))
            total, cpu = time.monotonic() - started, time.process_time() - cpu
        engine.dispose()
        counters = json.loads(run["response_json"])["counters"]
        return {"kind": kind, "loans": loans, "trades": trades, "seconds": total, "cpu": cpu, "demo_data": load,
                "steps": json.loads(run["step_seconds_json"]), "rows": sum(run["rows_written"].values()),
                "run": run, "mip": float(counters.get("mip_seconds") or 0.0),
                "rss_mib": memory.peak_rss_mib(), "pss_mib": memory.peak_mib,
                "beside_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000:200,100000:1000", help="loans:trades,...")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    sizes = [tuple(int(x) for x in size.split(":")) for size in args.sizes.split(",")]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    results: dict[tuple[str, int], list[dict]] = {}
    for r in range(args.rounds):
        for loans, trades in sizes:
            for kind in kinds:
                res = bench(kind, loans, trades)
                results.setdefault((kind, loans), []).append(res)
                print(f"round {r + 1}: {kind:<10} {loans:>7} loans {trades:>5} trades  run {res['seconds']:6.2f}s "
                      f"(CPU {res['cpu']:.2f}s, MIP {res['mip']:.2f}s)  peak RSS {res['rss_mib']:,.0f} MiB  "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
    memory = []
    for loans, trades in sizes:
        for kind in kinds:
            memory.append(bench(kind, loans, trades, sample_memory=True))
            print(f"memory:  {kind:<10} {loans:>7} loans {trades:>5} trades  peak {memory[-1]['pss_mib']:,.0f} MiB "
                  f"with the forks beside, the run's process {memory[-1]['rss_mib']:,.0f} MiB  (run "
                  f"{memory[-1]['seconds']:.2f}s while sampled, not timed)", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    for (kind, loans), runs in results.items():
        med = statistics.median(x["seconds"] for x in runs)
        last = runs[-1]
        run = last["run"]
        steps = {k: statistics.median(x["steps"][k] for x in runs) for k in last["steps"]}
        print(f"{kind:<10} {loans:>7} loans {last['trades']:>5} trades  run {med:6.2f}s median of {len(runs)} "
              f"(min {min(x['seconds'] for x in runs):.2f}, max {max(x['seconds'] for x in runs):.2f}; CPU "
              f"{statistics.median(x['cpu'] for x in runs):.2f}s)  "
              f"rows {last['rows']:>8} = {last['rows'] / med:>9,.0f} rows/s  (demo data {last['demo_data']:5.2f}s)")
        print("           steps (median): " + "  ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
        print(f"           allocated {run['allocated_loan_count']}, cash {run['cash_loan_count']}, kicked out "
              f"{run['kickout_count']}, trades in tolerance {run['trades_filled_in_tolerance']}/{run['trade_count']},"
              f" candidates {run['candidate_count']}, gap {run['gap_pct']}%, solver {run['solver_seconds']}s "
              f"(MIP {statistics.median(x['mip'] for x in runs):.2f}s median)")
    print()
    small, large = sizes[0][0], sizes[-1][0]
    rss = max(x["rss_mib"] for x in [*memory, *(x for runs in results.values() for x in runs)])
    pss = max(x["pss_mib"] for x in memory)
    beside = max(x["beside_mib"] for x in memory)
    print(f"peak memory of a run {pss:,.0f} MiB (PSS of the run's process and its forks, sampled; target "
          f"<= {TARGET_RSS_MIB:,.0f}): {'met' if pss <= TARGET_RSS_MIB else 'NOT met'}; peak RSS of the run's process "
          f"{rss:,.0f} MiB, " + (f"of a fork {beside:,.0f} MiB (shared pages counted in both)" if beside
                                   else "no fork beside (every run was too small)"))
    for kind in kinds:
        big = statistics.median(x["seconds"] for x in results[(kind, large)])
        print(f"{kind:<10} {large} loans end to end {big:.2f}s (target <= {TARGET_SECONDS:.0f} s): "
              f"{'met' if big <= TARGET_SECONDS else 'NOT met'}")
        if small == large:
            continue
        # the ratio per round (each round's two sizes ran back to back), then the median
        pairs = list(zip(results[(kind, small)], results[(kind, large)], strict=True))
        ratio = statistics.median(b["seconds"] / a["seconds"] for a, b in pairs)
        bare = statistics.median((b["seconds"] - b["mip"]) / (a["seconds"] - a["mip"]) for a, b in pairs)
        print(f"{kind:<10} time at {large} / time at {small} = {ratio:.1f} (target <= {TARGET_RATIO:.0f}: "
              f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); without the MIP's seconds {bare:.1f}")


if __name__ == "__main__":
    main()
