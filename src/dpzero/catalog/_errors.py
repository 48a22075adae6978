"""Errors of the catalog store that a user can cause."""

from __future__ import annotations

from dpzero.errors import DpzeroUserError, InvalidInputError

__all__ = ["CatalogInputError", "StoreBusyError", "UnknownTableError"]


class CatalogInputError(InvalidInputError):
    """An input catalog file does not match its table's schema.

    Parameters
    ----------
    file
        The offending file, relative to the input folder.
    problem
        What is wrong, as a sentence fragment.
    column
        The column at fault, when one is.
    row
        The row at fault, counted from 0 within ``file``, when one is.
    """

    code = "invalid_catalog_input"

    def __init__(
        self, file: str, problem: str, *, column: str | None = None, row: int | None = None
    ) -> None:
        where = [file]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row} (counting from 0)")
        super().__init__(f"{', '.join(where)}: {problem}")
        self.file = file
        self.column = column
        self.row = row


class UnknownTableError(InvalidInputError):
    """A query or request names a database or table the store does not hold."""

    code = "unknown_table"
    status_code = 404


class StoreBusyError(DpzeroUserError):
    """Another ingest holds the store's lock."""

    code = "store_busy"
    status_code = 409
