"""The TAP service's view of the catalog store: published tables, TAP_SCHEMA, and
ADQL queries with uploads and MAXREC, answered with described result columns."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dpzero.catalog import CatalogStore, TableMetadata, open_store
from dpzero.errors import InvalidInputError
from dpzero.schema import KNOWN_SCHEMAS, load_schema
from dpzero.tap.formats import ResultColumn, columns_for_schema
from dpzero.tap.tap_schema import TapSchema, build_tap_schema
from dpzero.tap.uploads import UPLOAD_SCHEMA

__all__ = ["QueryOutcome", "TapEngine"]


@dataclass(frozen=True)
class QueryOutcome:
    """Rows of a query (at most MAXREC), their descriptions, and whether more existed."""

    table: pa.Table
    columns: list[ResultColumn]
    overflow: bool


class TapEngine:
    """Answers the TAP service's questions from a `CatalogStore`.

    Parameters
    ----------
    store
        The catalog store holding the published databases.
    """

    def __init__(self, store: CatalogStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache_key: tuple[tuple[str, str, int], ...] | None = None
        self._tables: list[TableMetadata] = []
        self._tap_schema: TapSchema | None = None

    @classmethod
    def open(cls, path: Path) -> TapEngine:
        """An engine over the store folder at ``path``."""
        return cls(open_store(path))

    def _refresh(self) -> None:
        key = tuple(
            (db, t, self.store.table_metadata(db, t).rows)
            for db in self.store.databases()
            for t in self.store.tables(db)
        )
        with self._lock:
            if key == self._cache_key:
                return
            tables = [self.store.table_metadata(db, t) for db, t, _ in key]
            self._tap_schema = build_tap_schema(tables, self.schema_descriptions(tables))
            self._tables = tables
            self._cache_key = key

    @staticmethod
    def schema_descriptions(tables: list[TableMetadata]) -> dict[str, str]:
        """Description of each published database, from its Felis schema."""
        out = {}
        for meta in tables:
            if meta.database not in out and meta.schema in KNOWN_SCHEMAS:
                out[meta.database] = load_schema(meta.schema).description
        return out

    def published_tables(self) -> list[TableMetadata]:
        """Every catalog table the service publishes."""
        self._refresh()
        return list(self._tables)

    def tap_schema(self) -> TapSchema:
        """TAP_SCHEMA of the published tables."""
        self._refresh()
        assert self._tap_schema is not None
        return self._tap_schema

    def execute(self, adql: str, uploads: Mapping[str, pa.Table], maxrec: int) -> QueryOutcome:
        """Answer an ADQL query.

        Parameters
        ----------
        adql
            The query.
        uploads
            Uploaded tables by name, queryable as ``TAP_UPLOAD.<name>``.
        maxrec
            Most rows returned; more make the outcome an overflow.

        Raises
        ------
        InvalidInputError
            (and its ADQL subclasses) for an invalid query.
        """
        if maxrec < 0:
            raise InvalidInputError("MAXREC must not be negative")
        self._refresh()
        extra = dict(self.tap_schema().qualified())
        extra.update({f"{UPLOAD_SCHEMA}.{name}": table for name, table in uploads.items()})
        result = self.store.query_adql(adql, tables=extra, limit=maxrec + 1)
        overflow = result.num_rows > maxrec
        table = result.slice(0, maxrec) if overflow else result
        return QueryOutcome(table, self._describe(table.schema), overflow)

    def _describe(self, schema: pa.Schema) -> list[ResultColumn]:
        """Units, UCDs and descriptions of result columns named like catalog columns."""
        known: dict[str, tuple[str, str, str]] = {}
        for meta in self._tables:
            for col in meta.columns:
                known.setdefault(col.name.lower(), (col.unit, col.ucd, col.description))
        described = {f.name: known[f.name.lower()] for f in schema if f.name.lower() in known}
        return columns_for_schema(schema, described)
