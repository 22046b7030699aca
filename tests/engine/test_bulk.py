"""Bulk writes (engine/bulk.py): PostgreSQL's binary COPY stores what the CSV COPY stored, every column type
the engine writes included (but an empty string stays one, as on SQLite, where CSV made it NULL), and
falls back to CSV for values it does not encode."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import sqlalchemy as sa

from pfill.database import open_database
from pfill.engine import bulk

metadata = sa.MetaData()
sample = sa.Table(
    "bulk_sample", metadata,
    sa.Column("run_id", sa.String(36), nullable=False), sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("k", sa.Integer, nullable=False), sa.Column("name", sa.String(40)), sa.Column("note", sa.Text),
    sa.Column("x", sa.Float), sa.Column("n", sa.Integer), sa.Column("big", sa.BigInteger),
    sa.Column("flag", sa.Boolean), sa.Column("day", sa.Date), sa.PrimaryKeyConstraint("run_id", "k"),
)


def _columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    names = np.array([f"L{i:07d}" for i in range(n)], dtype=object)
    names[rng.random(n) < 0.2] = None
    notes = np.array(["", "ünïcode ✓", "a,b \"quoted\"\nline", "plain"], dtype=object)[rng.integers(0, 4, n)]
    x = np.round(rng.normal(100, 5, n), 6)
    x[rng.random(n) < 0.2] = np.nan
    counts = rng.integers(-5, 1000, n).astype(object)
    counts[rng.random(n) < 0.3] = None
    days = np.datetime64("2025-03-03") + rng.integers(-400, 400, n).astype("timedelta64[D]")
    days[rng.random(n) < 0.1] = np.datetime64("NaT")
    return {"k": np.arange(n), "name": names, "note": notes, "x": x, "n": counts,
            "big": rng.integers(0, 2**40, n), "flag": rng.random(n) < 0.5, "day": days}


@pytest.mark.postgres
def test_binary_copy_stores_what_csv_stores(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_database(postgres_url)
    rng = np.random.default_rng(3)
    n = bulk.BINARY_CHUNK_ROWS + 1234  # more than one chunk
    columns = _columns(n, rng)
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        stored = {}
        for run in ("binary", "csv"):
            if run == "csv":
                monkeypatch.setattr(bulk, "_binary_fields", lambda *_: None)
            with engine.begin() as conn:
                assert bulk.insert_columns(conn, sample, columns, {"run_id": run, "tenant_id": "t"}) == n
            with engine.connect() as conn:
                stored[run] = conn.execute(sa.select(sample).where(sample.c.run_id == run).order_by(sample.c.k)
                                           ).all()
        as_csv_stored = [(*r[1:4], r.note or None, *r[5:]) for r in stored["binary"]]
        assert as_csv_stored == [r[1:] for r in stored["csv"]]
        assert sum(r.note == "" for r in stored["binary"]) == sum(v == "" for v in columns["note"]) > 0
        assert sum(r.name is None for r in stored["binary"]) == sum(v is None for v in columns["name"])
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_values_the_binary_path_does_not_encode_go_as_csv() -> None:
    n = 3
    assert bulk._binary_fields(sample, {"x": np.array(["a", "b", "c"], dtype=object)}, {}) is None
    assert bulk._binary_fields(sample, {"n": np.array([1.5, 2.0, 3.0])}, {}) is None  # floats into an integer
    assert bulk._binary_fields(sample, {"n": np.array([2**40] * n)}, {}) is None  # beyond int4
    assert bulk._binary_fields(sample, {"name": np.array([1, 2, 3], dtype=object)}, {}) is None
    assert bulk._binary_fields(sample, {"k": np.arange(n)}, {"day": "2025-03-03"}) is None
    fields, rows = bulk._binary_fields(sample, {"k": np.arange(n)}, {"run_id": "r"})
    assert rows == n and len(fields) == 2


@pytest.mark.parametrize(("n", "part"), [(1, None), (bulk.SQLITE_ROWS_PER_STATEMENT, None),
                                         (2 * bulk.SQLITE_ROWS_PER_STATEMENT + 7, None), (1000, 450), (407, 150)])
def test_sqlite_multi_row_inserts_store_every_row_as_single_inserts_do(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                                     n: int, part: int | None) -> None:
    """Rows go in parts (`part` rows: Python values for a part at a time), each in statements of many
    rows, the last one shorter: every row arrives once, as one row per statement stores it (None, NaN,
    dates, booleans and quotes in constants included)."""
    if part is not None:
        monkeypatch.setattr(bulk, "BATCH_ROWS", part)
    engine = open_database(f"sqlite:///{tmp_path}/bulk.db")
    columns = _columns(n, np.random.default_rng(n))
    metadata.create_all(engine)
    with engine.begin() as conn:
        assert bulk.insert_columns(conn, sample, columns, {"run_id": "multi", "tenant_id": "o'hara"}) == n
        names = list(columns)
        lists = [bulk._as_list(columns[k]) for k in names]
        cursor = conn.connection.driver_connection.cursor()
        cursor.executemany(f"INSERT INTO bulk_sample (run_id, tenant_id, {', '.join(names)}) VALUES "
                           f"('single', 'o''hara', {', '.join('?' * len(names))})", zip(*lists, strict=True))
    with engine.connect() as conn:
        stored = {run: conn.execute(sa.select(sample).where(sample.c.run_id == run).order_by(sample.c.k)).all()
                  for run in ("multi", "single")}
    engine.dispose()
    assert len(stored["multi"]) == n
    assert [r[1:] for r in stored["multi"]] == [r[1:] for r in stored["single"]]


_statements: list[str] = []  # the SQL text of every statement the recording connection ran


class _RecordingCursor(sqlite3.Cursor):
    def execute(self, sql, *args):  # type: ignore[no-untyped-def,override]
        _statements.append(sql)
        return super().execute(sql, *args)

    def executemany(self, sql, *args):  # type: ignore[no-untyped-def,override]
        _statements.append(sql)
        return super().executemany(sql, *args)


class _RecordingConnection(sqlite3.Connection):
    def cursor(self, factory=_RecordingCursor):  # type: ignore[no-untyped-def,override]
        return super().cursor(factory)


def test_sqlite_statements_are_the_same_text_for_every_run(tmp_path) -> None:
    """The run's values are parameters, never part of the SQL: a long-lived process's connections would
    otherwise prepare and cache new (large) statements for every run."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/bulk.db", connect_args={"factory": _RecordingConnection})
    metadata.create_all(engine)
    columns = _columns(2 * bulk.SQLITE_ROWS_PER_STATEMENT + 7, np.random.default_rng(5))
    texts = []
    for run in ("run-a", "run-b"):
        _statements.clear()
        with engine.begin() as conn:
            bulk.insert_columns(conn, sample, columns, {"run_id": run, "tenant_id": "t"})
        texts.append(list(_statements))
    engine.dispose()
    assert len(texts[0]) == 2  # the multi-row statement and the one-row statement for the rest
    assert texts[0] == texts[1]


