"""Row-major copies of a table's partitions, for queries that return a few whole rows.

A Parquet row group decodes column by column: returning one row of a 137-column table
decodes 137 column chunks of its 4,000-row group (~3 ms), and 12 ids spread over 12
partitions pay that 12 times, where a row store such as PostgreSQL reads 12 tuples.
So next to each partition of a table with an objectId index, ingest writes the same
rows, in the same order, as a numpy structured array (``.npy``: one fixed-width record
per row, strings padded to the partition's longest with their length beside them, a
validity bitmap per record).
Memory-mapped, the rows a query keeps are one fancy index away, and they become Arrow
as one IPC message laid out by a compiled loop (`dpzero.catalog._kernels`): ~50 µs for
12 rows of 137 columns from 12 partitions, pyarrow's reading of the message included,
where building the arrays one by one cost ~1.5 ms (and numpy's vectorised calls ~0.15 ms). The
Parquet files stay the store's content; these copies are only read for the columns a
selection returns.

Measured on a medium partition (66,844 rows × 138 columns): 63 MB against the
Parquet's 50 MB (the floats do not compress); Arrow IPC was no faster than Parquet for
this (memory-mapped ``take`` of 12 rows costs 9.8 ms: per-column overhead).
"""

from __future__ import annotations

import functools
import mmap
import sys
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq

from dpzero.catalog._ipc import BatchHeader, buffer_count
from dpzero.catalog._kernels import BITS, TEXT, VALUES, ipc_message
from dpzero.catalog._partition import HEALPIX_COLUMN

__all__ = [
    "ROWS_DIR",
    "ReadAhead",
    "Records",
    "RowCopy",
    "SkyColumns",
    "load_mapped",
    "rows_file",
    "write_rows",
]

ROWS_DIR = "dpzero-rows"
_VALID = "__dpzero_valid"
_MAX_HEADER = 1 << 22
_RECORD_TYPES: dict[np.dtype, np.dtype] = {}
# Batch layouts, and the schemas of `RowCopy.columns`, kept for every row copy.
_KEPT_LAYOUTS = 256
_LAYOUTS: dict[tuple, _BatchLayout] = {}
_COLUMN_SCHEMAS: dict[tuple[int, tuple[str, ...]], tuple[pa.Schema, pa.Schema]] = {}
# Up to this many records a pick reads page by page (ids, a 5-arcsecond cone).
_FEW_ROWS = 16
# Rows further apart than this are read ahead as separate runs.
_RUN_GAP_ROWS = 64


def load_mapped(path: Path, *, scattered: bool = False, raw: np.dtype | None = None) -> np.ndarray:
    """A ``.npy`` file of the store (or, with ``raw``, a file of records of that type
    and nothing else), memory-mapped, as a plain array.

    With ``scattered`` (always with ``raw``) the kernel is told reads are random: a fault
    then reads its page, not the read-ahead window around it (an index lookup touches
    one page of megabytes of keys).
    """
    if raw is not None:
        count = path.stat().st_size // raw.itemsize
        if count == 0:  # numpy cannot map an empty file
            return np.empty(0, dtype=raw)
        array = np.memmap(path, dtype=raw, mode="r", shape=(count,))
        scattered = True
    else:
        # A wide table's record type is a long header (DP0.2's Object: ~30 kB); the file
        # is the store's own, not a foreign upload, so numpy's 10 kB guard is lifted.
        array = np.load(path, mmap_mode="r", allow_pickle=False, max_header_size=_MAX_HEADER)
    mapped = getattr(array, "_mmap", None)
    if scattered and mapped is not None and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    # A plain array over the same mapping (kept alive through its base): numpy.memmap
    # indexes through Python code, ~10 µs a lookup.
    return array.view(np.ndarray)


