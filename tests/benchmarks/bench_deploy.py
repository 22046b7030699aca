"""Deploy benchmark: first deploy and no-op redeploy through `apply`, against Superset's own bundle
import (`POST /api/v1/assets/import/`) of the same content, timed in the same run on the same server.

    .venv/bin/python tests/benchmarks/bench_deploy.py [--rounds 3] [--url URL --password PW]

Without --url it starts a throw-away Superset (the shared virtual environment under .pfill) on a
free port. The content: the 8 dashboards, 25 charts, 8 datasets and the database of one tenant over
demo engine output in SQLite. Targets: no-op redeploy makes 0 writes and takes <= 2 s; a first
deploy is no slower than the bundle import.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import prison
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pfill.cli import cli  # noqa: E402
from pfill.config import Settings  # noqa: E402
from pfill.deploy.client import SupersetClient  # noqa: E402
from pfill.deploy.desired import DesiredState  # noqa: E402
from pfill.deploy.live import read_live  # noqa: E402
from pfill.deploy.local_superset import LocalSuperset  # noqa: E402
from pfill.deploy.project import Project  # noqa: E402
from tests.conftest import free_port, shared_superset_venv  # noqa: E402

AS_OF = "2026-11-02"


def _engine_output(folder: Path) -> str:
    url = f"sqlite:///{folder / 'engine.db'}"
    for args in (["db", "init"], ["demo-data", "--tenant", "bench", "--as-of", AS_OF],
                 ["run", "--tenant", "bench", "--as-of", AS_OF]):
        result = CliRunner().invoke(cli, ["--db", url, *args])
        assert result.exit_code == 0, result.output
    return url


def _project(folder: Path, url: str, password_var: str, db_url: str) -> Project:
    config = folder / "pfill.yaml"
    config.write_text(
        "environments:\n  bench:\n"
        f"    superset: {{url: '{url}', username: admin, password: '${{{password_var}}}'}}\n"
        f"    tenants:\n      bench: {{database_url: '{db_url}'}}\n"
    )
    settings = Settings.resolve(home=folder / "home", config=config)
    return Project.load(settings, "bench")


def _deploy(project: Project) -> tuple[float, int, int, float]:
    """Plan and apply; return seconds, requests, write requests and the seconds spent planning."""
    client = project.client
    before_calls, before_writes = sum(client.calls.values()), client.writes
    start = time.perf_counter()
    (plan,) = project.plan()
    planned = time.perf_counter()
    project.apply(plan)
    end = time.perf_counter()
    return end - start, sum(client.calls.values()) - before_calls, client.writes - before_writes, planned - start


def _delete_all(client: SupersetClient, state: DesiredState) -> None:
    live = read_live(client, state)
    for kind in ("dashboard", "chart", "dataset", "database"):
        for obj in live.objects.values():
            if obj.kind == kind:
                client.delete(f"/api/v1/{kind}/{obj.id}")


def _export_bundle(client: SupersetClient, state: DesiredState) -> bytes:
    ids = [o.id for o in read_live(client, state).objects.values() if o.kind == "dashboard"]
    response = client.session.get(f"{client.url}/api/v1/dashboard/export/", params={"q": prison.dumps(ids)},
                                  timeout=120)
    response.raise_for_status()
    # the assets endpoint takes the same files under a metadata.yaml that says `type: assets`
    source, target = zipfile.ZipFile(io.BytesIO(response.content)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith("/metadata.yaml"):
                data = re.sub(rb"(?m)^type: .*$", b"type: assets", data)
            out.writestr(name, data)
    return target.getvalue()


def _bundle_import(client: SupersetClient, bundle: bytes) -> tuple[float, int]:
    start = time.perf_counter()
    client.post("/api/v1/assets/import/", files={"bundle": ("bundle.zip", bundle, "application/zip")},
                data={"passwords": "{}"})
    return time.perf_counter() - start, 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="An existing Superset (default: start a throw-away one)")
    parser.add_argument("--password", help="Its admin password")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pfill-bench-deploy-"))
    stack = None
    if args.url:
        url, password = args.url, args.password
    else:
        stack = LocalSuperset(folder, port=free_port(), venv=shared_superset_venv())
        stack.up(lambda line: print(f"[superset] {line}", file=sys.stderr), timeout=240)
        url, password = stack.url, stack.admin_password()
    try:
        os.environ["PFILL_BENCH_PASSWORD"] = password
        project = _project(folder, url, "PFILL_BENCH_PASSWORD", _engine_output(folder))
        (state,) = project.states
        names = ("first deploy (apply)", "no-op redeploy (apply)", "bundle import (baseline)")
        rows: dict[str, list[tuple[float, int, int, float]]] = {name: [] for name in names}
        with SupersetClient(url, "admin", password, timeout=120) as client:
            client.login()
            project.using(client)
            _delete_all(client, state)
            for round_number in range(1, args.rounds + 1):
                rows["first deploy (apply)"].append(_deploy(project))
                rows["no-op redeploy (apply)"].append(_deploy(project))
                bundle = _export_bundle(client, state)
                _delete_all(client, state)
                seconds, requests = _bundle_import(client, bundle)
                rows["bundle import (baseline)"].append((seconds, requests, requests, 0.0))
                _delete_all(client, state)
                print(f"round {round_number}/{args.rounds} done", file=sys.stderr)
        print(f"\nDeploy benchmark: {len(state.objects)} objects (1 database, 8 datasets, 25 charts, 8 dashboards), "
              f"median of {args.rounds} rounds, Superset at {url}\n")
        print(f"{'operation':<26} {'seconds':>8} {'planning':>9} {'requests':>9} {'writes':>7}")
        medians = {}
        for name, samples in rows.items():
            seconds = statistics.median(s[0] for s in samples)
            medians[name] = seconds
            planning = statistics.median(s[3] for s in samples)
            requests = statistics.median(s[1] for s in samples)
            writes = statistics.median(s[2] for s in samples)
            print(f"{name:<26} {seconds:>8.2f} {planning:>9.2f} {requests:>9.0f} {writes:>7.0f}")
        ratio = medians["first deploy (apply)"] / medians["bundle import (baseline)"]
        print(f"\nfirst deploy / bundle import = {ratio:.2f} (target <= 1.0)")
        print(f"no-op redeploy: {medians['no-op redeploy (apply)']:.2f} s (target <= 2 s), "
              f"writes {max(s[2] for s in rows['no-op redeploy (apply)'])} (target 0)")
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    main()
