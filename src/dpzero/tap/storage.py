"""Async job state in a relational database: SQLite by default, PostgreSQL in production.

Only the server process writes here; worker processes report through their result
folder, which the job runner reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from dpzero.tap.models import Job, JobParameters, JobPhase, UploadSpec

__all__ = ["JobStore"]

_metadata = sa.MetaData()
_jobs = sa.Table(
    "tap_jobs",
    _metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(256), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("start_time", sa.DateTime(timezone=True)),
    sa.Column("end_time", sa.DateTime(timezone=True)),
    sa.Column("execution_duration", sa.Integer, nullable=False),
    sa.Column("destruction", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("quote", sa.DateTime(timezone=True)),
    sa.Column("error_message", sa.Text),
    sa.Column("result_rows", sa.BigInteger),
    sa.Column("result_format", sa.String(64)),
    sa.Column("overflow", sa.Boolean, nullable=False, default=False),
    sa.Column("upload_dir", sa.Text),
)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every time here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _encode(params: JobParameters) -> str:
    return json.dumps(
        {
            "query": params.query,
            "lang": params.lang,
            "response_format": params.response_format,
            "maxrec": params.maxrec,
            "run_id": params.run_id,
            "uploads": [[u.name, u.source] for u in params.uploads],
        }
    )


def _decode(text: str) -> JobParameters:
    data = json.loads(text)
    data["uploads"] = tuple(UploadSpec(n, s) for n, s in data["uploads"])
    return JobParameters(**data)


class JobStore:
    """CRUD of async jobs.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///…`` or ``postgresql://…``; PostgreSQL through psycopg).
    """

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if url.startswith("sqlite"):

            @sa.event.listens_for(self.engine, "connect")
            def _wal(dbapi_connection: object, _record: object) -> None:
                cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.close()

        _metadata.create_all(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _row_to_job(self, row: sa.Row) -> Job:
        return Job(
            job_id=row.job_id,
            owner=row.owner,
            phase=JobPhase(row.phase),
            parameters=_decode(row.parameters),
            creation_time=_aware(row.creation_time),  # type: ignore[arg-type]
            start_time=_aware(row.start_time),
            end_time=_aware(row.end_time),
            execution_duration=row.execution_duration,
            destruction=_aware(row.destruction),  # type: ignore[arg-type]
            quote=_aware(row.quote),
            error_message=row.error_message,
            result_rows=row.result_rows,
            result_format=row.result_format,
            overflow=bool(row.overflow),
            upload_dir=row.upload_dir,
        )

    def add(self, job: Job) -> None:
        """Store a new job."""
        with self.engine.begin() as con:
            con.execute(
                _jobs.insert().values(
                    job_id=job.job_id,
                    owner=job.owner,
                    phase=job.phase.value,
                    parameters=_encode(job.parameters),
                    creation_time=job.creation_time,
                    execution_duration=job.execution_duration,
                    destruction=job.destruction,
                    quote=job.quote,
                    overflow=False,
                    upload_dir=job.upload_dir,
                )
            )

    def get(self, job_id: str) -> Job | None:
        """The job, or None if there is none with that id."""
        with self.engine.connect() as con:
            row = con.execute(sa.select(_jobs).where(_jobs.c.job_id == job_id)).first()
        return None if row is None else self._row_to_job(row)

    def list(
        self,
        owner: str | None = None,
        phases: Iterable[JobPhase] | None = None,
        after: datetime | None = None,
        last: int | None = None,
    ) -> list[Job]:
        """Jobs filtered as UWS 1.1 job lists are (PHASE, AFTER, LAST), oldest first."""
        query = sa.select(_jobs)
        if owner is not None:
            query = query.where(_jobs.c.owner == owner)
        phase_values = [p.value for p in phases or ()]
        if phase_values:
            query = query.where(_jobs.c.phase.in_(phase_values))
        if after is not None:
            query = query.where(_jobs.c.creation_time > after)
        if last is not None:
            query = query.order_by(_jobs.c.creation_time.desc()).limit(last)
        else:
            query = query.order_by(_jobs.c.creation_time)
        with self.engine.connect() as con:
            jobs = [self._row_to_job(r) for r in con.execute(query)]
        if last is not None:
            jobs.reverse()
        return jobs

    def update(
        self, job_id: str, expect: Iterable[JobPhase] | None = None, **values: object
    ) -> bool:
        """Change fields of a job; with ``expect``, only if it is in one of those phases.

        Returns whether a job was changed (the compare-and-set makes phase changes safe
        against a concurrent abort).
        """
        if "phase" in values and isinstance(values["phase"], JobPhase):
            values["phase"] = values["phase"].value  # type: ignore[union-attr]
        if "parameters" in values:
            values["parameters"] = _encode(values["parameters"])  # type: ignore[arg-type]
        query = _jobs.update().where(_jobs.c.job_id == job_id).values(**values)
        if expect is not None:
            query = query.where(_jobs.c.phase.in_([p.value for p in expect]))
        with self.engine.begin() as con:
            return con.execute(query).rowcount > 0

    def delete(self, job_id: str) -> None:
        """Forget a job."""
        with self.engine.begin() as con:
            con.execute(_jobs.delete().where(_jobs.c.job_id == job_id))

    def expired(self, now: datetime) -> list[Job]:
        """Jobs whose destruction time has passed."""
        with self.engine.connect() as con:
            rows = con.execute(sa.select(_jobs).where(_jobs.c.destruction <= now))
            return [self._row_to_job(r) for r in rows]

    def count_active(self, owner: str | None = None) -> int:
        """Jobs queued or executing (of one owner, or of all)."""
        query = (
            sa.select(sa.func.count())
            .select_from(_jobs)
            .where(_jobs.c.phase.in_([JobPhase.QUEUED.value, JobPhase.EXECUTING.value]))
        )
        if owner is not None:
            query = query.where(_jobs.c.owner == owner)
        with self.engine.connect() as con:
            return int(con.execute(query).scalar_one())
