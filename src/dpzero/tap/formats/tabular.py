"""CSV, TSV and Parquet result writers, streaming batch by batch."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dpzero.tap.formats._columns import ResultColumn

__all__ = ["delimited_stream", "parquet_stream"]


class _Chunks(io.RawIOBase):
    """A write-only file that hands over what was written since the last call."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Batch with timestamps as ISO strings (text formats)."""
    arrays = []
    for array in batch.columns:
        if pa.types.is_timestamp(array.type):
            array = pa.compute.strftime(array, format="%Y-%m-%dT%H:%M:%S.%f")
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def delimited_stream(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, delimiter: str = ","
) -> Iterator[bytes]:
    """CSV (or TSV) with a header line; nulls are empty fields."""
    sink = _Chunks()
    writer = None
    options = pacsv.WriteOptions(include_header=True, delimiter=delimiter, quoting_style="needed")
    for batch in batches:
        batch = _plain(batch)
        if writer is None:
            writer = pacsv.CSVWriter(sink, batch.schema, write_options=options)
        writer.write_batch(batch)
        yield sink.take()
    if writer is None:
        yield (delimiter.join(schema.names) + "\n").encode()
        return
    writer.close()
    yield sink.take()


def parquet_stream(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, columns: list[ResultColumn]
) -> Iterator[bytes]:
    """A Parquet file whose fields carry unit, UCD and description as metadata."""
    fields = []
    for field, col in zip(schema, columns, strict=True):
        meta = {
            b"unit": col.unit.encode(),
            b"ucd": col.ucd.encode(),
            b"description": col.description.encode(),
            b"utype": col.utype.encode(),
        }
        fields.append(field.with_metadata(meta))
    out_schema = pa.schema(fields)
    sink = _Chunks()
    writer = pq.ParquetWriter(sink, out_schema, compression="zstd")
    for batch in batches:
        writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=out_schema))
        yield sink.take()
    writer.close()
    yield sink.take()
