"""Result formats of the TAP service: VOTable (BINARY2, TABLEDATA), CSV, TSV, Parquet."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from dpzero.errors import InvalidInputError
from dpzero.tap.formats._columns import (
    ColumnText,
    ResultColumn,
    columns_for_schema,
    votable_datatype,
)
from dpzero.tap.formats.tabular import delimited_stream, parquet_stream
from dpzero.tap.formats.votable import votable_error, votable_stream

__all__ = [
    "ColumnText",
    "ResultColumn",
    "ResultFormat",
    "columns_for_schema",
    "parse_format",
    "votable_datatype",
    "votable_error",
    "write_result",
]


@dataclass(frozen=True)
class ResultFormat:
    """A result format: its short name and the media type sent to clients."""

    name: str
    media_type: str
    extension: str


_VOTABLE = ResultFormat("votable", "application/x-votable+xml", "xml")
_TABLEDATA = ResultFormat(
    "votable-tabledata", "application/x-votable+xml;serialization=TABLEDATA", "xml"
)
_CSV = ResultFormat("csv", "text/csv", "csv")
_TSV = ResultFormat("tsv", "text/tab-separated-values", "tsv")
_PARQUET = ResultFormat("parquet", "application/vnd.apache.parquet", "parquet")

# RESPONSEFORMAT values clients send (TAP 1.1 §2.7.1 and common practice), lower-cased.
_ALIASES: dict[str, ResultFormat] = {
    "votable": _VOTABLE,
    "application/x-votable+xml": _VOTABLE,
    "text/xml": _VOTABLE,
    "application/xml": _VOTABLE,
    "votable/b2": _VOTABLE,
    "binary2": _VOTABLE,
    "application/x-votable+xml;serialization=binary2": _VOTABLE,
    "votable/td": _TABLEDATA,
    "tabledata": _TABLEDATA,
    "application/x-votable+xml;serialization=tabledata": _TABLEDATA,
    "csv": _CSV,
    "text/csv": _CSV,
    "text/csv;header=present": _CSV,
    "tsv": _TSV,
    "text/tab-separated-values": _TSV,
    "parquet": _PARQUET,
    "application/vnd.apache.parquet": _PARQUET,
    "application/x-parquet": _PARQUET,
}


def parse_format(value: str | None) -> ResultFormat:
    """The result format a RESPONSEFORMAT/FORMAT value asks for (VOTable by default).

    Raises
    ------
    InvalidInputError
        For a format the service does not produce.
    """
    if value is None or not value.strip():
        return _VOTABLE
    key = value.strip().lower().replace(" ", "")
    try:
        return _ALIASES[key]
    except KeyError:
        known = "votable, votable/td, csv, tsv, parquet"
        raise InvalidInputError(
            f"unsupported RESPONSEFORMAT {value!r}; use one of {known}"
        ) from None


def _plain_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type a result column is sent as: every format takes numbers, booleans,
    strings and timestamps; anything else (geometry lists, decimals, structs) is
    sent as text or double."""
    if pa.types.is_decimal(arrow_type):
        return pa.float64()
    if (
        pa.types.is_boolean(arrow_type)
        or pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_string(arrow_type)
        or pa.types.is_timestamp(arrow_type)
    ):
        return arrow_type
    return pa.string()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        # Geometry values (DALI style): the numbers separated by spaces.
        return " ".join(repr(v) if isinstance(v, float) else str(v) for v in value)
    return str(value)


def _plain_batches(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema
) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    target = pa.schema([f.with_type(_plain_type(f.type)) for f in schema])
    if target.equals(schema):
        return iter(batches), schema

    def convert() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            arrays = []
            for array, field in zip(batch.columns, target, strict=True):
                if array.type == field.type:
                    arrays.append(array)
                elif pa.types.is_string(field.type):
                    arrays.append(pa.array([_text(v) for v in array.to_pylist()], pa.string()))
                else:
                    arrays.append(array.cast(field.type))
            yield pa.RecordBatch.from_arrays(arrays, schema=target)

    return convert(), target


def write_result(
    fmt: ResultFormat,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    columns: list[ResultColumn],
    infos: list[tuple[str, str]] | None = None,
    overflow: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """Encode a result as a stream of bytes in the chosen format."""
    batches, plain = _plain_batches(batches, schema)
    if plain is not schema:
        described = {c.name: c for c in columns}
        columns = columns_for_schema(plain, described)
        schema = plain
    if fmt is _VOTABLE:
        return votable_stream(batches, columns, "binary2", infos, overflow)
    if fmt is _TABLEDATA:
        return votable_stream(batches, columns, "tabledata", infos, overflow)
    if fmt is _CSV:
        return delimited_stream(batches, schema, ",")
    if fmt is _TSV:
        return delimited_stream(batches, schema, "\t")
    return parquet_stream(batches, schema, columns)
