"""The token store on SQLite and PostgreSQL: hashed secrets, expiry, revocation, users."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dpzero.auth import AuthenticationError, TokenNotFoundError, TokenStore
from dpzero.errors import InvalidInputError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _postgres_url() -> str:
    import psycopg

    name = f"dpzero_auth_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auth.sqlite3'}"
        return
    url = _postgres_url()
    yield url
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(db_url: str) -> Iterator[TokenStore]:
    s = TokenStore(db_url)
    yield s
    s.close()


def test_created_token_verifies_with_its_scopes(store: TokenStore) -> None:
    token, info = store.create("alice", "laptop", ("read:image", "read:tap"), None, NOW)
    assert token.startswith("dpz-") and info.key in token
    assert info.scopes == ("read:tap", "read:image")  # canonical order
    got = store.verify(token, NOW + timedelta(days=400))
    assert (got.username, got.name, got.scopes, got.expires) == (
        "alice", "laptop", ("read:tap", "read:image"), None
    )  # fmt: skip


def test_only_a_hash_of_the_secret_is_stored(store: TokenStore, db_url: str) -> None:
    token, info = store.create("alice", "t", ("read:tap",), None, NOW)
    secret = token.split(".", 1)[1]
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as con:
        rows = [tuple(map(str, r)) for r in con.execute(sa.text("SELECT * FROM auth_tokens"))]
    engine.dispose()
    assert len(rows) == 1 and info.key in rows[0]
    assert not any(secret in value for value in rows[0])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "dpz-0000000000000000." + t.split(".", 1)[1],  # unknown key
        lambda t: t.replace("dpz-", "xyz-"),  # not a token
        lambda t: t.split(".", 1)[0],  # no secret
        lambda t: "",
    ],
)
def test_bad_tokens_are_refused(store: TokenStore, mangle: object) -> None:
    token, _ = store.create("alice", "t", ("read:tap",), None, NOW)
    with pytest.raises(AuthenticationError):
        store.verify(mangle(token), NOW)  # type: ignore[operator]


def test_expiry_and_revocation(store: TokenStore) -> None:
    token, info = store.create("bob", "short", ("read:tap",), NOW + timedelta(hours=1), NOW)
    assert store.verify(token, NOW + timedelta(minutes=59)).key == info.key
    with pytest.raises(AuthenticationError, match="expired"):
        store.verify(token, NOW + timedelta(hours=1))
    token2, info2 = store.create("bob", "other", ("read:tap",), None, NOW)
    with pytest.raises(TokenNotFoundError):
        store.revoke(info2.key, "carol", NOW, owner="carol")  # not carol's
    revoked = store.revoke(info2.key, "bob", NOW, owner="bob")
    assert revoked.state(NOW) == "revoked"
    assert store.revoke(info2.key, "bob", NOW + timedelta(1)).revoked == revoked.revoked
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(token2, NOW)
    assert {t.name for t in store.list("bob")} == {"short", "other"}
    assert store.list("nobody") == []


@pytest.mark.parametrize(
    ("name", "scopes", "expires"),
    [
        ("", ("read:tap",), None),
        ("x", (), None),
        ("x", ("write:everything",), None),
        ("x", ("read:tap",), NOW - timedelta(seconds=1)),
    ],
)
def test_invalid_tokens_are_not_created(
    store: TokenStore, name: str, scopes: tuple[str, ...], expires: datetime | None
) -> None:
    with pytest.raises(InvalidInputError):
        store.create("alice", name, scopes, expires, NOW)
    assert store.list() == []


def test_users_are_recorded_at_login(store: TokenStore) -> None:
    store.record_login("bob", "Bob", None, NOW)
    store.record_login("alice", "Alice", "a@example.org", NOW)
    store.record_login("bob", "Robert", "b@example.org", NOW + timedelta(1))
    users = store.users()
    assert [u.username for u in users] == ["alice", "bob"]
    bob = users[1]
    assert (bob.name, bob.email, bob.first_login, bob.last_login) == (
        "Robert", "b@example.org", NOW, NOW + timedelta(1)
    )  # fmt: skip


def test_revocation_elsewhere_is_seen_within_the_cache_time(db_url: str) -> None:
    here, elsewhere = TokenStore(db_url, cache_seconds=0.5), TokenStore(db_url)
    token, info = here.create("alice", "t", ("read:tap",), None, NOW)
    here.verify(token, NOW)
    elsewhere.revoke(info.key, "root", NOW)
    assert here.verify(token, NOW).key == info.key  # trusted from the cache for a moment
    time.sleep(0.6)
    with pytest.raises(AuthenticationError, match="revoked"):
        here.verify(token, NOW)
    here.close()
    elsewhere.close()
