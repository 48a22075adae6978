"""``dpzero serve --workers 2``: every process answers, one runs the async jobs, and a
job aborted through any process stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import pyvo

from dpzero.tap import JobStore
from dpzero.tap.models import JobPhase
from tap.conftest import ServerProcess
from tap.test_async import QUICK, SLOW, process_alive, wait_phase


@pytest.fixture(scope="module")
def server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    state = tmp_path_factory.mktemp("workers") / "state"
    server = ServerProcess(tiny_store, state, args=("--workers", "2")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quick_rows(tiny_survey: Path) -> int:
    """Brute force: objects with mag_i < 22 in the survey's files."""
    files = sorted((tiny_survey / "object").glob("*.parquet"))
    mag = pq.read_table(files, columns=["mag_i"]).column("mag_i")
    return int(pc.sum(pc.less(mag, 22)).as_py())


def test_every_request_is_answered_right(server: ServerProcess, quick_rows: int) -> None:
    # A new connection each time: the processes take turns accepting them.
    for _ in range(12):
        with httpx.Client(timeout=60) as client:
            r = client.post(
                f"{server.tap_url}/sync",
                data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUICK, "FORMAT": "csv"},
            )
        assert r.status_code == 200
        assert len(r.text.splitlines()) - 1 == quick_rows


def test_jobs_queued_through_any_process_run_once(server: ServerProcess, quick_rows: int) -> None:
    jobs = []
    for _ in range(4):
        service = pyvo.dal.TAPService(server.tap_url)  # a session (connection) of its own
        job = service.submit_job(QUICK)
        job.run()
        jobs.append(job)
    for job in jobs:
        assert wait_phase(job, {"COMPLETED", "ERROR"}) == "COMPLETED"
        assert len(job.fetch_result().to_table()) == quick_rows
    assert (server.state_dir / "job-runner.lock").exists()


def test_a_job_aborted_by_another_process_stops(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(SLOW)
    job.run()
    wait_phase(job, {"EXECUTING"})
    pid_file = server.state_dir / "results" / job.job_id / "worker.pid"
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    # What a server process that does not run the jobs does on ABORT: it changes the
    # phase in the shared job database (here this test's process does it).
    jobs = JobStore(f"sqlite:///{(server.state_dir / 'jobs.sqlite3').absolute()}")
    try:
        assert jobs.update(job.job_id, expect=[JobPhase.EXECUTING], phase=JobPhase.ABORTED)
    finally:
        jobs.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process_alive(worker_pid):
        time.sleep(0.1)
    assert not process_alive(worker_pid)
    assert job.phase == "ABORTED"
    assert httpx.get(f"{server.tap_url}/availability", timeout=10).status_code == 200
