"""Row-major copies of a table's partitions, for queries that return a few whole rows.

A Parquet row group decodes column by column: returning one row of a 137-column table
decodes 137 column chunks of its 4,000-row group (~3 ms), and 12 ids spread over 12
partitions pay that 12 times, where a row store such as PostgreSQL reads 12 tuples.
So next to each partition of a table with an objectId index, ingest writes the same
rows, in the same order, as a numpy structured array (``.npy``: one fixed-width record
per row, strings padded to the partition's longest with their length beside them, a
validity bitmap per record).
Memory-mapped, the rows a query keeps are one fancy index away (~1 ms for 12 rows of
137 columns, Arrow conversion included). The Parquet files stay the store's content;
these copies are only read for the columns a selection returns.

Measured on a medium partition (66,844 rows × 138 columns): 63 MB against the
Parquet's 50 MB (the floats do not compress); Arrow IPC was no faster than Parquet for
this (memory-mapped ``take`` of 12 rows costs 9.8 ms: per-column overhead).
"""

from __future__ import annotations

import functools
import mmap
from collections.abc import Container
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["ROWS_DIR", "RowCopy", "load_mapped", "rows_file", "write_rows"]

ROWS_DIR = "dpzero-rows"
_VALID = "__dpzero_valid"
_MAX_HEADER = 1 << 22


def load_mapped(path: Path, *, scattered: bool = False) -> np.ndarray:
    """A ``.npy`` file of the store, memory-mapped, as a plain array.

    With ``scattered`` the kernel is told reads are random: a fault then reads its page,
    not the 128 kB around it (an index lookup touches one page of megabytes of keys).
    Row copies keep the kernel's read-ahead: a cone's rows lie together.
    """
    # A wide table's record type is a long header (DP0.2's Object: ~30 kB); the file is
    # the store's own, not a foreign upload, so numpy's 10 kB guard is lifted.
    array = np.load(path, mmap_mode="r", allow_pickle=False, max_header_size=_MAX_HEADER)
    mapped = getattr(array, "_mmap", None)
    if scattered and mapped is not None and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    # A plain array over the same mapping (kept alive through its base): numpy.memmap
    # indexes through Python code, ~10 µs a lookup.
    return array.view(np.ndarray)


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


def write_rows(partition: Path, out: Path) -> None:
    """Write the row copy of the Parquet partition ``partition`` to ``out``."""
    table = pq.read_table(partition)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, records, allow_pickle=False)