class ReadAhead:
    """Asks the kernel to start reading given rows of an array `load_mapped` gave.

    On a cold page cache each fault waits for its own read: a dozen ids read a key page,
    a row-number page and a record each, ~40 reads one after another (~7 ms on the
    medium survey). Asked for all of a step's pages first (``MADV_WILLNEED`` starts the
    reads and returns), the faults then wait for reads already under way side by side.
    Each request costs ~1 µs when the pages are in memory already.
    """

    def __init__(self, array: np.ndarray) -> None:
        mapped = getattr(array.base, "_mmap", None)
        self._mapping: mmap.mmap | None = mapped if hasattr(mmap, "MADV_WILLNEED") else None
        # Where the array starts in the mapping (numpy maps from a page boundary before
        # the data: a header longer than a page does not start the mapping).
        self._start = 0
        if mapped is not None:
            self._start = array.ctypes.data - np.frombuffer(mapped, dtype=np.uint8).ctypes.data
        self._row_bytes = array.strides[0] if array.ndim else array.itemsize

    def rows(self, first: list[int], last: list[int]) -> None:
        """Read ahead rows ``first[i]`` to ``last[i]`` (inclusive) for every i."""
        if self._mapping is None:
            return
        for a, b in zip(first, last, strict=True):
            start = self._start + a * self._row_bytes
            start -= start % mmap.PAGESIZE
            self._mapping.madvise(
                mmap.MADV_WILLNEED, start, self._start + (b + 1) * self._row_bytes - start
            )


def rows_file(collection_dir: Path, order: int, pixel: int) -> Path:
    """Where the row copy of partition (``order``, ``pixel``) of a table version lives."""
    return collection_dir / ROWS_DIR / f"Norder={order}" / f"Npix={pixel}.npy"


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _is_bytes(arrow_type: pa.DataType) -> bool:
    return pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)


def _length_field(name: str) -> str:
    return f"__dpzero_len_{name}"


