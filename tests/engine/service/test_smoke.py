"""The run service answers the way the README's curl examples say (submit, poll, conflict, list, cancel)."""

from __future__ import annotations

from tests.engine.service.server import Server, wait_status


def test_submit_poll_conflict_list(server: Server) -> None:
    with server.client() as api:
        accepted = api.post("/run", json={"as_of": "2025-03-03"})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert accepted.json() == {"run_id": run_id, "status": "Pending"}
        assert accepted.headers["location"] == f"/api/powerfill/runs/{run_id}"
        busy = api.post("/run", json={"as_of": "2025-03-03"})
        assert busy.status_code == 409 and busy.headers["content-type"] == "application/problem+json"
        assert busy.json()["active_run"] == run_id
        done = wait_status(api, run_id, {"Complete", "Failed", "Cancelled"})
        assert done["status"] == "Complete", done
        # the Location header resolves to the same document
        again = api.get(f"http://127.0.0.1:{server.port}{accepted.headers['location']}")
        assert again.status_code == 200 and again.json()["run_id"] == run_id
        listed = api.get("/runs", params={"limit": 5}).json()
        assert [r["run_id"] for r in listed["runs"]] == [run_id] and listed["next"] is None


def test_two_worker_processes_serve_and_stop_cleanly(demo_db: str, tmp_path) -> None:
    """`--workers 2`: two server processes, each with its own embedded executor; a run submitted to
    either completes once, and a SIGTERM stops them all with exit 0."""
    srv = Server(demo_db, tmp_path / "home", args=("--workers", "2", "--no-access-log")).start()
    try:
        with srv.client() as api:
            run_id = api.post("/run", json={"as_of": "2025-03-03", "strategy": "greedy"}).json()["run_id"]
            assert wait_status(api, run_id, {"Complete", "Failed", "Cancelled"})["status"] == "Complete"
            assert len({api.get("/status").json()["status"] for _ in range(6)}) == 1
    finally:
        srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.log()