class RowCopy:
    """A partition's row copy, memory-mapped: `pick` rows, `columns` turns them to Arrow.

    Parameters
    ----------
    path
        The ``.npy`` file `write_rows` wrote.
    schema
        The partition's Arrow schema (the types the columns come back in).
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.records = load_mapped(path)
        self.schema = schema
        self.row_bytes = self.records.dtype.itemsize
        # Per column: its bit in the validity bitmap, how it converts, its Arrow type.
        self._fields: dict[str, tuple[int, str, pa.DataType]] = {}
        for i, field in enumerate(schema):
            kind = "plain"
            if _is_text(field.type) or _is_bytes(field.type):
                kind = "bytes"
            elif pa.types.is_timestamp(field.type) or pa.types.is_date64(field.type):
                kind = "int64"
            elif _same_layout(field.type, self.records.dtype[field.name]):
                kind = "buffer"
            self._fields[field.name] = (i, kind, field.type)

    def pick(self, rows: np.ndarray) -> np.ndarray:
        """The records at positions ``rows`` of the partition (a copy: reads only those)."""
        return self.records[np.asarray(rows, dtype=np.int64)]

    def columns(
        self, picked: list[np.ndarray], names: list[str], nan_as_null: Container[str] = ()
    ) -> dict[str, pa.Array]:
        """Columns ``names`` of records `pick` gave, from any partitions of the table, in
        order; converted once for all (each column conversion has a fixed cost, and a
        query's rows often come from a dozen partitions). Floating-point columns named
        in ``nan_as_null`` come back with NaN as NULL."""
        records = _concatenated(picked)
        valid = np.unpackbits(records[_VALID], axis=1).view(bool)
        all_valid = valid.all(axis=0)
        blocks, has_nan = self._numeric_blocks(records, names)
        out: dict[str, pa.Array] = {}
        for name in names:
            index, kind, arrow_type = self._fields[name]
            values = blocks[name] if name in blocks else records[name]
            mask = None if all_valid[index] else ~valid[:, index]
            if name in nan_as_null and has_nan.get(name, values.dtype.kind == "f"):
                nan = np.isnan(values)
                if nan.any():
                    mask = nan if mask is None else mask | nan
            if kind == "bytes":
                lengths = records[_length_field(name)]
                items = [
                    bytes(v).ljust(n, b"\0")[:n]
                    for v, n in zip(values.tolist(), lengths.tolist(), strict=True)
                ]
                out[name] = pa.array(items, type=pa.binary(), mask=mask).cast(arrow_type)
            elif kind == "int64":
                out[name] = pa.array(values, type=pa.int64(), mask=mask).cast(arrow_type)
            elif kind == "buffer" and mask is None:
                # The block's row is the column's Arrow buffer as it is.
                out[name] = pa.Array.from_buffers(
                    arrow_type, len(values), [None, pa.py_buffer(values)]
                )
            else:
                out[name] = pa.array(values, type=arrow_type, mask=mask)
        return out

    def _numeric_blocks(
        self, records: np.ndarray, names: list[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
        """Numeric columns of one type taken out of the records at once, each a
        contiguous array, and whether each floating-point one holds a NaN (one gather
        and one NaN pass per type instead of one per column: 137 columns cost ~0.3 ms
        less)."""
        raw = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)
        blocks: dict[str, np.ndarray] = {}
        has_nan: dict[str, bool] = {}
        numeric = tuple(name for name in names if self._fields[name][1] == "buffer")
        for dtype, members, at in _numeric_layout(records.dtype, numeric):
            block = np.ascontiguousarray(raw.take(at, axis=1).view(dtype).T)
            nan = np.isnan(block).any(axis=1) if dtype.kind == "f" else None
            for i, name in enumerate(members):
                blocks[name] = block[i]
                if nan is not None:
                    has_nan[name] = bool(nan[i])
        return blocks, has_nan


@functools.lru_cache(maxsize=64)
def _numeric_layout(
    dtype: np.dtype, names: tuple[str, ...]
) -> list[tuple[np.dtype, list[str], np.ndarray]]:
    """Per value type among the numeric columns ``names`` of records of ``dtype``: the
    columns and the byte positions of their values in a record, in order (the same for
    every partition of a table: computed once)."""
    fields = dtype.fields
    assert fields is not None
    by_type: dict[np.dtype, list[str]] = {}
    for name in names:
        by_type.setdefault(fields[name][0], []).append(name)
    return [
        (
            value_type,
            members,
            np.concatenate([fields[m][1] + np.arange(value_type.itemsize) for m in members]),
        )
        for value_type, members in by_type.items()
    ]


def _same_layout(arrow_type: pa.DataType, dtype: np.dtype) -> bool:
    """Whether a numpy array of ``dtype`` is, byte for byte, an Arrow ``arrow_type``
    values buffer (fixed-width integers and floats in native order)."""
    if not (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)):
        return False
    if dtype.kind not in "iuf" or not dtype.isnative:
        return False
    return np.dtype(arrow_type.to_pandas_dtype()) == dtype


def _concatenated(picked: list[np.ndarray]) -> np.ndarray:
    """Records of several partitions as one array."""
    if len(picked) == 1:
        return picked[0]
    dtypes = {r.dtype for r in picked}
    # Partitions pad text to their own longest value: widen to the longest of all.
    common = functools.reduce(np.promote_types, dtypes) if len(dtypes) > 1 else picked[0].dtype
    # As bytes: a structured assignment or concatenate goes field by field.
    same = [r if r.dtype == common else r.astype(common) for r in picked]
    raw = np.concatenate([r.view(np.uint8).reshape(len(r), common.itemsize) for r in same])
    return raw.view(common).reshape(len(raw))
