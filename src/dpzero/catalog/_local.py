"""The local backend: HATS partitions on disk, pruned with pyarrow, queried with DuckDB.

Point queries (a region or a list of ids) never let DuckDB open the partitions: the
backend keeps every partition's Parquet footer in memory, picks the row groups whose
``_healpix_29`` statistics meet the region's HEALPix ranges (or that the objectId index
names), reads just those with pyarrow, drops rows outside the ranges and hands the Arrow
table to DuckDB for the rest of the plan. Scans without pruning go to DuckDB's own
Parquet reader over the files.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dpzero.catalog._errors import UnknownTableError
from dpzero.catalog._index import ObjectIndex
from dpzero.catalog._layout import (
    STORE_FILE,
    StoreManifest,
    TableEntry,
    partition_file,
    read_manifest,
    read_partitions,
)
from dpzero.catalog._pruning import coverage_ranges, overlapping, pixel_range, rows_in_ranges
from dpzero.catalog._rows import ROWS_DIR, RowCopy, rows_file
from dpzero.catalog._store import (
    CatalogStore,
    ColumnMetadata,
    PartitionedPlan,
    QueryPlan,
    TableMetadata,
    TableScan,
)
from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from dpzero.catalog._selection import Selection

__all__ = ["LocalCatalogStore", "open_store"]

HEALPIX_COLUMN = "_healpix_29"
# Indexes a server copies into its own memory: objectId entries (16 bytes a row) and
# sky columns (24 bytes a row); the medium survey's object and position tables need
# 356 and 535 MB.
INDEX_MEMORY_BYTES = 1 << 30
PARTIALS = "partials"
# Streamed results come in record batches of about this many bytes (rows × row width).
BATCH_BYTES = 4 * 1024 * 1024
MIN_BATCH_ROWS = 1024
# DuckDB runtime errors a user's query can cause (a bad CAST, a value out of range).
_USER_RUNTIME_ERRORS = re.compile(
    r"^(Invalid Input|Conversion|Out of Range|Binder|Parser|Catalog|Not implemented) Error"
)


def open_store(path: str | os.PathLike[str]) -> LocalCatalogStore:
    """Open the catalog store at ``path`` for queries.

    Raises
    ------
    InvalidInputError
        If ``path`` is not a catalog store.
    """
    return LocalCatalogStore(Path(path))


class _Handles:
    """Open Parquet readers of recently read partitions (footers parsed once, no reopen).

    At most ``capacity`` stay open (each holds a file descriptor; by default a quarter
    of the process's limit, at most 1,024); a reader is used by one thread at a time.
    """

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is None:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            capacity = 1024 if soft == resource.RLIM_INFINITY else max(32, min(1024, soft // 4))
        self.capacity = capacity
        self._open: OrderedDict[Path, tuple[pq.ParquetFile, threading.Lock]] = OrderedDict()
        self._lock = threading.RLock()  # footer() adopts its reader while read() holds it

    def read(
        self, part: _Partition, groups: list[int], columns: list[str], *, use_threads: bool = True
    ) -> pa.Table:
        """Row groups ``groups`` of ``part``, only ``columns`` (decoded by several
        threads when ``use_threads``: less wall time, a little more CPU)."""
        with self._lock:
            entry = self._open.pop(part.path, None)
            if entry is None:
                # Parsing the footer opens a reader and adopts it (a second reader would
                # build the same column paths again: ~1 ms on 138 columns).
                meta = part.footer()[0]
                entry = self._open.pop(part.path, None)
                if entry is None:
                    entry = (pq.ParquetFile(part.path, metadata=meta), threading.Lock())
            self._keep(part.path, entry)
        reader, lock = entry
        with lock:
            return reader.read_row_groups(groups, columns=columns, use_threads=use_threads)

    def adopt(self, path: Path, reader: pq.ParquetFile) -> None:
        """Keep ``reader`` of ``path`` open for the next reads."""
        with self._lock:
            if path not in self._open:
                self._keep(path, (reader, threading.Lock()))

    def _keep(self, path: Path, entry: tuple[pq.ParquetFile, threading.Lock]) -> None:
        self._open[path] = entry
        while len(self._open) > self.capacity:
            # Dropped readers close when the last thread using one lets it go.
            self._open.popitem(last=False)


@dataclass
class _Partition:
    order: int
    pixel: int
    path: Path
    margin_path: Path | None
    meta: pq.FileMetaData | None = None
    rg_lo: np.ndarray | None = None
    rg_hi: np.ndarray | None = None
    rg_rows: np.ndarray | None = None  # rows of each row group
    rg_start: np.ndarray | None = None  # first row of each row group

    def footer(self) -> tuple[pq.FileMetaData, np.ndarray, np.ndarray]:
        """The cached footer and per-row-group ``_healpix_29`` min/max."""
        if self.meta is None:
            reader = pq.ParquetFile(self.path)
            meta = reader.metadata
            col = meta.schema.names.index(HEALPIX_COLUMN)
            lo, hi = pixel_range(self.order, self.pixel)
            los = np.full(meta.num_row_groups, lo, dtype=np.int64)
            his = np.full(meta.num_row_groups, hi - 1, dtype=np.int64)
            rows = np.zeros(meta.num_row_groups, dtype=np.int64)
            for rg in range(meta.num_row_groups):
                group = meta.row_group(rg)
                rows[rg] = group.num_rows
                stats = group.column(col).statistics
                if stats is not None and stats.has_min_max:
                    los[rg], his[rg] = stats.min, stats.max
            self.rg_start = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
            self.rg_lo, self.rg_hi, self.rg_rows, self.meta = los, his, rows, meta
            _HANDLES.adopt(self.path, reader)
        assert self.rg_lo is not None and self.rg_hi is not None
        return self.meta, self.rg_lo, self.rg_hi


_HANDLES = _Handles()


class ResultLayout(NamedTuple):
    """A selection's result: its schema, the stored column of each result column, and
    the stored columns whose NaN the result shows as NULL."""

    schema: pa.Schema
    stored: tuple[str, ...]
    nan_as_null: frozenset[str]


class _Read(NamedTuple):
    """What to read of one partition: its row groups (and file), or exact rows."""

    part: _Partition
    groups: list[int]
    path: Path | None
    rows: np.ndarray | None  # rows within the partition, when the objectId index gave them


class _Table:
    """One table version: its partitions, index and metadata, read lazily."""

    def __init__(self, store: Path, entry: TableEntry) -> None:
        self.entry = entry
        catalog = entry.catalog_dir(store)
        margin = entry.margin_dir(store)
        margin_pixels = set(read_partitions(margin))
        parts = []
        for order, pixel in read_partitions(catalog):
            mpath = (
                partition_file(margin, order, pixel) if (order, pixel) in margin_pixels else None
            )
            parts.append(_Partition(order, pixel, partition_file(catalog, order, pixel), mpath))
        parts.sort(key=lambda q: pixel_range(q.order, q.pixel)[0])
        self.partitions = parts
        bounds = [pixel_range(q.order, q.pixel) for q in parts]
        self.lo = np.array([b[0] for b in bounds], dtype=np.int64)
        self.hi = np.array([b[1] - 1 for b in bounds], dtype=np.int64)
        self.by_pixel = {(q.order, q.pixel): q for q in parts}
        self.glob = str(catalog / "dataset" / "Norder=*" / "Dir=*" / "Npix=*.parquet")
        self.metadata_path = entry.metadata_file(store)
        index_dir = entry.index_dir(store)
        self._index_dir = index_dir if index_dir is not None and index_dir.is_dir() else None
        self._index: ObjectIndex | None = None
        self._schema: pa.Schema | None = None
        self._lock = threading.Lock()
        self.metadata: TableMetadata | None = None
        self._collection = entry.collection_dir(store)
        self._has_rows = (self._collection / ROWS_DIR).is_dir()
        self._rows: dict[tuple[int, int], RowCopy] = {}
        self._indexed_copies: list[RowCopy | None] | None = None
        self._result_layouts: dict[
            tuple[tuple[tuple[str, str, bool], ...], frozenset[str]], ResultLayout
        ] = {}

    def row_copy(self, part: _Partition) -> RowCopy | None:
        """The partition's row-major copy (`dpzero.catalog._rows`), if ingest wrote one."""
        if not self._has_rows:
            return None
        key = (part.order, part.pixel)
        with self._lock:
            if key not in self._rows:
                path = rows_file(self._collection, part.order, part.pixel)
                try:
                    sky = (self.entry.ra_column, self.entry.dec_column)
                    copy = RowCopy(path, self.schema, sky) if path.is_file() else None
                except ValueError:  # a column type without conversion: read Parquet
                    copy = None
                if copy is None:
                    return None
                self._rows[key] = copy
            return self._rows[key]

    def indexed_copies(self) -> list[RowCopy | None]:
        """The row copy of each partition the objectId index numbers (`ObjectIndex.pixels`),
        None where a partition has none; kept (an id lookup's rows come from a dozen)."""
        if self._indexed_copies is None:
            index = self.index()
            pixels = [] if index is None else index.pixels
            parts = [self.by_pixel.get(pixel) for pixel in pixels]
            self._indexed_copies = [None if p is None else self.row_copy(p) for p in parts]
        return self._indexed_copies

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the partitions (with ``_healpix_29``)."""
        if self._schema is None:
            self._schema = pq.read_schema(self.partitions[0].path)
        return self._schema

    @functools.cached_property
    def types(self) -> dict[str, pa.DataType]:
        """Arrow type of each column (a schema's field lookup by name is a linear search)."""
        return {field.name: field.type for field in self.schema}

    def result_layout(
        self, outputs: tuple[tuple[str, str, bool], ...], finite: frozenset[str]
    ) -> ResultLayout:
        """What a selection's rows look like: ``outputs`` are ``(result name, stored
        column, NaN as NULL)`` each; NaN stays a value in the columns ``finite`` names
        (a region test keeps no NaN there). Kept: building 137 fields costs more than an
        id lookup's reading."""
        key = (outputs, finite)
        layout = self._result_layouts.get(key)
        if layout is None:
            layout = ResultLayout(
                schema=pa.schema([pa.field(out, self.types[stored]) for out, stored, _ in outputs]),
                stored=tuple(stored for _, stored, _ in outputs),
                nan_as_null=frozenset(
                    stored for _, stored, nan in outputs if nan and stored not in finite
                ),
            )
            if len(self._result_layouts) >= 64:
                self._result_layouts.clear()
            self._result_layouts[key] = layout
        return layout

    def index(self) -> ObjectIndex | None:
        """The objectId index, or None."""
        with self._lock:
            if self._index is None and self._index_dir is not None:
                self._index = ObjectIndex(self._index_dir)
        return self._index

    def read(
        self,
        scan: TableScan,
        columns: list[str] | None,
        *,
        only: _Partition | None = None,
        margin_of: _Partition | None = None,
    ) -> pa.Table:
        """Rows of the scan, pruned; ``only``/``margin_of`` restrict to one partition."""
        cols = self._columns(columns)
        read_cols = list(dict.fromkeys([*cols, HEALPIX_COLUMN]))
        key = self.entry.key_column
        ids = None
        if scan.ids is not None:
            if key is None:
                raise InvalidInputError(f"table {scan.table} has no objectId index")
            ids = pa.array(sorted(set(scan.ids)), type=pa.int64())
            read_cols = list(dict.fromkeys([*read_cols, key]))
        ranges = None
        if scan.region is not None:
            ranges = coverage_ranges(scan.region, dilate_deg=scan.dilate_arcsec / 3600.0)
        pieces = []
        for part, groups, path, _ in self._plan_reads(scan, ranges, only, margin_of):
            if path is None:
                continue
            if path == part.path:
                if not groups:
                    continue
                t = _HANDLES.read(part, groups, read_cols)
            else:
                with pq.ParquetFile(path) as pf:
                    t = pf.read(columns=read_cols)
            mask = None
            if ranges is not None:
                mask = rows_in_ranges(ranges, t.column(HEALPIX_COLUMN).to_numpy())
            if ids is not None:
                hit = np.asarray(pc.is_in(t.column(key), value_set=ids))
                mask = hit if mask is None else mask & hit
            if mask is not None:
                t = t.filter(pa.array(mask))
            pieces.append(t.select(cols))
        if not pieces:
            return self.schema.empty_table().select(cols)
        return pa.concat_tables(pieces)

    def _columns(self, wanted: list[str] | None) -> list[str]:
        names = [n for n in self.schema.names if n != HEALPIX_COLUMN]
        if wanted is None:
            return names
        lower = {w.lower() for w in wanted}
        chosen = [n for n in names if n.lower() in lower]
        return chosen or names[:1]

    def _plan_reads(
        self,
        scan: TableScan,
        ranges: np.ndarray | None,
        only: _Partition | None,
        margin_of: _Partition | None,
    ) -> Iterator[_Read]:
        if margin_of is not None:
            # The partition itself and its margin file, both filtered by rows below.
            yield from self._plan_reads(scan, ranges, margin_of, None)
            yield _Read(margin_of, [], margin_of.margin_path, None)
            return
        by_id: dict[tuple[int, int], np.ndarray] | None = None
        if scan.ids is not None:
            index = self.index()
            if index is None:
                raise InvalidInputError(f"table {scan.table} has no objectId index")
            by_id = {(loc.norder, loc.npix): loc.rows for loc in index.locate(scan.ids)}
        if only is not None:
            candidates = [only]
        elif by_id is not None:
            candidates = [self.by_pixel[k] for k in sorted(by_id) if k in self.by_pixel]
        elif ranges is not None:
            keep = overlapping(ranges, self.lo, self.hi)
            candidates = [p for p, k in zip(self.partitions, keep, strict=True) if k]
        else:
            candidates = list(self.partitions)
        for part in candidates:
            rows = None
            if by_id is not None:
                rows = by_id.get((part.order, part.pixel))
                if rows is None:
                    continue
            meta, rg_lo, rg_hi = part.footer()
            if rows is None:
                groups = np.arange(meta.num_row_groups)
            else:
                groups = np.unique(np.searchsorted(part.rg_start, rows, side="right") - 1)
            if ranges is not None and groups.size:
                groups = groups[overlapping(ranges, rg_lo[groups], rg_hi[groups])]
            yield _Read(part, [int(g) for g in groups], part.path, rows)

    def candidate_partitions(self, scan: TableScan) -> list[_Partition]:
        """Partitions a driving scan touches."""
        ranges = None
        if scan.region is not None:
            ranges = coverage_ranges(scan.region, dilate_deg=scan.dilate_arcsec / 3600.0)
        return [r.part for r in self._plan_reads(scan, ranges, None, None) if r.groups]


class LocalCatalogStore(CatalogStore):
    """A catalog store in a local folder, queried in process with DuckDB.

    Parameters
    ----------
    path
        The store folder written by `ingest_catalogs`.
    """

    #: DuckDB reads every partition file of a whole-table query in one statement.
    runs_whole_tables_at_once = True

    def __init__(self, path: Path) -> None:
        self.path = path
        # Asked for by every query: a plain string stats faster than a Path (~3 µs).
        self._store_file = os.fspath(path / STORE_FILE)
        self._lock = threading.Lock()
        self._stamp: int | None = None
        # Versions replaced since this store was opened, for plans pinned to them.
        self._retired: dict[str, _Table] = {}
        self._tables: dict[tuple[str, str], _Table] = {}
        self._load()

    def _load(self) -> None:
        manifest = read_manifest(self.path)
        stamp = os.stat(self._store_file).st_mtime_ns
        tables = {k: _Table(self.path, e) for k, e in manifest.tables.items()}
        con = duckdb.connect()
        _configure(con)
        for db in manifest.databases():
            con.execute(f'CREATE SCHEMA "{db}"')
        for (db, name), t in tables.items():
            con.execute(
                f'CREATE VIEW "{db}"."{name}" AS SELECT * EXCLUDE ({HEALPIX_COLUMN}) '
                f"FROM read_parquet('{_sql_str(t.glob)}', hive_partitioning = false)"
            )
        self._manifest: StoreManifest = manifest
        # Versions removed since (after their grace period) no query can still use.
        self._retired = {k: t for k, t in self._retired.items() if (self.path / k).is_dir()}
        live = {t.entry.relative_dir for t in tables.values()}
        for old in self._tables.values():
            if old.entry.relative_dir not in live:
                self._retired[old.entry.relative_dir] = old
        self._tables = tables
        self._con = con
        self._stamp = stamp

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for one query (safe to use from many threads at once)."""
        with self._lock:
            return self._con.cursor()

    def _refresh(self) -> None:
        stamp = os.stat(self._store_file).st_mtime_ns
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._load()

    def open_all(self, index_memory_bytes: int = INDEX_MEMORY_BYTES) -> None:
        """Parse every partition's footer, map its row copy and the objectId indexes,
        and copy the indexes into this process's memory while they fit in
        ``index_memory_bytes``: the objectId indexes first (`ObjectIndex.hold_in_memory`),
        then the partitions' sky columns (`SkyColumns.hold_in_memory`); 0: all stay
        mapped.

        A cone's or an id's first touch of a partition costs more than the query
        itself otherwise (a 138-column footer ≈ 2 ms, a row copy's header ≈ 1 ms, the
        compiled loops of point queries ≈ 0.3 s).
        """
        from dpzero.catalog._kernels import warm_up

        self._refresh()
        left = index_memory_bytes
        tables = list(self._tables.values())
        for table in tables:
            index = table.index()
            if index is not None and index.nbytes <= left:
                index.hold_in_memory()
                left -= index.nbytes
            for part in table.partitions:
                part.footer()
                table.row_copy(part)
        for table in tables:
            for part in table.partitions:
                copy = table.row_copy(part)
                if copy is not None and copy.sky is not None and copy.sky.nbytes <= left:
                    copy.sky.hold_in_memory()
                    left -= copy.sky.nbytes
        warm_up()  # the point-query loops, compiled or loaded before the first lookup

    def databases(self) -> list[str]:
        """Database names, sorted."""
        self._refresh()
        return self._manifest.databases()

    def tables(self, database: str) -> list[str]:
        """Table names of ``database``, sorted."""
        self._refresh()
        if database not in self._manifest.schemas:
            raise UnknownTableError(f"the store holds no database {database}")
        return sorted(t for d, t in self._manifest.tables if d == database)

    def table_metadata(self, database: str, table: str) -> TableMetadata:
        """Felis metadata and partitioning facts of one table."""
        self._refresh()
        return self._metadata(database, table)

    def all_table_metadata(self) -> list[TableMetadata]:
        """`table_metadata` of every table (the store's manifest checked once)."""
        self._refresh()
        return [
            self._metadata(database, table) for database, table in sorted(self._manifest.tables)
        ]

    def _metadata(self, database: str, table: str) -> TableMetadata:
        """A table's metadata, read from its file the first time."""
        entry = self._manifest.entry(database, table)
        t = self._tables[(database, table)]
        if t.metadata is None:
            t.metadata = self._read_metadata(entry, t)
        return t.metadata

    @staticmethod
    def _read_metadata(entry: TableEntry, t: _Table) -> TableMetadata:
        database, table = entry.database, entry.table
        meta = json.loads(t.metadata_path.read_text())
        return TableMetadata(
            database=database,
            table=table,
            schema=meta["schema"],
            schema_version=meta["schema_version"],
            description=meta["description"],
            rows=entry.rows,
            ra_column=entry.ra_column,
            dec_column=entry.dec_column,
            key_column=entry.key_column,
            columns=tuple(ColumnMetadata(**c) for c in meta["columns"]),
            margin_arcsec=entry.margin_arcsec,
        )

    def _table(self, name: str, pinned: Mapping[str, TableEntry] | None = None) -> _Table:
        """The current version of table ``name``, or the version ``pinned`` names."""
        db, _, table = name.partition(".")
        entry = None if pinned is None else pinned.get(name)
        if entry is None:
            self._manifest.entry(db, table)
            return self._tables[(db, table)]
        current = self._tables.get((db, table))
        if current is not None and current.entry == entry:
            return current
        if not entry.catalog_dir(self.path).is_dir():
            raise InvalidInputError(
                f"table {name} was replaced, and its old version removed, while this query "
                "ran; run the query again"
            )
        with self._lock:
            if entry.relative_dir not in self._retired:
                self._retired[entry.relative_dir] = _Table(self.path, entry)
            return self._retired[entry.relative_dir]

    def pin(self, plan: PartitionedPlan) -> dict[str, TableEntry]:
        """The table versions ``plan`` reads, as the store holds them now.

        A partitioned plan runs partition by partition, over seconds or hours; run with
        these, every partition reads the same versions even if a table is re-ingested
        meanwhile (the replaced version's files outlive the longest query).
        """
        self._refresh()
        return {s.table: self._table(s.table).entry for s in plan.plan.scans.values()}

    def query(self, query: str | QueryPlan | PartitionedPlan) -> pa.Table:
        """Run DuckDB SQL or a plan; return its rows as an Arrow table.

        A query that races a re-ingest (its table version removed under it) runs once
        more on the new version.
        """
        return self._retrying(self._query, query)

    def stream(self, query: str | QueryPlan | PartitionedPlan) -> pa.RecordBatchReader:
        """Run DuckDB SQL or a plan; return its rows as record batches, read lazily.

        A plain plan streams from DuckDB (a full scan never sits whole in memory); a
        partitioned plan without merge SQL yields one partition's rows at a time.
        """
        return self._retrying(self._stream, query)

    def _retrying[T](
        self,
        run: Callable[[str | QueryPlan | PartitionedPlan], T],
        query: str | QueryPlan | PartitionedPlan,
    ) -> T:
        try:
            return run(query)
        except (FileNotFoundError, duckdb.IOException):
            if os.stat(self._store_file).st_mtime_ns == self._stamp:
                raise
            return run(query)

    def select(self, selection: Selection, limit: int | None = None) -> pa.RecordBatchReader:
        """Rows of a plain selection, read and filtered here without DuckDB's SQL.

        Raises
        ------
        InvalidInputError
            For errors the query's values cause.
        """
        from dpzero.catalog._direct import read_selection

        def run(_: object) -> pa.RecordBatchReader:
            self._refresh()
            return read_selection(self, selection, limit)

        return self._retrying(run, "")

    def _plan_of(self, query: str | QueryPlan | PartitionedPlan) -> QueryPlan | PartitionedPlan:
        """The plan to run on the current store version (a one-statement form when it has one)."""
        self._refresh()
        if isinstance(query, str):
            return QueryPlan(query)
        if isinstance(query, PartitionedPlan) and query.single is not None:
            return query.single
        return query

    def _query(self, query: str | QueryPlan | PartitionedPlan) -> pa.Table:
        query = self._plan_of(query)
        if isinstance(query, PartitionedPlan):
            return self._run_partitioned(query)
        cur = self._cursor()
        try:
            self._prepare(cur, query)
            return _execute(cur, query.sql)
        finally:
            cur.close()

    def _stream(self, query: str | QueryPlan | PartitionedPlan) -> pa.RecordBatchReader:
        query = self._plan_of(query)
        if isinstance(query, PartitionedPlan):
            if query.merge_sql is not None:
                # Partials are small (aggregates, per-partition TOP): merge, then stream.
                return _stream_merged(self, query)
            return _stream_partitions(self, query)
        cur = self._cursor()
        try:
            self._prepare(cur, query)
            return _reader(cur, query.sql, close=cur.close)
        except BaseException:
            cur.close()
            raise

    def _prepare(self, cur: duckdb.DuckDBPyConnection, query: QueryPlan) -> None:
        """Bind the plan's scans and in-memory tables as relations of the cursor."""
        columns = _columns_needed(query)
        bound: dict[str, pa.Table | None] = {}
        for name in _scan_order(query):
            scan = query.scans[name]
            if scan.ids_from is not None:
                source, column = scan.ids_from
                rows = bound.get(source)
                if rows is None or column not in rows.column_names:
                    scan = replace(scan, ids_from=None)  # source read in full: no help
                else:
                    keys = pc.unique(rows.column(column).drop_null()).cast(pa.int64())
                    scan = replace(scan, ids=tuple(keys.to_pylist()), ids_from=None)
            bound[name] = self._bind(cur, name, scan, columns)
        for name, table in query.tables.items():
            cur.register(name, table)

    def _bind(
        self,
        cur: duckdb.DuckDBPyConnection,
        name: str,
        scan: TableScan,
        columns: list[str] | None,
        pinned: Mapping[str, TableEntry] | None = None,
        **where: _Partition | None,
    ) -> pa.Table | None:
        """Make ``name`` a relation of the cursor; return its Arrow rows when read here."""
        table = self._table(scan.table, pinned)
        if scan.region is None and scan.ids is None and not where:
            # A full scan: DuckDB's own Parquet reader over every partition.
            cur.execute(
                f'CREATE TEMP VIEW "{name}" AS SELECT * EXCLUDE ({HEALPIX_COLUMN}) '
                f"FROM read_parquet('{_sql_str(table.glob)}', hive_partitioning = false)"
            )
            return None
        rows = table.read(scan, columns, **where)
        cur.register(name, rows)
        return rows

    def plan_partitions(
        self, plan: PartitionedPlan, pinned: Mapping[str, TableEntry] | None = None
    ) -> list[tuple[int, int]]:
        """The (Norder, Npix) partitions a partitioned plan runs on, in sky order."""
        self._refresh()
        driver = plan.plan.scans[plan.driver]
        table = self._table(driver.table, pinned)
        return [(p.order, p.pixel) for p in table.candidate_partitions(driver)]

    def run_partition(
        self,
        plan: PartitionedPlan,
        partition: tuple[int, int] | None,
        *,
        fixed: dict[str, pa.Table] | None = None,
        pinned: Mapping[str, TableEntry] | None = None,
    ) -> pa.Table:
        """Run ``plan`` on one partition of its driver (None: on empty inputs).

        This is the unit of work a distributed backend ships to its workers; ``pinned``
        (from `pin`) makes every partition read the same table versions.
        """
        self._refresh()
        driver = plan.plan.scans[plan.driver]
        columns = _columns_needed(plan.plan)
        fixed = {} if fixed is None else fixed
        cur = self._cursor()
        try:
            driver_rows: pa.Table | None = None
            # The driver first: joined scans take their ids from its rows.
            for name in sorted(plan.plan.scans, key=lambda n: n != plan.driver):
                scan = plan.plan.scans[name]
                table = self._table(scan.table, pinned)
                if partition is None:
                    cur.register(name, table.schema.empty_table().select(table._columns(columns)))
                    continue
                part = self._table(driver.table, pinned).by_pixel[partition]
                if name == plan.driver:
                    driver_rows = self._bind(cur, name, scan, columns, pinned, only=part)
                elif scan.ids_from is not None and scan.ids_from[0] == plan.driver:
                    # Co-partitioned join: the rows whose key holds one of this
                    # partition's values, found through the objectId index.
                    assert driver_rows is not None
                    source = {c.lower(): c for c in driver_rows.column_names}
                    keys = driver_rows.column(source[scan.ids_from[1].lower()]).drop_null()
                    ids = tuple(pc.unique(keys.cast(pa.int64())).to_pylist())
                    cur.register(name, table.read(replace(scan, ids=ids, ids_from=None), columns))
                elif scan.with_margin:
                    if scan.table != driver.table:
                        raise InvalidInputError(
                            f"scan {name} asks for a margin but reads {scan.table}, "
                            f"not the driving table {driver.table}"
                        )
                    self._bind(cur, name, scan, columns, pinned, margin_of=part)
                else:
                    if name not in fixed:
                        fixed[name] = table.read(scan, columns)
                    cur.register(name, fixed[name])
            for name, inline in plan.plan.tables.items():
                cur.register(name, inline)
            return _execute(cur, plan.plan.sql)
        finally:
            cur.close()

    def merge_partials(self, plan: PartitionedPlan, partials: list[pa.Table]) -> pa.Table:
        """Concatenate per-partition results and apply the plan's merge SQL."""
        table = pa.concat_tables(partials) if partials else self.run_partition(plan, None)
        if plan.merge_sql is None:
            return table
        cur = self._cursor()
        try:
            cur.register(PARTIALS, table)
            return _execute(cur, plan.merge_sql)
        finally:
            cur.close()

    def _run_partitioned(self, plan: PartitionedPlan) -> pa.Table:
        fixed: dict[str, pa.Table] = {}
        pinned = self.pin(plan)
        partials = [
            self.run_partition(plan, p, fixed=fixed, pinned=pinned)
            for p in self.plan_partitions(plan, pinned)
        ]
        if not partials:
            partials = [self.run_partition(plan, None, pinned=pinned)]
        return self.merge_partials(plan, partials)


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    from dpzero.adql import register_adql_functions

    # DuckDB 2.0's statistics propagation turns `x < c` TRUE for NaN rows when c lies
    # above a column's max statistic; NaN must compare greater than every number.
    con.execute("SET disabled_optimizers = 'statistics_propagation'")
    # Partition files never change in place (a re-ingest writes a new version folder),
    # so their footers can stay parsed between queries: a scan of 57 partitions spent
    # three quarters of its time re-reading them.
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # GLOBAL: cursors see it too
    # A neighbour-pair join carries two range conditions (|dec_b - dec_a| <= r). DuckDB
    # joins them with IEJoin only when both sides exceed merge_join_threshold rows (by
    # its estimate, 1000 by default); below that it picks a piecewise merge join on one
    # condition and tests the rest on every pair above it: 4x the CPU for the pairs of
    # a 0.1 deg cone (754 vs 188 ms, same rows).
    con.execute("SET GLOBAL merge_join_threshold = 0")
    # Whole-table scans of ~1,100 row groups of 4,000 rows (measured before row groups
    # grew to 16,000): DuckDB's prefetching and its
    # page-index reads cost more per row group than they save (the files are local and
    # ADQL filters rarely fall on the sorted column): COUNT/AVG with a cut over 2.7 M
    # objects 61 -> 38 ms CPU, GROUP BY similar.
    con.execute("SET GLOBAL disable_parquet_prefetching = true")
    con.execute("SET GLOBAL parquet_use_page_index = false")
    # The geometry macros that translated ADQL calls.
    register_adql_functions(con)


def _sql_str(text: str) -> str:
    return text.replace("'", "''")


def _execute(cur: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    try:
        return cur.sql(sql).to_arrow_table()
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise InvalidInputError(f"query failed: {exc}") from None
    except duckdb.Error as exc:
        _raise_if_users(exc)
        raise


def _raise_if_users(exc: BaseException) -> None:
    """Raise `InvalidInputError` for a runtime error the query's own values caused."""
    text = str(exc)
    if _USER_RUNTIME_ERRORS.match(text):
        raise InvalidInputError(f"query failed: {text}") from None


def _row_bytes(types: list[duckdb.typing.DuckDBPyType]) -> int:
    """Rough width of one result row in Arrow (strings and nested values guessed)."""
    widths = {"BOOLEAN": 1, "TINYINT": 1, "SMALLINT": 2, "INTEGER": 4, "FLOAT": 4, "DATE": 4}
    return sum(widths.get(str(t), 16 if str(t) in ("VARCHAR", "HUGEINT") else 8) for t in types)


def _reader(
    cur: duckdb.DuckDBPyConnection, sql: str, close: Callable[[], None]
) -> pa.RecordBatchReader:
    """DuckDB's streaming result of ``sql`` as a reader; ``close`` runs once it is done."""
    try:
        relation = cur.sql(sql)
        rows = max(MIN_BATCH_ROWS, BATCH_BYTES // max(1, _row_bytes(relation.types)))
        source = relation.to_arrow_reader(rows)
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise InvalidInputError(f"query failed: {exc}") from None
    except duckdb.Error as exc:
        _raise_if_users(exc)
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    batch = source.read_next_batch()
                except StopIteration:
                    return
                except (OSError, pa.ArrowException, duckdb.Error) as exc:
                    _raise_if_users(exc)
                    raise
                yield batch
        finally:
            source.close()
            close()

    return pa.RecordBatchReader.from_batches(source.schema, batches())


def _stream_partitions(store: LocalCatalogStore, plan: PartitionedPlan) -> pa.RecordBatchReader:
    """A partitioned plan's rows, one partition at a time (the first runs now)."""
    pinned = store.pin(plan)
    partitions = store.plan_partitions(plan, pinned)
    fixed: dict[str, pa.Table] = {}
    first = store.run_partition(
        plan, partitions[0] if partitions else None, fixed=fixed, pinned=pinned
    )

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first.to_batches()
        for p in partitions[1:]:
            yield from store.run_partition(plan, p, fixed=fixed, pinned=pinned).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def _stream_merged(store: LocalCatalogStore, plan: PartitionedPlan) -> pa.RecordBatchReader:
    merged = store._run_partitioned(plan)
    return pa.RecordBatchReader.from_batches(merged.schema, merged.to_batches())


def _scan_order(plan: QueryPlan) -> list[str]:
    """Bindings in an order where every ``ids_from`` source comes before its user."""
    order: list[str] = []
    pending = dict(plan.scans)
    while pending:
        ready = [
            n for n, s in pending.items() if s.ids_from is None or s.ids_from[0] not in pending
        ]
        if not ready:
            raise InvalidInputError("scans take ids from each other in a cycle")
        for n in ready:
            order.append(n)
            del pending[n]
    return order


def _columns_needed(plan: QueryPlan) -> list[str] | None:
    """Columns the plan's scans must read: their own lists, else what the SQL mentions."""
    if all(s.columns is not None for s in plan.scans.values()):
        named = {c for s in plan.scans.values() for c in s.columns or ()}
        return sorted(named)
    return _referenced_columns(plan.sql)


def _referenced_columns(sql: str) -> list[str] | None:
    """Every column name the SQL mentions, or None when it selects ``*``."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return None
    return sorted({c.name for c in tree.find_all(exp.Column) if c.name})
