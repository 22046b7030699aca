"""Bad input never loses data, never hangs, never leaks, and always says what is wrong.

A corpus of bad inputs, one row each: the files to write, the command, the exit code and a fragment
of the one-line error. Every row runs the real CLI in process (`pfill.cli.cli`, `--home` in a tmp
folder, the working directory a tmp folder four levels deep) and must:
- exit with the row's code (1 for errors, 2 for a usage refusal such as a missing --force);
- on failure print `error: ...` as one line (at most 200 characters besides the tmp path) that holds
  the fragment (naming the file, and the line where there is one), and no traceback, no
  "unexpected" error;
- print no secret value of the row anywhere, stdout or stderr;
- change no file outside the folders it may write (home and, for export, --out): every file under
  the tmp folder, sentinels above the working directory included, is compared before and after;
- finish within 5 seconds.

`export` rows talk to a small fake Superset (an HTTP server speaking just the endpoints export
reads) whose dataset, chart and dashboard names are hostile.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pfill.cli import cli
from pfill.dashboards.specs import ChartSpec, DashboardSpec
from pfill.deploy.export import Exported, write_export
from pfill.errors import PfillError, UsageError

SECRET = "Sup3r-Secret-Pw"  # set as $FAKE_SUPERSET_PW and $DB_PW; never in any output
LIMIT_SECONDS = 5.0

# -- building blocks ------------------------------------------------------------------------------
ENVS = """\
environments:
  prod:
    superset:
      url: https://bi.example.com
      username: deployer
      password: ${FAKE_SUPERSET_PW}
    tenants:
      acme:
        database_url: postgresql://reader:${DB_PW}@db.example.com/powerfill
"""
FAKE_ENVS = """\
environments:
  fake:
    superset:
      url: http://127.0.0.1:{port}
      username: deployer
      password: ${FAKE_SUPERSET_PW}
"""
SPEC = """\
slug: mini
title: Mini
dataset: run_overview
charts:
  - {key: runs, title: Runs, viz: table, columns: [run_id, status]}
layout:
  - [runs]
"""
TEMPLATE = "SELECT 1 AS a\n"
META = """\
title: Mini
description: One column
parameters: []
columns:
  - {name: a, type: integer, description: The answer}
