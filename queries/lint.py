"""`pfill lint`: render every query for every dialect, parse it with sqlglot, and flag what breaks
in Superset or on SQL Server, or what breaks the contract with the dashboards.

Before any rule runs, a query must render and parse; failures there are the findings `render` and
`parse`. Then every rule in RULES (small objects with a name and a docstring, after sqlmesh's
linter rules) looks at the parsed SQL:
- order-by:    ORDER BY without TOP/LIMIT/OFFSET in a query or subquery (Superset wraps the dataset
               SQL in a derived table; SQL Server rejects ORDER BY there: error 1033)
- select-star: SELECT * or t.* (the columns would change behind the dashboards' back)
- columns:     the outer SELECT list against the columns declared in the metadata file (findings
               column-missing / column-undeclared / column-unnamed / column-duplicate)
Each finding carries its kind (`rule`) and the name of the check that made it (`check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from pfill.dialects import DIALECTS, parse, sqlglot_name
from pfill.errors import PfillError

from .catalog import Query, TemplateError
from .template import neutralise_superset_jinja


@dataclass
class Finding:
    path: Path
    line: int | None
    rule: str
    message: str
    query: str
    dialects: list[str] = field(default_factory=list)
    check: str = ""  # the name of the check that made it: render, parse or a rule in RULES

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def __str__(self) -> str:
        scope = "" if len(self.dialects) == len(DIALECTS) else f" ({', '.join(self.dialects)})"
        return f"{self.where}: {self.rule}: {self.message}{scope}"

    def as_dict(self) -> dict[str, object]:
        return {"file": str(self.path), "line": self.line, "rule": self.rule, "message": self.message,
                "query": self.query, "dialects": self.dialects, "check": self.check}


def lint_queries(queries: dict[str, Query]) -> list[Finding]:
    """Findings over all queries and dialects; the same finding in several dialects is listed once."""
    merged: dict[tuple[object, ...], Finding] = {}
    for query in queries.values():
        for dialect in DIALECTS:
            for finding in lint_one(query, dialect):
                key = (finding.path, finding.line, finding.rule, finding.message)
                if key in merged:
                    merged[key].dialects.append(dialect)
                else:
                    finding.dialects = [dialect]
                    merged[key] = finding
    return list(merged.values())


def lint_one(query: Query, dialect: str) -> list[Finding]:
    # The Superset form is what a dataset holds; with its query-time Jinja at the defaults it must
    # still parse. The deploy-time form without Superset Jinja is checked by the same path.
    try:
        raw = query.render(dialect, superset=True, trim=False)
        sql = neutralise_superset_jinja(raw, str(query.template_path))
    except TemplateError as exc:
        return [Finding(exc.path, exc.line, "render", exc.reason, query.name, check="render")]
    except PfillError as exc:
        return [Finding(query.template_path, None, "render", str(exc), query.name, check="render")]
    lines = _LineMap(query, sql)
    try:
        tree = parse(sql, dialect)
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        message = error.get("description") or str(exc).splitlines()[0]
        return [Finding(query.template_path, lines.template_line(error.get("line")), "parse",
                        f"{message} near {error.get('highlight', '')!r}", query.name, check="parse")]
    except TokenError as exc:
        return [Finding(query.template_path, None, "parse", str(exc), query.name, check="parse")]
    target = Target(query, dialect, sql, tree, lines)
    findings: list[Finding] = []
    for rule in RULES:
        for finding in rule.check(target):
            finding.check = rule.name
            findings.append(finding)
    if not lines.same:
        for finding in findings:
            if finding.path == query.template_path and finding.line:
                finding.message += " (line of the rendered SQL)"
    return findings


class _LineMap:
    """Rendered SQL line -> template line. They are the same while the render keeps the template's
    line count (the packaged macros are written so); otherwise the rendered line is reported."""

    def __init__(self, query: Query, sql: str) -> None:
        template_lines = query.template_path.read_text(encoding="utf-8").count("\n")
        self.same = template_lines == sql.count("\n")

    def template_line(self, rendered_line: int | None) -> int | None:
        return rendered_line


def _first_line(node: exp.Expression) -> int | None:
    for child in node.walk():
        line = child.meta.get("line") if isinstance(child, exp.Expression) else None
        if line:
            return int(line)
    return None


def _token_lines(sql: str, dialect: str, wanted: TokenType, after: set[TokenType] | None = None) -> list[int]:
    """Lines of the tokens of a type (optionally only right after one of `after`), in order."""
    tokens = sqlglot.tokenize(sql, read=sqlglot_name(dialect))
    return [
        token.line
        for previous, token in zip([None, *tokens], tokens, strict=False)
        if token.token_type == wanted and (after is None or (previous is not None and previous.token_type in after))
    ]


@dataclass
class Target:
    """What every rule looks at: one query rendered and parsed for one dialect."""

    query: Query
    dialect: str
    sql: str
    tree: exp.Expression
    lines: _LineMap

    def finding(self, line: int | None, rule: str, message: str) -> Finding:
        """A finding on a line of the rendered SQL, reported at its template line."""
        return Finding(self.query.template_path, self.lines.template_line(line), rule, message, self.query.name)


class Rule:
    """A named check over a parsed query (after sqlmesh's `core/linter/rule.py Rule`)."""

    name = ""

    def check(self, target: Target) -> list[Finding]:
        raise NotImplementedError


class OrderByWithoutLimit(Rule):
    """ORDER BY without TOP/LIMIT/OFFSET in a query or subquery: Superset wraps dataset SQL in a
    derived table, and SQL Server rejects ORDER BY there (error 1033)."""

    name = "order-by"

    def check(self, target: Target) -> list[Finding]:
        findings = []
        order_lines = _token_lines(target.sql, target.dialect, TokenType.ORDER_BY)
        for node in target.tree.find_all(exp.Select, exp.SetOperation):
            order = node.args.get("order")
            if not order or node.args.get("limit") or node.args.get("offset"):
                continue
            outer = node is target.tree
            line = _first_line(order) or (order_lines[-1] if outer and order_lines else None)
            where = "at the outer level" if outer else "in a subquery"
            findings.append(target.finding(
                line, "order-by",
                f"ORDER BY {where} without TOP/LIMIT/OFFSET: Superset wraps dataset SQL in a derived table "
                "and SQL Server rejects it there; order in the chart instead",
            ))
        return findings


class NoSelectStar(Rule):
    """SELECT * or t.*: the columns would change behind the dashboards' back."""

    name = "select-star"

    def check(self, target: Target) -> list[Finding]:
        stars = [
            star for star in target.tree.find_all(exp.Star)
            if isinstance(star.parent, exp.Select)
            or (isinstance(star.parent, exp.Column) and isinstance(star.parent.parent, exp.Select))
        ]
        if not stars:
            return []
        after = {TokenType.SELECT, TokenType.DISTINCT, TokenType.COMMA, TokenType.DOT}
        star_lines = _token_lines(target.sql, target.dialect, TokenType.STAR, after)
        return [
            target.finding(star_lines[i] if i < len(star_lines) else None,
                           "select-star", "SELECT * (list the columns: dashboards depend on them)")
            for i in range(len(stars))
        ]


class DeclaredColumns(Rule):
    """The outer SELECT list against the columns declared in the metadata file: every column named,
    selected once, declared, and every declared column selected."""

    name = "columns"

    def check(self, target: Target) -> list[Finding]:
        tree, query = target.tree, target.query
        if not isinstance(tree, (exp.Select, exp.SetOperation)):
            return [Finding(query.template_path, None, "parse", "not a SELECT statement", query.name)]
        first = tree
        while isinstance(first, exp.SetOperation):
            first = first.this
        findings: list[Finding] = []
        selected: dict[str, exp.Expression] = {}
        for projection in first.expressions:
            if isinstance(projection, exp.Star) or isinstance(projection.this, exp.Star):
                continue  # reported by select-star
            name = projection.alias_or_name
            line = _first_line(projection.args.get("alias") or projection)
            if not name:
                findings.append(target.finding(
                    line, "column-unnamed", f"select item {projection.sql()[:60]!r} has no name: add AS <column>"))
                continue
            if name in selected:
                findings.append(target.finding(line, "column-duplicate", f"column {name} selected twice"))
            selected[name] = projection
            if name not in query.column_names:
                message = f"column {name} is selected but not declared in {query.meta_path.name}"
                findings.append(target.finding(line, "column-undeclared", message))
        for column in query.columns:
            if column.name not in selected:
                findings.append(Finding(query.meta_path, query.column_line(column.name), "column-missing",
                                        f"column {column.name} is declared but not selected", query.name))
        return findings


# The checks `pfill lint` runs on every parsed query, in this order.
RULES: list[Rule] = [OrderByWithoutLimit(), NoSelectStar(), DeclaredColumns()]
