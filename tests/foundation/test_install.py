"""`pip install .` (not editable) into a fresh virtual environment gives a `pfill` that works anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_pip_install_then_pfill_help_from_another_directory(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(REPO)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [str(venv / "bin" / "pfill"), "--help"], capture_output=True, text=True, cwd=elsewhere, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: pfill" in result.stdout
    # the package data came along: the pinned Superset constraints that `superset up` installs from
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "from pfill.deploy.local_superset import constraints_path; print(constraints_path().read_text()[:200])"],
        capture_output=True, text=True, cwd=elsewhere,
    )
    assert "apache_superset==6.1.0" in check.stdout or "apache-superset" in check.stdout.lower(), check.stderr
