"""`pfill superset up|status|down` as a user runs them: one server, its own processes, secrets 0600."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, shared_superset_venv

pytestmark = [pytest.mark.superset, pytest.mark.slow]


def _pfill(home: Path, *args: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PFILL_HOME": str(home), "PFILL_SUPERSET_VENV": str(shared_superset_venv())}
    env.pop("PFILL_SUPERSET_PASSWORD", None)
    if port:
        env["PFILL_SUPERSET_PORT"] = str(port)
    return subprocess.run([sys.executable, "-m", "pfill", *args], capture_output=True, text=True, env=env, timeout=600)


def _live_group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def test_up_twice_status_down(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    first = _pfill(home, "superset", "up", port=port)
    assert first.returncode == 0, first.stderr
    assert f"is up at http://127.0.0.1:{port}" in first.stderr
    assert "generated admin password (shown once" in first.stderr
    try:
        root = home / "superset"
        for secret in ("secret_key", "admin_password"):
            assert stat.S_IMODE((root / secret).stat().st_mode) == 0o600
        password = (root / "admin_password").read_text().strip()
        assert password not in (root / "init.log").read_text()
        pid = int((root / "server.pid").read_text())

        second = _pfill(home, "superset", "up")
        assert second.returncode == 0, second.stderr
        assert f"already running at http://127.0.0.1:{port} (pid {pid})" in second.stderr
        assert "generated admin password" not in second.stderr
        assert int((root / "server.pid").read_text()) == pid

        status = _pfill(home, "superset", "status", "--json")
        assert status.returncode == 0
        info = json.loads(status.stdout)
        assert info["running"] and info["healthy"] and info["pid"] == pid and info["version"] == "6.1.0"
        assert info["url"] == f"http://127.0.0.1:{port}"
        assert len(_live_group_members(pid)) >= 2  # gunicorn master and worker
    finally:
        down = _pfill(home, "superset", "down")
    assert down.returncode == 0
    assert _live_group_members(pid) == []
    assert _pfill(home, "superset", "status").returncode == 1
