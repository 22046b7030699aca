"""The local Superset stack behind `pfill superset up|down|status|logs`.

Superset 6.1.0 lives in its own virtual environment (it pins SQLAlchemy 1.4, pandas < 2.2 and
marshmallow < 4, which the kit must not inherit), installed from the complete constraints file
shipped beside this module. Its state (config, generated SECRET_KEY and admin password, SQLite
metadata, pid and log) lives under `<home>/superset/`. The test suite starts its Superset through
this same class, on a free port with a throw-away home.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from pfill.errors import PfillError
from pfill.processes import pid_alive, wait_until_healthy
from pfill.secrets import MASK, mask_text, write_private

SUPERSET_VERSION = "6.1.0"
CONSTRAINTS = f"superset-{SUPERSET_VERSION}-constraints.txt"
# Extra packages beside Superset: two the release forgets, and the drivers for our data sources.
EXTRA_PACKAGES = ("rich", "cachetools", "psycopg2-binary")
ADMIN_USER = "admin"
Progress = Callable[[str], None]


class StackError(PfillError):
    pass


def constraints_path() -> Path:
    return Path(str(resources.files("pfill.deploy").joinpath(CONSTRAINTS)))


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class StackStatus:
    running: bool
    healthy: bool
    url: str
    pid: int | None
    version: str
    home: str
    venv: str
    installed: bool


class LocalSuperset:
    """One local Superset: its virtual environment, its home folder, its server process."""

    def __init__(self, home: Path, port: int | None = None, venv: Path | None = None) -> None:
        self.root = home / "superset"
        env_venv = os.environ.get("PFILL_SUPERSET_VENV")
        self.venv = (venv or (Path(env_venv) if env_venv else self.root / "venv")).absolute()
        saved = self._state().get("port")
        self.port = int(port or saved or os.environ.get("PFILL_SUPERSET_PORT") or 8088)
        self._process: subprocess.Popen[bytes] | None = None  # set when this process started it

    # -- paths and state ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.root / "superset_config.py"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "server.pid"

    @property
    def password_file(self) -> Path:
        return self.root / "admin_password"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def _state(self) -> dict:
        path = self.root / "state.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, **changes: object) -> None:
        state = {**self._state(), **changes}
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "state.json").write_text(json.dumps(state, indent=2))

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def admin_password(self) -> str:
        return self.password_file.read_text().strip()

    # -- install -----------------------------------------------------------------------------------
    def _install_marker(self) -> str:
        digest = hashlib.sha256(constraints_path().read_bytes())
        digest.update(" ".join(EXTRA_PACKAGES).encode())
        return f"apache-superset=={SUPERSET_VERSION} {digest.hexdigest()[:16]}"

    def installed(self) -> bool:
        marker = self.venv / ".pfill-installed"
        return (self.bin / "superset").exists() and marker.exists() and (
            marker.read_text().strip() == self._install_marker()
        )

    def install(self, progress: Progress) -> None:
        """Create the virtual environment and install the pinned Superset into it (once)."""
        if self.installed():
            return
        if not (3, 10) <= sys.version_info[:2] <= (3, 12):
            raise StackError(
                f"Superset {SUPERSET_VERSION} needs Python 3.10 to 3.12; this is {sys.version.split()[0]}"
            )
        log = self.root / "install.log"
        self.root.mkdir(parents=True, exist_ok=True)
        progress(f"installing Superset {SUPERSET_VERSION} into {self.venv} (about a minute; log: {log})")
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(self.venv)],
            [str(self.venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            [
                str(self.venv / "bin" / "python"), "-m", "pip", "install",
                f"apache-superset=={SUPERSET_VERSION}", *EXTRA_PACKAGES, "-c", str(constraints_path()),
            ],
        ]
        with log.open("w") as out:
            for command in steps:
                self._run_with_ticks(command, out, progress, what="installing")
        (self.venv / ".pfill-installed").write_text(self._install_marker())

    def _run_with_ticks(
        self, command: list[str], out: IO[str], progress: Progress, what: str, hide: tuple[str, ...] = ()
    ) -> None:
        """Run a command to the log, reporting elapsed time every 15 s; fail with the log's tail.
        Values in `hide` (passwords on the command line) never reach the log or the message."""
        start = time.monotonic()
        shown = " ".join(mask_text(c, hide) if c not in hide else MASK for c in command)
        out.write(f"$ {shown}\n")
        out.flush()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self._env())
        next_tick = 15.0
        while proc.poll() is None:
            time.sleep(0.5)
            elapsed = time.monotonic() - start
            if elapsed >= next_tick:
                progress(f"  still {what} ({elapsed:.0f}s)")
                next_tick += 15
        if proc.returncode != 0:
            out.flush()
            raise StackError(
                f"`{shown}` failed (exit {proc.returncode}); last lines of {out.name}:\n"
                f"{mask_text(_tail(Path(out.name)), hide)}"
            )

    # -- configure and initialise ------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(
            SUPERSET_CONFIG_PATH=str(self.config_file),
            SUPERSET_HOME=str(self.root),
            FLASK_APP="superset.app:create_app()",
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
        )
        return env

    def configure(self) -> None:
        """Write the config once: a generated SECRET_KEY (0600), SQLite metadata, local-only options."""
        secret_file = self.root / "secret_key"
        if not secret_file.exists():
            write_private(secret_file, secrets.token_urlsafe(48))
        metadata = self.root / "metadata.db"
        self.config_file.write_text(
            f'''# Written by `pfill superset up` for a local, single-user Superset. Not for a shared server.
from pathlib import Path

SECRET_KEY = Path({str(secret_file)!r}).read_text().strip()
SQLALCHEMY_DATABASE_URI = "sqlite:///{metadata}"
# SQLite as a data source (the kit's embedded default) is refused unless this is off.
PREVENT_UNSAFE_DB_CONNECTIONS = False
# Dataset SQL uses Superset's query-time Jinja (filter_values, url_param); DASHBOARD_RBAC lets a
# dashboard name the roles that see it (one viewer role per tenant).
FEATURE_FLAGS = {{"ENABLE_TEMPLATE_PROCESSING": True, "DASHBOARD_RBAC": True}}
# The security REST API (roles, their permissions, users), which `apply` uses for tenant roles.
FAB_ADD_SECURITY_API = True
TALISMAN_ENABLED = False
AUTH_RATE_LIMITED = False
RATELIMIT_ENABLED = False
SUPERSET_WEBSERVER_TIMEOUT = 120
'''
        )

    def initialise(self, progress: Progress) -> str | None:
        """Migrate the metadata, create the admin and roles (first time); return a new password."""
        wanted = os.environ.get("PFILL_SUPERSET_PASSWORD")
        state = self._state()
        log = self.root / "init.log"
        new_password: str | None = None
        with log.open("a") as out:
            if state.get("initialised") != SUPERSET_VERSION:
                password = wanted or secrets.token_urlsafe(12)
                progress("initialising Superset metadata (db upgrade, admin, roles)")
                self._run_with_ticks([str(self.bin / "superset"), "db", "upgrade"], out, progress, "migrating")
                self._run_with_ticks(
                    [
                        str(self.bin / "superset"), "fab", "create-admin", "--username", ADMIN_USER,
                        "--firstname", "PowerFill", "--lastname", "Admin", "--email", "admin@localhost",
                        "--password", password,
                    ],
                    out, progress, "creating the admin", hide=(password,),
                )
                self._run_with_ticks([str(self.bin / "superset"), "init"], out, progress, "initialising")
                write_private(self.password_file, password)
                self._save_state(initialised=SUPERSET_VERSION)
                new_password = None if wanted else password
            elif wanted and wanted != self.admin_password():
                progress("resetting the admin password from PFILL_SUPERSET_PASSWORD")
                self._run_with_ticks(
                    [str(self.bin / "superset"), "fab", "reset-password", "--username", ADMIN_USER,
                     "--password", wanted],
                    out, progress, "resetting the password", hide=(wanted,),
                )
                write_private(self.password_file, wanted)
        return new_password

    # -- server ------------------------------------------------------------------------------------
    def start(self, progress: Progress, timeout: float = 120.0) -> None:
        """Start gunicorn in its own process group (so `down` can stop all of it) and wait for /health."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.bin / "gunicorn"),
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", "1", "--worker-class", "gthread", "--threads", "8",
            "--timeout", "180", "--graceful-timeout", "10",
            "superset.app:create_app()",
        ]
        with self.log_file.open("a") as log:
            log.write(f"\n--- starting {' '.join(command)}\n")
            log.flush()
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._env(), cwd=self.root, start_new_session=True,
            )
        self._process = proc
        self.pid_file.write_text(str(proc.pid))
        self._save_state(port=self.port)
        progress(f"waiting for {self.url}/health (up to {timeout:.0f}s)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"Superset exited with code {proc.returncode} while starting; last lines of "
                    f"{self.log_file}:\n{_tail(self.log_file)}"
                )
            if wait_until_healthy(self.url, timeout=2, interval=0.5):
                return
        self.stop()
        raise StackError(
            f"Superset did not answer {self.url}/health within {timeout:.0f}s; last lines of "
            f"{self.log_file}:\n{_tail(self.log_file)}"
        )

    def up(self, progress: Progress, timeout: float = 120.0) -> str | None:
        """Install, configure, initialise and start, doing only what is missing. Returns a newly
        generated admin password (to show once), or None."""
        pid = self.pid()
        if pid is not None:
            if wait_until_healthy(self.url, timeout=5):
                progress(f"Superset is already running at {self.url} (pid {pid})")
                return None
            raise StackError(
                f"a Superset process (pid {pid}) is running but {self.url}/health does not answer",
                hint="see `pfill superset logs`, or stop it with `pfill superset down`",
            )
        if wait_until_healthy(self.url, timeout=1, interval=0.5):
            raise StackError(f"port {self.port} is taken by another server", hint="choose one with --port")
        self.install(progress)
        self.configure()
        new_password = self.initialise(progress)
        self.start(progress, timeout=timeout)
        return new_password

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server's whole process group; SIGKILL whatever is left after the timeout."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._group_alive(pid):
            time.sleep(0.2)
        if self._group_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if self._process is not None and self._process.pid == pid:
            self._process.wait(timeout=10)  # reap our own child so no zombie entry is left behind
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def status(self) -> StackStatus:
        pid = self.pid()
        return StackStatus(
            running=pid is not None,
            healthy=pid is not None and wait_until_healthy(self.url, timeout=2),
            url=self.url,
            pid=pid,
            version=SUPERSET_VERSION,
            home=str(self.root),
            venv=str(self.venv),
            installed=self.installed(),
        )
