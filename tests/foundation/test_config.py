"""Configuration resolution and the environments file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pfill.cli import cli
from pfill.config import Settings
from pfill.errors import ConfigError


def test_defaults_use_the_embedded_sqlite(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("PFILL_HOME", "PFILL_DB_URL", "PFILL_CONFIG", "PFILL_TENANT"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings.resolve()
    assert settings.home == tmp_path / ".pfill"
    assert settings.db_url == f"sqlite:///{tmp_path / '.pfill' / 'pfill.db'}"
    assert settings.config_path is None
    local = settings.environment()
    assert local.name == "local" and local.is_local
    assert local.superset_url == "http://127.0.0.1:8088"
    assert local.tenants["demo"].dialect == "sqlite"


def test_flags_beat_environment_variables(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PFILL_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("PFILL_DB_URL", "postgresql://u@h/env")
    assert Settings.resolve().db_url == "postgresql://u@h/env"
    assert Settings.resolve().home == tmp_path / "from-env"
    settings = Settings.resolve(home=tmp_path / "flag", db="sqlite:///x.db")
    assert settings.home == tmp_path / "flag" and settings.db_url == "sqlite:///x.db"


ENVS = """\
environments:
  staging:
    superset:
      url: https://bi.example.com/
      username: deploy-bot
      password: ${STAGING_SUPERSET_PASSWORD}
    tenants:
      acme:
        database_url: mssql+pyodbc://reader:${ACME_DB_PASSWORD}@sql01/pfill?driver=ODBC+Driver+18
        schema: dbo
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pfill.yaml"
    path.write_text(text)
    return path


def test_environments_file_is_read_with_variables(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STAGING_SUPERSET_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("ACME_DB_PASSWORD", "db-pw-123")
    settings = Settings.resolve(home=tmp_path, config=_write(tmp_path, ENVS))
    staging = settings.environment("staging")
    assert staging.superset_url == "https://bi.example.com"
    assert staging.superset_password() == "s3cret-pw"
    acme = staging.tenants["acme"]
    assert acme.dialect == "mssql" and acme.schema == "dbo"
    assert "db-pw-123" in acme.database_url
    assert set(settings.environments()) == {"local", "staging"}


def test_env_list_masks_passwords(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STAGING_SUPERSET_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("ACME_DB_PASSWORD", "db-pw-123")
    config = str(_write(tmp_path, ENVS))
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "--config", config, "env", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert "db-pw-123" not in result.output and "s3cret-pw" not in result.output
    assert "reader:***@sql01" in result.output


def test_missing_variable_names_file_line_and_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ACME_DB_PASSWORD", raising=False)
    settings = Settings.resolve(home=tmp_path, config=_write(tmp_path, ENVS))
    with pytest.raises(ConfigError, match=r"pfill.yaml:9: environment variable ACME_DB_PASSWORD is not set"):
        _ = settings.environment("staging").tenants["acme"].database_url


def test_literal_password_is_refused(tmp_path) -> None:
    text = ENVS.replace("${STAGING_SUPERSET_PASSWORD}", "hunter2")
    with pytest.raises(ConfigError, match=r"pfill.yaml:6: secrets must reference an environment variable"):
        Settings.resolve(home=tmp_path, config=_write(tmp_path, text)).environments()
    text = ENVS.replace("${ACME_DB_PASSWORD}", "hunter2")
    with pytest.raises(ConfigError, match=r"pfill.yaml:9: the password must come from an environment variable"):
        Settings.resolve(home=tmp_path, config=_write(tmp_path, text)).environments()


def test_unknown_field_and_bad_yaml_name_the_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"pfill.yaml:4: unknown field 'urll'"):
        Settings.resolve(home=tmp_path, config=_write(tmp_path, ENVS.replace("url:", "urll:", 1))).environments()
    with pytest.raises(ConfigError, match=r"pfill.yaml:3: invalid YAML"):
        Settings.resolve(home=tmp_path, config=_write(tmp_path, "environments:\n  a: [1,\n  b: }\n")).environments()


@pytest.mark.parametrize("viewer", ["x" * 5000, "bad\\nname"])
def test_a_viewer_that_cannot_be_a_user_name_names_the_line(tmp_path, viewer: str) -> None:
    """A huge or unprintable name is refused where it is written, in one short line."""
    text = ENVS + f"        viewers: [\"{viewer}\"]\n"
    with pytest.raises(ConfigError, match=r"pfill.yaml:\d+: .* is not a Superset user name") as refused:
        Settings.resolve(home=tmp_path, config=_write(tmp_path, text)).environments()
    assert len(str(refused.value)) < 200


def test_missing_config_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="environments file not found"):
        Settings.resolve(home=tmp_path, config=tmp_path / "nope.yaml")


