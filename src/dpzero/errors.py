"""Errors a user can cause, with stable codes.

Every part raises subclasses of `DpzeroUserError` for a user's mistake (bad input,
a missing file, an invalid query). The CLI prints them and exits non-zero; the web
applications map them once to an HTTP status. Anything else is a bug.
"""

from __future__ import annotations

__all__ = ["DpzeroUserError", "InvalidInputError", "OutputExistsError"]


class DpzeroUserError(Exception):
    """Base class of errors caused by what a user asked for.

    Parameters
    ----------
    message
        A sentence saying what is wrong and, where possible, how to fix it.
    """

    code: str = "user_error"
    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(DpzeroUserError):
    """An argument or input file is not acceptable."""

    code = "invalid_input"


class OutputExistsError(DpzeroUserError):
    """An output location exists and is not empty; nothing was overwritten."""

    code = "output_exists"
    status_code = 409