def _field_values(column: pa.ChunkedArray, items: list[bytes] | None) -> np.ndarray:
    """A column as fixed-width numpy values (nulls filled; the bitmap says which);
    ``items`` are a text or bytes column's values (`_byte_items`)."""
    kind = column.type
    if items is not None:
        width = max((len(b) for b in items), default=1) or 1
        return np.asarray(items, dtype=f"S{width}")
    if pa.types.is_boolean(kind):
        return np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_)
    if pa.types.is_timestamp(kind) or pa.types.is_date64(kind):
        return np.asarray(pc.cast(column, pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
    filled = column.fill_null(0) if column.null_count else column
    return np.asarray(filled.to_numpy(zero_copy_only=False))


def _byte_items(column: pa.ChunkedArray) -> list[bytes]:
    raw = pc.cast(column, pa.binary()) if _is_text(column.type) else column
    return [b or b"" for b in raw.to_pylist()]


def span_positions(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Every position of the half-open spans ``[first[i], last[i])``, in order."""
    counts = last - first
    if counts.size == 0 or counts.max() <= 1:
        return first[counts == 1]
    starts = np.repeat(first - (np.cumsum(counts) - counts), counts)
    return starts + np.arange(int(counts.sum()))


def sky_file(rows: Path) -> Path:
    """Where the sky columns of the row copy ``rows`` (`SkyColumns`) live."""
    return rows.with_name(rows.stem + ".sky.npy")


class SkyColumns:
    """A partition's ``_healpix_29``, RA and Dec as plain contiguous columns, mapped (or
    held in memory, `hold_in_memory`).

    A small cone or polygon needs the positions of the rows in its HEALPix cells, and
    the rows are sorted by ``_healpix_29``: a binary search gives their exact spans and
    the positions are read there, where Parquet decodes whole row groups of them (the
    row groups can then be large, which whole-table scans want). Written as one
    ``(3, rows)`` int64 array, RA and Dec as the bits of their float64 values.
    """

    def __init__(self, path: Path, ra: str, dec: str) -> None:
        self.path = path
        self.names = (HEALPIX_COLUMN, ra, dec)
        self.held = False
        self._use(load_mapped(path))

    def _use(self, array: np.ndarray) -> None:
        """Read the columns from ``array`` (the ``(3, rows)`` file) from now on."""
        self.healpix = array[0]
        positions = array[1:].view(np.float64)
        self.columns = {self.names[0]: self.healpix}
        self.columns.update(zip(self.names[1:], positions, strict=True))
        self.nbytes = array.nbytes

    def hold_in_memory(self) -> None:
        """Copy the columns from the mapped file into this process's memory (read
        whole), as `dpzero.catalog._index.ObjectIndex.hold_in_memory` does the objectId
        index: they are the positional index, and every program's reads share the page
        cache a mapping lives in (a wide cone read them from disk after other programs'
        scans)."""
        if not self.held:
            array = np.load(self.path, allow_pickle=False)
            array.flags.writeable = False  # as mapped
            self._use(array)
            self.held = True

    def rows_in(self, ranges: np.ndarray, most: int | None = None) -> np.ndarray | None:
        """The rows (ascending) whose ``_healpix_29`` lies in one of the half-open sorted
        ``ranges``; None if they are more than ``most``."""
        if self.healpix.size == 0:
            return np.empty(0, dtype=np.int64)
        # Only the ranges that can meet this partition's cells (a wide region has
        # thousands).
        first = np.searchsorted(ranges[:, 1], self.healpix[0], side="right")
        last = np.searchsorted(ranges[:, 0], self.healpix[-1], side="right")
        ranges = ranges[first:last]
        starts = np.searchsorted(self.healpix, ranges[:, 0], side="left")
        ends = np.searchsorted(self.healpix, ranges[:, 1], side="left")
        if most is not None and int((ends - starts).sum()) > most:
            return None
        return span_positions(starts, ends)


def write_sky(table: pa.Table, ra: str, dec: str, out: Path) -> None:
    """Write `SkyColumns` of the sorted partition ``table`` to ``out``."""
    sky = np.empty((3, table.num_rows), dtype=np.int64)
    sky[0] = table.column(HEALPIX_COLUMN).to_numpy()
    positions = sky[1:].view(np.float64)
    positions[0] = table.column(ra).to_numpy()
    positions[1] = table.column(dec).to_numpy()
    np.save(out, sky, allow_pickle=False)


def write_rows(partition: Path, out: Path, sky: tuple[str, str] | None = None) -> None:
    """Write the row copy of the Parquet partition ``partition`` to ``out``, and with
    ``sky`` (its RA and Dec columns) its `SkyColumns` beside when both are float64
    without nulls (otherwise queries decode the positions from Parquet)."""
    table = pq.read_table(partition)
    out.parent.mkdir(parents=True, exist_ok=True)
    if sky is not None and all(
        table.schema.field(name).type == pa.float64() and table.column(name).null_count == 0
        for name in sky
    ):
        write_sky(table, *sky, sky_file(out))
    texts = {
        f.name: _byte_items(table.column(f.name))
        for f in table.schema
        if _is_text(f.type) or _is_bytes(f.type)
    }
    values = [_field_values(table.column(name), texts.get(name)) for name in table.column_names]
    n_valid = (table.num_columns + 7) // 8
    dtype = [(name, v.dtype) for name, v in zip(table.column_names, values, strict=True)]
    # numpy's fixed-width bytes drop trailing NULs: each value's length is kept too.
    dtype += [(_length_field(name), np.int32) for name in texts]
    records = np.empty(table.num_rows, dtype=[*dtype, (_VALID, np.uint8, (n_valid,))])
    for name, v in zip(table.column_names, values, strict=True):
        records[name] = v
    for name, items in texts.items():
        records[_length_field(name)] = [len(b) for b in items]
    valid = np.ones((table.num_rows, n_valid * 8), dtype=bool)
    for i in range(table.num_columns):
        column = table.column(i)
        if column.null_count:
            valid[:, i] = np.asarray(column.is_valid().to_numpy(zero_copy_only=False))
    records[_VALID] = np.packbits(valid, axis=1)
    np.save(out, records, allow_pickle=False)


class RowCopy:
    """A partition's row copy, memory-mapped: `pick` rows, `batch` turns them to Arrow.

    Parameters
    ----------
    path
        The ``.npy`` file `write_rows` wrote.
    schema
        The partition's Arrow schema (the types the columns come back in).
    sky
        The table's RA and Dec columns: their `SkyColumns` (``sky``) are mapped too when
        ingest wrote them.

    Raises
    ------
    ValueError
        If a column's type has no conversion here (the store then reads Parquet).
    """

    def __init__(self, path: Path, schema: pa.Schema, sky: tuple[str, str] | None = None) -> None:
        # Faults read only their page: with the kernel's read-ahead (8 MB on some
        # disks) one id read megabytes of neighbours; `pick` asks for a span ahead.
        records = load_mapped(path, scattered=True)
        self.read_ahead = ReadAhead(records)
        self.schema = schema
        sky_path = sky_file(path)
        self.sky = SkyColumns(sky_path, *sky) if sky is not None and sky_path.is_file() else None
        # One dtype object for equal record types: comparing two equal dtypes of 140
        # fields goes field by field (~30 µs), the same object compares at once.
        self.dtype: np.dtype = _RECORD_TYPES.setdefault(records.dtype, records.dtype)
        self.row_bytes = self.dtype.itemsize
        # Records as rows of bytes: numpy indexes and joins a structured array field by
        # field (~20 µs for one record of 140 fields), rows of bytes at once (~2 µs).
        self.raw = records.view(np.uint8).reshape(len(records), self.row_bytes)
        if sys.byteorder != "little":  # the conversion writes little-endian Arrow
            raise ValueError("row copies are read on little-endian machines only")
        if not _ipc_header_known():
            raise ValueError("this pyarrow writes IPC headers dpzero does not know")
        # Per column: its bit in the validity bitmap and how its values convert.
        self._fields: dict[str, tuple[int, str]] = {}
        for i, field in enumerate(schema):
            self._fields[field.name] = (i, _conversion(field.type, self.dtype[field.name]))

    def pick(self, rows: np.ndarray) -> Records:
        """The records at positions ``rows`` of the partition (a copy: reads only those)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size > _FEW_ROWS:
            # A cone's rows lie together, in a few runs: each run is read ahead in large
            # reads rather than page by page.
            ordered = np.sort(rows)
            cuts = np.flatnonzero(np.diff(ordered) > _RUN_GAP_ROWS) + 1
            firsts = ordered[np.concatenate([[0], cuts])].tolist()
            lasts = ordered[np.concatenate([cuts - 1, [ordered.size - 1]])].tolist()
            self.read_ahead.rows(firsts, lasts)
        return Records(self.dtype, self.raw[rows])

    def batch(
        self,
        picked: list[Records],
        names: tuple[str, ...],
        schema: pa.Schema,
        nan_as_null: frozenset[str] = frozenset(),
    ) -> pa.RecordBatch:
        """Columns ``names`` of records `pick` gave, from any partitions of the table, in
        order, as a batch of ``schema`` (their names in the result, their types);
        converted at once for all (a query's rows often come from a dozen partitions).
        Floating-point columns named in ``nan_as_null`` come back with NaN as NULL."""
        records = _concatenated(picked)
        # Shared by every partition of a table (the layout follows from the record type,
        # the columns and the result schema), by the schema's identity: hashing a wide
        # schema costs ~150 µs; the layout holds the schema, so its id is not reused
        # while the layout is kept.
        key = (records.dtype, names, id(schema), nan_as_null)
        layout = _LAYOUTS.get(key)
        if layout is None or layout.header.schema is not schema:
            if len(_LAYOUTS) >= _KEPT_LAYOUTS:
                _LAYOUTS.clear()
            layout = _BatchLayout.of(records.dtype, self._fields, names, schema, nan_as_null)
            _LAYOUTS[key] = layout
        return layout.batch(records.rows)

    def columns(
        self, picked: list[Records], names: list[str], nan_as_null: Container[str] = ()
    ) -> dict[str, pa.Array]:
        """`batch` as columns by stored name."""
        if not names:
            return {}
        # One schema object per table schema and columns (the layouts are kept by it).
        key = (id(self.schema), tuple(names))
        kept = _COLUMN_SCHEMAS.get(key)
        if kept is None or kept[0] is not self.schema:
            if len(_COLUMN_SCHEMAS) >= _KEPT_LAYOUTS:
                _COLUMN_SCHEMAS.clear()
            kept = (self.schema, pa.schema([self.schema.field(name) for name in names]))
            _COLUMN_SCHEMAS[key] = kept
        nan = frozenset(name for name in names if name in nan_as_null)
        batch = self.batch(picked, key[1], kept[1], nan)
        return dict(zip(names, batch.columns, strict=True))


@dataclass(frozen=True)
class Records:
    """Records of a row copy as rows of bytes (``rows``: uint8, one row per record)."""

    dtype: np.dtype
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, at: slice | np.ndarray) -> Records:
        return Records(self.dtype, self.rows[at])


