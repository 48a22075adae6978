"""Read-only access for users: a PostgreSQL role that can only read, S3 reader keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.repo.access import grant_read, reader_butler_config
from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.repository import RepoSpec

from .conftest import PG_URL, LegacyFacts, backend_spec, memory_folder


@pytest.fixture(scope="module")
def pg_repo(request: pytest.FixtureRequest, legacy: LegacyFacts) -> Iterator[RepoSpec]:
    """The tiny release converted into a PostgreSQL registry with local files."""
    with (
        memory_folder("access") as folder,
        backend_spec("postgresql", folder / "repo", request) as spec,
    ):
        convert_legacy(legacy.root, spec)
        yield spec


@pytest.fixture(scope="module")
def reader_role(pg_repo: RepoSpec) -> Iterator[str]:
    role = f"reader_{uuid.uuid4().hex[:10]}"
    yield role
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if exists:
        with psycopg.connect(pg_repo.registry or "", autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')  # the grants, so the role can go
            conn.execute(f'DROP ROLE "{role}"')


def dataset_count(spec: RepoSpec) -> int:
    with psycopg.connect(spec.registry or "") as conn:
        row = conn.execute(f'SELECT count(*) FROM "{spec.namespace}".dataset').fetchone()
    assert row is not None
    return int(row[0])


def pg_database_name(spec: RepoSpec) -> str:
    return (spec.registry or "").rsplit("/", 1)[-1]


def test_reader_role_reads_but_cannot_write(pg_repo: RepoSpec, reader_role: str) -> None:
    grant = grant_read(pg_repo.root, reader_role)
    assert grant.created
    assert grant.registry_url.startswith(f"postgresql://{reader_role}@127.0.0.1:5432/")
    again = grant_read(pg_repo.root, reader_role)  # idempotent
    assert not again.created
    before = dataset_count(pg_repo)

    config = reader_butler_config(pg_repo.root, grant)
    with Butler.from_config(config, collections=RELEASE_COLLECTION) as butler:
        refs = butler.query_datasets("calexp")
        assert sorted(ref.dataId["detector"] for ref in refs) == [94, 95]
        exposure = butler.get("calexp", visit=512055, detector=94)
        assert float(exposure.image[0, 0]) == 94.0
    # A user who asks for a writeable Butler is refused by the server, not the client.
    with pytest.raises(Exception, match=r"(?i)permission denied"):
        Butler.from_config(config, writeable=True)
    # And so is SQL written by hand as the reader role.
    reader_url = f"postgresql://{reader_role}@127.0.0.1:5432/{pg_database_name(pg_repo)}"
    with (
        psycopg.connect(reader_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            f'INSERT INTO "{pg_repo.namespace}".collection (name, type) VALUES (%s, 1)',
            ("mine",),
        )
    assert dataset_count(pg_repo) == before
    with psycopg.connect(pg_repo.registry or "") as conn:
        runs = conn.execute(
            f'SELECT name FROM "{pg_repo.namespace}".collection WHERE name = %s', ("mine",)
        ).fetchall()
    assert runs == []


def test_cli_grant_read(pg_repo: RepoSpec, reader_role: str) -> None:
    result = CliRunner().invoke(main, ["repo", "grant-read", pg_repo.root, "--role", reader_role])
    assert result.exit_code == 0, result.output
    assert f"postgresql://{reader_role}@127.0.0.1:5432/" in result.output
    assert f"namespace: {pg_repo.namespace}" in result.output


def test_sqlite_registry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "butler.yaml").write_text("registry:\n  db: sqlite:///<butlerRoot>/gen3.sqlite3\n")
    with pytest.raises(InvalidInputError, match="SQLite registry"):
        grant_read(str(tmp_path), "reader")
    result = CliRunner().invoke(main, ["repo", "grant-read", str(tmp_path), "--role", "reader"])
    assert result.exit_code == 2
    assert "SQLite registry" in result.output
    assert "Traceback" not in result.output


def test_bad_role_and_missing_repo(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no Butler repository"):
        grant_read(str(tmp_path), "reader")
    (tmp_path / "butler.yaml").write_text("registry:\n  db: mysql://x@h/db\n")
    with pytest.raises(InvalidInputError, match="not a postgresql"):
        grant_read(str(tmp_path), "reader")
    with pytest.raises(InvalidInputError, match="role name"):
        grant_read(str(tmp_path), 'x"; DROP TABLE dataset; --')
