"""Whether a process on this host is alive: one answer for the local Superset and the engine's runs."""

from __future__ import annotations

import os


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
