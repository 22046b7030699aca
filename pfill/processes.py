"""Whether a process on this host is alive, and whether a server answers its health check: one answer
for the local Superset, the run service and the engine's runs; and giving a long-lived process's freed
memory back."""

from __future__ import annotations

import contextlib
import ctypes
import os
import time


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and has not exited; a zombie (exited, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # the state follows the command name, which is in parentheses and may hold spaces
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): existence is all we can tell


def wait_until_healthy(url: str, timeout: float, interval: float = 1.0) -> bool:
    """Poll `<url>/health` until it answers OK or the timeout passes."""
    import requests  # only the commands that wait for a server pay for it

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url.rstrip('/')}/health", timeout=5).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(interval)
    return False


def release_free_memory() -> None:
    """Give the heap's free pages back to the system. glibc keeps what a process freed: after a run of
    100k loans about 130 MiB (up to 400 MiB after runs of several sizes) that a server or a worker would
    hold until its next run, and that a fork would share. A few milliseconds; nothing off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
