"""Every report query over real engine output (`pfill db init`, `demo-data`, `run` twice) on SQLite and
PostgreSQL: exactly the declared columns, row counts that agree with the COUNT probe, run selection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import jinja2
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from pfill.cli import cli
from pfill.dialects import pretty
from pfill.queries import preview
from pfill.queries.catalog import load_queries

QUERIES = load_queries()
AS_OF = "2026-01-05"
SCHEMA = f"pfill_queries_{uuid.uuid4().hex[:8]}"


def _pfill(home: Path, url: str, *argv: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), "--db", url, *argv])
    assert result.exit_code == 0, f"pfill {' '.join(argv)}: {result.output}"
    return result.stdout


def _build(home: Path, url: str) -> dict[str, object]:
    """Demo data and two Complete runs; returns the url and both run ids (oldest first)."""
    _pfill(home, url, "db", "init")
    _pfill(home, url, "demo-data", "--loans", "1500", "--trades", "30", "--as-of", AS_OF)
    first = json.loads(_pfill(home, url, "run", "--as-of", AS_OF, "--json"))
    second = json.loads(_pfill(home, url, "run", "--as-of", AS_OF, "--scoring", "price_carry", "--json"))
    return {"url": url, "runs": [first["run_id"], second["run_id"]]}


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("sqlite_home")
    return {"dialect": "sqlite", **_build(home, f"sqlite:///{home / 'pfill.db'}")}


@pytest.fixture(scope="module")
def postgresql_db(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[dict[str, object]]:
    """Engine output in a schema of its own inside the session's PostgreSQL database."""
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{SCHEMA}"'))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{SCHEMA}"
    try:
        yield {"dialect": "postgresql", "base_url": postgres_url,
               **_build(tmp_path_factory.mktemp("pg_home"), url)}
    finally:
        sa.engine.create_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{SCHEMA}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> dict[str, object]:
    return request.getfixturevalue(f"{request.param}_db")


def _run(db: dict[str, object], sql: str, url: str | None = None) -> preview.Result:
    engine = sa.create_engine(url or str(db["url"]))
    try:
        return preview.execute(engine, sql, str(db["dialect"]), "test")
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_returns_exactly_its_declared_columns(db: dict[str, object], name: str) -> None:
    query = QUERIES[name]
    sql = query.render(str(db["dialect"]))
    result = _run(db, sql)
    assert result.columns == query.column_names
    assert _run(db, pretty(sql, str(db["dialect"]))).row_count == result.row_count  # what preview prints
    assert result.row_count == len(result.rows)
    assert result.row_count > 0, f"{name} is empty on the demo run"
    latest = db["runs"][1]  # type: ignore[index]
    assert {row[0] for row in result.rows} == ({latest} if name != "run_overview" else set(db["runs"]))  # type: ignore[arg-type]


@pytest.mark.postgres
def test_schema_parameter_qualifies_tables(postgresql_db: dict[str, object]) -> None:
    """Without search_path, `schema=` finds the same tables."""
    query = QUERIES["trade_recap"]
    plain = _run(postgresql_db, query.render("postgresql"))
    qualified = _run(postgresql_db, query.render("postgresql", schema=SCHEMA), url=str(postgresql_db["base_url"]))
    assert qualified.rows == plain.rows


def test_run_overview_marks_the_latest_complete_run(db: dict[str, object]) -> None:
    result = _run(db, QUERIES["run_overview"].render(str(db["dialect"])))
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    latest = [r["run_id"] for r in rows if r["is_latest"]]
    assert latest == [db["runs"][1]]  # type: ignore[index]
    assert all(r["duration_seconds"] is not None and float(r["duration_seconds"]) >= 0 for r in rows)


def test_a_given_run_id_shows_that_run(db: dict[str, object]) -> None:
    first = db["runs"][0]  # type: ignore[index]
    result = _run(db, QUERIES["allocation_guide"].render(str(db["dialect"]), run_id=str(first)))
    assert result.rows and {row[0] for row in result.rows} == {first}
    assert {row[1] for row in result.rows} == {"Allocation", "Kickout"}


def test_superset_run_filter_at_query_time(db: dict[str, object]) -> None:
    """The dataset SQL, rendered as Superset would with the run filter set to the older run."""
    first = db["runs"][0]  # type: ignore[index]
    sql = QUERIES["pool_candidates"].render(str(db["dialect"]), superset=True)
    env = jinja2.Environment()
    env.filters["where_in"] = lambda values: "(" + ", ".join(f"'{v}'" for v in values) + ")"
    filtered = env.from_string(sql).render(filter_values=lambda column: [first], url_param=lambda name: None)
    result = _run(db, filtered)
    assert result.rows and {row[0] for row in result.rows} == {first}


