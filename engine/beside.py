"""Work that needs only what the run already has runs in a process of its own, beside the rest.

Two pieces of a large run need nothing the allocation makes: the synthetic step (the loans, the trades,
the pay-ups of settle_price) and the candidate tables (the candidates). They run beside the main line
instead of after it: with a second core free their time is hidden, with none it costs what it did in
line. The main line is the run's critical path, so the work beside runs at a lower priority.

    side = Beside.start(ctx, "synthetic", work)   # the steps go on
    seconds = side.wait()                         # where its result is due: its counters and rows join ctx

The process is a fork of the run's (it has the inputs without copying them) with a database
connection of its own; it writes only its own tables. It dies with the run's process, and the run
stops it (and waits until it is gone) before it records a failure or a cancel, so no row of it lands
after BR-9's cleanup. Small runs, in-memory SQLite and systems other than Linux run it all in line.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable

from pfill.database import open_database, sqlite_file
from pfill.errors import PfillError
from pfill.processes import release_free_memory

from . import runs
from .context import RunContext

BESIDE_MIN_LOANS = 20_000  # below this a fork and a second connection cost more than the work itself
NICENESS = 5  # the work beside yields a busy core to the main line, which every later step waits for
# the page cache of a SQLite connection beside, in KiB (the run's own has 64 MiB, for its index inserts
# on the critical path): with two processes beside, full caches were a fifth of a 100k run's memory
BESIDE_SQLITE_CACHE_KIB = 16_384
_PR_SET_PDEATHSIG = 1


class BesideFailed(PfillError):
    """The work failed in its own process: the message is the one it would have raised in line."""


def can_run_beside(ctx: RunContext) -> bool:
    """Whether the run is large enough, and its database and system able, to run a step beside."""
    assert ctx.inputs is not None
    in_memory = ctx.engine.dialect.name == "sqlite" and sqlite_file(str(ctx.engine.url)) is None
    # Linux only: its fork is safe with numpy's BLAS (macOS's Accelerate is not) and has PR_SET_PDEATHSIG
    return sys.platform.startswith("linux") and not in_memory and ctx.inputs.n_loans >= BESIDE_MIN_LOANS


@dataclasses.dataclass
class Beside:
    """Work running in a child process; `wait` for its answer or `stop` it."""

    ctx: RunContext
    name: str
    pid: int
    answer_fd: int
    done: bool = False

    @classmethod
    def start(cls, ctx: RunContext, name: str, work: Callable[[RunContext], None]) -> Beside:
        """Fork a process that runs `work` (a step with its test hooks, or a step's writes) on a copy of
        `ctx` with its own database engine, counters and rows written."""
        release_free_memory()  # (the fork would share the freed pages the heap still holds)
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child(ctx, work, write_fd, parent)
        os.close(write_fd)
        return cls(ctx=ctx, name=name, pid=pid, answer_fd=read_fd)

    def wait(self) -> float:
        """Wait for the work's end; its counters and rows join the run's. Returns its seconds. Raises
        RunCancelled when it saw a cancel, BesideFailed when it failed or its process died."""
        with os.fdopen(self.answer_fd, "rb") as pipe:
            raw = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        self.done = True
        try:
            answer = json.loads(raw)
        except ValueError:
            how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit code {os.waitstatus_to_exitcode(status)}")
            raise BesideFailed(f"{self.name}: its process beside the run ended without an answer ({how})",
                               hint="run it again; if it recurs, check the machine's memory") from None
        if answer["status"] == "cancelled":
            raise runs.RunCancelled()
        if answer["status"] == "failed":
            raise BesideFailed(answer["message"], hint=answer.get("hint"))
        self.ctx.counters.update(answer["counters"])
        for table, n in answer["rows_written"].items():
            self.ctx.rows_written[table] = self.ctx.rows_written.get(table, 0) + n
        return float(answer["seconds"])

    def stop(self) -> None:
        """Kill the process (its open transaction rolls back) and wait until it is gone; nothing when it
        has ended. SIGKILL: a run's process may have its own SIGTERM handler, which a fork inherits."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):  # already closed when wait() was interrupted while reading
            os.close(self.answer_fd)


def _child(ctx: RunContext, work: Callable[[RunContext], None], answer_fd: int, parent: int) -> None:
    """Run the step and write one JSON answer; leave with os._exit (no finalizer of the parent's
    objects may run here: its connections are the parent's)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with(parent)
        os.nice(NICENESS)
        os.write(answer_fd, json.dumps(_answer(ctx, work), default=str).encode())
        code = 0
    finally:
        os._exit(code)


def _answer(ctx: RunContext, work: Callable[[RunContext], None]) -> dict:
    """The step's outcome: done (seconds, counters, rows written), cancelled, or failed with the message
    the run would have recorded in line."""
    started, engine = time.monotonic(), None
    try:
        engine = open_database(ctx.engine.url.render_as_string(hide_password=False), fresh=True,
                               sqlite_cache_kib=BESIDE_SQLITE_CACHE_KIB)
        mine = dataclasses.replace(ctx, engine=engine, checkpoint=runs.cancel_checkpoint(engine, ctx.run_id),
                                   counters={}, rows_written={}, write_threads=1,  # one server process at a time
                                   _write_pool=None, _writes=[])  # (the parent's threads are not here)
        try:
            work(mine)
            mine.settle_writes()
        finally:
            mine.close_writes()
        return {"status": "done", "seconds": round(time.monotonic() - started, 3), "counters": mine.counters,
                "rows_written": mine.rows_written}
    except runs.RunCancelled:
        return {"status": "cancelled"}
    except Exception as exc:
        text = str(exc) if isinstance(exc, PfillError) else f"{type(exc).__name__}: {exc}"
        return {"status": "failed", "message": text, "hint": getattr(exc, "hint", None)}
    finally:
        if engine is not None:
            engine.dispose()


def _die_with(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (a killed run leaves no writer behind)."""
    with contextlib.suppress(OSError, AttributeError):  # a libc without prctl: the parent's stop() is the guard
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took hold
        os._exit(1)
