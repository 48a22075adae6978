"""Settings of the platform: one object, built by the CLI or by tests, passed down.

Values come from keyword arguments, then ``DPZERO_*`` environment variables (nested
sections with ``__``, e.g. ``DPZERO_TAP__MAX_SYNC_ROWS``), then the defaults here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "TapSettings"]


class TapSettings(BaseModel):
    """The TAP service."""

    jobs_database: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the async job database; default SQLite in state_dir.",
    )
    default_maxrec: int = Field(100_000, ge=0, description="MAXREC when a client sends none.")
    max_maxrec: int = Field(50_000_000, ge=1, description="Largest MAXREC accepted.")
    execution_duration: int = Field(3600, ge=1, description="Default async run time limit, s.")
    max_execution_duration: int = Field(6 * 3600, ge=1, description="Largest one, s.")
    sync_timeout: int = Field(600, ge=1, description="Run time limit of a sync query, s.")
    destruction_days: float = Field(7.0, gt=0, description="Async jobs are kept this long.")
    max_running_jobs: int = Field(2, ge=1, description="Async jobs running at once, overall.")
    max_running_jobs_per_user: int = Field(2, ge=1, description="… and per user.")
    upload_limit_bytes: int = Field(32 * 1024 * 1024, ge=1, description="Size limit of UPLOADs.")
    upload_limit_rows: int = Field(1_000_000, ge=1, description="Row limit of an UPLOAD table.")


class Settings(BaseSettings):
    """Everything the platform needs to know to run."""

    model_config = SettingsConfigDict(env_prefix="DPZERO_", env_nested_delimiter="__")

    store: Path | None = Field(default=None, description="Catalog store folder.")
    repo: str | None = Field(default=None, description="Butler repository (path or URI).")
    state_dir: Path = Field(
        default=Path("dpzero-state"), description="Job database and result files."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    base_url: str | None = Field(
        default=None, description="Public URL of the platform; http://host:port by default."
    )
    tap: TapSettings = Field(default_factory=TapSettings)

    @property
    def public_url(self) -> str:
        """Base URL clients reach the platform at (no trailing slash)."""
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def jobs_database_url(self) -> str:
        """Async job database URL (SQLite in the state folder unless configured)."""
        return self.tap.jobs_database or f"sqlite:///{(self.state_dir / 'jobs.sqlite3').absolute()}"

    @property
    def results_dir(self) -> Path:
        """Folder of async job results."""
        return self.state_dir / "results"