@functools.cache
def _ipc_header_known() -> bool:
    """Whether pyarrow's IPC header has the layout `BatchHeader` rewrites, for every type
    a row copy converts (checked once: a pyarrow writing another layout makes the store
    read Parquet instead of row copies, rather than fail queries)."""
    kinds = [pa.int8(), pa.uint64(), pa.float16(), pa.float64(), pa.bool_(), pa.string()]
    kinds += [pa.large_binary(), pa.timestamp("us", tz="UTC")]
    schema = pa.schema([pa.field(f"c{i}", kind) for i, kind in enumerate(kinds)])
    return BatchHeader.of(schema) is not None


def _conversion(arrow_type: pa.DataType, dtype: np.dtype) -> str:
    """How a column's record values become Arrow: ``values`` (the values buffer as it
    is), ``bits`` (booleans packed), ``bytes`` (padded text with its lengths)."""
    if _is_text(arrow_type) or _is_bytes(arrow_type):
        return "bytes"
    if pa.types.is_boolean(arrow_type) and dtype == np.bool_:
        return "bits"
    width = buffer_count(arrow_type) == 2 and arrow_type.bit_width // 8
    if width and dtype.kind in "iuf" and dtype.isnative and dtype.itemsize == width:
        return "values"  # numbers, and timestamps as their int64
    raise ValueError(f"no row copy conversion for {arrow_type} stored as {dtype}")


