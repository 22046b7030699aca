"""Fast bulk writes of column arrays: sqlite3 executemany, PostgreSQL COPY, executemany elsewhere.

On PostgreSQL the rows go as binary COPY, built from the numpy columns in bulk (no Python object per
value, no text for the server to parse); a column of a type or values that binary path does not know
sends the table as CSV instead."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date
from itertools import chain
from typing import Any

import numpy as np
import sqlalchemy as sa

from .arrays import ranges

BATCH_ROWS = 25_000  # rows per part: the Python values of one part at a time, not of the whole table


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
    if dialect == "postgresql":
        binary = _binary_fields(table, columns, constants or {})
        if binary is not None:
            if binary[1] == 0:
                return 0
            _copy_binary(conn, table, [*names, *(constants or {})], *binary)
            return binary[1]
    n_rows = len(columns[names[0]]) if names else 0
    if n_rows == 0:
        return 0
    constants = {k: v.isoformat() if isinstance(v, date) else v for k, v in (constants or {}).items()}
    if dialect == "postgresql":  # as CSV: the binary path cannot encode one of the values
        lists = [_as_list(columns[n]) for n in names] + [[v] * n_rows for v in constants.values()]
        _copy(conn, table, [*names, *constants], list(zip(*lists, strict=True)))
        return n_rows
    for start in range(0, n_rows, BATCH_ROWS):
        part = [_as_list(columns[n][start:start + BATCH_ROWS]) for n in names]
        if dialect == "sqlite":
            _sqlite_insert(conn, table.name, names, part, constants)
        else:
            conn.execute(table.insert(), [{**dict(zip(names, r, strict=True)), **constants}
                                          for r in zip(*part, strict=True)])
    return n_rows


SQLITE_ROWS_PER_STATEMENT = 200  # rows in one multi-row VALUES: a quarter less time than one row per statement


def _sqlite_insert(conn: sa.Connection, name: str, names: list[str], lists: list[list[Any]],
                   constants: Mapping[str, Any]) -> None:
    """Rows as multi-row INSERTs of SQLITE_ROWS_PER_STATEMENT rows (fewer statement steps per row), the
    rest one row per statement. Every value is a parameter, the constants (run_id, tenant_id) too: the
    statements' text is the same from run to run, so a connection prepares each once and its statement
    cache does not fill with every run's statements (the prepared multi-row statements are large).

    OR FAIL: a plain INSERT of many rows keeps a statement journal (a copy of every page the statement
    changes, so that a constraint error can undo its first rows), which spills to a temporary file:
    with the indexes' pages spread over the table, that was several page writes per row. A failed
    statement's first rows stay in the transaction instead, and the caller rolls that back."""
    driver = conn.connection.driver_connection
    n_rows = len(lists[0])
    columns = [*names, *constants]
    values = [*lists, *([v] * n_rows for v in constants.values())]
    per = max(1, min(SQLITE_ROWS_PER_STATEMENT, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns)))
    row = "(" + ", ".join(["?"] * len(columns)) + ")"
    head = f"INSERT OR FAIL INTO {name} ({', '.join(columns)}) VALUES "
    full = n_rows // per * per
    cursor = driver.cursor()
    if full:
        cursor.executemany(head + ", ".join([row] * per),
                           (list(chain.from_iterable(zip(*(c[a:a + per] for c in values), strict=True)))
                            for a in range(0, full, per)))
    if full < n_rows:
        cursor.executemany(head + row, zip(*(c[full:] for c in values), strict=True))
    cursor.close()


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


# --- PostgreSQL binary COPY ---------------------------------------------------------------------------

_PG_EPOCH_DAYS = 10_957  # 2000-01-01, day 0 of PostgreSQL's binary dates, in days since 1970-01-01
# binary layouts of fixed-width types (subclasses before their base: BigInteger is an Integer)
_FIXED = {sa.BigInteger: ">i8", sa.SmallInteger: ">i2", sa.Integer: ">i4", sa.Float: ">f8", sa.Boolean: "u1",
          sa.Date: ">i4"}


class _Field:
    """One column of a binary COPY: each row's byte length (-1: NULL) and the non-NULL values' bytes,
    fixed width (rows x width) or concatenated (variable width)."""

    def __init__(self, lengths: np.ndarray, data: np.ndarray, width: int | None = None) -> None:
        self.lengths, self.data, self.width = lengths, data, width
        self.ends = np.cumsum(np.maximum(lengths, 0)) if width is None else None


def _binary_fields(table: sa.Table, columns: Mapping[str, Any], constants: Mapping[str, Any]
                   ) -> tuple[list[_Field], int] | None:
    """The columns as binary COPY fields, and the row count; None when one of them needs the CSV path."""
    n = len(next(iter(columns.values()))) if columns else 0
    fields = []
    for name, values in columns.items():
        field = _binary_field(table.c[name].type, values)
        if field is None:
            return None
        fields.append(field)
    for name, value in constants.items():  # the same bytes in every row (run_id, tenant_id)
        if not isinstance(value, str) or not isinstance(table.c[name].type, sa.String):
            return None
        data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        fields.append(_Field(np.full(n, len(data)), np.broadcast_to(data, (n, len(data))), len(data)))
    return fields, n


