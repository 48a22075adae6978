"""Requests per minute per user and service: a token bucket each, in memory."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

from dpzero.auth.errors import RateLimitedError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets refilled continuously; a full bucket holds a minute's allowance.

    Parameters
    ----------
    limits
        Requests per minute for each service; a service not named is not limited.
    user_limits
        Per-user overrides, ``{user: {service: per_minute}}``.
    """

    def __init__(
        self, limits: Mapping[str, int], user_limits: Mapping[str, Mapping[str, int]]
    ) -> None:
        self._limits = dict(limits)
        self._user_limits = {u: dict(v) for u, v in user_limits.items()}
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def limit(self, user: str, service: str) -> int | None:
        """Requests per minute allowed to a user on a service (``None``: unlimited)."""
        return self._user_limits.get(user, {}).get(service, self._limits.get(service))

    def check(self, user: str, service: str, now: float) -> None:
        """Count one request.

        Raises
        ------
        RateLimitedError
            If the user has used up the service's allowance; ``retry_after`` says when
            the next request will be accepted.
        """
        per_minute = self.limit(user, service)
        if per_minute is None:
            return
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get((user, service), (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[(user, service)] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
                raise RateLimitedError(
                    f"rate limit of {per_minute} requests per minute to {service} reached "
                    f"for {user}; retry in {wait} s",
                    wait,
                )
            self._buckets[(user, service)] = (tokens - 1.0, now)