"""
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)  # 1 KB, 9^9 = 387M values once expanded

ENV_LIST = ["--config", "pfill.yaml", "env", "list"]
VALIDATE = ["validate", "--dashboards", "d"]
PREVIEW = ["preview", "mini", "--queries", "q"]
EXPORT = ["--config", "pfill.yaml", "export", "--env", "fake", "--dashboard", "7", "--out", "exported"]


def with_spec(text: str) -> dict[str, str | bytes]:
    return {"d/mini.yaml": text}


def with_query(template: str | bytes = TEMPLATE, meta: str | bytes = META,
               more: dict[str, str | bytes] | None = None) -> dict[str, str | bytes]:
    return {"q/mini.sql.j2": template, "q/mini.yaml": meta, **(more or {})}


@dataclass
class Case:
    id: str
    files: dict[str, str | bytes]
    args: list[str]
    expect: str  # fragment of the `error:` line (or of stdout when code is 0)
    code: int = 1
    secrets: tuple[str, ...] = (SECRET,)
    superset: dict[str, Any] | None = None  # names the fake Superset answers with (export rows)
    writes: tuple[str, ...] = ()  # folders (relative to the working directory) the command may write
    then: list[str] | None = None  # a follow-up command that must succeed (export rows)
    links: dict[str, str] = field(default_factory=dict)  # symlink (relative to cwd) -> target
    fifo: str | None = None


HOSTILE = {"slug": "../../../pwn", "dataset": "../../../../pfill", "chart": "evil/../../../x"}

CASES = [
    # -- 1. export writes only inside --out ------------------------------------------------------
    Case("export-dataset-key-escapes", {"pfill.yaml": FAKE_ENVS}, EXPORT, "exported/queries/pfill.sql.j2", code=0,
         superset=HOSTILE, writes=("exported",),
         then=["validate", "--dashboards", "exported/dashboards", "--queries", "exported/queries"]),
    Case("export-absolute-names", {"pfill.yaml": FAKE_ENVS}, EXPORT, "exported/dashboards/etc-passwd.yaml", code=0,
         superset={"slug": "/etc/passwd", "dataset": "/tmp/x", "chart": "a//b"}, writes=("exported",),
         then=["validate", "--dashboards", "exported/dashboards", "--queries", "exported/queries"]),
    Case("export-refuses-overwrite", {"pfill.yaml": FAKE_ENVS, "exported/queries/orders.yaml": "mine\n"}, EXPORT,
         "export would overwrite 1 existing file(s): queries/orders.yaml", code=2,
         superset={"slug": "sales", "dataset": "orders", "chart": "c"}),
    Case("export-force-overwrites", {"pfill.yaml": FAKE_ENVS, "exported/queries/orders.yaml": "mine\n"},
         [*EXPORT, "--force"], "exported/queries/orders.yaml", code=0,
         superset={"slug": "sales", "dataset": "orders", "chart": "c"}, writes=("exported",)),
    Case("export-symlink-out-of-out", {"pfill.yaml": FAKE_ENVS, "elsewhere/keep.txt": "keep\n"}, [*EXPORT, "--force"],
         "resolves outside exported", superset={"slug": "sales", "dataset": "orders", "chart": "c"},
         links={"exported/queries": "../elsewhere"}),
    Case("export-unsupported-chart", {"pfill.yaml": FAKE_ENVS}, EXPORT,
         "chart 'Chart one': cannot be written as a spec",
         superset={"slug": "sales", "dataset": "orders", "chart": "c", "viz": "deck_arc"}),
    # -- 2. YAML bounds: size, aliases, depth, values --------------------------------------------
    Case("yaml-alias-bomb-config", {"pfill.yaml": BOMB}, ENV_LIST, "pfill.yaml:6: more than 100,000 values"),
    Case("yaml-alias-bomb-spec", with_spec(BOMB), VALIDATE, "d/mini.yaml:6: more than 100,000 values"),
    Case("yaml-alias-bomb-query-meta", with_query(meta=BOMB), PREVIEW, "q/mini.yaml:6: more than 100,000 values"),
    Case("yaml-12mb-spec", with_spec("slug: x\ntitle: " + "x" * (12 << 20) + "\n"), VALIDATE,
         "d/mini.yaml: too large (12,582,928 bytes; at most 524,288)"),
    Case("yaml-deep-flow", with_spec("slug: " + "[" * 50_000 + "]" * 50_000 + "\n"), VALIDATE, "d/mini.yaml:1: "),
    Case("yaml-deep-block", with_spec("".join("  " * i + f"k{i}:\n" for i in range(100))), VALIDATE,
         "d/mini.yaml:64: nested deeper than 64 levels"),
    Case("yaml-recursive-alias", with_spec("a: &a [*a]\n"), VALIDATE, "d/mini.yaml:1: an alias inside its own anchor"),
    Case("yaml-bad-date", with_query(meta=META + "when: 2024-02-30\n"), PREVIEW,
         "q/mini.yaml:6: cannot read the value: day is out of range"),
    Case("yaml-fifo-config", {}, ENV_LIST, "pfill.yaml: not a regular file", fifo="pfill.yaml"),
    # -- 2b. duplicate keys -----------------------------------------------------------------------
    Case("dup-password-shadowed", {"pfill.yaml": ENVS.replace("      password: ${FAKE_SUPERSET_PW}\n",
                                                               f"      password: {SECRET}\n"
                                                               "      password: ${FAKE_SUPERSET_PW}\n")},
         ENV_LIST, "pfill.yaml:7: duplicate key 'password' (first at line 6)"),
    Case("dup-columns-in-query-meta",
         with_query(meta=META + "columns:\n  - {name: b, type: integer, description: B}\n"), PREVIEW,
         "q/mini.yaml:6: duplicate key 'columns' (first at line 4)"),
    Case("dup-charts-in-spec", with_spec(SPEC + "charts: []\n"), VALIDATE, "d/mini.yaml:8: duplicate key 'charts'"),
    Case("dup-environment", {"pfill.yaml": ENVS + ENVS.split("\n", 1)[1]}, ENV_LIST,
         "pfill.yaml:10: duplicate key 'prod' (first at line 2)"),
    # -- 2c. encoding, empty files, top level -----------------------------------------------------
    Case("utf8-config", {"pfill.yaml": ENVS.replace("deployer", "d\xe9ployer").encode("latin-1")}, ENV_LIST,
         "pfill.yaml:5: not UTF-8 (byte 0xe9 at offset "),
    Case("utf8-spec", with_spec(SPEC.replace("Mini", "M\xeeni").encode("cp1252")), VALIDATE,
         "d/mini.yaml:2: not UTF-8 (byte 0xee at offset 19)"),
    Case("utf8-query-meta", with_query(meta=META.replace("answer", "r\xe9ponse").encode("latin-1")), PREVIEW,
         "q/mini.yaml:5: not UTF-8 (byte 0xe9 at offset"),
    Case("empty-config", {"pfill.yaml": ""}, ENV_LIST, "pfill.yaml: the file is empty"),
    Case("comments-only-spec", with_spec("# nothing yet\n"), VALIDATE, "d/mini.yaml: the file is empty"),
    Case("list-spec", with_spec("- slug: x\n"), VALIDATE, "d/mini.yaml:1: expected a mapping of fields at the top, "
                                                          "found a list"),
    Case("scalar-query-meta", with_query(meta="just a title\n"), PREVIEW,
         "q/mini.yaml:1: expected a mapping of fields at the top, found a string"),
    # -- 3. leaks: URLs the parser rejects, passwords with @ / : quotes, ?password= -------------
    Case("leak-one-slash-url", {}, ["--db", f"postgresql:/reader:{SECRET}@db/pf", "env", "list"],
         "postgresql:/reader:***@db/pf"),
    Case("leak-password-with-at-slash-colon", {}, ["--db", f"postgresql:/reader:{SECRET}@x/y:z@db/pf", "env", "list"],
         "postgresql:/reader:***@db/pf", secrets=(SECRET, "x/y:z")),
    Case("leak-password-with-quotes", {}, ["--db", f"postgresql:/reader:{SECRET}'\"q@db/pf", "env", "list"],
         "postgresql:/reader:***@db/pf", secrets=(SECRET, "'\"q")),
    Case("leak-query-password", {}, ["--db", f"postgresql://reader@db:port/pf?password={SECRET}", "env", "list"],
         "password=***"),
    Case("leak-typo-url-in-config", {"pfill.yaml": ENVS.replace("postgresql://reader:${DB_PW}@",
                                                                 f"postgresql:/reader:{SECRET}@")},
         ENV_LIST, "postgresql:/reader:***@db.example.com/powerfill", code=0),
    Case("leak-superset-url-with-userinfo", {"pfill.yaml": ENVS.replace("https://bi.example.com",
                                                                         f"https://deployer:{SECRET}@bi.example.com")},
         [*ENV_LIST, "--json"], "https://deployer:***@bi.example.com", code=0),
    # -- 4. templates: each one line naming the template (and line) ------------------------------
    Case("template-missing-include", with_query(TEMPLATE + '[% include "nope.j2" %]\n'), PREVIEW,
         "q/mini.sql.j2:2: template not found: nope.j2"),
    Case("template-type-error", with_query(TEMPLATE + "[[ 1 + 'a' ]]\n"), PREVIEW,
         "q/mini.sql.j2:2: error while rendering: TypeError"),
    Case("template-recursion", with_query("[% macro f(n) %][[ f(n) ]][% endmacro %]\n[[ f(1) ]]\n"), PREVIEW,
         "q/mini.sql.j2:1: recursion too deep"),
    Case("template-not-utf8", with_query(b"SELECT '\xe9t\xe9' AS a\n"), PREVIEW,
         "q/mini.sql.j2:1: not UTF-8 (byte 0xe9 at offset 8)"),
    Case("template-include-not-utf8", with_query("[% import '_dialect.j2' as sql %]\nSELECT 1 AS a\n",
                                                 more={"q/_dialect.j2": b"\xff\xfe"}),
         PREVIEW, "q/_dialect.j2:1: not UTF-8 (byte 0xff at offset 0)"),
    Case("template-empty", with_query(" \n\n"), PREVIEW, "q/mini.sql.j2: the template is empty"),
    Case("template-syntax", with_query(TEMPLATE + "[% if %]\n"), PREVIEW, "q/mini.sql.j2:2: template syntax error"),
    # -- 4b. folders ------------------------------------------------------------------------------
    Case("folder-without-specs", {"d/README.md": "specs go here\n"}, VALIDATE, "d: no dashboard specs (*.yaml)"),
    Case("folder-spec-as-yml", {"d/mini.yaml": SPEC, "d/other.yml": SPEC.replace("mini", "other")}, VALIDATE,
         "d/other.yml: dashboard specs must end in .yaml"),
    Case("folder-meta-without-template", with_query(more={"q/orphan.yaml": META}), PREVIEW,
         "q/orphan.yaml: query metadata without its template orphan.sql.j2"),
    Case("folder-template-without-meta", {"q/mini.sql.j2": TEMPLATE}, PREVIEW,
         "q/mini.sql.j2: missing metadata file mini.yaml"),
    Case("folder-meta-as-yml", {"q/mini.sql.j2": TEMPLATE, "q/mini.yml": META}, PREVIEW,
         "q/mini.yml: query metadata must end in .yaml"),
    # -- the harness itself: good input passes ---------------------------------------------------
    Case("ok-spec", with_spec(SPEC), VALIDATE, "valid: 1 dashboards", code=0),
    Case("ok-query", with_query(), PREVIEW, "SELECT", code=0),
]


# -- the fake Superset ----------------------------------------------------------------------------
def _marker(kind: str, key: str) -> str:
    return f"Managed in git by pfill-kit. [pfill-kit prod/acme/{kind}/{key}]"


def superset_answers(names: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """GET path -> `result` of the few endpoints export reads, with the given (hostile) names."""
    viz = names.get("viz", "table")
    position = {
        "ROOT_ID": {"type": "ROOT", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "children": ["ROW-1"]},
        "ROW-1": {"type": "ROW", "children": ["CHART-1"]},
        "CHART-1": {"type": "CHART", "meta": {"chartId": 11, "width": 6, "height": 50}},
    }
    params = {"datasource": "21__table", "viz_type": viz, "query_mode": "raw", "all_columns": ["a"]}
    return {
        "/api/v1/dashboard/7": {
            "id": 7, "slug": "hand-made", "dashboard_title": "Fake (acme)",
            "certification_details": _marker("dashboard", names["slug"]),
            "position_json": json.dumps(position), "json_metadata": "{}",
        },
        "/api/v1/dashboard/7/charts": [{"id": 11, "slice_name": "Chart one"}],
        "/api/v1/chart/11": {
            "id": 11, "slice_name": "Chart one", "viz_type": viz, "description": "",
            "params": json.dumps(params), "certification_details": _marker("chart", names["chart"]),
        },
        "/api/v1/dataset/21": {
            "table_name": "orders", "sql": "SELECT 1 AS a", "description": "Orders",
            "extra": json.dumps({"certification": {"details": _marker("dataset", names["dataset"])}}),
            "columns": [{"column_name": "a", "type": "INTEGER", "description": "The answer"}],
        },
    }


class FakeSuperset(ThreadingHTTPServer):
    answers: dict[str, Any]


class _Handler(BaseHTTPRequestHandler):
    server: FakeSuperset

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, {"access_token": "a", "refresh_token": "r"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in self.server.answers:
            self._send(200, {"result": self.server.answers[path]})
        else:
            self._send(404, {"message": "Not found"})


@pytest.fixture
def fake_superset() -> Iterator[FakeSuperset]:
    server = FakeSuperset(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# -- the harness ----------------------------------------------------------------------------------
def _snapshot(root: Path) -> dict[str, str]:
    """Every file and link under root -> a digest of its content (or link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory four levels under tmp_path, with a sentinel pfill.yaml at every level
    above it (where a `../../..` name would land), the environment cleared of PFILL_* settings."""
    work = tmp_path / "a" / "b" / "c" / "work"
    work.mkdir(parents=True)
    for level in (tmp_path, *work.parents[:3]):
        (level / "pfill.yaml").write_text("sentinel: do not touch\n")
    for name in list(os.environ):
        if name.startswith("PFILL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAKE_SUPERSET_PW", SECRET)
    monkeypatch.setenv("DB_PW", SECRET)
    monkeypatch.chdir(work)
    return work


def _write(work: Path, case: Case, port: int | None) -> None:
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{port}", str(port)), encoding="utf-8")
    for link, target in case.links.items():
        (work / link).parent.mkdir(parents=True, exist_ok=True)
        (work / link).symlink_to(target)
    if case.fifo:
        os.mkfifo(work / case.fifo)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, workspace: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    port = None
    if case.superset is not None:
        server: FakeSuperset = request.getfixturevalue("fake_superset")
        server.answers = superset_answers(case.superset)
        port = server.server_address[1]
    _write(workspace, case, port)
    home = tmp_path / "home"
    before = _snapshot(tmp_path)

    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["--home", str(home), *case.args])
    elapsed = time.perf_counter() - start

    output = result.stdout + result.stderr
    assert elapsed < LIMIT_SECONDS, f"took {elapsed:.1f}s"
    assert result.exit_code == case.code, output
    assert "Traceback" not in output and "unexpected" not in output, output
    for secret in case.secrets:
        assert secret not in output, f"{secret!r} leaked: {output}"
    if case.code == 0:
        assert case.expect in output
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
        assert case.expect in errors[0], errors[0]
        assert len(errors[0].replace(str(workspace), "")) <= 200, errors[0]
        hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
        assert len(hints) <= 1 and all(len(line) <= 200 for line in hints), result.stderr

    after = _snapshot(tmp_path)
    allowed = ("home/", *(str((workspace / w).relative_to(tmp_path)) + "/" for w in case.writes))
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert {p for p in changed if not p.startswith(allowed)} == set()

    if case.then is not None:
        follow = CliRunner().invoke(cli, ["--home", str(home), *case.then])
        assert follow.exit_code == 0, follow.stdout + follow.stderr


def test_every_class_has_several_cases() -> None:
    prefixes = ["export-", "yaml-", "dup-", "utf8-", "leak-", "template-", "folder-"]
    counts = {p: sum(c.id.startswith(p) for c in CASES) for p in prefixes}
    assert all(n >= 3 for n in counts.values()), counts


# -- write_export directly, with a crafted Exported (no Superset) ---------------------------------
def _crafted(dataset: str, slug: str = "sales") -> Exported:
    chart = ChartSpec(key="c", title="C", viz="table", columns=["a"], dataset=dataset)
    spec = DashboardSpec.model_construct(slug=slug, title="T", description="", dataset=dataset, charts=[chart],
                                         markdown=[], filters=[], layout=[["c"]])
    detail = {"sql": "SELECT 1 AS a", "columns": [{"column_name": "a", "type": "INT", "description": "A"}]}
    return Exported(spec, {dataset: detail})


def test_write_export_keeps_every_file_inside_out(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "out"
    sentinel = tmp_path / "pfill.yaml"
    sentinel.write_text("keep\n")
    written = write_export(_crafted("../../../../pfill", slug="../../pwn"), out)
    assert sentinel.read_text() == "keep\n"
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "dashboards/pwn.yaml", "queries/pfill.sql.j2", "queries/pfill.yaml"]
    spec = (out / "dashboards" / "pwn.yaml").read_text()
    assert "dataset: pfill\n" in spec and ".." not in spec  # references renamed with the files


def test_write_export_tells_namesakes_apart_and_shares_twins(tmp_path: Path) -> None:
    from pfill.deploy.export import write_exports

    one, twin = _crafted("Orders", slug="one"), _crafted("Orders", slug="two")
    other = _crafted("orders", slug="three")
    other.datasets["orders"] = {**other.datasets["orders"], "sql": "SELECT 2 AS a"}
    written = write_exports([one, twin, other], tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["one.yaml", "orders.sql.j2", "orders.yaml", "orders_2.sql.j2", "orders_2.yaml",
                     "three.yaml", "two.yaml"]
    assert "dataset: orders_2\n" in (tmp_path / "out" / "dashboards" / "three.yaml").read_text()


def test_write_export_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "queries").mkdir(parents=True)
    (out / "queries" / "orders.yaml").write_text("mine\n")
    with pytest.raises(UsageError, match=r"would overwrite 1 existing file\(s\): queries/orders.yaml") as refused:
        write_export(_crafted("orders"), out)
    assert refused.value.hint and "--force" in refused.value.hint
    assert (out / "queries" / "orders.yaml").read_text() == "mine\n"
    assert not (out / "dashboards" / "sales.yaml").exists()  # nothing written at all
    write_export(_crafted("orders"), out, force=True)
    assert (out / "queries" / "orders.yaml").read_text() != "mine\n"


def test_write_export_never_writes_through_a_link_out_of_out(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "queries").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "queries" / "orders.yaml").symlink_to(elsewhere / "victim.yaml")
    with pytest.raises(PfillError, match="resolves outside"):
        write_export(_crafted("orders"), out, force=True)
    assert not (elsewhere / "victim.yaml").exists()


# -- masking holds for URLs no parser accepts ----------------------------------------------------
@pytest.mark.parametrize("text", [
    f"postgresql:/user:{SECRET}@host/db",
    f"postgresql://user:{SECRET}@x@host/db",
    f"postgresql://user:{SECRET}/x:y@host/db",
    f"not a database URL: 'postgresql:/user:{SECRET}\"\\'@host/db'",
    f"mssql+pyodbc://u@h/db?driver=x&password={SECRET}&a=b",
    f"mssql+pyodbc://u@h/db?odbc_connect=DRIVER%3DX%3BUID%3Du%3BPWD%3D{SECRET}%3B",
    f"Server=h;UID=u;PWD={SECRET};",
    f"https://admin:{SECRET}@bi.example.com/api",
])
def test_masking_holds_for_unparseable_urls(text: str) -> None:
    from pfill.secrets import mask_text, mask_url

    assert SECRET not in mask_text(text) and SECRET not in mask_url(text)
    assert "***" in mask_text(text)
