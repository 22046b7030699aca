"""`pfill service up|down|status`: the run service in the background, as `pfill demo` starts it and
`make demo-down` stops it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from pfill.processes import pid_alive
from tests.conftest import free_port
from tests.engine.helpers import PFILL, pfill_env


def _pfill(db: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PFILL, *args], env=pfill_env(db, PFILL_HOME=str(home)), capture_output=True, text=True,
                          timeout=60)


def test_up_status_down(demo_db: str, tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    up = _pfill(demo_db, home, "service", "up", "--port", str(port))
    assert up.returncode == 0, up.stderr
    token_file = home / "service" / "token-demo"
    assert f"http://127.0.0.1:{port}/api/powerfill" in up.stderr and str(token_file) in up.stderr
    token = token_file.read_text().strip()
    assert token not in up.stdout + up.stderr  # where it is, never what it is
    assert token_file.stat().st_mode & 0o777 == 0o600
    state = json.loads((home / "service" / "state.json").read_text())
    try:
        again = _pfill(demo_db, home, "service", "up", "--port", str(port))  # already up: nothing new starts
        assert again.returncode == 0 and json.loads((home / "service" / "state.json").read_text()) == state
        status = _pfill(demo_db, home, "service", "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["healthy"] is True
        answer = httpx.get(f"http://127.0.0.1:{port}/api/powerfill/status",
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["status"] == "ready"
    finally:
        down = _pfill(demo_db, home, "service", "down")
    assert down.returncode == 0 and f"pid {state['pid']}" in down.stderr
    assert not pid_alive(state["pid"])
    after = _pfill(demo_db, home, "service", "status", "--json")
    assert after.returncode == 0 and json.loads(after.stdout)["running"] is False
    assert "not running" in _pfill(demo_db, home, "service", "down").stderr


def test_up_on_a_taken_port_says_so(demo_db: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = _pfill(demo_db, tmp_path / "home", "service", "up", "--port", str(port))
    assert up.returncode == 1
    assert "exited with code" in up.stderr and "serve.log" in up.stderr and "Traceback" not in up.stderr
