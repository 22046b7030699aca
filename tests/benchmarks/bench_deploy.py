"""Deploy benchmark: the kit against Superset's own bundle import of the same content, and the cost
of more tenants. Figures are medians of interleaved rounds in one run on one server, printed as ratios.

    .venv/bin/python tests/benchmarks/bench_deploy.py [--rounds 7] [--tenants 1,5,20] [--url URL --password PW]

1. Start-up: `pfill --version` and `pfill --help` against the bare interpreter (`python -c pass`).
2. Kit vs import, the 49 objects of one tenant (database, 8 datasets, 32 charts, 8 dashboards):
   - as CI runs them, each a fresh process with its own login: `pfill apply --yes` against a small
     `requests` script that logs in and POSTs the same content, exported from Superset, to
     `/api/v1/assets/import/` (the whole bundle every time: Superset's import has no diff);
   - in one process, over one logged-in session: `Project.plan` + `apply` against the POST alone.
   Paths: first deploy (nothing there), no-op (everything there), one change (a chart's title).
3. Tenants: a no-op `pfill plan` (fresh process) for 1, 5 and 20 tenants, with the cache of
   details warm and cold; requests counted over the same reads in process.

Without --url it starts a throw-away Superset (the shared virtual environment under .pfill) on a
free port. Targets (issue "Faster than Superset's own import"): start-up <= 0.25 s; first deploy and
one change <= 1.0x the import, no-op <= 0.5x; 20 tenants <= 3x one tenant.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import prison
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfill.config import Settings  # noqa: E402
from pfill.deploy.client import SupersetClient  # noqa: E402
from pfill.deploy.desired import DesiredState  # noqa: E402
from pfill.deploy.live import read_live  # noqa: E402
from pfill.deploy.local_superset import LocalSuperset  # noqa: E402
from pfill.deploy.project import Project  # noqa: E402
from tests.conftest import free_port, shared_superset_venv  # noqa: E402

AS_OF = "2026-11-02"
PFILL = str(Path(sys.executable).with_name("pfill"))
PASSWORD_VAR = "PFILL_BENCH_PASSWORD"
IMPORT_SCRIPT = """
import json, sys, requests
url, user, bundle = sys.argv[1:4]
session = requests.Session()
login = session.post(f"{url}/api/v1/security/login", timeout=120,
                     json={"username": user, "password": sys.stdin.read(), "provider": "db", "refresh": True})
session.headers["Authorization"] = "Bearer " + login.json()["access_token"]
csrf = session.get(f"{url}/api/v1/security/csrf_token/", timeout=120).json()["result"]
with open(bundle, "rb") as fh:
    done = session.post(f"{url}/api/v1/assets/import/", files={"bundle": ("bundle.zip", fh, "application/zip")},
                        data={"passwords": "{}"}, headers={"X-CSRFToken": csrf, "Referer": url}, timeout=300)