def _binary_field(sql_type: Any, values: Any) -> _Field | None:
    values = np.asarray(values)
    if values.dtype == object:
        missing = np.equal(values, None)
        present = values[~missing]
    else:
        missing = np.isnan(values) if values.dtype.kind in "fM" else np.zeros(len(values), dtype=bool)
        present = values[~missing]
    kind = next((k for k in _FIXED if isinstance(sql_type, k)), None)
    lengths = np.full(len(values), -1, dtype=np.int64)
    if isinstance(sql_type, sa.String):  # Text too
        if present.dtype.kind not in "OU":
            return None
        text = present.tolist()
        try:
            joined = "".join(text)
        except TypeError:  # not all strings
            return None
        if joined.isascii():
            data, sizes = joined.encode("ascii"), np.fromiter(map(len, text), dtype=np.int64, count=len(text))
        else:
            encoded = [t.encode("utf-8") for t in text]
            data, sizes = b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(text))
        lengths[~missing] = sizes
        return _Field(lengths, np.frombuffer(data, dtype=np.uint8))
    if kind is None or (kind is sa.Float and (sql_type.precision or 53) <= 24):  # REAL: 4 bytes
        return None
    if kind is sa.Date:
        if present.dtype.kind != "M":
            return None
        present = present.astype("datetime64[D]").astype(np.int64) - _PG_EPOCH_DAYS
    elif kind is sa.Float:
        if present.dtype.kind not in "fiub" and not _all_numbers(present):
            return None
    elif kind is sa.Boolean:
        if present.dtype.kind != "b":
            return None
    elif present.dtype.kind not in "iub" and not _all_numbers(present, integer=True):
        return None
    dtype = np.dtype(_FIXED[kind])
    if dtype.kind == "i" and len(present):
        info = np.iinfo(dtype)
        as_int = present.astype(np.int64)
        if as_int.min() < info.min or as_int.max() > info.max:
            return None
    data = np.zeros(len(values), dtype=dtype)
    data[~missing] = present
    lengths[~missing] = dtype.itemsize
    return _Field(lengths, data.view(np.uint8).reshape(len(values), dtype.itemsize), dtype.itemsize)


def _all_numbers(values: np.ndarray, integer: bool = False) -> bool:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    return all(isinstance(v, kinds) and not isinstance(v, bool) for v in values.tolist())


BINARY_CHUNK_ROWS = 50_000


def _copy_binary(conn: sa.Connection, table: sa.Table, names: Sequence[str], fields: list[_Field], n: int) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT binary)"
    cursor.copy_expert(sql, _BinaryStream(fields, n), size=COPY_CHUNK)
    cursor.close()


class _BinaryStream:
    """A read-only byte stream of the rows in PostgreSQL's binary COPY format, built BINARY_CHUNK_ROWS
    rows at a time as it is read."""

    def __init__(self, fields: list[_Field], n: int) -> None:
        self.fields, self.n, self.pos, self.offset = fields, n, 0, 0
        self.buffer = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension

    def read(self, size: int = -1) -> bytes:
        """At most `size` bytes (fewer at the end of a chunk); b"" at the end."""
        if self.offset == len(self.buffer):
            if self.pos > self.n:
                return b""
            if self.pos < self.n:
                end = min(self.n, self.pos + BINARY_CHUNK_ROWS)
                self.buffer, self.pos = self._rows(self.pos, end), end
            else:
                self.buffer, self.pos = b"\xff\xff", self.n + 1  # the trailer
            self.offset = 0
        want = COPY_CHUNK if size is None or size < 0 else size
        data = self.buffer[self.offset:self.offset + want]
        self.offset += len(data)
        return data

    def _rows(self, a: int, b: int) -> bytes:
        """Rows a..b: per row the field count, then per field its length (int32, -1: NULL) and bytes."""
        lengths = [f.lengths[a:b] for f in self.fields]
        size = 2 + sum(4 + np.maximum(length, 0) for length in lengths)
        start = np.r_[0, np.cumsum(size)[:-1]]
        buf = np.empty(int(size.sum()), dtype=np.uint8)
        buf[start] = len(self.fields) >> 8
        buf[start + 1] = len(self.fields) & 0xFF
        pos = start + 2
        four = np.arange(4)
        for field, length in zip(self.fields, lengths, strict=True):
            buf[pos[:, None] + four] = length.astype(">i4").view(np.uint8).reshape(-1, 4)
            pos = pos + 4
            there = length >= 0
            if field.width is not None:
                buf[pos[there][:, None] + np.arange(field.width)] = field.data[a:b][there]
            elif there.any():
                lo = 0 if a == 0 else int(field.ends[a - 1])
                buf[ranges(pos[there], length[there])] = field.data[lo:int(field.ends[b - 1])]
            pos = pos + np.maximum(length, 0)
        return buf.tobytes()
