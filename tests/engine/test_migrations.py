"""The versioned engine schema (Alembic): the revisions build exactly engine/schema.py; a database from
before versioning is recognised, completed and stamped by `pfill db upgrade`; a database at r0001 with
runs is upgraded to head keeping its rows; r0003 replaces the candidate rows with the candidate options
and trade groups (and back); reads never change a schema and name the command that fixes it; `pfill db
upgrade --sql` renders SQL Server DDL without a connection. On SQLite and PostgreSQL (the `db_url` fixture).

HEAD is the packaged head revision; the test-only revision is numbered after it (NEXT)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from pfill.cli import cli
from pfill.database import open_database
from pfill.engine import db, demo_data, runs, schema
from pfill.engine.migrations.versions import r0003_candidate_options as r0003
from tests.engine.helpers import AS_OF, PFILL, pfill_env

OPTIMISER_COLUMNS = ("strategy", "objective_value", "lp_bound", "gap_pct", "solver_seconds")
READS = (["runs", "list"], ["runs", "show", "latest"], ["runs", "latest"])
WRITES = (["run", "--as-of", AS_OF.isoformat()], ["demo-data", "--loans", "50", "--trades", "3"],
          ["runs", "reconcile"])
HEAD, HEAD_LABEL = "0005", "0005 (chosen pair)"
NEXT = f"{int(HEAD) + 1:04d}"
ALL = [f"{n:04d}" for n in range(1, int(HEAD) + 1)]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFILL_HOME", str(tmp_path / "home"))


def _pfill(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", url, *args])
    return result.exit_code, result.stdout, result.stderr


def _tables(engine: sa.Engine) -> dict[str, set[str]]:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {t: {c["name"] for c in inspector.get_columns(t)}
                | {f"index:{i['name']}" for i in inspector.get_indexes(t)} for t in inspector.get_table_names()}


def _legacy(engine: sa.Engine, *, before_optimiser: bool = False) -> None:
    """A database as the pre-migrations `pfill db init` left it: every table of the model as it was then
    (the baseline revision's), no version table; optionally from before the optimiser's run-history
    columns and one index."""
    with engine.begin() as conn:
        for table in db.baseline_metadata().sorted_tables:  # what the old init_schema did on an empty database
            table.create(conn)
        if before_optimiser:
            for column in OPTIMISER_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE pfill_run_history DROP COLUMN {column}")
            conn.exec_driver_sql("DROP INDEX ix_pfill_pool_guide_run_pool")


def test_the_revisions_build_exactly_the_model(db_url: str) -> None:
    engine = open_database(db_url)
    assert db.schema_state(engine).status == "absent"
    assert db.head() == HEAD  # a new packaged revision: move HEAD and HEAD_LABEL on
    assert db.create_schema(engine) == [f"created at {HEAD_LABEL}"]
    assert db.create_schema(engine) == [] and db.upgrade_schema(engine) == []
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata)
    assert [d for d in diffs if "pfill_alembic_version" not in str(d)] == []
    state = db.schema_state(engine)
    assert (state.status, state.current, state.head, state.pending) == ("current", HEAD, HEAD, [])
    assert set(_tables(engine)) == {t.name for t in schema.metadata.sorted_tables} | {db.VERSION_TABLE}


@pytest.mark.parametrize("before_optimiser", [False, True], ids=["at-baseline", "before-optimiser"])
def test_an_unversioned_database_is_recognised_completed_and_stamped(db_url: str, before_optimiser: bool) -> None:
    engine = open_database(db_url)
    _legacy(engine, before_optimiser=before_optimiser)
    demo_data.replace_tenant_inputs(engine, "demo", demo_data.generate(120, 4, seed=3, as_of=AS_OF))
    untouched = _tables(engine)
    state = db.schema_state(engine)
    assert (state.status, state.current, state.pending) == ("unversioned", None, ALL)

    # reads refuse without changing anything; so do writes
    for args in (*READS, *WRITES):
        code, _, err = _pfill(db_url, *args)
        assert code == 1, (args, err)
        assert "schema is at an unversioned engine schema" in err and "run `pfill db upgrade`" in err, err
    assert _tables(engine) == untouched

    code, out, err = _pfill(db_url, "db", "current", "--json")
    assert code == 0 and json.loads(out)["status"] == "unversioned"
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0, err
    added = [f"unversioned schema: added column pfill_run_history.{c}" for c in OPTIMISER_COLUMNS]
    added += ["unversioned schema: created index ix_pfill_pool_guide_run_pool"]
    assert ("added column" in err) == before_optimiser and all(line in err for line in added if before_optimiser)
    assert "stamped 0001 (baseline)" in err and f"upgraded 0001 -> {HEAD_LABEL}" in err, err
    assert f"schema at {HEAD_LABEL}, the head" in err
    assert db.schema_state(engine).status == "current"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM loan")).scalar() == 120  # nothing lost
        diffs = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert [d for d in diffs if "pfill_alembic_version" not in str(d)] == []
    code, out, err = _pfill(db_url, "run", "--as-of", AS_OF.isoformat(), "--strategy", "greedy")
    assert code == 0, err
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and "already up to date" in err


def test_reads_on_a_database_without_the_schema(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # an empty file, or a database with someone else's table
        conn.exec_driver_sql("CREATE TABLE other_app (id INTEGER)")
    for args in (*READS, *WRITES):
        code, _, err = _pfill(db_url, *args)
        assert code == 1 and "is not initialised for the engine (it has 1 other table(s))" in err, err
        assert "hint: not initialised; run `pfill db init`" in err
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 1 and "run `pfill db init`" in err
    assert set(_tables(engine)) == {"other_app"}
    missing = tmp_path / "nowhere" / "pfill.db"
    code, _, err = _pfill(f"sqlite:///{missing}", "runs", "list")
    assert code == 1 and "database not found" in err and not missing.parent.exists()
    code, _, _ = _pfill(db_url, "db", "init")
    assert code == 0 and db.schema_state(engine).status == "current" and "other_app" in _tables(engine)


# -- a database at r0001 with runs, upgraded to head ---------------------------------------------------------

def test_a_database_at_0001_with_a_run_upgrades_to_head_keeping_its_rows(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # a database the previous pfill made and ran on
        db.command.upgrade(db.alembic_config(conn), "0001")
    demo_data.replace_tenant_inputs(engine, "demo", demo_data.generate(120, 4, seed=3, as_of=AS_OF))
    baseline = db.baseline_metadata().tables
    history, guide, log = (baseline[t] for t in ("pfill_run_history", "pfill_powerfill_guide", "pfill_powerfill_log"))
    run_ids = ["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"]
    with engine.begin() as conn:
        for n, run_id in enumerate(run_ids):
            conn.execute(history.insert().values(
                run_id=run_id, tenant_id="demo", status="Complete", scoring="price", options_json='{"keep_runs": 1}',
                created_at=datetime(2025, 3, 3, 9, n), completed_at=datetime(2025, 3, 3, 9, n, 30),
                allocated_loan_count=1))
            conn.execute(guide.insert().values(run_id=run_id, tenant_id="demo", loan_id=f"L{n}", trade_id="T1",
                                               pool_id="NEW-T1", upb=250_000.0))
            conn.execute(log.insert().values(run_id=run_id, tenant_id="demo", logged_at=datetime(2025, 3, 3, 9, n),
                                             level="INFO", step="run", event="status", message="run Complete"))
    assert db.schema_state(engine).pending == ALL[1:]
    code, _, err = _pfill(db_url, "runs", "list")
    assert code == 1 and f"this pfill needs {HEAD_LABEL}" in err, err

    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and f"upgraded 0001 -> {HEAD_LABEL}" in err, err
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.pfill_run_history.c.run_id, schema.pfill_run_history.c.status,
                                      schema.pfill_run_history.c.output_removed_at)
                            .order_by(schema.pfill_run_history.c.run_id)).all()
        assert [tuple(r) for r in rows] == [(run_ids[0], "Complete", None), (run_ids[1], "Complete", None)]
        for table in (schema.pfill_powerfill_guide, schema.pfill_powerfill_log):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.loan)).scalar() == 120
        diffs = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert [d for d in diffs if "pfill_alembic_version" not in str(d)] == []
    code, out, err = _pfill(db_url, "runs", "show", run_ids[0], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["options"] == {"keep_runs": 1} and shown["output_removed_at"] is None
    # the old run's output goes with retention; its history row and log stay
    assert runs.apply_retention(engine, "demo", 1) == [run_ids[0]]
    assert runs.get_run(engine, run_ids[0])["output_removed_at"] is not None
    with engine.connect() as conn:
        for table, left in ((schema.pfill_powerfill_guide, [run_ids[1]]), (schema.pfill_powerfill_log, run_ids)):
            assert sorted(conn.execute(sa.select(table.c.run_id)).scalars()) == left


# -- r0003: the candidate rows become candidate options and trade groups ------------------------------------

CANDY = "pfill_loan2trade_candy_level_01"


def test_0003_replaces_the_candidate_rows_with_options_and_trade_groups_and_back(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # a database at 0002 with a run's rows, candidates among them
        db.command.upgrade(db.alembic_config(conn), "0002")
    baseline = db.baseline_metadata().tables
    run_id = "00000000-0000-0000-0000-000000000003"
    with engine.begin() as conn:
        conn.execute(baseline["pfill_run_history"].insert().values(
            run_id=run_id, tenant_id="demo", status="Complete", scoring="price", created_at=datetime(2025, 3, 3, 9),
            completed_at=datetime(2025, 3, 3, 9, 0, 30)))
        conn.execute(baseline["pfill_powerfill_guide"].insert().values(
            run_id=run_id, tenant_id="demo", loan_id="L1", trade_id="T1", pool_id="NEW-T1", upb=250_000.0))
        conn.execute(baseline[CANDY].insert().values(run_id=run_id, tenant_id="demo", loan_id="L1", trade_id="T1",
                                                     rank=1, chosen=True))
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and f"upgraded 0002 -> {HEAD_LABEL}" in err, err
    tables = _tables(engine)
    assert CANDY not in tables
    options = tables["pfill_candidate_options"]
    assert {"trade_group", "pair_count", "index:ix_pfill_candidate_options_run_group"} <= options
    assert {"trade_order", "group_rank", "index:ix_pfill_trade_groups_run_group"} <= tables["pfill_trade_groups"]
    with engine.connect() as conn:  # the run's other output stays
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pfill_powerfill_guide)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pfill_run_history)).scalar() == 1

    with engine.begin() as conn:  # and back: the candidate table as the baseline made it (empty)
        db.command.downgrade(db.alembic_config(conn), "0002")
    tables = _tables(engine)
    assert "pfill_candidate_options" not in tables and "pfill_trade_groups" not in tables
    assert tables[CANDY] == {c.name for c in baseline[CANDY].columns} | {"index:ix_pfill_candy_run_trade"}
    assert db.schema_state(engine).pending == ["0003", "0004", HEAD]
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and db.schema_state(engine).status == "current"


# -- r0005: the chosen pair's score moves from the candidate options to the guide -------------------------

def test_0005_moves_the_chosen_pair_into_the_guide_and_back(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # a database at 0004 with a run: a chosen loan, a locked one, one at cash
        db.command.upgrade(db.alembic_config(conn), "0004")
    old = {**db.baseline_metadata().tables, **r0003.tables().tables}
    run_id = "00000000-0000-0000-0000-000000000005"
    options = old["pfill_candidate_options"]
    with engine.begin() as conn:
        conn.execute(old["pfill_run_history"].insert().values(
            run_id=run_id, tenant_id="demo", status="Complete", scoring="price", created_at=datetime(2025, 3, 3, 9),
            completed_at=datetime(2025, 3, 3, 9, 0, 30)))
        for loan, trade in (("L1", "T1"), ("L2", "T2")):  # L2 is locked: no candidate
            conn.execute(old["pfill_powerfill_guide"].insert().values(
                run_id=run_id, tenant_id="demo", loan_id=loan, trade_id=trade, pool_id=f"NEW-{trade}", upb=1e5))
        for loan, group, chosen, score in (("L1", 0, "T1", 101.25), ("L1", 1, "T1", 101.25), ("L3", 0, None, None)):
            conn.execute(options.insert().values(
                run_id=run_id, tenant_id="demo", loan_id=loan, trade_group=group, score=0.5, pair_count=2,
                loan_pair_count=4, chosen_trade_id=chosen, chosen_score=score))
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and f"upgraded 0004 -> {HEAD_LABEL}" in err, err
    assert not {"chosen_trade_id", "chosen_score"} & _tables(engine)["pfill_candidate_options"]
    guide = schema.pfill_powerfill_guide
    with engine.connect() as conn:
        scores = dict(conn.execute(sa.select(guide.c.loan_id, guide.c.score).where(guide.c.run_id == run_id)).all())
        assert scores == {"L1": 101.25, "L2": None}
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pfill_candidate_options)).scalar() == 3
        diffs = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert [d for d in diffs if "pfill_alembic_version" not in str(d)] == []

    with engine.begin() as conn:  # and back: each option of a chosen loan names its chosen pair again
        db.command.downgrade(db.alembic_config(conn), "0004")
    with engine.connect() as conn:
        back = conn.execute(sa.select(options.c.loan_id, options.c.trade_group, options.c.chosen_trade_id,
                                      options.c.chosen_score).order_by(options.c.loan_id, options.c.trade_group)).all()
    assert [tuple(r) for r in back] == [("L1", 0, "T1", 101.25), ("L1", 1, "T1", 101.25), ("L3", 0, None, None)]
    assert "score" not in _tables(engine)["pfill_powerfill_guide"]


# -- a third revision, to test a database that is behind -------------------------------------------------

SECOND = f'''"""add pfill_run_history.note: a test revision

Revision ID: {NEXT}
Revises: {HEAD}
"""
import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pfill_run_history") as batch:
        batch.add_column(sa.Column("note", sa.String(200), comment="A test column"))


def downgrade() -> None:
    with op.batch_alter_table("pfill_run_history") as batch:
        batch.drop_column("note")
'''


@pytest.fixture
def second_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The packaged migrations plus a test revision after head (NEXT), in a folder of their own."""
    with db._migrations() as packaged:
        folder = tmp_path / "migrations"
        shutil.copytree(packaged, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / f"r{NEXT}_note.py").write_text(SECOND)

    @contextlib.contextmanager
    def migrations() -> Iterator[Path]:
        yield folder

    monkeypatch.setattr(db, "_migrations", migrations)
    db._script.cache_clear()
    db.baseline_metadata.cache_clear()
    yield folder
    db._script.cache_clear()
    db.baseline_metadata.cache_clear()


def test_a_database_behind_is_upgraded_and_reads_say_so(db_url: str, second_revision: Path) -> None:
    engine = open_database(db_url)
    with engine.begin() as conn:  # a database at the packaged head, made by the previous pfill
        db.command.upgrade(db.alembic_config(conn), HEAD)
    state = db.schema_state(engine)
    assert (state.status, state.current, state.head, state.pending) == ("behind", HEAD, NEXT, [NEXT])
    before = _tables(engine)
    for args in (*READS, *WRITES):
        code, _, err = _pfill(db_url, *args)
        assert code == 1, (args, err)
        assert f"schema is at {HEAD_LABEL}, this pfill needs {NEXT} (add pfill_run_history.note)" in err, err
        assert "hint: run `pfill db upgrade`" in err
    assert _tables(engine) == before
    code, out, _ = _pfill(db_url, "db", "upgrade", "--sql", "--from", HEAD, "--dialect", "postgresql")
    assert code == 0 and "ALTER TABLE pfill_run_history ADD COLUMN note VARCHAR(200)" in out
    assert (f"UPDATE pfill_alembic_version SET version_num='{NEXT}' "
            f"WHERE pfill_alembic_version.version_num = '{HEAD}'") in out
    assert "CREATE TABLE loan" not in out and "output_removed_at" not in out and "pfill_trade_groups" not in out
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and f"upgraded {HEAD} -> {NEXT} (add pfill_run_history.note)" in err, err
    assert "note" in _tables(engine)["pfill_run_history"] and db.schema_state(engine).status == "current"


def test_an_unversioned_database_is_stamped_at_the_baseline_then_upgraded(db_url: str, second_revision: Path) -> None:
    engine = open_database(db_url)
    _legacy(engine)
    code, _, err = _pfill(db_url, "db", "upgrade")
    assert code == 0 and "stamped 0001 (baseline)" in err and f"upgraded 0001 -> {NEXT}" in err, err
    assert {"note", "output_removed_at"} <= _tables(engine)["pfill_run_history"]


def test_a_database_ahead_of_this_pfill(db_url: str) -> None:
    engine = open_database(db_url)
    db.create_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {db.VERSION_TABLE} SET version_num = '0099'"))
    for args in (["runs", "list"], ["db", "upgrade"], ["db", "init"]):
        code, _, err = _pfill(db_url, *args)
        assert code == 1 and f"schema is at 0099, newer than this pfill knows (head {HEAD}" in err, err
        assert "hint: upgrade pfill-kit" in err
    code, out, _ = _pfill(db_url, "db", "current", "--json")
    assert code == 0 and json.loads(out)["status"] == "ahead"


# -- the SQL for a DBA ------------------------------------------------------------------------------------

def test_upgrade_sql_for_sql_server_without_a_connection(tmp_path: Path) -> None:
    code, sql, err = _pfill(f"sqlite:///{tmp_path / 'not-created.db'}", "db", "upgrade", "--sql", "--dialect", "mssql")
    assert code == 0, err
    assert not (tmp_path / "not-created.db").exists()
    for table in schema.metadata.sorted_tables:
        assert f"CREATE TABLE {table.name} (" in sql
    # BR-8: the filtered unique index
    assert ("CREATE UNIQUE INDEX ux_pfill_run_history_active_tenant ON pfill_run_history (tenant_id) "
            "WHERE status IN ('Pending', 'PreProcessing', 'Allocating', 'PostProcessing');") in sql
    assert "CREATE TABLE pfill_alembic_version" in sql and "VALUES ('0001')" in sql
    # r0002: the retention column, with its comment
    assert "ALTER TABLE pfill_run_history ADD output_removed_at DATETIME NULL;" in sql
    assert "N'When retention removed the run''s user-facing rows (UTC)" in sql
    assert "SET version_num='0002' WHERE pfill_alembic_version.version_num = '0001'" in sql
    assert "\nGO\n" in sql and sql.count("BEGIN TRANSACTION;") == sql.count("COMMIT;") >= 1
    assert "lock_date DATE NULL" in sql and "options_json VARCHAR(max) NULL" in sql
    assert "sp_addextendedproperty 'MS_Description', N'The loan pipeline" in sql
    # the dialect of the URL when --dialect is not given; the server is never contacted
    url = "mssql+pyodbc://pfill:secret@no-such-host.invalid/powerfill?driver=ODBC+Driver+18+for+SQL+Server"
    code, from_url, err = _pfill(url, "db", "upgrade", "--sql")
    assert code == 0 and from_url == sql, err
    code, out, _ = _pfill(url, "db", "upgrade", "--sql", "--from", "0001")
    assert code == 0 and "ADD output_removed_at DATETIME NULL" in out and "CREATE TABLE loan" not in out
    code, out, _ = _pfill(url, "db", "upgrade", "--sql", "--from", "0002")
    assert code == 0 and "CREATE TABLE pfill_candidate_options (" in out and "output_removed_at" not in out
    assert "DROP TABLE pfill_loan2trade_candy_level_01;" in out
    assert ("CREATE INDEX ix_pfill_trade_groups_run_group ON pfill_trade_groups (run_id, trade_group, price, "
            "trade_order);" in out)
    code, out, _ = _pfill(url, "db", "upgrade", "--sql", "--from", HEAD)
    assert code == 0 and out.strip() == f"-- nothing to apply: {HEAD} is the head revision"
    code, _, err = _pfill(url, "db", "upgrade", "--sql", "--from", "0099")
    assert code == 2 and f"--from 0099: not a revision of this pfill ({', '.join(ALL)})" in err
    code, _, err = _pfill(url, "db", "upgrade", "--dialect", "mssql")
    assert code == 2 and "--dialect and --from go with --sql" in err


def test_the_migrations_are_found_from_any_directory(tmp_path: Path) -> None:
    """The real `pfill`, started in another folder: the migrations come with the package."""
    env = pfill_env(f"sqlite:///{tmp_path / 'engine.db'}")
    for args in (["db", "init"], ["db", "current", "--json"], ["db", "upgrade", "--sql", "--dialect", "mssql"]):
        done = subprocess.run([PFILL, *args], env=env, cwd="/", capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert json.loads(subprocess.run([PFILL, "db", "current", "--json"], env=env, cwd="/", capture_output=True,
                                     text=True).stdout)["current"] == db.head()
    assert "CREATE TABLE loan" in done.stdout
    assert not list(Path("/").glob("alembic*")) and not (tmp_path / "alembic.ini").exists()
