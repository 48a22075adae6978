"""Felis schemas from the ``lsst-sdm-schemas`` package, as dpzero column specs."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import cache

import pyarrow as pa
import yaml
from felis.datamodel import Schema

from dpzero.errors import InvalidInputError

__all__ = [
    "KNOWN_SCHEMAS",
    "ColumnSpec",
    "SchemaSpec",
    "TableSpec",
    "load_schema",
]

# Where each release's schema lives inside lsst-sdm-schemas. DP0.1 is archived;
# DP0.2's is still at the top level of the package.
KNOWN_SCHEMAS: dict[str, str] = {
    "dp01_dc2": "archive/dp01_dc2.yaml",
    "dp02_dc2": "dp02_dc2.yaml",
    "dp02_obscore": "dp02_obscore.yaml",
}

# Felis datatypes → Arrow types. Felis "char" is a fixed-width string in SQL; Arrow
# strings are variable-length and the width is kept in `ColumnSpec.length`.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "byte": pa.int8(),
    "short": pa.int16(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "char": pa.string(),
    "string": pa.string(),
    "unicode": pa.string(),
    "text": pa.string(),
    "binary": pa.binary(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a catalog table, as the schema defines it."""

    name: str
    datatype: str
    arrow_type: pa.DataType
    nullable: bool
    description: str
    unit: str
    ucd: str
    length: int | None
    principal: bool
    column_index: int | None
    utype: str = ""

    def arrow_field(self) -> pa.Field:
        """Arrow field carrying the schema's description, unit and UCD as metadata."""
        metadata = {
            b"description": self.description.encode(),
            b"unit": self.unit.encode(),
            b"ucd": self.ucd.encode(),
            b"datatype": self.datatype.encode(),
        }
        return pa.field(self.name, self.arrow_type, nullable=self.nullable, metadata=metadata)


@dataclass(frozen=True)
class TableSpec:
    """One table: its columns in schema order and its primary key."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        """Column names in schema order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``.

        Raises
        ------
        KeyError
            If the table has no such column.
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of the table, with per-column metadata."""
        return pa.schema([c.arrow_field() for c in self.columns])


@dataclass(frozen=True)
class SchemaSpec:
    """A whole schema (one TAP schema / catalog database)."""

    name: str
    key: str
    description: str
    version: str
    tables: tuple[TableSpec, ...]

    def table(self, name: str) -> TableSpec:
        """The table called ``name``.

        Raises
        ------
        KeyError
            If the schema has no such table.
        """
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"schema {self.name} has no table {name}")


def _sdm_schemas_version() -> str:
    from importlib.metadata import version

    return version("lsst-sdm-schemas")


@cache
def load_schema(key: str) -> SchemaSpec:
    """Read one of the released schemas with Felis.

    Parameters
    ----------
    key
        ``dp01_dc2`` or ``dp02_dc2`` (see `KNOWN_SCHEMAS`).

    Raises
    ------
    InvalidInputError
        If ``key`` names no known schema.
    """
    try:
        resource = KNOWN_SCHEMAS[key]
    except KeyError:
        known = ", ".join(sorted(KNOWN_SCHEMAS))
        raise InvalidInputError(f"unknown schema {key!r}; known schemas: {known}") from None
    text = importlib.resources.files("lsst.sdm.schemas").joinpath(resource).read_text()
    # libyaml's loader reads the 1 MB DP0.2 schema in a fraction of the pure-Python time.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schema = Schema.model_validate(yaml.load(text, Loader=loader))
    tables = []
    for table in schema.tables:
        columns = tuple(
            ColumnSpec(
                name=c.name,
                datatype=str(c.datatype.value if hasattr(c.datatype, "value") else c.datatype),
                arrow_type=_ARROW_TYPES[str(getattr(c.datatype, "value", c.datatype))],
                nullable=c.nullable if c.nullable is not None else True,
                description=(c.description or "").strip(),
                unit=c.ivoa_unit or c.fits_tunit or "",
                ucd=c.ivoa_ucd or "",
                length=c.length,
                principal=bool(c.tap_principal),
                column_index=c.tap_column_index,
                utype=c.votable_utype or "",
            )
            for c in table.columns
        )
        pk = table.primary_key
        if pk is None:
            primary: tuple[str, ...] = ()
        else:
            ids = pk if isinstance(pk, list) else [pk]
            by_id = {c.id: c.name for c in table.columns}
            primary = tuple(by_id.get(i, i) for i in ids)
        tables.append(
            TableSpec(
                name=table.name,
                description=(table.description or "").strip(),
                columns=columns,
                primary_key=primary,
            )
        )
    return SchemaSpec(
        name=schema.name,
        key=key,
        description=(schema.description or "").strip(),
        version=_sdm_schemas_version(),
        tables=tuple(tables),
    )
