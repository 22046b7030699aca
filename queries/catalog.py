"""The report queries: a templated SQL file plus a metadata sidecar per report.

    queries/<name>.sql.j2   the SQL, deploy-time Jinja with [[ ]] / [% %] (see template.py)
    queries/<name>.yaml     title, description, parameters, output columns (name, type, description)
                            and key: the columns that order its rows and tell them apart (`-` first:
                            descending), for paging

Python API (what lint, preview and the dataset builder use):
    load_queries(folder=None) -> dict[str, Query]
    Query.render(dialect, tenant="demo", run_id=None, schema=None, superset=False, params=None, trim=True,
                 bind=False) -> str
    Query.columns / Query.column_names / Query.parameters
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from pfill.config import DEFAULT_TENANT
from pfill.dialects import check_dialect
from pfill.errors import ConfigError, PfillError, UsageError
from pfill.yamlfile import LocatedYaml, check_keys, load_located, read_source

from .template import (
    PACKAGED_QUERIES,
    SqlLiteral,
    check_identifier,
    check_run_id,
    check_tenant,
    neutralise_superset_jinja,
    quote_identifier,
    sql_literal,
    template_environment,
)

TEMPLATE_SUFFIX = ".sql.j2"
# The packaged reports in the order operators read them (hub first); other names follow by name.
REPORT_ORDER = (
    "run_overview", "allocation_guide", "trade_recap", "switching", "pool_candidates",
    "existing_disposition", "pooling_guide", "cash_trade_slotting",
)
COLUMN_TYPES = ("string", "integer", "decimal", "float", "boolean", "date", "datetime")
PARAMETER_TYPES = ("string", "integer", "number", "boolean")
# Parameters every report may declare; their values come from the render call, not from `params`.
BUILTIN_PARAMETERS = {
    "tenant": "tenant id (rows of other tenants are never shown)",
    "run_id": "the run to show (a UUID); default: the latest Complete run of the tenant",
    "schema": "database schema holding the tables; default: the connection's default",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    description: str
    default: Any = None

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_PARAMETERS

    def coerce(self, raw: Any) -> Any:
        """A value from the CLI (text) or from Python, checked against the declared type."""
        if raw is None:
            return None
        try:
            if self.type == "integer":
                return int(raw)
            if self.type == "number":
                return float(raw)
            if self.type == "boolean":
                if isinstance(raw, bool):
                    return raw
                text = str(raw).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
        except (TypeError, ValueError):
            raise UsageError(f"parameter {self.name}: {raw!r} is not a valid {self.type}") from None
        return str(raw)


@dataclass
class Query:
    name: str
    title: str
    description: str
    template_path: Path
    meta: LocatedYaml
    columns: tuple[Column, ...]
    parameters: tuple[Parameter, ...]
    environment: jinja2.Environment = field(repr=False)
    key: tuple[str, ...] = ()  # ordering columns, "-name" descending; unique together within a run

    @property
    def meta_path(self) -> Path:
        return self.meta.path

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def takes(self, parameter: str) -> bool:
        return parameter in self.parameter_names

    def column_line(self, name: str) -> int | None:
        """Line of a declared column in the metadata file."""
        for index, column in enumerate(self.columns):
            if column.name == name:
                return self.meta.lines.get(("columns", index))
        return None

    def render(
        self,
        dialect: str,
        tenant: str = DEFAULT_TENANT,
        run_id: str | None = None,
        schema: str | None = None,
        superset: bool = False,
        params: dict[str, Any] | None = None,
        trim: bool = True,
        bind: bool = False,
    ) -> str:
        """The SQL for one dialect.

        superset=True: the text a Superset virtual dataset holds, with Superset's query-time Jinja
        (the run filter) left in place. superset=False: plain SQL to run directly; Superset Jinja is
        evaluated with its defaults (no filter set: the latest Complete run).
        trim=False keeps the template's lines: line N of the output is line N of the template as long
        as its macros and blocks emit no extra lines (lint relies on it to name lines).
        bind=True: the tenant and the run are the bind parameters `:tenant` and `:run_id` (run_id is
        then required), for a caller that executes the SQL with their values (the run service).
        """
        check_dialect(dialect)
        if bind and superset:
            raise UsageError("bind=True is for SQL run directly, not a Superset dataset")
        check_tenant(tenant)
        context = {
            "dialect": dialect,
            "superset": superset,
            "tenant": SqlLiteral(":tenant", tenant) if bind else sql_literal(tenant, dialect),
            "run_id": None,
            "table": lambda name: self._table(name, dialect, schema),
            "params": self._params(dialect, params or {}),
        }
        if run_id is not None:
            if not self.takes("run_id"):
                raise UsageError(f"query {self.name} does not take a run id (it shows every run)")
            context["run_id"] = (SqlLiteral(":run_id", check_run_id(run_id)) if bind
                                 else sql_literal(check_run_id(run_id), dialect))
        if schema is not None:
            check_identifier(schema, "schema")
        sql = self._render_template(context)
        if not superset:
            sql = neutralise_superset_jinja(sql, str(self.template_path))
        return sql.strip() + "\n" if trim else sql

    # -- helpers ---------------------------------------------------------------------------------
    def _table(self, name: str, dialect: str, schema: str | None) -> str:
        check_identifier(name, "table name")
        return f"{quote_identifier(schema, dialect)}.{name}" if schema else name

    def _params(self, dialect: str, given: dict[str, Any]) -> dict[str, SqlLiteral]:
        declared = {p.name: p for p in self.parameters if not p.builtin}
        for name in given:
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                builtin = " (pass it as its own option)" if name in BUILTIN_PARAMETERS else ""
                raise UsageError(f"query {self.name} has no parameter {name!r}{builtin}; its parameters: {known}")
        return {
            name: sql_literal(p.coerce(given[name]) if name in given else p.default, dialect)
            for name, p in declared.items()
        }

    def _render_template(self, context: dict[str, Any]) -> str:
        try:
            template = self.environment.get_template(self.template_path.name)
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:
            path = Path(exc.filename) if exc.filename else self.template_path
            raise TemplateError(path, exc.lineno, f"template syntax error: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            path, line = _template_frame(exc, self.template_path)
            raise TemplateError(path, line, f"undefined in template: {exc.message}") from exc
        except PfillError:
            raise  # a value the template passed on was refused (a bad identifier), or an unreadable include
        except jinja2.TemplateNotFound as exc:
            path, line = _template_frame(exc, self.template_path)
            raise TemplateError(path, line, f"template not found: {exc.name}") from exc
        except RecursionError:
            path, line = _template_frame(sys.exc_info()[1], self.template_path)
            raise TemplateError(path, line, "recursion too deep (a macro or include that calls itself?)") from None
        except Exception as exc:  # whatever an expression raises while rendering: TypeError, ZeroDivisionError...
            path, line = _template_frame(exc, self.template_path)
            raise TemplateError(path, line, f"error while rendering: {type(exc).__name__}: {exc}") from exc


class TemplateError(ConfigError):
    """A template that does not render, located at its file and line."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        message = " ".join(message.split())  # one line, whatever Jinja's message holds
        if len(message) > 200:
            message = message[:197] + "..."
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.reason = path, line, message


