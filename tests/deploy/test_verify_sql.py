"""verify's direct count: the question a chart asks, asked of the database, for every dialect.
Pure SQL, no Superset: the live comparison is in test_deploy_live.py."""

from __future__ import annotations

import pytest
from sqlglot import exp

from pfill.dashboards.specs import WhereSpec
from pfill.deploy.charts import QueryShape
from pfill.deploy.verify import count_sql
from pfill.dialects import DIALECTS, parse
from pfill.queries.catalog import load_queries

QUERIES = load_queries()
SHAPES = {
    "rows": QueryShape((), False, 1000),
    "grouped": QueryShape(("tenant_id",), True, 1000),
    "filtered": QueryShape(("tenant_id",), True, 1000, (WhereSpec(column="tenant_id", op="!=", value="x"),)),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_ctes_move_to_the_top_of_the_count(dialect: str, shape: str) -> None:
    """SQL Server allows no WITH inside a derived table: every CTE of the dataset SQL ends up on top."""
    with_ctes = [q for q in QUERIES.values() if "WITH" in q.render(dialect).upper()]
    assert with_ctes, "no query has a CTE: this test proves nothing"
    for query in with_ctes:
        tree = parse(count_sql(query.render(dialect), SHAPES[shape], dialect), dialect)
        withs = list(tree.find_all(exp.With))
        nested = [w for w in withs if w.parent is not tree]
        assert len(withs) > len(nested), f"{query.name}: no WITH at the top"
        assert not nested, f"{query.name}: a WITH is left inside the count"
