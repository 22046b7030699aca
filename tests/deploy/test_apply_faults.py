"""Apply under faults tells the truth: a lost answer, a cut between the database and the rest, two
applies at once. Faults a real server will not produce on demand are injected by a client subclass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pfill.config import Settings
from pfill.deploy.apply import ApplyError
from pfill.deploy.client import SupersetClient, SupersetError
from pfill.deploy.project import Project

from .conftest import PASSWORD_VAR
from .test_deploy_live import EXPECTED, _counts

pytestmark = [pytest.mark.superset, pytest.mark.postgres]
PFILL = str(Path(sys.executable).with_name("pfill"))


class LosesImportAnswers(SupersetClient):
    """The import is sent and done by Superset, then its answer never arrives."""

    def request(self, method, path, **kwargs):  # type: ignore[no-untyped-def]
        answer = super().request(method, path, **kwargs)
        if path == "/api/v1/assets/import/":
            raise SupersetError(f"{method} {path}: injected: connection lost before the answer")
        return answer


class CutAfterWrites(SupersetClient):
    """The connection dies before the (n+1)th write is sent."""

    def __init__(self, *args, cut_after: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.cut_after = cut_after

    def request(self, method, path, **kwargs):  # type: ignore[no-untyped-def]
        if method.upper() == "POST" and "security" not in path and self.writes >= self.cut_after:
            raise SupersetError(f"{method} {path}: injected: connection lost")
        return super().request(method, path, **kwargs)


class RoleWritesFail(SupersetClient):
    """Superset answers 500 to the role's grants `failures` times: after doing the write (`done`: as
    when another apply wrote the same rows first) or without doing it."""

    def __init__(self, *args, failures: int, done: bool, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.failures, self.done, self.sent = failures, done, 0

    def request(self, method, path, **kwargs):  # type: ignore[no-untyped-def]
        if method.upper() == "POST" and path.endswith("/permissions"):
            self.sent += 1
            if self.sent <= self.failures:
                if self.done:
                    super().request(method, path, **kwargs)
                raise SupersetError(f"{method} {path} returned 500: Fatal error", status=500, method=method)
        return super().request(method, path, **kwargs)


def _apply_with(deploy_target, env: str, client: SupersetClient, monkeypatch) -> list[str]:
    monkeypatch.setenv(PASSWORD_VAR, deploy_target.password)
    project = Project.load(Settings.resolve(home=deploy_target.home, config=deploy_target.config), env)
    said: list[str] = []
    (plan,) = project.using(client).plan()
    project.apply(plan, said.append)
    return said


def test_a_lost_import_answer_is_read_back_and_named(deploy_target, managed_objects, monkeypatch) -> None:
    deploy_target.write_env("lostanswer", ["lostanswer"])
    client = LosesImportAnswers(deploy_target.url, "admin", deploy_target.password)
    said = _apply_with(deploy_target, "lostanswer", client, monkeypatch)
    assert any("Superset holds all 48 changes" in line for line in said), said
    assert _counts(managed_objects("lostanswer", "lostanswer")) == EXPECTED
    assert deploy_target.pfill("plan", "--env", "lostanswer").exit_code == 0


def test_a_cut_after_the_new_database_says_exactly_that(deploy_target, managed_objects, monkeypatch) -> None:
    deploy_target.write_env("cutdb", ["cutdb"])
    client = CutAfterWrites(deploy_target.url, "admin", deploy_target.password, cut_after=1)
    with pytest.raises(ApplyError) as failure:
        _apply_with(deploy_target, "cutdb", client, monkeypatch)
    assert "after 1 change(s) applied, importing 48 creates and updates failed, so none of them was applied" in str(
        failure.value)
    assert _counts(managed_objects("cutdb", "cutdb")) == {**dict.fromkeys(EXPECTED, 0), "database": 1}
    rerun = deploy_target.pfill("apply", "--env", "cutdb", "--yes")
    assert rerun.exit_code == 0, rerun.output
    assert _counts(managed_objects("cutdb", "cutdb")) == EXPECTED


def test_two_applies_at_once_end_whole_and_truthful(deploy_target, managed_objects) -> None:
    """Ten trials, each on a fresh tenant: both exit 0 (Superset holds the specs) or one exits 3 with
    the message; never Superset's opaque 500; no duplicates; plan clean after."""
    trials = [f"race{i}" for i in range(10)]
    for tenant in trials:
        deploy_target.write_env(tenant, [tenant])
    env = {**os.environ, PASSWORD_VAR: deploy_target.password}
    command = [PFILL, "--home", str(deploy_target.home), "--config", str(deploy_target.config), "apply", "--yes"]
    for tenant in trials:
        runs = [subprocess.Popen([*command, "--env", tenant], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
        for code, stderr in outcomes:
            assert code in (0, 3), stderr
            assert "unknown reason" not in stderr and "Traceback" not in stderr, stderr
            if code == 3:
                assert "another apply changed" in stderr and "nothing half-done" in stderr, stderr
        assert _counts(managed_objects(tenant, tenant)) == EXPECTED
        assert deploy_target.pfill("plan", "--env", tenant).exit_code == 0


@pytest.mark.parametrize("done", [True, False], ids=["written-by-another", "not-written"])
def test_a_server_error_on_the_role_is_read_back_and_finished(deploy_target, managed_objects, monkeypatch,
                                                              done: bool) -> None:
    """What two applies at once meet: the second insert of a role's grant answers 500."""
    env = f"role500{'a' if done else 'b'}"
    deploy_target.write_env(env, [env])
    client = RoleWritesFail(deploy_target.url, "admin", deploy_target.password, failures=1, done=done)
    said = _apply_with(deploy_target, env, client, monkeypatch)
    assert client.sent == 2 - done, "read again: a grant another apply made is not sent twice"
    assert any(line.startswith(f"  create role pfill {env} {env} viewer") for line in said), said
    assert _counts(managed_objects(env, env)) == EXPECTED
    assert deploy_target.pfill("plan", "--env", env).exit_code == 0


def test_a_role_that_keeps_failing_says_so(deploy_target, managed_objects, monkeypatch) -> None:
    deploy_target.write_env("role500c", ["role500c"])
    client = RoleWritesFail(deploy_target.url, "admin", deploy_target.password, failures=99, done=False)
    with pytest.raises(ApplyError) as failure:
        _apply_with(deploy_target, "role500c", client, monkeypatch)
    assert "after 49 change(s) applied, create role pfill role500c role500c viewer failed" in str(failure.value)
    assert client.sent == 3
    assert _counts(managed_objects("role500c", "role500c")) == EXPECTED
    rerun = deploy_target.pfill("apply", "--env", "role500c", "--yes")
    assert rerun.exit_code == 0, rerun.output
    assert deploy_target.pfill("plan", "--env", "role500c").exit_code == 0
