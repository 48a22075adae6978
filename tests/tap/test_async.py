"""Async (UWS) TAP jobs through pyvo: lifecycle, abort, limits, destruction, restarts,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import pyvo

from dpzero.tap.runner import RESTART_MESSAGE
from tap.conftest import ServerProcess

SLOW = (
    "SELECT COUNT(*) AS n FROM dp01_dc2_catalogs.object AS a, dp01_dc2_catalogs.object AS b, "
    "dp01_dc2_catalogs.object AS c WHERE a.ra + b.ra > c.ra"
)
QUICK = "SELECT objectId, ra, dec FROM dp01_dc2_catalogs.object WHERE mag_i < 22"


def wait_phase(job: pyvo.dal.AsyncTAPJob, phases: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = job.phase
        if phase in phases:
            return phase
        time.sleep(0.1)
    raise AssertionError(f"job stayed {job.phase}, wanted {phases}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def postgres_url() -> str:
    import psycopg

    name = f"dpzero_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(scope="module")
def servers(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One server per job database, started on first use and shared by this module."""
    started: dict[str, ServerProcess] = {}

    def get(backend: str) -> ServerProcess:
        if backend not in started:
            env = {
                "DPZERO_TAP__DESTRUCTION_CHECK_SECONDS": "0.5",
                "DPZERO_TAP__MAX_RUNNING_JOBS": "1",
            }
            if backend == "postgresql":
                env["DPZERO_TAP__JOBS_DATABASE"] = postgres_url()
            state = tmp_path_factory.mktemp(f"async-{backend}") / "state"
            started[backend] = ServerProcess(tiny_store, state, env).start()
        return started[backend]

    yield {"get": get}
    for server in started.values():
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, servers: dict) -> ServerProcess:
    return servers["get"](request.param)


def test_async_query_result_equals_sync(server: ServerProcess, tiny_survey: Path) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(QUICK, maxrec=100000, runid="mine")
    assert job.phase == "PENDING"
    job.run()
    job.wait(timeout=60)
    job.raise_if_error()
    assert job.phase == "COMPLETED"
    result = job.fetch_result().to_table()
    obj = pq.read_table(tiny_survey / "object", columns=["objectId", "mag_i"]).to_pandas()
    expected = np.sort(obj.objectId[obj.mag_i < 22].to_numpy())
    np.testing.assert_array_equal(np.sort(np.asarray(result["objectId"])), expected)
    listing = httpx.get(server.tap_url + "/async", params={"PHASE": "COMPLETED"}).text
    assert job.job_id in listing and "<uws:runId>mine</uws:runId>" in listing
    job.delete()
    assert httpx.get(f"{server.tap_url}/async/{job.job_id}").status_code == 404


def test_bad_adql_ends_in_error_with_position(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job("SELECT ra FROM dp01_dc2_catalogs.object WHERE")
    job.run()
    wait_phase(job, {"ERROR"})
    with pytest.raises(pyvo.dal.DALQueryError, match="line 1, column"):
        job.raise_if_error()
    error = httpx.get(f"{server.tap_url}/async/{job.job_id}/error")
    assert error.status_code == 200 and "QUERY_STATUS" in error.text


def test_abort_stops_a_running_query(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(SLOW)
    job.run()
    wait_phase(job, {"EXECUTING"})
    started = time.monotonic()
    job.abort()
    assert wait_phase(job, {"ABORTED"}, timeout=10) == "ABORTED"
    assert time.monotonic() - started < 5
    r = httpx.get(f"{server.tap_url}/async/{job.job_id}/results/result")
    assert r.status_code == 409


def test_execution_duration_is_enforced(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(SLOW)
    job.execution_duration = 1
    assert job.execution_duration.to_value("s") == 1
    job.run()
    wait_phase(job, {"ERROR"}, timeout=30)
    with pytest.raises(pyvo.dal.DALQueryError, match="EXECUTIONDURATION"):
        job.raise_if_error()


def test_destruction_removes_the_job(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(QUICK)
    job.run()
    job.wait(timeout=60)
    job.destruction = datetime.now(UTC) + timedelta(seconds=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{server.tap_url}/async/{job.job_id}").status_code == 404:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("job not destroyed")
    assert not (server.state_dir / "results" / job.job_id).exists()


def test_wait_blocks_until_the_phase_changes(server: ServerProcess) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    job = service.submit_job(SLOW)
    job.run()
    wait_phase(job, {"EXECUTING"})
    started = time.monotonic()
    r = httpx.get(f"{server.tap_url}/async/{job.job_id}", params={"WAIT": "1"}, timeout=10)
    assert r.status_code == 200 and time.monotonic() - started >= 0.9
    job.abort()


def test_restart_turns_executing_jobs_into_errors_and_runs_queued_ones(
    server: ServerProcess,
) -> None:
    service = pyvo.dal.TAPService(server.tap_url)
    slow = service.submit_job(SLOW)
    slow.run()
    wait_phase(slow, {"EXECUTING"})
    queued = service.submit_job(QUICK)
    queued.run()  # one job at a time: this one waits
    assert queued.phase == "QUEUED"
    pid_file = server.state_dir / "results" / slow.job_id / "worker.pid"
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    server.stop(hard=True)
    # The orphaned query process notices and ends instead of running on.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process_alive(worker_pid):
        time.sleep(0.2)
    assert not process_alive(worker_pid)
    server.start()
    service = pyvo.dal.TAPService(server.tap_url)
    slow = pyvo.dal.AsyncTAPJob(f"{server.tap_url}/async/{slow.job_id}")
    assert slow.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError) as err:
        slow.raise_if_error()
    assert RESTART_MESSAGE in str(err.value)
    queued = pyvo.dal.AsyncTAPJob(f"{server.tap_url}/async/{queued.job_id}")
    assert wait_phase(queued, {"COMPLETED"}) == "COMPLETED"
    assert len(queued.fetch_result()) > 0


def test_uws_parameters_and_bad_requests(server: ServerProcess) -> None:
    base = server.tap_url + "/async"
    r = httpx.post(base, data={"LANG": "ADQL", "QUERY": QUICK}, follow_redirects=False)
    assert r.status_code == 303
    job_url = r.headers["location"]
    assert httpx.get(job_url + "/phase").text == "PENDING"
    assert httpx.post(job_url + "/phase", data={"PHASE": "JUMP"}).status_code == 400
    assert (
        httpx.post(job_url + "/executionduration", data={"EXECUTIONDURATION": "x"}).status_code
        == 400
    )
    assert httpx.post(job_url + "/destruction", data={"DESTRUCTION": "tomorrow"}).status_code == 400
    assert httpx.get(base, params={"PHASE": "SLEEPING"}).status_code == 400
    assert httpx.get(base, params={"LAST": "-2"}).status_code == 400
    assert httpx.get(base + "/nosuchjob").status_code == 404
    assert httpx.post(base, data={"LANG": "ADQL"}).status_code == 400
    params = httpx.get(job_url + "/parameters").text
    assert "mag_i &lt; 22" in params
