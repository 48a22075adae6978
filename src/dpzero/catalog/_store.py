"""The catalog store contract: what every backend (local, distributed) answers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from dpzero.catalog._pruning import Region
from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from dpzero.catalog._selection import Selection
    from dpzero.schema import ColumnSpec

__all__ = [
    "CatalogStore",
    "ColumnMetadata",
    "PartitionedPlan",
    "QueryPlan",
    "TableMetadata",
    "TableScan",
]


@dataclass(frozen=True)
class ColumnMetadata:
    """One column as the Felis schema describes it."""

    name: str
    datatype: str
    arrow_type: str
    nullable: bool
    description: str
    unit: str
    ucd: str
    length: int | None
    principal: bool
    column_index: int | None
    utype: str = ""

    @classmethod
    def from_spec(cls, spec: ColumnSpec) -> ColumnMetadata:
        """The metadata a Felis column gives (the Arrow type by its name)."""
        return cls(
            name=spec.name,
            datatype=spec.datatype,
            arrow_type=str(spec.arrow_type),
            nullable=spec.nullable,
            description=spec.description,
            unit=spec.unit,
            ucd=spec.ucd,
            length=spec.length,
            principal=spec.principal,
            column_index=spec.column_index,
            utype=spec.utype,
        )


@dataclass(frozen=True)
class TableMetadata:
    """A table of the store: Felis description, columns, and how it is partitioned.

    ``margin_arcsec`` is the radius of its margin cache (0 when it has none): pair
    queries within that distance can run partition by partition.
    """

    database: str
    table: str
    schema: str
    schema_version: str
    description: str
    rows: int
    ra_column: str
    dec_column: str
    key_column: str | None
    columns: tuple[ColumnMetadata, ...]
    margin_arcsec: float = 0.0

    @property
    def column_names(self) -> list[str]:
        """Column names in schema order."""
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class TableScan:
    """Rows of one table that a query needs, with what is known to prune them.

    Attributes
    ----------
    table
        ``<database>.<table>``.
    region
        The query keeps only rows inside this region (the SQL must say so exactly;
        the store only uses it to skip partitions, row groups and rows outside).
    ids
        The query keeps only rows whose key column holds one of these.
    columns
        Columns the query reads; None for all.
    dilate_arcsec
        Also keep rows up to this far outside ``region`` (the other side of a pair).
    with_margin
        In a `PartitionedPlan`, add the driving partition's margin rows (neighbours
        across its edge, up to the store's margin radius).
    ids_from
        ``(binding, column)``: the query keeps only rows whose key equals a value of
        ``column`` in another scan's rows (an equi-join on objectId); that scan is read
        first and its values looked up in the objectId index.
    """

    table: str
    region: Region | None = None
    ids: tuple[int, ...] | None = None
    columns: tuple[str, ...] | None = None
    dilate_arcsec: float = 0.0
    with_margin: bool = False
    ids_from: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.table.count(".") != 1:
            raise InvalidInputError(f"table {self.table!r} must be written <database>.<table>")
        if self.dilate_arcsec < 0:
            raise InvalidInputError("dilate_arcsec must be >= 0")


@dataclass(frozen=True)
class QueryPlan:
    """DuckDB SQL plus the scans it reads.

    The SQL names each scan by its binding (a key of ``scans``) as a table; it may also
    name whole tables as ``<database>.<table>``, which are read in full by DuckDB, and
    the in-memory Arrow ``tables`` (uploads, TAP_SCHEMA) by their bindings.
    """

    sql: str
    scans: Mapping[str, TableScan] = field(default_factory=dict)
    tables: Mapping[str, pa.Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in [*self.scans, *self.tables]:
            if not name.isidentifier():
                raise InvalidInputError(f"scan binding {name!r} is not an identifier")


@dataclass(frozen=True)
class PartitionedPlan:
    """A plan run once per partition of a driving scan, then merged (Qserv-style).

    For each partition of ``plan.scans[driver]``'s table that the driver's pruning
    keeps, the driver binding holds that partition's rows only, and every scan with
    ``with_margin`` holds the partition's rows plus its margin rows; other scans are
    read as in a `QueryPlan`. The per-partition results are concatenated and, if
    ``merge_sql`` is given, that SQL runs over them as table ``partials``.

    A pair query whose pair distance is at most the store's margin radius finds every
    pair exactly once this way.
    """

    plan: QueryPlan
    driver: str
    merge_sql: str | None = None
    #: The same query as one statement over whole tables, when that is exact and
    #: cheaper on one machine (a scan or aggregate of one table: DuckDB reads every
    #: partition file in parallel, only the needed columns). Distributed backends
    #: ignore it.
    single: QueryPlan | None = None

    def __post_init__(self) -> None:
        if self.driver not in self.plan.scans:
            raise InvalidInputError(f"driver {self.driver!r} is not one of the plan's scans")


class CatalogStore(ABC):
    """A queryable catalog store holding one or more databases."""

    #: Whether the store answers a whole-table query of one table as one statement (it
    #: then needs no per-partition plan for it).
    runs_whole_tables_at_once: bool = False

    def open_all(self) -> None:
        """Open what queries read before any query comes (a server does it at start).

        The first query touching a part of a store otherwise pays for opening it;
        stores with nothing to open do nothing.
        """
        return None

    @abstractmethod
    def databases(self) -> list[str]:
        """Database names, sorted."""

    @abstractmethod
    def tables(self, database: str) -> list[str]:
        """Table names of ``database``, sorted.

        Raises
        ------
        UnknownTableError
            If the store holds no such database.
        """

    @abstractmethod
    def table_metadata(self, database: str, table: str) -> TableMetadata:
        """Felis metadata and partitioning facts of one table.

        Raises
        ------
        UnknownTableError
            If the store holds no such table.
        """

    def all_table_metadata(self) -> list[TableMetadata]:
        """`table_metadata` of every table, by database and table name (every query
        asks, to resolve its names: a store may answer it more cheaply)."""
        return [self.table_metadata(db, t) for db in self.databases() for t in self.tables(db)]

    @abstractmethod
    def query(self, query: str | QueryPlan | PartitionedPlan) -> pa.Table:
        """Run DuckDB SQL (tables as ``<database>.<table>``) or a plan; return its rows.

        Raises
        ------
        InvalidInputError
            If the SQL is invalid or names unknown tables or columns.
        """

    def stream(self, query: str | QueryPlan | PartitionedPlan) -> pa.RecordBatchReader:
        """Run SQL or a plan like `query`; return its rows as lazily read record batches.

        Backends that can stream override this; the default reads the whole result.

        Raises
        ------
        InvalidInputError
            If the SQL is invalid or names unknown tables or columns (also while
            reading, for errors the query's values cause).
        """
        table = self.query(query)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())

    def select(self, selection: Selection, limit: int | None = None) -> pa.RecordBatchReader:
        """Rows of a plain selection (see `dpzero.catalog._selection`), at most ``limit``.

        Backends that read rows directly override this; the default runs the
        selection's DuckDB plan.

        Raises
        ------
        InvalidInputError
            For errors the query's values cause.
        """
        from dpzero.catalog._adql import _first_rows, _limited

        reader = self.stream(_limited(selection.general_plan(), limit))
        return reader if limit is None else _first_rows(reader, limit)

    def query_adql(
        self,
        text: str,
        tables: Mapping[str, pa.Table] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Answer an ADQL query.

        Parameters
        ----------
        text
            The ADQL query.
        tables
            Extra in-memory tables the query may read, by qualified ADQL name
            (``TAP_UPLOAD.mine``, ``tap_schema.tables``).
        limit
            Return at most this many rows.

        Raises
        ------
        InvalidInputError
            If the query is not valid ADQL or names unknown tables or columns.
        """
        from dpzero.catalog._adql import run_adql

        return run_adql(self, text, tables=tables, limit=limit)

    def stream_adql(
        self,
        text: str,
        tables: Mapping[str, pa.Table] | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader:
        """Answer an ADQL query as a stream of record batches (see `query_adql`).

        A full-table scan or a big result is read from the store batch by batch as the
        reader is consumed; with ``limit`` the query stops after that many rows.

        Raises
        ------
        InvalidInputError
            If the query is not valid ADQL or names unknown tables or columns.
        """
        from dpzero.catalog._adql import stream_adql

        return stream_adql(self, text, tables=tables, limit=limit)