done.raise_for_status()
"""


def _timed(command: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, input=stdin, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 2):  # plan exits 2 when changes are pending
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def _write_config(folder: Path, url: str, db_url: str, tenants: list[str]) -> Path:
    config = folder / "pfill.yaml"
    config.write_text(yaml.safe_dump({"environments": {"bench": {
        "superset": {"url": url, "username": "admin", "password": f"${{{PASSWORD_VAR}}}"},
        "tenants": {t: {"database_url": db_url} for t in tenants},
    }}}))
    return config


def _engine_output(folder: Path, tenants: list[str]) -> str:
    url = f"sqlite:///{folder / 'engine.db'}"
    env = {**os.environ, "PFILL_DB_URL": url}
    subprocess.run([PFILL, "db", "init"], env=env, check=True, capture_output=True)
    for tenant in tenants:
        for command in ("demo-data", "run"):
            args = [command, "--tenant", tenant, "--as-of", AS_OF]
            subprocess.run([PFILL, *args], env=env, check=True, capture_output=True)
    return url


def _delete_all(client: SupersetClient, state: DesiredState) -> None:
    live = read_live(client, state)
    for kind in ("dashboard", "chart", "dataset", "database"):
        for obj in live.objects.values():
            if obj.kind == kind:
                client.delete(f"/api/v1/{kind}/{obj.id}")


def _export_bundle(client: SupersetClient, state: DesiredState) -> bytes:
    """Superset's own export of the deployed dashboards (charts, datasets, database included), as an
    assets bundle."""
    ids = [o.id for o in read_live(client, state).objects.values() if o.kind == "dashboard"]
    response = client.session.get(f"{client.url}/api/v1/dashboard/export/", params={"q": prison.dumps(ids)},
                                  timeout=120)
    response.raise_for_status()
    source, target = zipfile.ZipFile(io.BytesIO(response.content)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("/metadata.yaml"):
                data = re.sub(rb"(?m)^type: .*$", b"type: assets", data)
            out.writestr(name, data)
    return target.getvalue()


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _report(title: str, rows: list[tuple[str, float, float, float | None]]) -> None:
    print(f"\n{title}")
    print(f"  {'path':<14} {'kit s':>8} {'import s':>9} {'ratio':>7} {'target':>7}")
    for name, kit, base, target in rows:
        mark = "" if target is None else ("ok" if kit / base <= target else "MISSED")
        goal = "" if target is None else f"<={target}"
        print(f"  {name:<14} {kit:>8.3f} {base:>9.3f} {kit / base:>7.2f} {goal:>7} {mark}")


def bench_startup(rounds: int) -> None:
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "pfill --version": [PFILL, "--version"],
                "pfill --help": [PFILL, "--help"]}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            samples[name].append(_timed(command, dict(os.environ)))
    base = _median(samples["python -c pass"])
    print("\n1. Start-up (fresh process, wall seconds, median)")
    for name, values in samples.items():
        target = "" if name.startswith("python") else ("ok" if _median(values) <= 0.25 else "MISSED")
        print(f"  {name:<16} {_median(values):.3f} s  ({_median(values) / base:.1f}x the interpreter) {target}")


class KitVersusImport:
    """One tenant's 49 objects, deployed by the kit and by Superset's own import, interleaved."""

    def __init__(self, folder: Path, url: str, password: str, rounds: int) -> None:
        self.folder, self.url, self.password, self.rounds = folder, url, password, rounds
        self.config = _write_config(folder, url, _engine_output(folder, ["bench"]), ["bench"])
        self.dashboards = folder / "dashboards"
        from pfill.dashboards.specs import packaged_dashboards

        shutil.copytree(packaged_dashboards(), self.dashboards, ignore=shutil.ignore_patterns("__*", "*.py"))
        self.env = {**os.environ, PASSWORD_VAR: password, "PFILL_HOME": str(folder / "home")}
        os.environ[PASSWORD_VAR] = password
        self.script = folder / "import_bundle.py"
        self.script.write_text(IMPORT_SCRIPT)

    def project(self) -> Project:
        settings = Settings.resolve(home=self.folder / "home", config=self.config)
        return Project.load(settings, "bench", dashboards_dir=self.dashboards)

    def kit_cli(self) -> float:
        return _timed([PFILL, "--config", str(self.config), "apply", "--env", "bench", "--yes",
                       "--dashboards", str(self.dashboards)], self.env)

    def import_cli(self, bundle: Path) -> float:
        return _timed([sys.executable, str(self.script), self.url, "admin", str(bundle)], self.env, self.password)

    def toggle_title(self, round_number: int) -> None:
        spec_path = self.dashboards / "trade-recap.yaml"
        spec = yaml.safe_load(spec_path.read_text())
        spec["charts"][0]["title"] = f"Trade amount vs allocated (round {round_number})"
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))

    def run(self) -> None:
        paths = ("first deploy", "no-op", "one change")
        cli: dict[str, dict[str, list[float]]] = {p: {"kit": [], "import": []} for p in paths}
        api: dict[str, dict[str, list[float]]] = {p: {"kit": [], "import": []} for p in paths}
        writes: dict[str, list[int]] = {p: [] for p in paths}
        with SupersetClient(self.url, "admin", self.password, timeout=300) as client:
            client.login()
            state = self.project().states[0]
            _delete_all(client, state)
            self.kit_cli()
            bundle_path = self.folder / "bundle.zip"
            bundle_path.write_bytes(_export_bundle(client, state))
            bundle = bundle_path.read_bytes()

            def import_api() -> float:
                start = time.perf_counter()
                client.post("/api/v1/assets/import/", files={"bundle": ("bundle.zip", bundle, "application/zip")},
                            data={"passwords": "{}"})
                return time.perf_counter() - start

            def kit_api(path: str) -> float:
                project = self.project().using(client)
                before = client.writes
                start = time.perf_counter()
                for plan in project.plan():
                    project.apply(plan)
                elapsed = time.perf_counter() - start
                writes[path].append(client.writes - before)
                return elapsed

            for round_number in range(1, self.rounds + 1):
                for mode, kit, base in (("cli", None, None), ("api", kit_api, import_api)):
                    table = cli if mode == "cli" else api
                    # first deploy: nothing there, for the kit and for the import alike
                    _delete_all(client, state)
                    table["first deploy"]["kit"].append(self.kit_cli() if kit is None else kit("first deploy"))
                    table["no-op"]["kit"].append(self.kit_cli() if kit is None else kit("no-op"))
                    self.toggle_title(round_number * 2 + (mode == "api"))
                    table["one change"]["kit"].append(self.kit_cli() if kit is None else kit("one change"))
                    _delete_all(client, state)
                    table["first deploy"]["import"].append(self.import_cli(bundle_path) if base is None else base())
                    for path in ("no-op", "one change"):
                        table[path]["import"].append(self.import_cli(bundle_path) if base is None else base())
                print(f"  round {round_number}/{self.rounds} done", file=sys.stderr)
            _delete_all(client, state)
        targets = {"first deploy": 1.0, "no-op": 0.5, "one change": 1.0}
        _report("2a. Kit vs Superset's import, each a fresh process with its own login (as CI runs them)",
                [(p, _median(cli[p]["kit"]), _median(cli[p]["import"]), targets[p]) for p in paths])
        _report("2b. Kit vs Superset's import, in one process over one logged-in session",
                [(p, _median(api[p]["kit"]), _median(api[p]["import"]), targets[p]) for p in paths])
        print("  write requests by the kit: " + ", ".join(f"{p} {max(writes[p])}" for p in paths))


class Tenants:
    """A no-op plan over 1, 5, 20 tenants of one environment."""

    def __init__(self, folder: Path, url: str, password: str, counts: list[int], rounds: int) -> None:
        self.folder, self.counts, self.rounds = folder, counts, rounds
        self.names = [f"t{i:02d}" for i in range(max(counts))]
        db_url = _engine_output(folder, self.names[:1])  # plan needs no tenant data: one run serves all
        self.config = _write_config(folder, url, db_url, self.names)
        self.home = folder / "home"
        self.env = {**os.environ, PASSWORD_VAR: password, "PFILL_HOME": str(self.home)}
        os.environ[PASSWORD_VAR] = password
        done = subprocess.run([PFILL, "--config", str(self.config), "apply", "--env", "bench", "--yes"],
                              env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])

    def plan_cli(self, count: int) -> float:
        tenants = [arg for name in self.names[:count] for arg in ("--tenant", name)]
        return _timed([PFILL, "--config", str(self.config), "plan", "--env", "bench", *tenants], self.env)

    def requests(self, count: int) -> int:
        """Requests of a warm no-op plan, counted over the same reads in process."""
        settings = Settings.resolve(home=self.home, config=self.config)
        with Project.load(settings, "bench", self.names[:count]) as project:
            project.plan()
            before = sum(project.client.calls.values())
            project.plan()
            return sum(project.client.calls.values()) - before

    def run(self) -> None:
        warm: dict[int, list[float]] = {n: [] for n in self.counts}
        cold: dict[int, list[float]] = {n: [] for n in self.counts}
        for round_number in range(1, self.rounds + 1):
            for count in self.counts:
                shutil.rmtree(self.home / "cache", ignore_errors=True)
                cold[count].append(self.plan_cli(count))
                warm[count].append(self.plan_cli(count))
            print(f"  round {round_number}/{self.rounds} done", file=sys.stderr)
        first = self.counts[0]
        print("\n3. No-op `pfill plan` over N tenants (fresh process each; medians)")
        print(f"  {'tenants':>7} {'warm s':>7} {'x one':>6} {'cold s':>7} {'x one':>6} {'requests':>9} "
              f"{'s/added tenant':>15}")
        for count in self.counts:
            w, c = _median(warm[count]), _median(cold[count])
            added = (w - _median(warm[first])) / (count - first) if count > first else 0.0
            print(f"  {count:>7} {w:>7.3f} {w / _median(warm[first]):>6.2f} {c:>7.3f} {c / _median(cold[first]):>6.2f} "
                  f"{self.requests(count):>9} {added:>15.3f}")
        last = self.counts[-1]
        for label, table in (("warm", warm), ("cold", cold)):
            ratio = _median(table[last]) / _median(table[first])
            verdict = "ok" if ratio <= 3 else "MISSED"
            print(f"  {last} tenants / {first} ({label}) = {ratio:.2f} (target <= 3): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tenants", default="1,5,20")
    parser.add_argument("--url", help="An existing Superset (default: start a throw-away one)")
    parser.add_argument("--password", help="Its admin password")
    parser.add_argument("--only", choices=["startup", "import", "tenants"], help="Run one part only")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pfill-bench-deploy-"))
    stack = None
    if args.url:
        url, password = args.url, args.password
    elif args.only != "startup":
        stack = LocalSuperset(folder / "stack", port=free_port(), venv=shared_superset_venv())
        stack.up(lambda line: print(f"[superset] {line}", file=sys.stderr), timeout=240)
        url, password = stack.url, stack.admin_password()
    try:
        print(f"Deploy benchmark, {args.rounds} rounds, interleaved; machine load {os.getloadavg()[0]:.2f}")
        parts: dict[str, Callable[[], None]] = {
            "startup": lambda: bench_startup(args.rounds * 3),
            "import": lambda: KitVersusImport(folder / "import", url, password, args.rounds).run(),
            "tenants": lambda: Tenants(folder / "tenants", url, password,
                                       [int(n) for n in args.tenants.split(",")], args.rounds).run(),
        }
        for name, part in parts.items():
            if args.only in (None, name):
                (folder / name).mkdir(exist_ok=True)
                part()
        print(f"\nmachine load at the end {os.getloadavg()[0]:.2f}")
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
