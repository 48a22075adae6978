"""Read-only access to a repository for users.

Users open the release with a read-only Butler, and the backends enforce it too:
the PostgreSQL registry through a LOGIN role that can only SELECT the repository's
schema (`grant_read`), the S3 datastore through reader credentials that SeaweedFS
allows only Read and List (`seaweed_s3_config`). A user's ``butler.put`` then fails
at the server even if their Butler was opened writeable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lsst.daf.butler import ButlerConfig
from lsst.resources import ResourcePath

from dpzero.errors import InvalidInputError

__all__ = ["ReadGrant", "S3Identity", "grant_read", "reader_butler_config", "seaweed_s3_config"]

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ReadGrant:
    """What `grant_read` set up: the role, and where users point their Butler."""

    role: str
    schema: str
    registry_url: str
    created: bool

    def butler_config(self) -> str:
        """The ``registry`` part of a user's ``butler.yaml`` (YAML text)."""
        return f"registry:\n  db: {self.registry_url}\n  namespace: {self.schema}\n"


def _registry_of(root: str) -> tuple[str, str]:
    """The registry URL and schema in the repository's ``butler.yaml``.

    Raises
    ------
    InvalidInputError
        If there is no repository, or its registry is not PostgreSQL.
    """
    if not ResourcePath(root, forceDirectory=True).join("butler.yaml").exists():
        raise InvalidInputError(f"no Butler repository at {root} (no butler.yaml)")
    config = ButlerConfig(root)
    url = str(config.get(("registry", "db"), ""))
    if url.startswith("sqlite"):
        raise InvalidInputError(
            f"the repository at {root} has an SQLite registry ({url}); a read-only role "
            "needs a PostgreSQL registry (SQLite users get read-only files instead)"
        )
    if not url.startswith("postgresql"):
        raise InvalidInputError(
            f"the repository at {root} has registry {url!r}, not a postgresql:// URL"
        )
    return url, str(config.get(("registry", "namespace")) or "public")


def grant_read(root: str, role: str, *, password: str | None = None) -> ReadGrant:
    """Create (or update) a LOGIN role that can only read the repository's registry.

    The role gets CONNECT on the database, USAGE on the registry schema, SELECT on its
    tables, and SELECT on tables created there later (default privileges of the
    role that runs this, the repository's owner). Running it again changes nothing
    but the password, when one is given.

    Raises
    ------
    InvalidInputError
        If the role name is not a plain lower-case identifier, the registry is not
        PostgreSQL, or the server refuses.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    if not _ROLE_NAME.match(role):
        raise InvalidInputError(
            f"role name {role!r} must be lower-case letters, digits and _ (at most 63)"
        )
    url, schema = _registry_of(root)
    parsed = make_url(url)
    if parsed.username == role:
        raise InvalidInputError(f"role {role!r} owns the registry; choose another name")
    libpq_url = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    ident = sql.Identifier(role)
    try:
        with psycopg.connect(libpq_url, connect_timeout=10) as conn:
            # A transaction: either every grant lands or none does.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('dpzero-grant-read'))")
            found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            created = found.fetchone() is None
            if created:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(ident)
            )
            if password is not None:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password))
                )
            database = sql.Identifier(parsed.database or "postgres")
            target = sql.Identifier(schema)
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
            ):
                conn.execute(sql.SQL(statement).format(db=database, schema=target, role=ident))
    except psycopg.Error as exc:
        raise InvalidInputError(
            f"cannot grant read access on {url} schema {schema}: {str(exc).strip()}"
        ) from exc
    reader_url = parsed.set(username=role, password=None).render_as_string(hide_password=True)
    return ReadGrant(role, schema, reader_url, created)


def reader_butler_config(root: str, grant: ReadGrant) -> ButlerConfig:
    """The repository's configuration with the registry reached as the reader role.

    ``Butler.from_config(config=reader_butler_config(...))`` is what a site gives users.
    """
    config = ButlerConfig(root)
    config["registry", "db"] = grant.registry_url
    config["registry", "namespace"] = grant.schema
    return config


@dataclass(frozen=True)
class S3Identity:
    """An S3 access key pair and the name SeaweedFS logs it under."""

    name: str
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        """The variables a user's Butler (boto3 under lsst-resources) reads."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


def seaweed_s3_config(admin: S3Identity, reader: S3Identity) -> dict[str, Any]:
    """A SeaweedFS ``-s3.config`` document: an admin, and a reader allowed Read and List.

    Write it as JSON and start ``weed server -s3 -s3.config=FILE``; the converter runs
    with the admin keys, users get the reader's (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``), with which every write is refused (403 AccessDenied).
    """
    if admin.access_key == reader.access_key:
        raise InvalidInputError("the admin and reader identities need different access keys")

    def identity(who: S3Identity, actions: list[str]) -> dict[str, Any]:
        keys = [{"accessKey": who.access_key, "secretKey": who.secret_key}]
        return {"name": who.name, "credentials": keys, "actions": actions}

    return {
        "identities": [
            identity(admin, ["Admin", "Read", "List", "Tagging", "Write"]),
            identity(reader, ["Read", "List"]),
        ]
    }
