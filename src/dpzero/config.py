"""Settings of the platform: one object, built by the CLI or by tests, passed down.

Values come from keyword arguments, then ``DPZERO_*`` environment variables (nested
sections with ``__``, e.g. ``DPZERO_TAP__MAX_SYNC_ROWS``), then the defaults here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AuthSettings",
    "GitHubSettings",
    "OidcSettings",
    "PortalSettings",
    "Settings",
    "TapSettings",
]


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
    destruction_check_seconds: float = Field(
        30.0, gt=0, description="How often expired jobs are looked for and removed."
    )
    max_running_jobs: int = Field(2, ge=1, description="Async jobs running at once, overall.")
    max_running_jobs_per_user: int = Field(2, ge=1, description="… and per user.")
    upload_limit_bytes: int = Field(32 * 1024 * 1024, ge=1, description="Size limit of UPLOADs.")
    upload_limit_rows: int = Field(1_000_000, ge=1, description="Row limit of an UPLOAD table.")


class GitHubSettings(BaseModel):
    """Login through GitHub (an OAuth app registered with GitHub)."""

    client_id: str
    client_secret: SecretStr
    web_url: str = Field("https://github.com", description="GitHub's web site (OAuth pages).")
    api_url: str = Field("https://api.github.com", description="GitHub's REST API.")


class OidcSettings(BaseModel):
    """Login through any OpenID Connect provider (found by issuer discovery)."""

    issuer: str = Field(description="Issuer URL; its /.well-known/openid-configuration is read.")
    client_id: str
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = Field("preferred_username", description="ID token claim naming users.")


class AuthSettings(BaseModel):
    """Authentication, tokens and quotas. Without a provider: single-user open mode."""

    github: GitHubSettings | None = None
    oidc: OidcSettings | None = None
    database: str | None = Field(
        default=None, description="SQLAlchemy URL of users and tokens; default SQLite in state_dir."
    )
    session_secret: SecretStr | None = Field(
        default=None, description="Key signing session cookies; default a key kept in state_dir."
    )
    session_hours: float = Field(24.0, gt=0, description="Lifetime of a login session.")
    cookie_secure: bool | None = Field(
        default=None, description="Secure cookies; default: when the public URL is https."
    )
    admins: list[str] = Field(default_factory=list, description="Users who may manage tokens.")
    rate_limits: dict[str, int] = Field(
        default_factory=lambda: {"tap": 600, "image": 600, "auth": 120, "api": 600},
        description="Requests per minute per user for each service (tap, image, auth, api).",
    )
    user_rate_limits: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per-user overrides of rate_limits."
    )

    @property
    def enabled(self) -> bool:
        """Whether a login provider is configured (otherwise: open single-user mode)."""
        return self.github is not None or self.oidc is not None


class PortalSettings(BaseModel):
    """The catalog portal at /portal."""

    page_rows: int = Field(100, ge=10, le=10_000, description="Rows per page of results.")
    max_rows: int = Field(200_000, ge=1, description="Largest result the portal fetches.")
    density_threshold: int = Field(
        25_000, ge=1, description="Scatter plots above this many points become density maps."
    )


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
    auth: AuthSettings = Field(default_factory=AuthSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)

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
    def auth_database_url(self) -> str:
        """Users and tokens database URL (SQLite in the state folder unless configured)."""
        return self.auth.database or f"sqlite:///{(self.state_dir / 'auth.sqlite3').absolute()}"

    @property
    def results_dir(self) -> Path:
        """Folder of async job results."""
        return self.state_dir / "results"
