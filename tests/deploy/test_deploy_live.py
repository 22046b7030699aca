"""Dashboards as code against the live Superset, over engine output on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pfill.config import Settings
from pfill.deploy.apply import ApplyError
from pfill.deploy.client import SupersetClient
from pfill.deploy.project import Project

from .conftest import PASSWORD_VAR

pytestmark = [pytest.mark.superset, pytest.mark.postgres]

EXPECTED = {"database": 1, "dataset": 8, "chart": 32, "dashboard": 8}
BASE_TENANTS = ["lite", "pg"]  # SQLite and PostgreSQL engine output


def _counts(found: dict[str, list[dict]]) -> dict[str, int]:
    return {kind: len(rows) for kind, rows in found.items()}


def test_first_apply_creates_everything_and_second_writes_nothing(deploy_target, managed_objects) -> None:
    deploy_target.write_env("it", BASE_TENANTS)
    first = deploy_target.pfill("apply", "--env", "it", "--yes", "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    # 49 objects and the tenant's viewer role; writes: two import bundles (the new database on its
    # own, then everything that reads it), then the role (create, its grants, its 8 dashboards)
    assert [(s["applied"], s["writes"]) for s in summary] == [(50, 12), (50, 12)]
    for tenant in ("lite", "pg"):
        assert _counts(managed_objects("it", tenant)) == EXPECTED

    second = deploy_target.pfill("apply", "--env", "it", "--yes", "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout) == [
        {"tenant": "lite", "applied": 0, "writes": 0}, {"tenant": "pg", "applied": 0, "writes": 0}
    ]
    plan = deploy_target.pfill("plan", "--env", "it")
    assert plan.exit_code == 0, plan.output
    assert plan.stdout.count("No changes: 49 objects match the specs.") == 2


def _deployed(deploy_target, env: str) -> None:
    """Make the test stand alone: apply (a no-op when an earlier test already deployed it)."""
    deploy_target.write_env(env, BASE_TENANTS)
    applied = deploy_target.pfill("apply", "--env", env, "--yes")
    assert applied.exit_code == 0, applied.output


def test_a_no_op_apply_loads_neither_sqlalchemy_nor_sqlglot(deploy_target) -> None:
    """A no-op apply only reads: the dataset SQL check (and the libraries it needs) runs only when a
    dataset is to be written. Before, every apply imported both (a third of a second)."""
    _deployed(deploy_target, "it")
    args = ["--home", str(deploy_target.home), "--config", str(deploy_target.config), "apply", "--env", "it", "--yes"]
    probe = ("import sys\nfrom pfill.cli import cli\ncode = 0\n"
             f"try:\n    cli({args!r}, prog_name='pfill')\nexcept SystemExit as stop:\n    code = stop.code\n"
             "print(code, sorted(m for m in ('sqlalchemy', 'sqlglot') if m in sys.modules), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, PASSWORD_VAR: deploy_target.password})
    assert "No changes" in done.stderr, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == "0 []"


def test_verify_passes_on_all_32_charts_per_tenant(deploy_target) -> None:
    _deployed(deploy_target, "it")
    result = deploy_target.pfill("verify", "--env", "it", "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)
    for tenant in ("lite", "pg"):
        charts = [c for c in checks if c["tenant"] == tenant and c["kind"] == "chart"]
        assert len(charts) == 32 and all(c["ok"] for c in charts), charts
        # the run's data really came through: the big tables are not empty
        rows = {c["name"]: c["superset_rows"] for c in charts}
        assert rows["allocation-guide/guide"] > 0 and rows["trade-recap/recap"] > 0
        assert rows["pooling-guide/guide"] > 0 and rows["cash-trade-slotting/slots"] > 0


def test_sql_change_plans_that_dataset_only_then_verifies(deploy_target) -> None:
    deploy_target.write_env("sqlchange", ["sqlchange"])
    queries, dashboards = deploy_target.copy_sources("sqlchange")
    sources = ["--queries", str(queries), "--dashboards", str(dashboards)]
    applied = deploy_target.pfill("apply", "--env", "sqlchange", "--yes", *sources)
    assert applied.exit_code == 0, applied.output

    template = queries / "switching.sql.j2"
    template.write_text(template.read_text().replace("COALESCE(d.reason, s.reason) AS reason",
                                                     "COALESCE(d.reason, s.reason, 'n/a') AS reason"))
    plan = deploy_target.pfill("plan", "--env", "sqlchange", "--json", *sources)
    assert plan.exit_code == 2, plan.output
    changes = json.loads(plan.stdout)[0]["changes"]
    assert [(c["action"], c["kind"], c["name"]) for c in changes] == [("update", "dataset", "switching")]
    assert [d["field"] for d in changes[0]["diffs"]] == ["sql"]

    assert deploy_target.pfill("apply", "--env", "sqlchange", "--yes", *sources).exit_code == 0
    assert deploy_target.pfill("plan", "--env", "sqlchange", *sources).exit_code == 0
    verify = deploy_target.pfill("verify", "--env", "sqlchange", *sources)
    assert verify.exit_code == 0, verify.output


def test_prune_deletes_exactly_the_removed_chart(deploy_target, superset_client, managed_objects) -> None:
    deploy_target.write_env("prune", ["prune"])
    queries, dashboards = deploy_target.copy_sources("prune")
    sources = ["--queries", str(queries), "--dashboards", str(dashboards)]
    assert deploy_target.pfill("apply", "--env", "prune", "--yes", *sources).exit_code == 0
    before = managed_objects("prune", "prune")
    doomed = next(c for c in before["chart"] if c["slice_name"] == "Trades by fill status")

    # a chart someone made by hand on a managed dataset: not the kit's to delete
    recap = next(d for d in before["dataset"] if d["table_name"].startswith("trade_recap ("))
    handmade = superset_client.post("/api/v1/chart/", json={
        "slice_name": "hand-made", "viz_type": "table", "datasource_id": recap["id"], "datasource_type": "table",
        "params": json.dumps({"viz_type": "table", "query_mode": "raw", "all_columns": ["trade_id"]}),
    })["id"]

    spec_path = dashboards / "trade-recap.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["charts"] = [c for c in spec["charts"] if c["key"] != "fill_status"]
    spec["layout"] = [[k for k in row if k != "fill_status"] for row in spec["layout"]]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))

    plan = deploy_target.pfill("plan", "--env", "prune", "--json", *sources)
    changes = json.loads(plan.stdout)[0]["changes"]
    assert plan.exit_code == 2  # the dashboard layout changes; the deletion waits for --prune
    assert {(c["action"], c["kind"]) for c in changes} == {("update", "dashboard"), ("delete", "chart")}

    without = deploy_target.pfill("apply", "--env", "prune", "--yes", *sources)
    assert without.exit_code == 0, without.output
    assert any(c["id"] == doomed["id"] for c in managed_objects("prune", "prune")["chart"])

    pruned = deploy_target.pfill("apply", "--env", "prune", "--yes", "--prune", "--json", *sources)
    assert pruned.exit_code == 0, pruned.output
    after = managed_objects("prune", "prune")
    assert {c["id"] for c in before["chart"]} - {c["id"] for c in after["chart"]} == {doomed["id"]}
    assert _counts(after) == {**EXPECTED, "chart": 31}
    assert superset_client.get(f"/api/v1/chart/{handmade}")["result"]["slice_name"] == "hand-made"
    superset_client.delete(f"/api/v1/chart/{handmade}")


class FailingWrites(SupersetClient):
    """Injects what a real server will not do on demand: the connection dies after N writes."""

    def __init__(self, *args, fail_after: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after

    def request(self, method, path, **kwargs):  # type: ignore[no-untyped-def]
        if method.upper() in ("POST", "PUT", "DELETE") and "security" not in path and self.writes >= self.fail_after:
            from pfill.deploy.client import SupersetError

            raise SupersetError(f"{method} {path}: injected connection loss")
        return super().request(method, path, **kwargs)


def _interrupted_apply(deploy_target, superset, env: str, fail_after: int, dashboards: Path | None = None,
                       prune: bool = False) -> ApplyError:
    settings = Settings.resolve(home=deploy_target.work / "home", config=deploy_target.config)
    project = Project.load(settings, env, (), None, dashboards)
    with (
        FailingWrites(superset.url, "admin", superset.admin_password(), fail_after=fail_after) as client,
        pytest.raises(ApplyError, match="injected connection loss") as failure,
    ):
        (plan,) = project.using(client).plan(prune=prune)
        project.apply(plan)
    return failure.value


def test_interrupted_import_leaves_nothing_then_rerun_converges(deploy_target, superset, managed_objects) -> None:
    """Creates and updates travel in one transaction: cut it and Superset holds none of them."""
    deploy_target.write_env("interrupted", ["interrupted"])
    failure = _interrupted_apply(deploy_target, superset, "interrupted", fail_after=0)
    assert "none of them was applied" in str(failure)
    assert _counts(managed_objects("interrupted", "interrupted")) == dict.fromkeys(EXPECTED, 0)

    rerun = deploy_target.pfill("apply", "--env", "interrupted", "--yes")
    assert rerun.exit_code == 0, rerun.output
    after = managed_objects("interrupted", "interrupted")
    assert _counts(after) == EXPECTED
    assert deploy_target.pfill("plan", "--env", "interrupted").exit_code == 0


def test_prune_interrupted_half_way_converges_without_duplicates(deploy_target, superset, managed_objects) -> None:
    deploy_target.write_env("halfway", ["halfway"])
    queries, dashboards = deploy_target.copy_sources("halfway")
    sources = ["--queries", str(queries), "--dashboards", str(dashboards)]
    assert deploy_target.pfill("apply", "--env", "halfway", "--yes", *sources).exit_code == 0
    (dashboards / "switching.yaml").unlink()  # one dashboard and its three charts leave the specs
    hub = dashboards / "hub.yaml"
    hub.write_text(hub.read_text().replace("[Switching]({slug:switching}) ·\n", ""))

    failure = _interrupted_apply(deploy_target, superset, "halfway", fail_after=3, dashboards=dashboards, prune=True)
    assert "run apply --prune again" in (failure.hint or "")
    partial = _counts(managed_objects("halfway", "halfway"))
    assert (partial["dashboard"], partial["chart"]) == (7, 31)  # the hub import, two deletions, then the cut

    rerun = deploy_target.pfill("apply", "--env", "halfway", "--yes", "--prune", *sources)
    assert rerun.exit_code == 0, rerun.output
    after = managed_objects("halfway", "halfway")
    assert _counts(after) == {**EXPECTED, "dashboard": 7, "chart": 29, "dataset": 7}
    for kind in ("chart", "dashboard", "dataset"):
        uuids = [row["uuid"] for row in after[kind]]
        assert len(uuids) == len(set(uuids))
    assert deploy_target.pfill("plan", "--env", "halfway", "--prune", *sources).exit_code == 0


def test_slug_taken_by_another_environment_is_a_conflict_before_any_write(deploy_target, managed_objects) -> None:
    """Dashboard slugs are per tenant: a second environment deploying the same tenant to the same
    Superset is refused at plan time, and apply writes nothing."""
    _deployed(deploy_target, "it")
    deploy_target.write_env("clash", ["lite"])
    plan = deploy_target.pfill("plan", "--env", "clash")
    assert plan.exit_code == 1
    assert "dashboard 'pfill-lite-hub'" in plan.stdout and "not managed by pfill-kit for clash/lite" in plan.stdout
    applied = deploy_target.pfill("apply", "--env", "clash", "--yes")
    assert applied.exit_code == 1
    assert "nothing was written" in applied.output
    assert _counts(managed_objects("clash", "lite")) == dict.fromkeys(EXPECTED, 0)


def test_export_validate_plan_round_trip(deploy_target, tmp_path: Path) -> None:
    _deployed(deploy_target, "it")
    slugs = ["hub", "allocation-guide", "trade-recap", "switching", "pool-candidates", "existing-disposition",
             "pooling-guide", "cash-trade-slotting"]
    args = [a for s in slugs for a in ("--dashboard", f"pfill-lite-{s}")]
    exported = deploy_target.pfill("export", "--env", "it", "--out", str(tmp_path), *args)
    assert exported.exit_code == 0, exported.output
    sources = ["--queries", str(tmp_path / "queries"), "--dashboards", str(tmp_path / "dashboards")]
    valid = deploy_target.pfill("validate", *sources)
    assert valid.exit_code == 0, valid.output
    assert "8 dashboards, 32 charts over 8 datasets" in valid.output
    plan = deploy_target.pfill("plan", "--env", "it", "--tenant", "lite", *sources)
    assert plan.exit_code == 0, plan.output
    assert "No changes: 49 objects match the specs." in plan.stdout


def test_every_managed_object_links_to_its_spec(deploy_target, superset) -> None:
    """external_url is written by the import but not shown by Superset's REST reads: read its
    metadata database (the local stack's SQLite) for the objects of environment `it`."""
    import sqlite3

    _deployed(deploy_target, "it")
    with sqlite3.connect(superset.root / "metadata.db") as meta:
        rows = {
            "database": meta.execute("SELECT external_url, is_managed_externally FROM dbs "
                                     "WHERE database_name LIKE 'PowerFill % (it)'").fetchall(),
            "dataset": meta.execute("SELECT external_url, is_managed_externally FROM tables "
                                    "WHERE table_name LIKE '%(it/%'").fetchall(),
            "chart": meta.execute("SELECT external_url, is_managed_externally FROM slices "
                                  "WHERE certification_details LIKE '%[pfill-kit it/%'").fetchall(),
            "dashboard": meta.execute("SELECT external_url, is_managed_externally FROM dashboards "
                                      "WHERE certification_details LIKE '%[pfill-kit it/%'").fetchall(),
        }
    assert {kind: len(found) for kind, found in rows.items()} == {k: 2 * n for k, n in EXPECTED.items()}
    for kind, found in rows.items():
        assert all(url and managed for url, managed in found), (kind, found[:3])
    assert all(url.endswith("pfill.yaml") for url, _ in rows["database"])
    assert all(url.endswith(".sql.j2") for url, _ in rows["dataset"])
    assert all(url.endswith(".yaml") for url, _ in rows["chart"] + rows["dashboard"])