def test_report_invariants(db: dict[str, object]) -> None:
    dialect = str(db["dialect"])

    def rows(name: str) -> list[dict[str, object]]:
        result = _run(db, QUERIES[name].render(dialect))
        return [dict(zip(result.columns, row, strict=True)) for row in result.rows]

    recap = rows("trade_recap")
    assert len(recap[0]) >= 30
    pools = rows("pooling_guide")
    actions = ("remaining", "leaving", "joining", "switching", "swapped_in", "locked", "cash", "kicked_out")
    for pool in pools:
        assert sum(int(pool[f"{a}_count"]) for a in actions) == pool["loan_count"]  # type: ignore[arg-type]
    switching = rows("switching")
    assert all(s["source_pool_id"] != s["destination_pool_id"] for s in switching)
    assert sum(int(p["switching_count"]) for p in pools) == len(switching)  # type: ignore[arg-type]
    candidates = rows("pool_candidates")
    chosen = [c for c in candidates if c["is_chosen"]]
    assert chosen and all(c["trade_id"] == c["chosen_trade_id"] for c in chosen)
    slots = rows("cash_trade_slotting")
    for slot in slots:
        empty = slot["slot_agency"] is None and slot["cash_price"] is None
        assert bool(slot["is_slotted"]) != empty
    guide = rows("allocation_guide")
    overview = {r["run_id"]: r for r in rows("run_overview")}[db["runs"][1]]  # type: ignore[index]
    assert sum(1 for g in guide if g["row_type"] == "Allocation") == overview["allocated_loan_count"]
    assert sum(1 for g in guide if g["row_type"] == "Kickout") == overview["kickout_count"]


def test_preview_all_execute_cli(sqlite_db: dict[str, object], tmp_path: Path) -> None:
    out = _pfill(tmp_path, str(sqlite_db["url"]), "preview", "--all", "--execute", "--format", "json")
    probe = json.loads(out)
    assert [p["name"] for p in probe] == list(QUERIES)
    assert all(p["rows"] > 0 and p["ms"] >= 0 for p in probe)


@pytest.mark.parametrize("which", [0, 1], ids=["price", "price_carry"])
def test_pool_candidates_lists_every_eligible_pair_ranked(db: dict[str, object], which: int) -> None:
    """The report against the candidate step's options expanded to pairs (preview_candidates for every loan,
    the run's business date and scoring): the same pairs, each ranked among all of its loan's pairs by
    score (ties: the lower trade id), chosen where the allocation guide placed the loan, and the chosen
    pair's rank is the one the engine wrote in the guide. max_rank keeps exactly the pairs ranked that high."""
    from pfill.engine.service.preview import preview_candidates

    dialect, run_id = str(db["dialect"]), str(db["runs"][which])  # type: ignore[index]
    engine = sa.create_engine(str(db["url"]))
    try:
        with engine.connect() as conn:
            scoring = conn.execute(sa.text("SELECT scoring FROM pfill_run_history WHERE run_id = :r"),
                                   {"r": run_id}).scalar_one()
            loan_ids = list(conn.execute(sa.text("SELECT loan_id FROM loan WHERE tenant_id = 'demo'")).scalars())
            guide = {loan: (trade, rank) for loan, trade, rank in conn.execute(sa.text(
                "SELECT loan_id, trade_id, rank FROM pfill_powerfill_guide"
                " WHERE run_id = :r AND pass_name <> 'locked'"), {"r": run_id})}
        preview_rows = preview_candidates(engine, "demo", loan_ids, scoring, date.fromisoformat(AS_OF))["candidates"]
    finally:
        engine.dispose()

    # brute force: every pair with the engine's exact score (option score + price), ranked per loan
    pairs: dict[str, list[tuple[float, str]]] = {}
    for p in preview_rows:
        option_score = p["payup"] + (p["carry"] if scoring == "price_carry" else 0.0)
        pairs.setdefault(p["loan_id"], []).append((option_score + p["price"], p["trade_id"]))
    expected: dict[tuple[str, str], tuple[int, float, int]] = {}
    for loan, scored in pairs.items():
        for rank, (score, trade) in enumerate(sorted(scored, key=lambda s: (-s[0], s[1])), start=1):
            expected[(loan, trade)] = (rank, score, len(scored))
    assert len(expected) > 5 * len(pairs)  # every trade of each option's group, not a best few

    result = _run(db, QUERIES["pool_candidates"].render(dialect, run_id=run_id))
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    got = {(r["loan_id"], r["trade_id"]): r for r in rows}
    assert len(got) == len(rows) == len(expected) and set(got) == set(expected)
    for key, (rank, score, count) in expected.items():
        row = got[key]
        assert (row["candidate_rank"], row["score"], row["loan_option_count"]) == (rank, score, count), key
        chosen = guide.get(key[0], (None, None))[0] == key[1]
        assert bool(row["is_chosen"]) == chosen and row["chosen_trade_id"] == guide.get(key[0], (None, None))[0], key
        assert float(row["candidate_value"]) == pytest.approx(float(row["upb"]) * score / 100, abs=0.006)
        if chosen:
            assert rank == guide[key[0]][1] and float(row["value_vs_chosen"]) == 0.0, key
    chosen_loans = {r["loan_id"] for r in rows if r["is_chosen"]}
    assert chosen_loans == {loan for loan in guide if loan in pairs} and chosen_loans

    top = _run(db, QUERIES["pool_candidates"].render(dialect, run_id=run_id, params={"max_rank": "3"}))
    kept = {(row[1], row[2]) for row in top.rows}
    assert kept == {key for key, (rank, _, _) in expected.items() if rank <= 3}
