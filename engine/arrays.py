"""Index helpers on numpy arrays that the solver and the writers share."""

from __future__ import annotations

import numpy as np


def ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The concatenated index ranges [start[i], start[i] + count[i]), in order."""
    count = np.asarray(count, dtype=np.int64)
    ends = np.cumsum(count)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(np.asarray(start, dtype=np.int64) - (ends - count), count) + np.arange(total)
