"""Whether a process on this host is alive, and whether a server answers its health check: one answer
for the local Superset, the run service and the engine's runs."""

from __future__ import annotations

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
