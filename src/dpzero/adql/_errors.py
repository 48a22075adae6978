"""Errors of the ADQL part: every one is a user's mistake with a stable code."""

from __future__ import annotations

from dpzero.errors import DpzeroUserError

__all__ = ["AdqlError", "AdqlNameError", "AdqlSyntaxError", "AdqlUnsupportedError"]


class AdqlError(DpzeroUserError):
    """Base class of errors in an ADQL query."""

    code = "adql_error"


class AdqlSyntaxError(AdqlError):
    """The query is not valid ADQL 2.1.

    Parameters
    ----------
    detail
        What is wrong, without the position.
    line
        Line of the offending token, from 1.
    column
        Column of the offending token, from 1.
    """

    code = "adql_syntax"

    def __init__(self, detail: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {detail}")
        self.detail = detail
        self.line = line
        self.column = column


class AdqlNameError(AdqlError):
    """A table, column or alias in the query does not exist.

    Parameters
    ----------
    message
        The sentence shown to the user, naming the thing and the closest names.
    name
        The name as the user wrote it.
    suggestions
        The closest existing names, best first (possibly empty).
    """

    code = "adql_name"

    def __init__(
        self,
        message: str,
        name: str,
        suggestions: tuple[str, ...] = (),
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message)
        self.detail = message
        self.name = name
        self.suggestions = suggestions
        self.line = line
        self.column = column

    def located(self, line: int, column: int) -> AdqlNameError:
        """The same error, placed at a line and column of the query."""
        return AdqlNameError(self.detail, self.name, self.suggestions, line, column)


class AdqlUnsupportedError(AdqlError):
    """Valid ADQL that dpzero's engine cannot run (e.g. geometry-valued columns)."""

    code = "adql_unsupported"
