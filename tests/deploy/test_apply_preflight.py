"""Apply writes all or nothing across tenants: every plan is checked before the first write, and
the message says what was written."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .test_deploy_live import EXPECTED, _counts

pytestmark = [pytest.mark.superset, pytest.mark.postgres]


def test_a_conflict_in_one_tenant_writes_nothing_for_any(deploy_target, managed_objects) -> None:
    """`mixowned`'s slugs belong to environment `owner`; `mixfresh` is new. Before, the new tenant's
    49 objects were created and then apply said nothing was written."""
    deploy_target.write_env("owner", ["mixowned"])
    assert deploy_target.pfill("apply", "--env", "owner", "--yes").exit_code == 0
    deploy_target.write_env("mixed", ["mixfresh", "mixowned"])
    applied = deploy_target.pfill("apply", "--env", "mixed", "--yes")
    assert applied.exit_code == 1
    assert "error: nothing was written: " in applied.stderr
    assert "not managed by pfill-kit for mixed/mixowned" in applied.stderr
    assert _counts(managed_objects("mixed", "mixfresh")) == dict.fromkeys(EXPECTED, 0)
    assert _counts(managed_objects("mixed", "mixowned")) == dict.fromkeys(EXPECTED, 0)


def test_dataset_sql_the_database_refuses_is_caught_before_writing(deploy_target, managed_objects) -> None:
    deploy_target.write_env("badsql", ["badsql"])
    queries, dashboards = deploy_target.copy_sources("badsql")
    template = queries / "switching.sql.j2"
    template.write_text(template.read_text().replace("[[ table('pfill_pool_guide') ]] s",
                                                     "[[ table('pfill_no_such_table') ]] s", 1))
    sources = ["--queries", str(queries), "--dashboards", str(dashboards)]
    applied = deploy_target.pfill("apply", "--env", "badsql", "--yes", *sources)
    assert applied.exit_code == 1, applied.output
    error = next(line for line in applied.stderr.splitlines() if line.startswith("error:"))
    assert "nothing was written: dataset switching of badsql/badsql: the database refuses its SQL" in error
    assert "pfill_no_such_table" in error
    assert _counts(managed_objects("badsql", "badsql")) == dict.fromkeys(EXPECTED, 0)
    # the check can be skipped, for a database only Superset reaches
    skipped = deploy_target.pfill("apply", "--env", "badsql", "--yes", "--no-sql-check", *sources)
    assert skipped.exit_code == 0, skipped.output


def test_a_prune_that_empties_a_tenant_needs_prune_all(deploy_target, managed_objects) -> None:
    """A mistyped --dashboards folder (here: one unrelated spec) would delete every dashboard."""
    deploy_target.write_env("emptied", ["emptied"])
    assert deploy_target.pfill("apply", "--env", "emptied", "--yes").exit_code == 0
    queries, dashboards = deploy_target.copy_sources("emptied")
    spec = yaml.safe_load((dashboards / "switching.yaml").read_text())
    shutil.rmtree(dashboards)
    dashboards.mkdir()
    spec["slug"] = "somewhere-else"
    (dashboards / "somewhere-else.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    sources = ["--queries", str(queries), "--dashboards", str(dashboards)]

    refused = deploy_target.pfill("apply", "--env", "emptied", "--yes", "--prune", *sources)
    assert refused.exit_code == 1, refused.output
    assert "--prune would delete all 8 dashboards of emptied/emptied" in refused.stderr
    assert "--prune-all" in refused.stderr
    assert _counts(managed_objects("emptied", "emptied")) == EXPECTED

    allowed = deploy_target.pfill("apply", "--env", "emptied", "--yes", "--prune", "--prune-all", "--json", *sources)
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)[0]["applied"] > 0
    assert [d["slug"] for d in managed_objects("emptied", "emptied")["dashboard"]] == ["pfill-emptied-somewhere-else"]


def test_a_viewer_superset_does_not_have_is_caught_before_writing(deploy_target, managed_objects) -> None:
    """Before, the tenant's 49 objects were imported and the role step then failed on the user."""
    deploy_target.write_env("noviewer", ["noviewer"])
    data = yaml.safe_load(deploy_target.config.read_text())
    data["environments"]["noviewer"]["tenants"]["noviewer"]["viewers"] = ["nobody-by-this-name"]
    deploy_target.config.write_text(yaml.safe_dump(data))
    applied = deploy_target.pfill("apply", "--env", "noviewer", "--yes")
    assert applied.exit_code == 1, applied.output
    error = next(line for line in applied.stderr.splitlines() if line.startswith("error:"))
    assert error == ("error: nothing was written: viewers of noviewer/noviewer not found in Superset: "
                     "nobody-by-this-name")
    assert "hint: create the users in Superset first" in applied.stderr
    assert _counts(managed_objects("noviewer", "noviewer")) == dict.fromkeys(EXPECTED, 0)
