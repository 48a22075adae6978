"""UWS job model of the TAP service (domain objects, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ACTIVE_PHASES", "FINAL_PHASES", "Job", "JobParameters", "JobPhase", "UploadSpec"]


class JobPhase(enum.StrEnum):
    """UWS 1.1 execution phases."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


ACTIVE_PHASES = frozenset({JobPhase.QUEUED, JobPhase.EXECUTING})
FINAL_PHASES = frozenset({JobPhase.COMPLETED, JobPhase.ERROR, JobPhase.ABORTED, JobPhase.ARCHIVED})


@dataclass(frozen=True)
class UploadSpec:
    """One UPLOAD table: its ADQL name (``TAP_UPLOAD.<name>``) and where its VOTable is."""

    name: str
    source: str  # "param:<form field>" for inline uploads, or an http(s) URL


@dataclass(frozen=True)
class JobParameters:
    """The TAP parameters of a query, validated."""

    query: str
    lang: str = "ADQL"
    response_format: str | None = None
    maxrec: int | None = None
    run_id: str | None = None
    uploads: tuple[UploadSpec, ...] = ()

    def as_uws(self) -> list[tuple[str, str]]:
        """(id, value) pairs for the job document's parameter list."""
        pairs = [("query", self.query), ("lang", self.lang)]
        if self.response_format:
            pairs.append(("responseformat", self.response_format))
        if self.maxrec is not None:
            pairs.append(("maxrec", str(self.maxrec)))
        if self.uploads:
            pairs.append(("upload", ";".join(f"{u.name},{u.source}" for u in self.uploads)))
        return pairs


@dataclass
class Job:
    """An async TAP job as stored."""

    job_id: str
    owner: str
    phase: JobPhase
    parameters: JobParameters
    creation_time: datetime
    execution_duration: int
    destruction: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    quote: datetime | None = None
    error_message: str | None = None
    result_rows: int | None = None
    result_format: str | None = None
    overflow: bool = False
    upload_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        """The client's RUNID, if any."""
        return self.parameters.run_id
