"""The TAP service logic: parameters, sync queries, and the async job lifecycle."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa

from dpzero.config import Settings
from dpzero.errors import DpzeroUserError, InvalidInputError
from dpzero.tap.engine import QueryOutcome, TapEngine
from dpzero.tap.formats import ResultFormat, parse_format
from dpzero.tap.models import ACTIVE_PHASES, FINAL_PHASES, Job, JobParameters, JobPhase
from dpzero.tap.runner import JobRunner
from dpzero.tap.storage import JobStore
from dpzero.tap.uploads import parse_upload_param, read_votable_upload

__all__ = ["JobNotFoundError", "JobStateError", "TapService"]

_LANGS = {"adql", "adql-2.0", "adql-2.1"}


class JobNotFoundError(DpzeroUserError):
    """No job with that id (or not the caller's)."""

    code = "job_not_found"
    status_code = 404


class JobStateError(DpzeroUserError):
    """The job is not in a phase that allows the request."""

    code = "job_state"
    status_code = 409


def _now() -> datetime:
    return datetime.now(UTC)


def _one(params: Mapping[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def _int(params: Mapping[str, list[str]], key: str, name: str) -> int | None:
    value = _one(params, key)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be an integer, not {value!r}") from None


class TapService:
    """Sync and async TAP queries over one `TapEngine`.

    Parameters
    ----------
    settings
        Platform settings (limits, folders).
    engine
        Answers queries.
    jobs
        Async job state.
    runner
        Runs async jobs.
    """

    def __init__(
        self, settings: Settings, engine: TapEngine, jobs: JobStore, runner: JobRunner
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.jobs = jobs
        self.runner = runner

    # ----------------------------------------------------------------- parameters
    def parse_parameters(
        self, params: Mapping[str, list[str]], files: Mapping[str, bytes]
    ) -> tuple[JobParameters, dict[str, bytes]]:
        """Validate TAP parameters (keys lower-cased) and fetch uploads.

        Raises
        ------
        InvalidInputError
            For a missing QUERY, an unsupported REQUEST, LANG or format, a bad MAXREC,
            or an upload that cannot be read.
        """
        request = _one(params, "request")
        if request is not None and request.strip().lower() != "doquery":
            raise InvalidInputError(f"REQUEST={request} is not supported; use REQUEST=doQuery")
        lang = (_one(params, "lang") or "ADQL").strip()
        if lang.lower() not in _LANGS:
            raise InvalidInputError(f"LANG={lang} is not supported; use LANG=ADQL")
        query = _one(params, "query")
        if query is None or not query.strip():
            raise InvalidInputError("the QUERY parameter is missing or empty")
        fmt = _one(params, "responseformat") or _one(params, "format")
        parse_format(fmt)
        maxrec = _int(params, "maxrec", "MAXREC")
        if maxrec is not None and not 0 <= maxrec <= self.settings.tap.max_maxrec:
            raise InvalidInputError(
                f"MAXREC must be between 0 and {self.settings.tap.max_maxrec:,}, not {maxrec}"
            )
        uploads = parse_upload_param(params.get("upload", []))
        blobs = {spec.name: self._fetch_upload(spec.name, spec.source, files) for spec in uploads}
        parameters = JobParameters(
            query=query,
            lang=lang,
            response_format=fmt,
            maxrec=maxrec,
            run_id=_one(params, "runid"),
            uploads=uploads,
        )
        return parameters, blobs

    def _fetch_upload(self, name: str, source: str, files: Mapping[str, bytes]) -> bytes:
        limit = self.settings.tap.upload_limit_bytes
        if source.startswith("param:"):
            field = source.removeprefix("param:")
            if field not in files:
                raise InvalidInputError(
                    f"UPLOAD {name} names param:{field}, but no such file was sent"
                )
            data = files[field]
        else:
            try:
                with httpx.stream("GET", source, timeout=30, follow_redirects=True) as response:
                    response.raise_for_status()
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            break
                        chunks.append(chunk)
                    data = b"".join(chunks)
            except httpx.HTTPError as exc:
                raise InvalidInputError(f"UPLOAD {name}: cannot fetch {source} ({exc})") from None
            size = len(data)
        if len(data) > limit:
            raise InvalidInputError(f"UPLOAD {name} is larger than the limit of {limit:,} bytes")
        return data

    def _read_uploads(self, blobs: Mapping[str, bytes]) -> dict[str, pa.Table]:
        rows = self.settings.tap.upload_limit_rows
        return {name: read_votable_upload(name, data, rows) for name, data in blobs.items()}

    # ----------------------------------------------------------------------- sync
    def run_sync(
        self, parameters: JobParameters, blobs: Mapping[str, bytes]
    ) -> tuple[QueryOutcome, ResultFormat]:
        """Answer a query now."""
        fmt = parse_format(parameters.response_format)
        maxrec = parameters.maxrec
        if maxrec is None:
            maxrec = self.settings.tap.default_maxrec
        outcome = self.engine.execute(parameters.query, self._read_uploads(blobs), maxrec)
        return outcome, fmt

    # ---------------------------------------------------------------------- async
    def create_job(
        self, owner: str, parameters: JobParameters, blobs: Mapping[str, bytes], run: bool
    ) -> Job:
        """A new job, PENDING, or QUEUED when ``run`` (PHASE=RUN at creation)."""
        self._read_uploads(blobs)  # refuse unreadable uploads now, not in the worker
        now = _now()
        job = Job(
            job_id=secrets.token_hex(8),
            owner=owner,
            phase=JobPhase.PENDING,
            parameters=parameters,
            creation_time=now,
            execution_duration=self.settings.tap.execution_duration,
            destruction=now + timedelta(days=self.settings.tap.destruction_days),
        )
        folder = self.runner.job_dir(job.job_id)
        folder.mkdir(parents=True)
        for name, data in blobs.items():
            (folder / f"upload-{name}.xml").write_bytes(data)
        self._write_params(job)
        self.jobs.add(job)
        if run:
            self.start(owner, job.job_id)
            job = self.get(owner, job.job_id)
        return job

    def _write_params(self, job: Job) -> None:
        p = job.parameters
        (self.runner.job_dir(job.job_id) / "params.json").write_text(
            json.dumps(
                {
                    "query": p.query,
                    "response_format": p.response_format,
                    "maxrec": p.maxrec,
                    "uploads": [u.name for u in p.uploads],
                }
            )
        )

    def get(self, owner: str, job_id: str) -> Job:
        """The caller's job.

        Raises
        ------
        JobNotFoundError
            If there is no such job, or it belongs to someone else.
        """
        job = self.jobs.get(job_id)
        if job is None or job.owner != owner:
            raise JobNotFoundError(f"no job {job_id}")
        return job

    def list(
        self,
        owner: str,
        phases: list[str],
        after: str | None,
        last: str | None,
    ) -> list[Job]:
        """The caller's jobs, filtered as UWS 1.1 says.

        Raises
        ------
        InvalidInputError
            For an unknown PHASE, an AFTER that is not an ISO 8601 time, a bad LAST.
        """
        try:
            wanted = [JobPhase(p.strip().upper()) for p in phases if p.strip()]
        except ValueError:
            raise InvalidInputError(f"unknown PHASE in {phases}") from None
        after_time = None
        if after:
            try:
                after_time = datetime.fromisoformat(after.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInputError(f"AFTER={after} is not an ISO 8601 time") from None
            if after_time.tzinfo is None:
                after_time = after_time.replace(tzinfo=UTC)
        last_n = None
        if last:
            try:
                last_n = int(last)
            except ValueError:
                raise InvalidInputError(f"LAST must be a positive integer, not {last!r}") from None
            if last_n <= 0:
                raise InvalidInputError(f"LAST must be a positive integer, not {last!r}")
        if not wanted and not (after or last):
            # UWS 1.1: the default list leaves out ARCHIVED jobs.
            wanted = [p for p in JobPhase if p != JobPhase.ARCHIVED]
        return self.jobs.list(owner=owner, phases=wanted, after=after_time, last=last_n)

    def start(self, owner: str, job_id: str) -> None:
        """PHASE=RUN: queue a pending job (ignored for jobs already running or done)."""
        job = self.get(owner, job_id)
        if job.phase in ACTIVE_PHASES or job.phase in FINAL_PHASES:
            return
        self.jobs.update(job_id, expect=[JobPhase.PENDING, JobPhase.HELD], phase=JobPhase.QUEUED)
        self.runner.wake()

    def abort(self, owner: str, job_id: str) -> None:
        """PHASE=ABORT: stop the job at once."""
        job = self.get(owner, job_id)
        if job.phase in FINAL_PHASES:
            return
        self.runner.abort(job_id)

    def delete(self, owner: str, job_id: str) -> None:
        """Destroy a job and its results."""
        self.get(owner, job_id)
        self.runner.abort(job_id)
        shutil.rmtree(self.runner.job_dir(job_id), ignore_errors=True)
        self.jobs.delete(job_id)

    def set_execution_duration(self, owner: str, job_id: str, value: str) -> None:
        """Change EXECUTIONDURATION of a pending job (capped by the service's limit)."""
        job = self.get(owner, job_id)
        if job.phase != JobPhase.PENDING:
            raise JobStateError(f"job {job_id} is {job.phase}; only PENDING jobs can change")
        try:
            seconds = int(value)
        except ValueError:
            raise InvalidInputError(
                f"EXECUTIONDURATION must be whole seconds, not {value!r}"
            ) from None
        limit = self.settings.tap.max_execution_duration
        seconds = limit if seconds <= 0 else min(seconds, limit)
        self.jobs.update(job_id, execution_duration=seconds)

    def set_destruction(self, owner: str, job_id: str, value: str) -> None:
        """Change DESTRUCTION (no later than the service's retention allows)."""
        job = self.get(owner, job_id)
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"DESTRUCTION={value} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        latest = job.creation_time + timedelta(days=self.settings.tap.destruction_days)
        self.jobs.update(job_id, destruction=min(when, latest))

    def update_parameters(
        self, owner: str, job_id: str, params: Mapping[str, list[str]], files: Mapping[str, bytes]
    ) -> None:
        """Change parameters of a pending job."""
        job = self.get(owner, job_id)
        if job.phase != JobPhase.PENDING:
            raise JobStateError(f"job {job_id} is {job.phase}; only PENDING jobs can change")
        merged = {k: [v] for k, v in job.parameters.as_uws() if k != "upload"}
        merged.update(params)
        parameters, blobs = self.parse_parameters(merged, files)
        if not params.get("upload"):
            parameters = replace(parameters, uploads=job.parameters.uploads)
            blobs = {}
        folder = self.runner.job_dir(job_id)
        for name, data in blobs.items():
            (folder / f"upload-{name}.xml").write_bytes(data)
        self.jobs.update(job_id, parameters=parameters)
        self._write_params(replace(job, parameters=parameters))

    def result_file(self, owner: str, job_id: str) -> tuple[str, str]:
        """(path, media type) of a completed job's result.

        Raises
        ------
        JobStateError
            If the job has not completed.
        """
        job = self.get(owner, job_id)
        if job.phase != JobPhase.COMPLETED:
            raise JobStateError(f"job {job_id} is {job.phase}; it has no result")
        fmt = parse_format(job.parameters.response_format)
        path = self.runner.job_dir(job_id) / f"result.{fmt.extension}"
        return str(path), fmt.media_type
