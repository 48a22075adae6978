"""What a login provider does: send the browser away, then turn the code into a user."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["Identity", "Provider"]


@dataclass(frozen=True)
class Identity:
    """Who logged in."""

    username: str
    name: str | None = None
    email: str | None = None


class Provider(ABC):
    """A login provider (authorization code flow)."""

    @abstractmethod
    async def authorization_url(self, redirect_uri: str, state: str, nonce: str) -> str:
        """Where to send the browser to log in."""

    @abstractmethod
    async def identify(self, code: str, redirect_uri: str, nonce: str) -> Identity:
        """The user an authorization code stands for.

        Raises
        ------
        AuthenticationError
            If the provider refuses the code or its answer cannot be trusted.
        """