indexed = sa.Table(
    "bulk_indexed", metadata,
    sa.Column("run_id", sa.String(36), nullable=False), sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("loan_id", sa.String(36), nullable=False), sa.Column("grp", sa.Integer, nullable=False),
    sa.Column("x", sa.Float), sa.PrimaryKeyConstraint("run_id", "loan_id", "grp"),
    sa.Index("ix_bulk_indexed_group", "run_id", "grp"),
)


def _indexed_rows(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rows by loan whose groups are spread over the index, as a run's candidate options are."""
    return {"loan_id": np.array([f"{i:08d}-loan" for i in range(n)], dtype=object),
            "grp": rng.integers(0, 1000, n), "x": rng.random(n)}


def _bytes_written() -> int:
    """Bytes this process has passed to write calls (pwrite to the database, its WAL and temporary files)."""
    return next(int(line.split()[1]) for line in open("/proc/self/io") if line.startswith("wchar:"))


def test_sqlite_bulk_insert_writes_each_page_about_once(tmp_path) -> None:
    """Inserting into a table whose index takes rows all over writes about the pages the table ends up
    with, not a copy of every page each multi-row statement touches (a statement journal, which made a
    100k-loan run write gigabytes to temporary files)."""
    path = tmp_path / "bulk.db"
    engine = open_database(f"sqlite:///{path}")
    metadata.create_all(engine)
    columns = _indexed_rows(60_000, np.random.default_rng(7))
    before = _bytes_written()
    with engine.begin() as conn:
        assert bulk.insert_columns(conn, indexed, columns, {"run_id": "r" * 36, "tenant_id": "t"}) == 60_000
    written = _bytes_written() - before
    stored = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("bulk.db"))
    engine.dispose()
    assert written < 3 * stored, f"{written:,} bytes written for {stored:,} stored"


def test_sqlite_bulk_insert_that_fails_leaves_nothing_of_its_rows(tmp_path) -> None:
    """A constraint error in the middle of a multi-row statement (OR FAIL keeps that statement's first
    rows in the transaction) raises, and the transaction's rollback takes every row of it away; rows
    committed before stay."""
    engine = open_database(f"sqlite:///{tmp_path}/bulk.db")
    metadata.create_all(engine)
    columns = _indexed_rows(2 * bulk.SQLITE_ROWS_PER_STATEMENT + 7, np.random.default_rng(8))
    with engine.begin() as conn:
        bulk.insert_columns(conn, indexed, columns, {"run_id": "kept", "tenant_id": "t"})
    columns["loan_id"][bulk.SQLITE_ROWS_PER_STATEMENT + 50] = columns["loan_id"][bulk.SQLITE_ROWS_PER_STATEMENT + 10]
    columns["grp"][bulk.SQLITE_ROWS_PER_STATEMENT + 50] = columns["grp"][bulk.SQLITE_ROWS_PER_STATEMENT + 10]
    with pytest.raises(sqlite3.IntegrityError), engine.begin() as conn:
        bulk.insert_columns(conn, indexed, columns, {"run_id": "failed", "tenant_id": "t"})
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(indexed.c.run_id, sa.func.count()).group_by(indexed.c.run_id)).all())
    engine.dispose()
    assert counts == {"kept": 2 * bulk.SQLITE_ROWS_PER_STATEMENT + 7}
