"""Read-only access for users: a PostgreSQL role that can only read, S3 reader keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from lsst.daf.butler import Butler
from lsst.resources.s3utils import _get_s3_client

from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.repo.access import S3Identity, grant_read, reader_butler_config, seaweed_s3_config
from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.repository import RepoSpec

from .conftest import PG_URL, LegacyFacts, backend_spec, memory_folder
from .seaweed import ACCESS_KEY, SECRET_KEY, S3Server, seaweed_s3

ADMIN = S3Identity("admin", ACCESS_KEY, SECRET_KEY)
READER = S3Identity("reader", "dpzero-reader", "dpzero-reader-secret")


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


def test_reader_role_reads_tables_made_later(pg_repo: RepoSpec, reader_role: str) -> None:
    grant_read(pg_repo.root, reader_role)
    table = f'"{pg_repo.namespace}".later_table'
    with psycopg.connect(pg_repo.registry or "", autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x integer)")
        conn.execute(f"INSERT INTO {table} VALUES (7)")
    reader_url = f"postgresql://{reader_role}@127.0.0.1:5432/{pg_database_name(pg_repo)}"
    with psycopg.connect(reader_url) as conn:
        assert conn.execute(f"SELECT x FROM {table}").fetchall() == [(7,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table}")


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


def test_s3_config_shape() -> None:
    config = seaweed_s3_config(ADMIN, READER)
    by_name = {identity["name"]: identity for identity in config["identities"]}
    assert by_name["reader"]["actions"] == ["Read", "List"]
    assert "Write" in by_name["admin"]["actions"]
    assert by_name["reader"]["credentials"] == [
        {"accessKey": READER.access_key, "secretKey": READER.secret_key}
    ]
    with pytest.raises(InvalidInputError, match="different access keys"):
        seaweed_s3_config(ADMIN, S3Identity("reader", ACCESS_KEY, "other"))


@pytest.fixture(scope="module")
def s3_with_reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server that knows an admin and a reader identity."""
    folder = tmp_path_factory.mktemp("weed-access")
    config = folder / "s3.json"
    config.write_text(json.dumps(seaweed_s3_config(ADMIN, READER)))
    with seaweed_s3(folder / "data", s3_config=config) as server:
        yield server


@pytest.fixture(scope="module")
def s3_repo(s3_with_reader: S3Server, legacy: LegacyFacts) -> Iterator[RepoSpec]:
    """The tiny release converted, by the admin, into an S3 datastore (SQLite registry)."""
    with memory_folder("access-s3") as folder, pytest.MonkeyPatch.context() as mp:
        for key, value in s3_with_reader.environment().items():
            mp.setenv(key, value)
        spec = RepoSpec(str(folder / "repo"), datastore=f"s3://{s3_with_reader.bucket}/release/")
        convert_legacy(legacy.root, spec)
        yield spec


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """An exception and the ones it was raised from."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def bucket_keys(server: S3Server) -> set[str]:
    listing = server.client().list_objects_v2(Bucket=server.bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


@pytest.fixture
def fresh_s3_clients() -> Iterator[None]:
    """Forget cached S3 clients afterwards, so no later test runs with the reader's keys."""
    yield
    _get_s3_client.cache_clear()


@pytest.mark.usefixtures("fresh_s3_clients")
def test_s3_reader_gets_but_cannot_put(
    s3_with_reader: S3Server, s3_repo: RepoSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**s3_with_reader.environment(), **READER.environment()}.items():
        monkeypatch.setenv(key, value)
    # lsst-resources keeps one client per endpoint, with the keys it was made with (the
    # admin's, from the conversion); a user's process starts with the reader's.
    _get_s3_client.cache_clear()
    before = bucket_keys(s3_with_reader)
    # Writeable Butler on purpose (its SQLite registry is a local file): S3 must refuse.
    with Butler.from_config(s3_repo.root, collections=RELEASE_COLLECTION, writeable=True) as butler:
        exposure = butler.get("calexp", visit=512055, detector=95)
        assert float(exposure.image[0, 0]) == 95.0
        butler.registry.registerRun("mine")
        with pytest.raises(Exception, match="Failed to serialize dataset calexp") as failure:
            butler.put(exposure, "calexp", visit=512055, detector=95, run="mine")
        assert "AccessDenied" in " ".join(str(cause) for cause in causes(failure.value))
        # The failed put left no dataset behind in the registry.
        assert butler.query_datasets("calexp", collections="mine", explain=False) == []
    reader = boto3.client(
        "s3",
        endpoint_url=s3_with_reader.endpoint,
        aws_access_key_id=READER.access_key,
        aws_secret_access_key=READER.secret_key,
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.put_object(Bucket=s3_with_reader.bucket, Key="release/mine.txt", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        reader.delete_object(Bucket=s3_with_reader.bucket, Key=sorted(before)[0])
    assert bucket_keys(s3_with_reader) == before