@dataclass(frozen=True)
class _BatchLayout:
    """Where one kind of batch's columns lie in the records, and how each converts: the
    arguments of `dpzero.catalog._kernels.ipc_message`, per column in the batch's order."""

    header: BatchHeader
    valid_at: int
    columns: np.ndarray

    @classmethod
    def of(
        cls,
        dtype: np.dtype,
        fields: dict[str, tuple[int, str]],
        names: list[str],
        schema: pa.Schema,
        nan: Container[str],
    ) -> _BatchLayout:
        """The layout of batches of columns ``names`` of records of ``dtype`` as
        ``schema``, NaN as NULL in the floating-point columns ``nan`` names."""
        header = BatchHeader.of(schema)
        if header is None:
            raise ValueError(f"no IPC header for {schema}")
        offsets = dtype.fields
        assert offsets is not None
        kinds, sources, widths, length_sources, nan_widths = [], [], [], [], []
        for i, name in enumerate(names):
            value_type, at = offsets[name][0], offsets[name][1]
            kind = fields[name][1]
            sources.append(at)
            length_sources.append(0)
            nan_widths.append(0)
            if kind == "values":
                kinds.append(VALUES)
                widths.append(value_type.itemsize)
                if value_type.kind == "f" and name in nan:
                    nan_widths[-1] = value_type.itemsize
            elif kind == "bits":
                kinds.append(BITS)
                widths.append(1)
            else:
                arrow_type = schema[i].type
                large = pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type)
                kinds.append(TEXT)
                widths.append(8 if large else 4)  # the offsets' width
                length_sources[-1] = offsets[_length_field(name)][1]

        valid_bits = [fields[name][0] for name in names]
        columns = [kinds, sources, widths, length_sources, valid_bits, nan_widths]
        return cls(
            header=header,
            valid_at=int(offsets[_VALID][1]),
            columns=np.ascontiguousarray(np.asarray(columns, dtype=np.int64).T),
        )

    def batch(self, raw: np.ndarray) -> pa.RecordBatch:
        """The batch of the records ``raw`` (rows of bytes)."""
        message = ipc_message(
            np.ascontiguousarray(raw),
            self.header.template,
            self.header.numbers_at,
            self.valid_at,
            self.columns,
        )
        return pyarrow.ipc.read_record_batch(pa.py_buffer(message), self.header.schema)


def _concatenated(picked: list[Records]) -> Records:
    """Records of several partitions as one array."""
    if len(picked) == 1:
        return picked[0]
    dtypes = {r.dtype for r in picked}
    if len(dtypes) == 1:
        return Records(picked[0].dtype, np.concatenate([r.rows for r in picked]))
    # Partitions pad text to their own longest value: widen to the longest of all.
    common = functools.reduce(np.promote_types, dtypes)
    rows = [
        r.rows
        if r.dtype == common
        else r.rows.view(r.dtype).reshape(len(r)).astype(common).view(np.uint8)
        for r in picked
    ]
    return Records(common, np.concatenate([r.reshape(-1, common.itemsize) for r in rows]))
