"""Deploy-time rendering of the report templates, and the safe way values get into SQL.

Two template layers live in one template file:
- deploy time (this module): Jinja with `[[ expr ]]`, `[% stmt %]` and `[# comment #]`, rendered by
  pfill with the dialect, tenant, run and schema;
- query time (Superset): `{{ filter_values('run_id') }}`, `{% if ... %}`, left untouched here so that
  Superset evaluates them when a chart runs. Because the delimiters differ, neither eats the other.

Values never reach the SQL as raw text: identifiers must match a strict pattern, and every value is
validated for its type and then written as a SQL literal by sqlglot for the target dialect (a
dataset's SQL is stored in Superset, so there is no connection to bind parameters to).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext

from pfill.dialects import check_dialect, sqlglot_name
from pfill.errors import UsageError
from pfill.tenants import TENANT  # the one tenant grammar
from pfill.yamlfile import read_source

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_JINJA_MARKS = ("{{", "{%", "{#")
# The packaged queries folder, wherever the install put it (`pfill.queries` maps to queries/).
PACKAGED_QUERIES = Path(str(importlib.import_module("pfill.queries").__file__)).resolve().parent


class SqlLiteral(str):
    """A value already written as a SQL literal; `.value` keeps the Python value for template logic."""

    value: Any

    def __new__(cls, text: str, value: Any) -> SqlLiteral:
        literal = super().__new__(cls, text)
        literal.value = value
        return literal


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise UsageError(f"invalid {what} {name!r}: use letters, digits and _ (start with a letter or _)")
    return name


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT.match(tenant):
        raise UsageError(f"invalid tenant {tenant!r}: use letters, digits, '_', '.' and '-'")
    return tenant


def check_run_id(run_id: str) -> str:
    """A run id is a UUID; anything else is refused before it gets near the SQL."""
    try:
        return str(uuid.UUID(str(run_id)))
    except ValueError:
        raise UsageError(f"invalid run id {run_id!r}: expected a UUID") from None


def sql_literal(value: Any, dialect: str) -> SqlLiteral:
    """`value` as a SQL literal for the dialect (strings quoted and escaped by sqlglot; the plain values
    a deploy writes, as sqlglot writes them, without importing it: tests/queries/test_quoting.py)."""
    if isinstance(value, str) and any(mark in value for mark in _JINJA_MARKS):
        # Superset evaluates Jinja anywhere in a dataset's SQL, string literals included.
        raise UsageError(f"value {value!r} contains template markup ({{{{, {{% or {{#)")
    plain = _plain_literal(value, dialect)
    return SqlLiteral(plain if plain is not None else _sqlglot_literal(value, dialect), value)


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9 _.:/@+=,-]*")  # the same between quotes in every dialect


def _plain_literal(value: Any, dialect: str) -> str | None:
    check_dialect(dialect)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if dialect == "postgresql" else str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and _PLAIN_TEXT.fullmatch(value):
        return f"'{value}'"
    return None


def _sqlglot_literal(value: Any, dialect: str) -> str:
    from sqlglot import exp

    if value is None:
        node: exp.Expression = exp.Null()
    elif isinstance(value, bool):
        node = exp.Literal.number(int(value)) if dialect != "postgresql" else exp.Boolean(this=value)
    elif isinstance(value, (int, float)):
        node = exp.Literal.number(value)
    elif isinstance(value, str):
        node = exp.Literal.string(value)
    else:
        raise UsageError(f"cannot write a {type(value).__name__} as a SQL literal")
    return node.sql(dialect=sqlglot_name(dialect))


def quote_identifier(name: str, dialect: str) -> str:
    """A quoted identifier (as sqlglot writes it: the name's characters need no escaping)."""
    check_identifier(name)
    return f"[{name}]" if check_dialect(dialect) == "mssql" else f'"{name}"'


_TAGS = (("[#", "#]"), ("[%", "%]"), ("[[", "]]"))


def keep_line_numbers(source: str) -> str:
    """Move the line breaks inside a multi-line tag to just after it.

    Jinja drops a comment or a statement tag with the line breaks inside it, so the rendered SQL
    would drift up against the template. With the breaks moved out, line N of the rendered SQL is
    line N of the template, and lint can point at template lines.
    """
    out: list[str] = []
    position = 0
    while True:
        starts = [(source.find(opening, position), opening, closing) for opening, closing in _TAGS]
        starts = [s for s in starts if s[0] >= 0]
        if not starts:
            out.append(source[position:])
            return "".join(out)
        start, _, closing = min(starts)
        end = source.find(closing, start + 2)
        if end < 0:  # unterminated: leave it for Jinja to report
            out.append(source[position:])
            return "".join(out)
        end += len(closing)
        tag = source[start:end]
        breaks = tag.count("\n")
        out.append(source[position:start])
        out.append(tag.replace("\n", " ") + "\n" * breaks if breaks else tag)
        position = end


class _LinePreserving(jinja2.ext.Extension):
    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return keep_line_numbers(source)


class SourceLoader(jinja2.BaseLoader):
    """Templates (and their includes) from the first folder that has them, each read like every
    other source file (pfill.yamlfile.read_source: a regular file, bounded in size, strict UTF-8),
    so a bad include is a one-line error naming it, wherever it is included from."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = [Path(folder) for folder in folders]

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)  # refuses `..`
        for folder in self.folders:
            path = folder.joinpath(*pieces)
            if path.is_file():
                return read_source(path), str(path), _unchanged(path)
        raise jinja2.TemplateNotFound(template)


def _unchanged(path: Path) -> Callable[[], bool]:
    mtime = path.stat().st_mtime
    return lambda: path.is_file() and path.stat().st_mtime == mtime


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between commands, in Jinja's folder private to the user under the
    system's temporary one: compiling the eight queries is a sixth of a no-op `plan`. An entry holds
    for its template's source and this module's (delimiters, the line-keeping pass): an edit to
    either compiles afresh. A cache that cannot be written is skipped, never an error."""

    def get_source_checksum(self, source: str) -> str:
        return super().get_source_checksum(_THIS_MODULE + source)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


_THIS_MODULE = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()


def _compiled_templates() -> jinja2.BytecodeCache | None:
    try:
        return _CompiledTemplates()
    except (OSError, RuntimeError):  # no private temporary folder to be had
        return None


def template_environment(folder: Path) -> jinja2.Environment:
    """The deploy-time Jinja environment: its own delimiters, strict about undefined names.

    Shared macros (`_dialect.j2`) come from the folder itself when it has them, else from the
    packaged queries, so a user's own folder can hold just its templates.
    """
    return jinja2.Environment(
        loader=SourceLoader([folder, PACKAGED_QUERIES]),
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=[_LinePreserving],
        bytecode_cache=_compiled_templates(),
    )


# -- Superset's query-time Jinja, evaluated with defaults for a preview --------------------------
def _where_in(values: list[Any], mark: str = "'") -> str:
    # Superset's own filter; the stub quotes the same way (only used on stub defaults).
    from sqlglot import exp

    return "(" + ", ".join(exp.Literal.string(str(v)).sql() for v in values) + ")"


def _superset_stub_environment() -> jinja2.Environment:
    """Superset's macros answering as if no filter and no URL parameter were set.

    A preview runs what a chart would run on a dashboard with nothing selected, so the SQL that
    Superset would see falls back to each template's default branch.
    """
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.update(
        filter_values=lambda column, default=None, remove_filter=False: [default] if default else [],
        url_param=lambda param, default=None, add_to_cache_keys=True, escape_result=True: default,
        get_filters=lambda column, remove_filter=False: [],
        current_username=lambda add_to_cache_keys=True: None,
        current_user_id=lambda add_to_cache_keys=True: None,
        current_user_email=lambda add_to_cache_keys=True: None,
    )
    env.filters["where_in"] = _where_in
    return env


_SUPERSET_STUBS = _superset_stub_environment()


def has_superset_jinja(sql: str) -> bool:
    return "{{" in sql or "{%" in sql


def neutralise_superset_jinja(sql: str, origin: str = "<sql>") -> str:
    """Evaluate Superset's query-time Jinja with its defaults, leaving plain runnable SQL."""
    if not has_superset_jinja(sql):
        return sql
    try:
        return _SUPERSET_STUBS.from_string(sql).render()
    except jinja2.TemplateSyntaxError as exc:
        raise UsageError(f"{origin}: Superset Jinja syntax error on rendered line {exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise UsageError(f"{origin}: Superset Jinja uses something pfill cannot preview: {exc.message}") from exc
