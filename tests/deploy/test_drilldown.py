"""Drill-down from the hub, without Superset: run_overview's `reports` column links every Complete run
to each detail dashboard as the kit deploys it (the tenant's slug), with the dashboard's Run native
filter (the id deploy/layout.py gives it) set to that run through Superset's `native_filters` URL
parameter; `is_shown` marks the run the detail dashboards show. The query runs on SQLite and
PostgreSQL over a pfill_run_history of four runs (the browser check follows a link in a real Superset)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import jinja2
import prison
import pytest
import sqlalchemy as sa

from pfill.dashboards.specs import load_specs
from pfill.deploy.identity import deployed_slug
from pfill.deploy.layout import native_filters
from pfill.dialects import DIALECTS
from pfill.engine.schema import pfill_run_history
from pfill.queries.catalog import load_queries

TENANT = "acme.eu-1"
OLDER, LATEST, FAILED, PURGED = (f"{n}0000000-0000-4000-8000-00000000000{n}" for n in range(1, 5))
QUERY = load_queries()["run_overview"]
DETAIL = [s for s in load_specs() if s.spec.slug != "hub"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, Any]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append({**dict(attrs), "text": ""})
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "a"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.links[-1]["text"] += data


def links(html: str) -> list[dict[str, Any]]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def run_filter_id(loaded: Any) -> str:
    """The id of the dashboard's native filter on run_id, as deployed."""
    ids = native_filters(loaded, {}, lambda kind, key: f"{kind}/{key}", load_queries())
    (run,) = [f for f in ids if f["targets"][0]["column"]["name"] == "run_id"]
    return run["id"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, sa.Engine]]:
    """(dialect, engine) over a pfill_run_history holding the four runs."""
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database("drill")
    engine = sa.create_engine(url)
    pfill_run_history.create(engine)
    rows = [(OLDER, "Complete", 1, None), (LATEST, "Complete", 2, None), (FAILED, "Failed", 3, None),
            (PURGED, "Complete", 0, datetime(2026, 1, 9))]
    with engine.begin() as conn:
        for run_id, status, day, removed in rows:
            conn.execute(pfill_run_history.insert().values(
                run_id=run_id, tenant_id=TENANT, status=status, scoring="price", created_at=datetime(2026, 1, day + 1),
                started_at=datetime(2026, 1, day + 1), completed_at=datetime(2026, 1, day + 1, 0, 1),
                output_removed_at=removed, failure_step="allocation" if status == "Failed" else None))
    yield request.param, engine
    engine.dispose()


def overview(engine: sa.Engine, sql: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return {row["run_id"]: dict(row) for row in result.mappings()}


def test_complete_runs_link_to_every_detail_dashboard_with_their_run_selected(
    engine: tuple[str, sa.Engine],
) -> None:
    dialect, db = engine
    rows = overview(db, QUERY.render(dialect, tenant=TENANT))
    assert rows[FAILED]["reports"] is None and rows[PURGED]["reports"] is None  # nothing to show there
    by_path = {f"/superset/dashboard/{deployed_slug(TENANT, s.spec.slug)}/": s for s in DETAIL}
    for run_id in (OLDER, LATEST):
        found = links(rows[run_id]["reports"])
        assert [link["text"] for link in found] == ["Guide", "Recap", "Switching", "Candidates", "Disposition",
                                                    "Pooling", "Slotting"]
        urls = [urllib.parse.urlsplit(link["href"]) for link in found]
        assert sorted(url.path for url in urls) == sorted(by_path)  # each detail dashboard once
        for link, url in zip(found, urls, strict=True):
            loaded = by_path[url.path]
            assert link["title"] == loaded.spec.title.removeprefix("PowerFill · ")
            (value,) = urllib.parse.parse_qs(url.query)["native_filters"]
            filter_id = run_filter_id(loaded)
            assert prison.loads(value) == {filter_id: {
                "id": filter_id,
                "extraFormData": {"filters": [{"col": "run_id", "op": "IN", "val": [run_id]}]},
                "filterState": {"value": [run_id]},
                "ownState": {},
            }}


def test_is_shown_follows_the_run_filter_else_the_latest(engine: tuple[str, sa.Engine]) -> None:
    dialect, db = engine
    rows = overview(db, QUERY.render(dialect, tenant=TENANT))
    assert [r for r, row in rows.items() if row["is_shown"]] == [LATEST]
    assert {r: row["latest_label"] for r, row in rows.items()}[LATEST] == "Latest"
    assert rows[OLDER]["latest_label"] == "Not the latest"

    dataset_sql = QUERY.render(dialect, tenant=TENANT, superset=True)
    env = jinja2.Environment()
    env.filters["where_in"] = lambda values: "(" + ", ".join(f"'{v}'" for v in values) + ")"

    def shown(filter_values: list[str], url_run: str | None = None) -> list[str]:
        sql = env.from_string(dataset_sql).render(filter_values=lambda column: filter_values,
                                                  url_param=lambda name: url_run)
        return [r for r, row in overview(db, sql).items() if row["is_shown"]]

    assert shown([OLDER]) == [OLDER]  # the Run filter, as the hub's link sets it
    assert shown([], url_run=OLDER) == [OLDER]  # ?run_id=
    assert shown([]) == [LATEST]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_detail_dashboard_is_linked_with_the_id_of_its_run_filter(dialect: str) -> None:
    sql = QUERY.render(dialect, tenant=TENANT, superset=True)
    for loaded in DETAIL:
        assert f"-{loaded.spec.slug}/?native_filters=({run_filter_id(loaded)}:" in sql
    links = sql[sql.index("AS allocated_loan_pct"):sql.index("AS reports")]
    assert "h.tenant_id" in links and TENANT not in links  # the links take the tenant from the row
