"""Fast bulk writes of column arrays: sqlite3 executemany, PostgreSQL COPY, executemany elsewhere."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

BATCH_ROWS = 100_000


def _as_list(values: Any) -> list[Any]:
    """Python values every driver takes: dates as ISO text, booleans as 0/1, NaN as None."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":  # a few distinct dates in a long column: format each once
            distinct, index = np.unique(values.astype("datetime64[D]"), return_inverse=True)
            text = np.array([None if t == "NaT" else t for t in np.datetime_as_string(distinct, unit="D").tolist()],
                            dtype=object)
            return text[index.reshape(-1)].tolist()
        if values.dtype.kind == "b":
            return values.astype(np.int8).tolist()
        if values.dtype.kind == "f":
            missing = np.isnan(values)
            if not missing.any():
                return values.tolist()
            boxed = values.astype(object)
            boxed[missing] = None
            return boxed.tolist()
        return values.tolist()
    return list(values)


def insert_columns(conn: sa.Connection, table: sa.Table, columns: Mapping[str, Any], constants:
                   Mapping[str, Any] | None = None) -> int:
    """Insert rows given as equal-length columns (plus constant columns such as run_id)."""
    names = list(columns)
    dialect = conn.dialect.name
    lists = [_as_list(columns[n]) for n in names]
    n_rows = len(lists[0]) if lists else 0
    if n_rows == 0:
        return 0
    for name, value in (constants or {}).items():
        names.append(name)
        lists.append([value.isoformat() if isinstance(value, date) else value] * n_rows)
    rows = list(zip(*lists, strict=True))
    if dialect == "postgresql":
        _copy(conn, table, names, rows)
    elif dialect == "sqlite":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        for start in range(0, n_rows, BATCH_ROWS):
            cursor.executemany(sql, rows[start:start + BATCH_ROWS])
        cursor.close()
    else:
        for start in range(0, n_rows, BATCH_ROWS):
            conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in rows[start:start + BATCH_ROWS]])
    return n_rows


def _copy(conn: sa.Connection, table: sa.Table, names: Sequence[str], rows: list[tuple]) -> None:
    """One COPY for all rows, its CSV made as the server reads it: the server parses and indexes one chunk
    while this process formats the next."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)"
    cursor.copy_expert(sql, _CsvStream(rows), size=COPY_CHUNK)
    cursor.close()


COPY_CHUNK = 1 << 20  # characters the server is sent at a time


class _CsvStream:
    """A read-only text stream of `rows` as CSV, formatted chunk by chunk as it is read."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows, self.pos = rows, 0
        self.out = io.StringIO()
        self.writer = csv.writer(self.out)
        self.pending = ""
        self.step = 1000

    def read(self, size: int = -1) -> str:
        want = COPY_CHUNK if size is None or size < 0 else size
        while len(self.pending) < want and self.pos < len(self.rows):
            self.writer.writerows(self.rows[self.pos:self.pos + self.step])
            self.pos += self.step
            self.pending += self.out.getvalue()
            self.out.seek(0)
            self.out.truncate()
        data, self.pending = self.pending[:want], self.pending[want:]
        return data

    def readline(self, size: int = -1) -> str:  # not used by COPY FROM STDIN, present for file-likeness
        return self.read(size)
