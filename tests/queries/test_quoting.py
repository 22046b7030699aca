"""The literals and identifiers a deploy writes without sqlglot are exactly those sqlglot writes, in
every dialect; anything else goes to sqlglot itself. A plan renders every query with no sqlglot loaded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pfill.dialects import DIALECTS
from pfill.queries.template import _plain_literal, _sqlglot_literal, quote_identifier, sql_literal

VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=30), st.from_regex(r"[A-Za-z0-9 _.:/@+=,-]{0,30}", fullmatch=True))


@pytest.mark.parametrize("dialect", DIALECTS)
@given(value=VALUES)
def test_a_plain_literal_is_what_sqlglot_writes(dialect: str, value: object) -> None:
    plain = _plain_literal(value, dialect)
    if plain is not None:
        assert plain == _sqlglot_literal(value, dialect)
    if not (isinstance(value, str) and any(m in value for m in ("{{", "{%", "{#"))):
        assert sql_literal(value, dialect) == _sqlglot_literal(value, dialect)


def test_quotes_and_backslashes_still_go_through_sqlglot() -> None:
    for value in ("o'hara", "a\\b", "x'; DROP TABLE t; --", "é"):
        assert _plain_literal(value, "postgresql") is None
    assert sql_literal("o'hara", "mssql") == "'o''hara'"


@pytest.mark.parametrize("dialect", DIALECTS)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,62}", fullmatch=True))
def test_a_quoted_identifier_is_what_sqlglot_writes(dialect: str, name: str) -> None:
    from sqlglot import exp

    from pfill.dialects import sqlglot_name

    assert quote_identifier(name, dialect) == exp.to_identifier(name, quoted=True).sql(dialect=sqlglot_name(dialect))


def test_rendering_every_query_for_superset_loads_no_sqlglot() -> None:
    code = ("import sys\nfrom pfill.queries.catalog import load_queries\n"
            "for q in load_queries().values():\n"
            "    for d in ('sqlite', 'postgresql', 'mssql'):\n"
            "        q.render(d, tenant='acme.eu-1', schema='pfill', superset=True)\n"
            "import pfill.deploy.cli, pfill.deploy.project\n"
            "print('sqlglot' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stdout + done.stderr
