"""Result columns: what a client is told about each column of a result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

__all__ = ["ColumnText", "ResultColumn", "columns_for_schema", "votable_datatype"]


class ColumnText(Protocol):
    """What a schema says of a column: the catalog's column metadata is one."""

    @property
    def unit(self) -> str: ...
    @property
    def ucd(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def utype(self) -> str: ...


@dataclass(frozen=True)
class ResultColumn:
    """One result column with its VOTable description.

    Attributes
    ----------
    name
        Column name as the query produced it.
    datatype
        VOTable datatype (``boolean``, ``short``, ``int``, ``long``, ``float``,
        ``double``, ``char``).
    arraysize
        ``"*"`` for variable-length strings, else None.
    unit, ucd, description, utype
        From the schema when the column is a catalog column, else empty.
    xtype
        ``timestamp`` for times, else None.
    """

    name: str
    datatype: str
    arraysize: str | None = None
    unit: str = ""
    ucd: str = ""
    description: str = ""
    xtype: str | None = None
    utype: str = ""


def votable_datatype(arrow_type: pa.DataType) -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of an Arrow type in a VOTable."""
    if pa.types.is_boolean(arrow_type):
        return "boolean", None, None
    if (
        pa.types.is_int8(arrow_type)
        or pa.types.is_int16(arrow_type)
        or pa.types.is_uint8(arrow_type)
    ):
        return "short", None, None
    if pa.types.is_int32(arrow_type) or pa.types.is_uint16(arrow_type):
        return "int", None, None
    if pa.types.is_integer(arrow_type):
        return "long", None, None
    if pa.types.is_float16(arrow_type) or pa.types.is_float32(arrow_type):
        return "float", None, None
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double", None, None
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "char", "*", "timestamp"
    return "char", "*", None


def columns_for_schema(
    schema: pa.Schema, described: Mapping[str, ColumnText] | None = None
) -> list[ResultColumn]:
    """Result columns for an Arrow schema.

    Parameters
    ----------
    schema
        The result's Arrow schema.
    described
        Optional schema text per column name; otherwise taken from the fields'
        metadata (``unit``, ``ucd``, ``description``, ``utype`` keys) when present.
    """
    columns = []
    for field in schema:
        datatype, arraysize, xtype = votable_datatype(field.type)
        text = (described or {}).get(field.name)
        if text is not None:
            unit, ucd, description, utype = text.unit, text.ucd, text.description, text.utype
        else:
            meta = field.metadata or {}
            unit, ucd, description, utype = (
                meta.get(key, b"").decode() for key in (b"unit", b"ucd", b"description", b"utype")
            )
        columns.append(
            ResultColumn(field.name, datatype, arraysize, unit, ucd, description, xtype, utype)
        )
    return columns
