"""User tokens and known users, stored hashed in a SQL database (SQLite or PostgreSQL).

A token reads ``dpz-<key>.<secret>``: the key names the row, only a SHA-256 hash of the
secret is stored, so a leaked database gives no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from dpzero.auth.errors import AuthenticationError, TokenNotFoundError
from dpzero.auth.scopes import ALL_SCOPES
from dpzero.errors import InvalidInputError

__all__ = ["TOKEN_PREFIX", "TokenInfo", "TokenStore", "UserInfo"]

TOKEN_PREFIX = "dpz-"
_metadata = sa.MetaData()
_users = sa.Table(
    "auth_users",
    _metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("email", sa.String(255)),
    sa.Column("first_login", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_login", sa.DateTime(timezone=True), nullable=False),
)
_tokens = sa.Table(
    "auth_tokens",
    _metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("scopes", sa.String(1024), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True)),
    sa.Column("revoked", sa.DateTime(timezone=True)),
    sa.Column("revoked_by", sa.String(255)),
)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    key: str
    username: str
    name: str
    scopes: tuple[str, ...]
    created: datetime
    expires: datetime | None
    revoked: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime) -> dict[str, object]:
        """JSON form for the token API."""
        return {
            "key": self.key,
            "username": self.username,
            "name": self.name,
            "scopes": list(self.scopes),
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat() if self.expires else None,
            "revoked": self.revoked.isoformat() if self.revoked else None,
            "state": self.state(now),
        }


@dataclass(frozen=True)
class UserInfo:
    """A user seen at login."""

    username: str
    name: str | None
    email: str | None
    first_login: datetime
    last_login: datetime


def _token(row: sa.Row) -> TokenInfo:
    return TokenInfo(
        key=row.key,
        username=row.username,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        created=_aware(row.created),  # type: ignore[arg-type]
        expires=_aware(row.expires),
        revoked=_aware(row.revoked),
    )


class TokenStore:
    """Users and tokens in one database.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``; plain
        ``postgresql://`` is taken to mean psycopg 3).
    cache_seconds
        How long a verified token is trusted without asking the database again.
        Revocation through this store takes effect at once; through another process
        sharing the database, within this time. Expiry is always checked.
    """

    def __init__(self, url: str, cache_seconds: float = 10.0) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self._engine = sa.create_engine(url, pool_pre_ping=True)
        _metadata.create_all(self._engine)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[TokenInfo, float]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # users

    def record_login(
        self, username: str, name: str | None, email: str | None, now: datetime
    ) -> None:
        """Remember a user's login (first and last time, name and email)."""
        with self._engine.begin() as con:
            updated = con.execute(
                _users.update()
                .where(_users.c.username == username)
                .values(name=name, email=email, last_login=now)
            ).rowcount
            if not updated:
                con.execute(
                    _users.insert().values(
                        username=username, name=name, email=email, first_login=now, last_login=now
                    )
                )

    def users(self) -> list[UserInfo]:
        """Every user who has logged in, by name."""
        with self._engine.connect() as con:
            rows = con.execute(_users.select().order_by(_users.c.username)).all()
        return [
            UserInfo(r.username, r.name, r.email, _aware(r.first_login), _aware(r.last_login))  # type: ignore[arg-type]
            for r in rows
        ]

    # tokens

    def create(
        self,
        username: str,
        name: str,
        scopes: tuple[str, ...],
        expires: datetime | None,
        now: datetime,
    ) -> tuple[str, TokenInfo]:
        """Make a token.

        Returns
        -------
        tuple of str and TokenInfo
            The token (shown once, never stored) and what is stored about it.

        Raises
        ------
        InvalidInputError
            If the name is empty, a scope is unknown or the expiry is past.
        """
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInputError("a token needs a name (1–200 characters)")
        unknown = sorted(set(scopes) - set(ALL_SCOPES))
        if unknown:
            raise InvalidInputError(
                f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}"
            )
        if not scopes:
            raise InvalidInputError("a token needs at least one scope")
        if expires is not None and expires <= now:
            raise InvalidInputError("the expiry of a token must lie in the future")
        key = secrets.token_hex(8)
        secret = secrets.token_urlsafe(24)
        ordered = tuple(s for s in ALL_SCOPES if s in scopes)
        with self._engine.begin() as con:
            con.execute(
                _tokens.insert().values(
                    key=key,
                    secret_hash=_hash(secret),
                    username=username,
                    name=name,
                    scopes=" ".join(ordered),
                    created=now,
                    expires=expires,
                )
            )
        info = TokenInfo(key, username, name, ordered, now, expires, None)
        return f"{TOKEN_PREFIX}{key}.{secret}", info

    def verify(self, token: str, now: datetime) -> TokenInfo:
        """The active token a presented string stands for.

        Raises
        ------
        AuthenticationError
            If the string is not a token, or the token is unknown, expired or revoked.
        """
        body = token.removeprefix(TOKEN_PREFIX)
        key, _, secret = body.partition(".")
        if body == token or not key or not secret:
            raise AuthenticationError("malformed token")
        digest = _hash(token)
        clock = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and clock - cached[1] < self._cache_seconds:
            info = cached[0]
        else:
            with self._engine.connect() as con:
                row = con.execute(_tokens.select().where(_tokens.c.key == key)).first()
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
                raise AuthenticationError("invalid token")
            info = _token(row)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (info, clock)
        state = info.state(now)
        if state != "active":
            raise AuthenticationError(f"token {state}")
        return info

    def list(self, username: str | None = None) -> list[TokenInfo]:
        """Tokens of one user (or of everyone), newest first."""
        query = _tokens.select().order_by(_tokens.c.created.desc(), _tokens.c.key)
        if username is not None:
            query = query.where(_tokens.c.username == username)
        with self._engine.connect() as con:
            return [_token(r) for r in con.execute(query).all()]

    def revoke(self, key: str, by: str, now: datetime, owner: str | None = None) -> TokenInfo:
        """Revoke a token (idempotent).

        Parameters
        ----------
        key
            The token's key.
        by
            Who revokes it.
        now
            Time of revocation.
        owner
            If given, only a token of this user may be revoked.

        Raises
        ------
        TokenNotFoundError
            If there is no such token (of that owner).
        """
        where = _tokens.c.key == key
        if owner is not None:
            where = sa.and_(where, _tokens.c.username == owner)
        with self._engine.begin() as con:
            row = con.execute(_tokens.select().where(where)).first()
            if row is None:
                raise TokenNotFoundError(f"no token {key}")
            if row.revoked is None:
                con.execute(_tokens.update().where(where).values(revoked=now, revoked_by=by))
            row = con.execute(_tokens.select().where(where)).first()
        with self._lock:
            self._cache = {d: v for d, v in self._cache.items() if v[0].key != key}
        return _token(row)  # type: ignore[arg-type]
