"""The local store's reader of plain selections: row groups in, exact rows out, no DuckDB.

For each partition and row group the selection's pruning keeps (the same choice as the
DuckDB path), the columns the WHERE clause reads are read first and decided in numpy;
the other columns are then read only from row groups holding a result row. DuckDB sees
a narrow table of candidate rows only when the WHERE clause has conditions numpy does
not decide, or a row lies on a limit within rounding (see `dpzero.catalog._selection`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dpzero.catalog._pruning import contained, coverage_ranges, rows_in_ranges
from dpzero.catalog._rows import Records, RowCopy, SkyColumns
from dpzero.catalog._selection import (
    ROW_COLUMN,
    ConeTest,
    ConvexPolygonTest,
    InTest,
    Selection,
)

if TYPE_CHECKING:
    from dpzero.catalog._local import LocalCatalogStore, ResultLayout, _Partition, _Read, _Table

__all__ = ["read_selection"]

HEALPIX_COLUMN = "_healpix_29"
# Rows gathered from partitions before a batch is handed out.
BATCH_ROWS = 65_536
# What decoding one column chunk of a row group costs, in bytes of row copy read in the
# same time (≈ 20 µs ≈ 200 kB copied): many rows of a few columns (a 0.5° cone of 5
# columns) decode faster from Parquet, a few rows of many columns read faster whole.
CHUNK_COST_BYTES = 200_000
# A partition's rows in a region's cells up to which the sky columns find them: more
# rows than a row group fill their row groups anyway, and decoding the WHERE columns
# with the returned ones costs less than the sky columns' extra passes over them (a
# 0.5° cone of 5 columns, ~290,000 rows: 24 ms through Parquet, 35 ms through the sky
# columns).
SKY_MOST_ROWS = 16_000
# Returned columns read with the WHERE columns rather than afterwards.
FEW_COLUMNS = 8
# Up to this many ids, records are copied one by one from their row copies.
_FEW_IDS = 64
# Partitions read at once (Parquet decoding and numpy's large operations release the GIL).
READ_THREADS = min(2, os.cpu_count() or 1)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The reading threads, shared by every query of the process (started once: a pool
    per query cost its start-up each time, and its threads' CPU time left with them)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="dpzero-read")
        return _POOL


def _prefetched[T, R](work: Callable[[T], R], items: list[T]) -> Iterator[R]:
    """``work`` of each item, in order, up to `READ_THREADS` items ahead of the consumer
    (so memory stays bounded by a few partitions' rows)."""
    if len(items) < 2 or READ_THREADS < 2:
        yield from map(work, items)
        return
    pool = _pool()
    waiting = collections.deque(pool.submit(work, item) for item in items[:READ_THREADS])
    try:
        following = iter(items[READ_THREADS:])
        while waiting:
            done = waiting.popleft().result()
            item = next(following, None)
            if item is not None:
                waiting.append(pool.submit(work, item))
            yield done
    finally:
        # A reader closed early: drop what has not started, let the rest finish.
        for future in waiting:
            future.cancel()
        concurrent.futures.wait(waiting)


def read_selection(
    store: LocalCatalogStore, selection: Selection, limit: int | None
) -> pa.RecordBatchReader:
    """The selection's rows as record batches, read partition by partition.

    The first partition is read now (so errors come before any row); the others as the
    reader is consumed. At most ``limit`` rows (and the query's TOP).
    """
    table = store._table(selection.scan.table)
    result = table.result_layout(selection.outputs, _finite_columns(selection))
    schema, nan_columns = result.schema, result.nan_as_null
    most = selection.limit(limit)
    found: Iterator[pa.Table | _Picked] | None = None
    if selection.scan.region is None and _only_ids(selection, table.entry.key_column):
        # An id list alone: the index gives the rows, the row copies give them whole.
        picked = _id_records(table, selection.scan.ids or ())
        if picked is not None:
            found = _limited(picked, most)
    if found is None:
        found = _read_partitions(store, table, selection, schema, most, nan_columns)
        first = next(found, None)
        if first is not None:
            found = _chain(first, found)

    def batches() -> Iterator[pa.RecordBatch]:
        # Partitions' rows in batches of at least BATCH_ROWS (one NaN pass, one
        # conversion of row-copy records per batch).
        waiting: list[pa.Table | _Picked] = []
        rows = 0
        for piece in found:
            waiting.append(piece)
            rows += piece.num_rows
            if rows >= BATCH_ROWS:
                yield from _assemble(waiting, result)
                waiting, rows = [], 0
        if waiting:
            yield from _assemble(waiting, result)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _read_partitions(
    store: LocalCatalogStore,
    table: _Table,
    selection: Selection,
    schema: pa.Schema,
    most: int | None,
    nan_columns: frozenset[str],
) -> Iterator[pa.Table | _Picked]:
    """The selection's rows partition by partition, read from Parquet column chunks or
    row copies (several partitions at once)."""
    scan = selection.scan
    ranges = None
    if scan.region is not None:
        ranges = coverage_ranges(scan.region, dilate_deg=scan.dilate_arcsec / 3600.0)
    # The WHERE columns, and _healpix_29 when a region's cells select rows: only ahead
    # of DuckDB. Where numpy decides the whole WHERE (the region included, exactly), the
    # cells only prune partitions and row groups (most rows of a read group lie in the
    # cells anyway; decoding the column cost a fifth of a wide cone).
    row_ranges = ranges if selection.residual else None
    first_columns = [HEALPIX_COLUMN] if row_ranges is not None else []
    narrow = list(dict.fromkeys([*first_columns, *selection.where_columns]))
    if scan.ids is not None and table.entry.key_column is not None:
        narrow = list(dict.fromkeys([*narrow, table.entry.key_column]))
    tested = narrow  # what `_keep` reads (before the returned columns join the read)
    wide = [stored for _, stored, _ in selection.outputs if stored not in narrow]
    if len(wide) <= FEW_COLUMNS:
        # A few more columns cost little in the same read (a wide cone of 5 columns
        # decodes them for most rows anyway); the row copy pays for many columns.
        narrow, wide = narrow + wide, []
    ids = None if scan.ids is None else pa.array(sorted(set(scan.ids)), type=pa.int64())
    reads = [read for read in table._plan_reads(scan, ranges, None, None) if read.groups]
    # Rows the index gave are a few records each: not worth a thread. Partitions
    # read side by side decode their columns in one thread each (pyarrow's own
    # threads on top cost ~10 % of a wide cone).
    parallel = scan.ids is None and len(reads) > 1 and READ_THREADS > 1

    def rows_of(read: _Read) -> pa.Table | _Picked | None:
        rows = _sky_rows(store, table, read, selection, tested, ranges, most, not parallel)
        if isinstance(rows, _FromParquet):
            rows = _partition_rows(
                store, table, read, selection, narrow, wide, row_ranges, ids, most, not parallel
            )
        if isinstance(rows, pa.Table):  # the result's columns, here in the thread
            return _output(rows, selection, schema, nan_columns)
        return rows

    left = most
    for rows in _prefetched(rows_of, reads) if parallel else map(rows_of, reads):
        if left is not None and left <= 0:
            return
        if rows is None:
            continue
        if left is not None:
            rows = rows.slice(0, left)
            left -= rows.num_rows
        yield rows


@dataclass
class _Picked:
    """Selected rows of one partition as records of its row copy (converted with the
    batch's other partitions)."""

    copy: RowCopy
    records: Records

    @property
    def num_rows(self) -> int:
        return len(self.records)

    def slice(self, offset: int, length: int) -> _Picked:
        """Rows ``offset`` to ``offset + length`` (as `pyarrow.Table.slice`)."""
        return _Picked(self.copy, self.records[offset : offset + length])


def _finite_columns(selection: Selection) -> frozenset[str]:
    """Columns of the selection's region tests: every row they keep has a number there
    (NaN fails them), so their NaN needs no NULL."""
    tests = selection.tests
    if not tests or all(isinstance(t, InTest) for t in tests):
        return frozenset()
    return frozenset(
        c for t in tests if isinstance(t, ConeTest | ConvexPolygonTest) for c in t.columns
    )


def _assemble(pieces: list[pa.Table | _Picked], result: ResultLayout) -> list[pa.RecordBatch]:
    """The result's rows of ``pieces``, in order: Parquet pieces come as results already
    (`_output`, in the reading threads); each run of row-copy records is converted at
    once, columns renamed and NaN as NULL where the result says."""
    batches: list[pa.RecordBatch] = []
    for picked, run in itertools.groupby(pieces, key=lambda piece: isinstance(piece, _Picked)):
        if not picked:
            batches += pa.concat_tables(run).to_batches()
            continue
        rows: list[_Picked] = list(run)  # type: ignore[arg-type]
        records = [p.records for p in rows]
        batches.append(
            rows[0].copy.batch(records, result.stored, result.schema, result.nan_as_null)
        )
    return batches


def _chain(first: pa.Table | _Picked, rest: Iterator[pa.Table | _Picked]) -> Iterator:
    yield first
    yield from rest


class _FromParquet:
    """`_sky_rows`'s answer when the partition's rows must come from Parquet."""


_PARQUET = _FromParquet()


def _sky_rows(
    store: LocalCatalogStore,
    table: _Table,
    read: _Read,
    selection: Selection,
    tested: list[str],
    ranges: np.ndarray | None,
    left: int | None,
    threads: bool,
) -> pa.Table | _Picked | _FromParquet | None:
    """The selected rows of one partition found through its `SkyColumns`, when the
    WHERE clause reads positions only (``tested``) and the region's cells are known:
    the rows in the cells are the exact spans a binary search gives (no row group
    decoded for the test), and the kept rows' other columns come from the row copy (a
    few rows) or from the Parquet row groups holding them (many rows of a few columns).
    `_PARQUET` when this does not apply."""

    usable = ranges is not None and read.rows is None and selection.scan.ids is None
    copy = table.row_copy(read.part) if usable else None
    sky = None if copy is None else copy.sky
    if sky is None or not set(tested) <= set(sky.names):
        return _PARQUET
    assert copy is not None and ranges is not None
    rows = sky.rows_in(ranges, SKY_MOST_ROWS)
    if rows is None:
        return _PARQUET
    if rows.size == 0:
        return None
    first = pa.table({name: sky.columns[name][rows] for name in tested})
    keep = _keep(store, first, selection, None, None, None, left)
    if keep.size == 0:
        return None
    at = rows[keep]
    returned = list(dict.fromkeys(stored for _, stored, _ in selection.outputs))
    others = [name for name in returned if name not in sky.names]
    if not others:
        return pa.table({name: sky.columns[name][at] for name in returned})
    rest = _rest_of_rows(read.part, copy, at, others, threads)
    if isinstance(rest, _Picked):
        return rest
    return pa.table(
        {
            name: rest.column(name) if name in others else pa.array(sky.columns[name][at])
            for name in returned
        }
    )


def _rest_of_rows(
    part: _Partition, copy: RowCopy | None, at: np.ndarray, columns: list[str], threads: bool
) -> _Picked | pa.Table:
    """Columns ``columns`` of the kept rows ``at`` (ascending) of a partition: whole
    records from the row copy when they cost less to copy than the column chunks to
    decode (a few rows of many columns), else those columns decoded only from the row
    groups holding a kept row (many rows of a few columns: `CHUNK_COST_BYTES`)."""
    from dpzero.catalog._local import _HANDLES

    part.footer()
    assert part.rg_start is not None and part.rg_rows is not None
    # ``at`` ascends, so each row group holding kept rows is one run of ``group_of``.
    group_of = np.searchsorted(part.rg_start, at, side="right") - 1
    first_of_run = np.empty(at.size, dtype=bool)
    first_of_run[0] = True
    np.not_equal(group_of[1:], group_of[:-1], out=first_of_run[1:])
    hit = group_of[first_of_run]
    if copy is not None and at.size * copy.row_bytes <= hit.size * len(columns) * CHUNK_COST_BYTES:
        return _Picked(copy, copy.pick(at))
    hit_starts = np.concatenate([[0], np.cumsum(part.rg_rows[hit])[:-1]])
    within = at - part.rg_start[group_of] + hit_starts[np.cumsum(first_of_run) - 1]
    # One or two row groups (a small cone, an id) decode faster in one thread.
    decoded = _HANDLES.read(part, hit.tolist(), columns, use_threads=threads and hit.size > 2)
    return _rows_at(decoded, within)


def _partition_rows(
    store: LocalCatalogStore,
    table: _Table,
    read: _Read,
    selection: Selection,
    narrow: list[str],
    wide: list[str],
    ranges: np.ndarray | None,
    ids: pa.Array | None,
    left: int | None,
    threads: bool = True,
) -> pa.Table | _Picked | None:
    """The selected rows of one partition (stored column names); ``ranges``, if given,
    are the region's cells, and rows outside them are left out; ``threads``: pyarrow
    may decode columns in several threads."""

    part, groups = read.part, read.groups
    returned = {stored for _, stored, _ in selection.outputs}
    narrow_returned = [name for name in narrow if name in returned]
    copy = table.row_copy(part)
    if read.rows is not None and copy is not None:
        # The index gave the rows: everything comes from the row copy, no column chunk.
        picked = copy.pick(read.rows)
        first = pa.table(copy.columns([picked], narrow))
        in_region = None
        if ranges is not None:
            in_region = rows_in_ranges(ranges, first.column(HEALPIX_COLUMN).to_numpy())
        keep = _keep(store, first, selection, in_region, None, table.entry.key_column, left)
        if keep.size == 0:
            return None
        return _Picked(copy, picked[keep])
    first = _read_groups(part, groups, narrow, None if copy is None else copy.sky, threads)
    in_region = None
    if ranges is not None:
        in_region = _region_rows(part, groups, ranges, first.column(HEALPIX_COLUMN).to_numpy())
    keep = _keep(store, first, selection, in_region, ids, table.entry.key_column, left)
    if keep.size == 0:
        return None
    if not wide:
        return _rows_at(first.select(narrow_returned), keep)
    part.footer()
    assert part.rg_rows is not None and part.rg_start is not None
    # The kept rows' places in the partition (``keep`` counts the read groups' rows).
    read_starts = part.rg_start[np.asarray(groups)]
    sizes = part.rg_rows[np.asarray(groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    which = np.searchsorted(starts, keep, side="right") - 1  # sorted, as keep
    rest = _rest_of_rows(part, copy, read_starts[which] + keep - starts[which], wide, threads)
    if isinstance(rest, _Picked):
        return rest
    columns = {name: first.column(name).take(keep) for name in narrow_returned}
    for name in wide:
        columns[name] = rest.column(name)
    return pa.table(columns)


def _read_groups(
    part: _Partition, groups: list[int], columns: list[str], sky: SkyColumns | None, threads: bool
) -> pa.Table:
    """Columns of row groups ``groups`` (ascending) of a partition: those the sky columns
    hold sliced from them, the others decoded (positions are float64 split by byte
    streams: a fifth of a wide cone's decoding)."""
    from dpzero.catalog._local import _HANDLES

    from_sky = [] if sky is None else [name for name in columns if name in sky.names]
    if not from_sky:
        return _HANDLES.read(part, groups, columns, use_threads=threads and len(groups) > 2)
    decoded = [name for name in columns if name not in from_sky]
    read = _HANDLES.read(part, groups, decoded, use_threads=threads and len(groups) > 2)
    part.footer()
    assert sky is not None and part.rg_start is not None and part.rg_rows is not None
    at = np.asarray(groups)
    starts, ends = part.rg_start[at], part.rg_start[at] + part.rg_rows[at]
    # Adjacent groups as one slice (a region's groups mostly follow each other).
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    spans = list(zip(starts[np.r_[0, breaks]], ends[np.r_[breaks - 1, at.size - 1]], strict=True))
    sliced = {}
    for name in from_sky:
        values = sky.columns[name]
        pieces = [values[a:b] for a, b in spans]
        sliced[name] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    got = {name: sliced[name] if name in sliced else read.column(name) for name in columns}
    return pa.table(got)


def _rows_at(rows: pa.Table, at: np.ndarray) -> pa.Table:
    """The rows at the sorted positions ``at``: a filter when they are many (cheaper
    than a take per column)."""
    if at.size * 8 < rows.num_rows:
        return rows.take(pa.array(at))
    mask = np.zeros(rows.num_rows, dtype=bool)
    mask[at] = True
    return rows.filter(pa.array(mask))


def _region_rows(
    part: _Partition, groups: list[int], ranges: np.ndarray, hp29: np.ndarray
) -> np.ndarray | None:
    """Which rows of ``groups`` lie in the region's cells (None: all of them). Rows of a
    group whose cells all lie in one range are in without a look (most groups of a
    wide cone)."""
    _, rg_lo, rg_hi = part.footer()
    assert part.rg_rows is not None
    inside = contained(ranges, rg_lo[groups], rg_hi[groups])
    if inside.all():
        return None
    if not inside.any():
        return rows_in_ranges(ranges, hp29)
    ends = np.cumsum(part.rg_rows[groups])
    starts = ends - part.rg_rows[groups]
    mask = np.ones(hp29.size, dtype=bool)
    for i in np.flatnonzero(~inside):
        mask[starts[i] : ends[i]] = rows_in_ranges(ranges, hp29[starts[i] : ends[i]])
    return mask


class _PageCache:
    """Whether point lookups find their pages in memory, as the last lookup tells.

    Asking for every page of a lookup ahead (`dpzero.catalog._rows.ReadAhead`) makes a
    cold lookup's ~40 reads go side by side, but costs ~1.5 µs a page when they are in
    memory (~0.1 ms of a ~0.3 ms lookup). A lookup that waited for the disk is slower by
    milliseconds: the next one reads ahead, and a fast one turns that off again.
    """

    SLOW_S = 0.0005

    def __init__(self) -> None:
        self.cold = False

    def saw(self, seconds: float) -> None:
        """A lookup took ``seconds``."""
        self.cold = seconds > self.SLOW_S


_PAGE_CACHE = _PageCache()


def _id_records(table: _Table, ids: Iterable[int]) -> list[_Picked] | None:
    """The row-copy records of ``ids`` (None when a partition has no row copy): an id
    list alone needs neither footers nor row groups."""
    index = table.index()
    if index is None:
        return None
    started = time.perf_counter()
    cold = _PAGE_CACHE.cold
    parts, rows = index.find(ids, read_ahead=cold)
    if not parts.size:
        return []
    copies = table.indexed_copies()
    held = [copies[part] for part in parts.tolist()]  # each record's row copy
    if any(copy is None for copy in held):
        return None
    found = cast(list[RowCopy], held)
    listed = rows.tolist()
    if cold:  # every record's pages read side by side
        for copy, row in zip(found, listed, strict=True):
            copy.read_ahead.rows([row], [row])
    dtype = found[0].dtype
    if len(found) <= _FEW_IDS and all(copy.dtype is dtype for copy in found):
        # A dozen ids lie in a dozen partitions: copied record by record into one piece
        # (a fancy index per partition and a join of them cost three times as much).
        out = np.empty((len(found), dtype.itemsize), dtype=np.uint8)
        for i, (copy, row) in enumerate(zip(found, listed, strict=True)):
            out[i] = copy.raw[row]
        picked = [_Picked(found[0], Records(dtype, out))]
    else:
        cuts = [0, *(np.flatnonzero(np.diff(parts)) + 1).tolist(), len(parts)]
        picked = [
            _Picked(found[start], found[start].pick(rows[start:end]))
            for start, end in itertools.pairwise(cuts)
        ]
    _PAGE_CACHE.saw(time.perf_counter() - started)
    return picked


def _limited(pieces: list[_Picked], most: int | None) -> Iterator[_Picked]:
    """The pieces' first ``most`` rows."""
    left = most
    for piece in pieces:
        if left is not None:
            if left <= 0:
                return
            piece = piece.slice(0, left)
            left -= piece.num_rows
        yield piece


def _only_ids(selection: Selection, key: str | None) -> bool:
    """Whether the selection's WHERE is its id list alone (every row the index gives is
    kept)."""
    ids = selection.scan.ids
    if ids is None or selection.residual or key is None:
        return False
    return all(
        isinstance(test, InTest) and test.column == key and set(ids) <= set(test.values)
        for test in selection.tests
    )


def _keep(
    store: LocalCatalogStore,
    first: pa.Table,
    selection: Selection,
    in_region: np.ndarray | None,
    ids: pa.Array | None,
    key: str | None,
    left: int | None,
) -> np.ndarray:
    """Positions of the rows of ``first`` (the WHERE columns) the selection keeps:
    ``in_region`` masks the rows in the region's cells (None: all), ``ids`` the ids."""
    n = first.num_rows
    candidate = in_region
    if ids is not None and key is not None:
        hit = np.asarray(pc.is_in(first.column(key), value_set=ids))
        candidate = hit if candidate is None else candidate & hit
    # The tests run on the candidate rows only (a cone's cells leave out most others).
    rows = None if candidate is None or candidate.all() else np.flatnonzero(candidate)
    count = n if rows is None else rows.size
    values = {}
    unknown = False
    for name in {c for t in selection.tests for c in t.columns}:
        column = first.column(name)
        unknown |= column.null_count > 0  # nulls: DuckDB decides every candidate row
        values[name] = _numbers(column) if rows is None else _numbers(column)[rows]
    sure = np.full(count, not unknown)
    possible = np.ones(count, dtype=bool)
    for test in selection.tests:
        yes, maybe = test.decide(values)
        sure &= yes & ~maybe
        possible &= yes | maybe | unknown

    def positions(mask: np.ndarray) -> np.ndarray:
        found = np.flatnonzero(mask)
        return found if rows is None else rows[found]

    if selection.residual:
        # Conditions numpy does not decide: the whole WHERE clause, in DuckDB, on the
        # rows the tests did not rule out.
        keep = _decide_in_duckdb(store, first, positions(possible), selection)
    else:
        keep = positions(sure)
        undecided = possible & ~sure
        if undecided.any():  # on a limit within rounding: as DuckDB rounds
            more = _decide_in_duckdb(store, first, positions(undecided), selection)
            keep = np.union1d(keep, more)
    return keep if left is None else keep[:left]


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column's values for the numpy tests: float64 for floating point, else as stored."""
    values = column.to_numpy()
    if values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return values


def _decide_in_duckdb(
    store: LocalCatalogStore, rows: pa.Table, ask: np.ndarray, selection: Selection
) -> np.ndarray:
    """Which of the rows ``ask`` satisfy the whole WHERE clause (DuckDB on those rows)."""
    from dpzero.catalog._local import _execute

    if ask.size == 0:
        return ask
    columns = {name: rows.column(name).take(ask) for name in selection.where_columns}
    columns[ROW_COLUMN] = pa.array(ask, type=pa.int64())
    cur = store._cursor()
    try:
        cur.register("__narrow", pa.table(columns))
        kept = _execute(cur, selection.where_sql())
    finally:
        cur.close()
    return np.sort(kept.column(0).to_numpy())


def _output(
    rows: pa.Table | Mapping[str, pa.Array | pa.ChunkedArray],
    selection: Selection,
    schema: pa.Schema,
    nan_as_null: Container[str],
) -> pa.Table:
    """Stored columns as the result: renamed, NaN as NULL in floating-point columns
    named in ``nan_as_null``."""
    arrays = []
    for _, stored, _ in selection.outputs:
        column = rows[stored]
        if stored in nan_as_null and column.type in (pa.float32(), pa.float64()):
            column = _nan_as_null(column)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def _chunk_nan_as_null(chunk: pa.Array) -> pa.Array:
    """One chunk's NaN made NULL: a validity bitmap over the same values (pyarrow's
    ``if_else`` copied them; a 0.5° cone's two magnitude-like columns: ~4 → ~1 ms)."""
    values = chunk.to_numpy(zero_copy_only=False)  # NULL reads as NaN: stays NULL
    valid = ~np.isnan(values)
    if valid.all():
        return chunk
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = int(valid.size - np.count_nonzero(valid))
    return pa.Array.from_buffers(chunk.type, len(values), [bitmap, pa.py_buffer(values)], nulls)


def _nan_as_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """NaN made NULL. A few rows: one numpy pass, whatever the chunks (a third of the
    cost of pyarrow.compute calls on a small cone's rows, 137 columns at once); many
    rows: chunk by chunk (numpy would first join the chunks)."""
    if len(column) > 10_000:
        originals = column.chunks  # new wrapper objects at each access: kept once
        chunks = [_chunk_nan_as_null(c) for c in originals]
        if all(new is old for new, old in zip(chunks, originals, strict=True)):
            return column
        return pa.chunked_array(chunks, column.type)
    values = column.to_numpy()  # NULL reads as NaN: stays NULL
    mask = np.isnan(values)
    if not mask.any():
        return column
    return pa.chunked_array([pa.array(values, type=column.type, mask=mask)])