def test_the_example_environments_file_is_valid(monkeypatch) -> None:
    from tests.conftest import REPO

    monkeypatch.setenv("PROD_SUPERSET_PASSWORD", "pw-one")
    monkeypatch.setenv("ACME_DB_PASSWORD", "pw-two")
    settings = Settings.resolve(home=REPO / ".pfill", config=REPO / "examples" / "pfill.yaml")
    prod = settings.environment("prod")
    assert prod.tenants["acme"].dialect == "mssql"
    assert prod.superset_password() == "pw-one"


SERVICE = """\
service:
  tokens:
    acme: ${ACME_TOKEN}
  queue_capacity: 8
  broker_url: redis://127.0.0.1:6379/3
"""


def test_service_section_tokens_from_variables(tmp_path, monkeypatch) -> None:
    from pfill.engine.service.tokens import load_tokens

    path = _write(tmp_path, SERVICE)
    settings = Settings.resolve(home=tmp_path / "home", config=path)
    service = settings.service()
    assert service.queue_capacity == 8 and service.broker_url.value() == "redis://127.0.0.1:6379/3"
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"pfill.yaml:3.*ACME_TOKEN is not set"):
        load_tokens(settings)
    monkeypatch.setenv("ACME_TOKEN", "short")
    with pytest.raises(ConfigError, match="shorter than 24 characters"):
        load_tokens(settings)
    monkeypatch.setenv("ACME_TOKEN", "x" * 32)
    tokens = load_tokens(settings)
    assert tokens.tenant_of("x" * 32) == "acme" and tokens.tenant_of("x" * 31) is None and tokens.files == ()
    assert not (tmp_path / "home" / "service").exists()  # configured tokens: nothing generated


@pytest.mark.parametrize(("text", "message"), [
    ("service:\n  tokens:\n    acme: plain-literal-token-value-here\n", "must reference an environment variable"),
    ("service:\n  queue_capacity: 0\n", "queue_capacity 0 is not a whole number from 1 to 100000"),
    ("service:\n  queue_capacity: lots\n", "queue_capacity 'lots'"),
    ("service:\n  tokens:\n    'bad tenant': ${X}\n", "bad tenant"),
    ("service:\n  workers: 3\n", "workers"),
])
def test_bad_service_section_names_the_line(tmp_path, text: str, message: str) -> None:
    settings = Settings.resolve(home=tmp_path / "home", config=_write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"pfill\.yaml:[0-9]") as err:
        settings.service()
    assert message in str(err.value)


def test_local_tokens_are_generated_once_per_tenant(tmp_path, monkeypatch) -> None:
    from pfill.engine.service.tokens import load_tokens

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PFILL_CONFIG", raising=False)
    settings = Settings.resolve(home=tmp_path / "home", db=f"sqlite:///{tmp_path / 'x.db'}")
    (tmp_path / "home").mkdir()
    settings.local_tenants_file.write_text("acme\n")
    first = load_tokens(settings)
    assert sorted(first.by_tenant) == ["acme", "demo"] and len(set(first.by_tenant.values())) == 2
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in first.files)
    assert load_tokens(settings).by_tenant == first.by_tenant  # kept, not regenerated