def _template_frame(exc: BaseException, default: Path) -> tuple[Path, int | None]:
    """The template file and line of a render-time error, from Jinja's rewritten traceback."""
    tb = exc.__traceback__
    found: tuple[Path, int | None] = (default, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (Path(filename), tb.tb_lineno)
        tb = tb.tb_next
    return found


# -- loading ----------------------------------------------------------------------------------------
def load_queries(folder: str | Path | None = None) -> dict[str, Query]:
    """Every `<name>.sql.j2` with its `<name>.yaml` in the folder (default: the packaged queries)."""
    root = Path(folder) if folder is not None else PACKAGED_QUERIES
    if not root.is_dir():
        raise ConfigError(f"queries folder not found: {root}")
    environment = template_environment(root)
    _check_pairs(root)
    queries: dict[str, Query] = {}
    for template in sorted(root.glob(f"*{TEMPLATE_SUFFIX}")):
        name = template.name[: -len(TEMPLATE_SUFFIX)]
        if name.startswith("_"):
            continue  # shared includes, not reports
        queries[name] = _load_one(name, template, environment)
    if not queries:
        raise ConfigError(f"no queries (*{TEMPLATE_SUFFIX}) in {root}")
    rank = {name: index for index, name in enumerate(REPORT_ORDER)}
    return dict(sorted(queries.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def get_query(queries: dict[str, Query], name: str) -> Query:
    if name in queries:
        return queries[name]
    close = difflib.get_close_matches(name, list(queries), n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(queries)}"
    raise UsageError(f"unknown query {name!r}; {hint}")


def _check_pairs(root: Path) -> None:
    """Every file the loader would skip but its author meant it to read is an error: metadata saved
    as .yml, or metadata without its template (a report whose .sql.j2 was renamed or deleted)."""
    for stray in sorted(root.glob("*.yml")):
        raise ConfigError(f"{stray}: query metadata must end in .yaml (.yml files are not read)",
                          hint=f"rename it to {stray.stem}.yaml")
    for meta in sorted(root.glob("*.yaml")):
        if not meta.name.startswith("_") and not meta.with_name(f"{meta.stem}{TEMPLATE_SUFFIX}").exists():
            raise ConfigError(f"{meta}: query metadata without its template {meta.stem}{TEMPLATE_SUFFIX}")


def _load_one(name: str, template: Path, environment: jinja2.Environment) -> Query:
    meta_path = template.with_name(f"{name}.yaml")
    if not meta_path.exists():
        raise ConfigError(f"{template}: missing metadata file {meta_path.name} (columns and parameters)")
    if not read_source(template).strip():  # read now: too large or not UTF-8 fails here, naming it
        raise ConfigError(f"{template}: the template is empty (expected the report's SELECT)")
    meta = load_located(meta_path)
    data = meta.data
    check_keys(data, {"title", "description", "parameters", "columns", "key"}, meta)
    columns = _columns(data.get("columns"), meta)
    return Query(
        name=name,
        title=str(data.get("title") or name),
        description=str(data.get("description") or ""),
        template_path=template,
        meta=meta,
        columns=columns,
        parameters=_parameters(data.get("parameters") or [], meta),
        environment=environment,
        key=_key(data.get("key"), columns, meta),
    )


def _key(raw: Any, columns: tuple[Column, ...], meta: LocatedYaml) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = {c.name for c in columns}
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"{meta.where('key')}: `key` must be a non-empty list of column names")
    for index, item in enumerate(raw):
        if item.removeprefix("-") not in names:
            raise ConfigError(f"{meta.where('key', index)}: key {item!r} is not a declared column",
                              hint="a key names columns of `columns`, `-name` for descending order")
    return tuple(raw)


def _columns(raw: Any, meta: LocatedYaml) -> tuple[Column, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{meta.where('columns')}: `columns` must be a non-empty list")
    columns: list[Column] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = meta.where("columns", index)
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a column is a mapping with name, type, description")
        check_keys(item, {"name", "type", "description"}, meta, "columns", index)
        name, type_ = item.get("name"), item.get("type")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: column without a name")
        check_identifier_for_meta(name, where)
        if name in seen:
            raise ConfigError(f"{where}: column {name!r} declared twice")
        if type_ not in COLUMN_TYPES:
            raise ConfigError(f"{where}: column {name}: type must be one of {', '.join(COLUMN_TYPES)}")
        if not item.get("description"):
            raise ConfigError(f"{where}: column {name}: a description is required")
        seen.add(name)
        columns.append(Column(name, type_, str(item["description"])))
    return tuple(columns)


def _parameters(raw: Any, meta: LocatedYaml) -> tuple[Parameter, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{meta.where('parameters')}: `parameters` must be a list")
    parameters: list[Parameter] = []
    for index, item in enumerate(raw):
        where = meta.where("parameters", index)
        if isinstance(item, str) and item in BUILTIN_PARAMETERS:
            parameters.append(Parameter(item, "string", BUILTIN_PARAMETERS[item]))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(
                f"{where}: a parameter is one of {', '.join(BUILTIN_PARAMETERS)} or a mapping "
                "with name, type, default, description"
            )
        check_keys(item, {"name", "type", "default", "description"}, meta, "parameters", index)
        check_identifier_for_meta(item["name"], where)
        if item["name"] in BUILTIN_PARAMETERS:
            raise ConfigError(f"{where}: {item['name']} is built in: list it by name only")
        if item.get("type") not in PARAMETER_TYPES:
            raise ConfigError(f"{where}: parameter type must be one of {', '.join(PARAMETER_TYPES)}")
        parameter = Parameter(item["name"], item["type"], str(item.get("description") or ""))
        try:
            default = parameter.coerce(item.get("default"))
        except UsageError as exc:
            raise ConfigError(f"{where}: default: {exc}") from None
        parameters.append(Parameter(parameter.name, parameter.type, parameter.description, default))
    return tuple(parameters)


def check_identifier_for_meta(name: str, where: str) -> None:
    try:
        check_identifier(name)
    except UsageError as exc:
        raise ConfigError(f"{where}: {exc}") from None
