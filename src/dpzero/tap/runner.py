"""The async job runner: starts queued jobs in worker processes within the concurrency
limits, enforces EXECUTIONDURATION, aborts, destroys expired jobs, and recovers after
a restart (jobs that were executing become ERROR, queued ones run)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from dpzero.tap.models import JobPhase
from dpzero.tap.storage import JobStore
from dpzero.tap.worker import STATUS_FILE, run_job

__all__ = ["RESTART_MESSAGE", "JobRunner"]

RESTART_MESSAGE = (
    "the service restarted while this job was executing; its result was lost, "
    "submit the query again"
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Running:
    process: BaseProcess
    started: float
    limit: int


def _context() -> BaseContext:
    # forkserver: fast worker start without forking a threaded server process.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["dpzero.tap.worker", "dpzero.tap.engine"])
    return ctx


class JobRunner:
    """Runs async jobs of a `JobStore` in worker processes.

    Parameters
    ----------
    jobs
        The job store (the runner is its only writer of phases after creation).
    results_dir
        Folder holding one folder per job.
    store_path
        Catalog store the workers query.
    max_running, max_running_per_user
        Concurrency limits; further jobs wait in QUEUED.
    default_maxrec, max_upload_rows
        Passed to the workers.
    sweep_seconds
        How often expired jobs are destroyed.
    attached
        Files of the tables published next to the store's (`dpzero.tap.attached`).
    """

    def __init__(
        self,
        jobs: JobStore,
        results_dir: Path,
        store_path: Path,
        max_running: int,
        max_running_per_user: int,
        default_maxrec: int,
        max_upload_rows: int,
        sweep_seconds: float = 30.0,
        attached: Sequence[Path] = (),
    ) -> None:
        self.jobs = jobs
        self.results_dir = results_dir
        self.store_path = store_path
        self.max_running = max_running
        self.max_running_per_user = max_running_per_user
        self.default_maxrec = default_maxrec
        self.max_upload_rows = max_upload_rows
        self._running: dict[str, _Running] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx = _context()
        self._last_sweep = 0.0
        self.sweep_seconds = sweep_seconds
        self.attached = tuple(str(p) for p in attached)

    def job_dir(self, job_id: str) -> Path:
        """Folder of one job's parameters, uploads and results."""
        return self.results_dir / job_id

    def start(self) -> None:
        """Recover from a previous run, then start scheduling."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        for job in self.jobs.list(phases=[JobPhase.EXECUTING]):
            self.jobs.update(
                job.job_id,
                expect=[JobPhase.EXECUTING],
                phase=JobPhase.ERROR,
                error_message=RESTART_MESSAGE,
                end_time=_now(),
            )
        self._thread = threading.Thread(target=self._loop, name="tap-job-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and kill running workers (their jobs are recovered at restart)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for running in self._running.values():
                running.process.kill()
                running.process.join(timeout=5)
            self._running.clear()

    def wake(self) -> None:
        """Look for work now (a job was queued)."""
        self._wake.set()

    def abort(self, job_id: str) -> bool:
        """Stop a job at once; returns whether it was pending, queued or executing."""
        changed = self.jobs.update(
            job_id,
            expect=[JobPhase.PENDING, JobPhase.QUEUED, JobPhase.EXECUTING],
            phase=JobPhase.ABORTED,
            end_time=_now(),
        )
        with self._lock:
            running = self._running.pop(job_id, None)
            self._owners.pop(job_id, None)
        if running is not None:
            running.process.kill()
            running.process.join(timeout=5)
        return changed

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # keep scheduling whatever one tick hit
                import logging

                logging.getLogger(__name__).exception("job runner tick failed")
            self._wake.wait(0.2)
            self._wake.clear()

    def _tick(self) -> None:
        self._reap()
        self._schedule()
        if time.monotonic() - self._last_sweep > self.sweep_seconds:
            self.destroy_expired()
            self._last_sweep = time.monotonic()

    def _reap(self) -> None:
        with self._lock:
            items = list(self._running.items())
        for job_id, running in items:
            if running.process.is_alive():
                job = self.jobs.get(job_id)
                if job is None or job.phase is not JobPhase.EXECUTING:
                    # Aborted or destroyed through another server process.
                    running.process.kill()
                    running.process.join(timeout=5)
                    self._forget(job_id)
                    continue
                if time.monotonic() - running.started > running.limit:
                    running.process.kill()
                    running.process.join(timeout=5)
                    self._forget(job_id)
                    self.jobs.update(
                        job_id,
                        expect=[JobPhase.EXECUTING],
                        phase=JobPhase.ERROR,
                        error_message=f"the query ran longer than its EXECUTIONDURATION "
                        f"({running.limit} s) and was stopped",
                        end_time=_now(),
                    )
                continue
            running.process.join()
            self._forget(job_id)
            self._finish(job_id, running.process.exitcode)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)
            self._owners.pop(job_id, None)

    def _finish(self, job_id: str, exitcode: int | None) -> None:
        status_path = self.job_dir(job_id) / STATUS_FILE
        try:
            status = json.loads(status_path.read_text())
        except (OSError, ValueError):
            status = {"error": f"the query process ended unexpectedly (exit code {exitcode})"}
        if "error" in status:
            self.jobs.update(
                job_id,
                expect=[JobPhase.EXECUTING],
                phase=JobPhase.ERROR,
                error_message=status["error"],
                end_time=_now(),
            )
        else:
            self.jobs.update(
                job_id,
                expect=[JobPhase.EXECUTING],
                phase=JobPhase.COMPLETED,
                result_rows=status["rows"],
                overflow=status["overflow"],
                result_format=status["media_type"],
                end_time=_now(),
            )

    def _schedule(self) -> None:
        queued = self.jobs.list(phases=[JobPhase.QUEUED])
        if not queued:
            return
        with self._lock:
            running_owners = [self._owners.get(j, "") for j in self._running]
        per_owner: dict[str, int] = {}
        for owner in running_owners:
            per_owner[owner] = per_owner.get(owner, 0) + 1
        for job in queued:
            with self._lock:
                if len(self._running) >= self.max_running:
                    return
            if per_owner.get(job.owner, 0) >= self.max_running_per_user:
                continue
            if not self.jobs.update(
                job.job_id, expect=[JobPhase.QUEUED], phase=JobPhase.EXECUTING, start_time=_now()
            ):
                continue  # aborted meanwhile
            process = self._ctx.Process(
                target=run_job,
                args=(
                    str(self.job_dir(job.job_id)),
                    str(self.store_path),
                    self.default_maxrec,
                    self.max_upload_rows,
                    os.getpid(),
                    self.attached,
                ),
                name=f"tap-job-{job.job_id}",
                daemon=True,
            )
            process.start()
            with self._lock:
                self._running[job.job_id] = _Running(
                    process, time.monotonic(), job.execution_duration
                )
                self._owners[job.job_id] = job.owner
            per_owner[job.owner] = per_owner.get(job.owner, 0) + 1

    def destroy_expired(self) -> int:
        """Delete jobs past their destruction time, with their files; returns how many."""
        expired = self.jobs.expired(_now())
        for job in expired:
            self.abort(job.job_id)
            shutil.rmtree(self.job_dir(job.job_id), ignore_errors=True)
            self.jobs.delete(job.job_id)
        return len(expired)
