"""Engine output on SQLite and PostgreSQL, and an environments file that deploys both tenants to
the session's live Superset."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pfill.cli import cli

PASSWORD_VAR = "PFILL_IT_SUPERSET_PASSWORD"
AS_OF = "2026-11-02"  # fixed so the demo data (and its kickout reasons) are the same on every day


def run_engine(db_url: str, tenant: str) -> None:
    for args in (["db", "init"], ["demo-data", "--tenant", tenant, "--as-of", AS_OF],
                 ["run", "--tenant", tenant, "--as-of", AS_OF]):
        result = CliRunner().invoke(cli, ["--db", db_url, *args])
        assert result.exit_code == 0, result.output


@dataclass
class DeployTarget:
    """Where the tests deploy: an environments file naming the live Superset and two tenants."""

    config: Path
    password: str
    tenants: dict[str, str]  # tenant -> database url
    work: Path
    url: str
    sqlite_url: str

    def add_tenant(self, tenant: str) -> None:
        """Engine output for one more tenant in the SQLite database (dashboard slugs are per tenant,
        so each environment on this one Superset deploys tenants of its own)."""
        if tenant not in self.tenants:
            run_engine(self.sqlite_url, tenant)
            self.tenants[tenant] = self.sqlite_url

    def write_env(self, name: str, tenants: list[str] | None = None) -> None:
        """Add (or replace) an environment; each test uses its own so their objects never meet."""
        import yaml

        for tenant in tenants or []:
            self.add_tenant(tenant)
        data = yaml.safe_load(self.config.read_text()) if self.config.exists() else {"environments": {}}
        data["environments"][name] = {
            "superset": {"url": self.url, "username": "admin", "password": f"${{{PASSWORD_VAR}}}"},
            "tenants": {t: {"database_url": self.tenants[t]} for t in (tenants or list(self.tenants))},
        }
        self.config.write_text(yaml.safe_dump(data))

    def pfill(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(self.home), "--config", str(self.config), *args],
                                  env={PASSWORD_VAR: self.password})

    @property
    def home(self) -> Path:
        """The kit's local state for these tests (its cache of Superset details lives there)."""
        return self.work / "home"

    def copy_sources(self, name: str) -> tuple[Path, Path]:
        """Editable copies of the packaged queries and dashboards."""
        from pfill.dashboards.specs import packaged_dashboards
        from pfill.queries.template import PACKAGED_QUERIES

        queries, dashboards = self.work / name / "queries", self.work / name / "dashboards"
        shutil.copytree(PACKAGED_QUERIES, queries, ignore=shutil.ignore_patterns("__*", "*.py"))
        shutil.copytree(packaged_dashboards(), dashboards, ignore=shutil.ignore_patterns("__*", "*.py"))
        return queries, dashboards


@pytest.fixture(scope="session")
def deploy_target(superset, postgres, tmp_path_factory: pytest.TempPathFactory) -> DeployTarget:
    work = tmp_path_factory.mktemp("deploy")
    tenants = {"lite": f"sqlite:///{work / 'engine.db'}", "pg": postgres.new_database("deploy")}
    for tenant, url in tenants.items():
        run_engine(url, tenant)
    return DeployTarget(work / "pfill.yaml", superset.admin_password(), tenants, work, superset.url, tenants["lite"])


@pytest.fixture
def managed_objects(superset_client) -> Callable[[str, str], dict[str, list[dict]]]:
    """Superset's objects carrying this kit's marker for an environment and tenant, by kind."""
    from pfill.deploy.identity import dataset_marker, parse_marker

    def collect(env: str, tenant: str) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {"database": [], "dataset": [], "chart": [], "dashboard": []}
        for kind in ("dataset", "chart", "dashboard"):
            for row in superset_client.iter_list(kind):
                marker = (dataset_marker(row.get("extra")) if kind == "dataset"
                          else parse_marker(row.get("certification_details")))
                if marker and marker.env == env and marker.tenant == tenant:
                    found[kind].append(row)
        found["database"] = [r for r in superset_client.iter_list("database")
                             if r["database_name"] == f"PowerFill {tenant} ({env})"]
        return found

    return collect
