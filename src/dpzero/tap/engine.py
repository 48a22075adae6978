"""The TAP service's view of the catalog store: published tables, TAP_SCHEMA, and
ADQL queries with uploads and MAXREC, answered with described result columns."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from dpzero.catalog import CatalogStore, TableMetadata, describe_columns_of, open_store
from dpzero.errors import InvalidInputError
from dpzero.schema import KNOWN_SCHEMAS, load_schema
from dpzero.tap.formats import ResultColumn, columns_for_schema
from dpzero.tap.tap_schema import TapSchema, build_tap_schema
from dpzero.tap.uploads import UPLOAD_SCHEMA

# Result schemas whose column descriptions are kept (queries of a few shapes repeat).
_DESCRIBED_SCHEMAS = 256

__all__ = ["QueryOutcome", "TapEngine"]


class QueryOutcome:
    """Rows of a query (at most MAXREC) as a stream, their descriptions, and whether
    more existed.

    The query runs up to its first record batch when the outcome is made, so errors
    found that early are raised there (before any response is sent); the rest is read
    as `batches` is consumed. `overflow`, `rows` and `error` are final once it is.

    Parameters
    ----------
    reader
        The query's rows, limited to at most ``maxrec + 1``.
    columns
        Descriptions of the reader's columns.
    maxrec
        Most rows to hand out; one more row seen makes the outcome an overflow.
    """

    def __init__(
        self, reader: pa.RecordBatchReader, columns: list[ResultColumn], maxrec: int
    ) -> None:
        self.schema = reader.schema
        self.columns = columns
        self.maxrec = maxrec
        self.rows = 0
        self.overflow = False
        self.error: BaseException | None = None
        self._reader = reader
        self._first = self._next()

    def _next(self) -> pa.RecordBatch | None:
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return None
            if batch.num_rows:
                return batch

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, batch by batch (once); stops reading after MAXREC + 1 rows."""
        batch, self._first = self._first, None
        try:
            while batch is not None:
                room = self.maxrec - self.rows
                if batch.num_rows > room:
                    self.overflow = True
                    batch = batch.slice(0, room)
                if batch.num_rows:
                    self.rows += batch.num_rows
                    yield batch
                if self.overflow:
                    break
                batch = self._next()
        except Exception as exc:
            self.error = exc
            raise
        finally:
            self._reader.close()

    def read_all(self) -> pa.Table:
        """The rows as one table (for callers that want it whole)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


class TapEngine:
    """Answers the TAP service's questions from a `CatalogStore`.

    Parameters
    ----------
    store
        The catalog store holding the published databases.
    attached
        Parquet files of more tables to publish (`dpzero.tap.attached`), such as
        ``ivoa.ObsCore``; read into memory once.
    """

    def __init__(self, store: CatalogStore, attached: Sequence[Path] = ()) -> None:
        from dpzero.tap.attached import read_attached_table

        self.store = store
        self.attached_paths = tuple(attached)
        self._attached = [read_attached_table(path) for path in self.attached_paths]
        self._lock = threading.Lock()
        self._cache_key: tuple[tuple[str, str, int], ...] | None = None
        self._tables: list[TableMetadata] = []
        self._tap_schema: TapSchema | None = None
        self._described: dict[bytes, list[ResultColumn]] = {}

    @classmethod
    def open(cls, path: Path, attached: Sequence[Path] = ()) -> TapEngine:
        """An engine over the store folder at ``path`` and the ``attached`` tables."""
        return cls(open_store(path), attached)

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
            tables += [meta for meta, _ in self._attached]
            self._tap_schema = build_tap_schema(tables, self.schema_descriptions(tables))
            self._tables = tables
            self._described.clear()
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
        extra.update({f"{m.database}.{m.table}": table for m, table in self._attached})
        extra.update({f"{UPLOAD_SCHEMA}.{name}": table for name, table in uploads.items()})
        reader = self.store.stream_adql(adql, tables=extra, limit=maxrec + 1)
        return QueryOutcome(reader, self._describe(reader.schema), maxrec)

    def _describe(self, schema: pa.Schema) -> list[ResultColumn]:
        """Units, UCDs, utypes and descriptions of result columns named like catalog columns
        (kept per result schema until the published tables change: the same for every
        query of a shape, and ~1 ms for 137 columns)."""
        # By the schema's bytes: names, types and every field's metadata (a column no
        # catalog column describes is described by its own); a pyarrow.Schema compares
        # equal without its metadata.
        key = schema.serialize().to_pybytes()
        with self._lock:
            tables, known = self._tables, self._described.get(key)
        if known is None:
            known = columns_for_schema(schema, describe_columns_of(tables, schema))
            with self._lock:
                if tables is self._tables:
                    if len(self._described) >= _DESCRIBED_SCHEMAS:
                        self._described.clear()
                    self._described[key] = known
        return list(known)
