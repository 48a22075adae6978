"""TAP_SCHEMA (TAP 1.1 §4): the service's self-description, as queryable tables.

Built from the catalog store's Felis metadata, plus TAP_SCHEMA's own five tables, so a
client sees every table and column with its description, unit and UCD, and the
foreign keys that tie DP0.1's tables to ``object`` by objectId.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from dpzero.catalog import TableMetadata
from dpzero.tap.formats import votable_datatype

__all__ = ["TAP_SCHEMA_NAME", "TapSchema", "arrow_type_of", "build_tap_schema"]

TAP_SCHEMA_NAME = "tap_schema"

# (table, column, datatype, description) of TAP_SCHEMA itself.
_SELF: dict[str, list[tuple[str, str, str]]] = {
    "schemas": [
        ("schema_name", "char", "schema name for reference to tap_schema.tables"),
        ("utype", "char", "lists the utypes of schemas in the tableset"),
        ("description", "char", "describes schemas in the tableset"),
        ("schema_index", "int", "recommended sort order when listing schemas"),
    ],
    "tables": [
        ("schema_name", "char", "the schema this table belongs to"),
        ("table_name", "char", "the fully qualified table name"),
        ("table_type", "char", "one of: table view"),
        ("utype", "char", "lists the utype of tables in the tableset"),
        ("description", "char", "describes tables in the tableset"),
        ("table_index", "int", "recommended sort order when listing tables"),
    ],
    "columns": [
        ("table_name", "char", "the table this column belongs to"),
        ("column_name", "char", "the column name"),
        ("utype", "char", "lists the utypes of columns in the tableset"),
        ("ucd", "char", "lists the UCDs of columns in the tableset"),
        ("unit", "char", "lists the unit used for column values in the tableset"),
        ("description", "char", "describes the columns in the tableset"),
        ("datatype", "char", "lists the ADQL datatype of columns in the tableset"),
        ("arraysize", "char", "lists the size of variable-length columns in the tableset"),
        ("xtype", "char", "a DALI or custom extended type annotation"),
        ("size", "int", "deprecated: use arraysize"),
        ("principal", "int", "a principal column; 1 means 1, 0 means 0"),
        ("indexed", "int", "an indexed column; 1 means 1, 0 means 0"),
        ("std", "int", "a standard column; 1 means 1, 0 means 0"),
        ("column_index", "int", "recommended sort order when listing columns of a table"),
    ],
    "keys": [
        ("key_id", "char", "unique key to join to tap_schema.key_columns"),
        ("from_table", "char", "the table with the foreign key"),
        ("target_table", "char", "the table with the primary key"),
        ("utype", "char", "lists the utype of keys in the tableset"),
        ("description", "char", "describes keys in the tableset"),
    ],
    "key_columns": [
        ("key_id", "char", "key to join to tap_schema.keys"),
        ("from_column", "char", "column in the from_table"),
        ("target_column", "char", "column in the target_table"),
    ],
}

_ARROW = {"char": pa.string(), "int": pa.int32()}

# Foreign keys of the catalog schemas: (database, from table, from column, target table,
# target column). DP0.1's tables all hang off object by objectId.
_FOREIGN_KEYS = (
    ("dp01_dc2_catalogs", "truth_match", "match_objectId", "object", "objectId"),
    ("dp01_dc2_catalogs", "position", "objectId", "object", "objectId"),
    ("dp01_dc2_catalogs", "reference", "objectId", "object", "objectId"),
    ("dp01_dc2_catalogs", "forced_photometry", "objectId", "object", "objectId"),
    ("dp02_dc2_catalogs", "Source", "objectId", "Object", "objectId"),
    ("dp02_dc2_catalogs", "ForcedSource", "objectId", "Object", "objectId"),
    ("dp02_dc2_catalogs", "Source", "ccdVisitId", "CcdVisit", "ccdVisitId"),
    ("dp02_dc2_catalogs", "ForcedSource", "ccdVisitId", "CcdVisit", "ccdVisitId"),
    ("dp02_dc2_catalogs", "CcdVisit", "visitId", "Visit", "visit"),
)


@dataclass(frozen=True)
class TapSchema:
    """The five TAP_SCHEMA tables, keyed by bare table name."""

    tables: dict[str, pa.Table]

    def qualified(self) -> dict[str, pa.Table]:
        """Tables keyed ``tap_schema.<name>``."""
        return {f"{TAP_SCHEMA_NAME}.{k}": v for k, v in self.tables.items()}

    @staticmethod
    def self_description() -> dict[str, list[tuple[str, str, str]]]:
        """(column, datatype, description) of each TAP_SCHEMA table."""
        return _SELF


def _arrow_table(name: str, rows: list[dict[str, object]]) -> pa.Table:
    schema = pa.schema([(c, _ARROW[t]) for c, t, _ in _SELF[name]])
    return pa.Table.from_pylist(rows, schema=schema)


_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=([^\]]+))?\]")


def arrow_type_of(text: str) -> pa.DataType:
    """The Arrow type written as ``text`` in table metadata (``str(type)``).

    `pyarrow.type_for_alias` knows the plain names but not parametrised timestamps
    (``timestamp[us, tz=utc]``, DP0.2's time columns).
    """
    if m := _TIMESTAMP.fullmatch(text):
        return pa.timestamp(m.group(1), tz=m.group(2))
    return pa.type_for_alias(text)


def build_tap_schema(
    catalog_tables: Sequence[TableMetadata], schema_descriptions: dict[str, str]
) -> TapSchema:
    """TAP_SCHEMA describing the catalog tables and itself.

    Parameters
    ----------
    catalog_tables
        Every table the service publishes.
    schema_descriptions
        Description of each database (TAP schema).
    """
    databases = sorted({t.database for t in catalog_tables})
    schemas = [
        {
            "schema_name": db,
            "utype": None,
            "description": schema_descriptions.get(db, ""),
            "schema_index": i,
        }
        for i, db in enumerate(databases)
    ]
    schemas.append(
        {
            "schema_name": TAP_SCHEMA_NAME,
            "utype": None,
            "description": "A TAP-standard-mandated schema to describe tablesets"
            " in a TAP 1.1 service",
            "schema_index": 100000,
        }
    )
    tables: list[dict[str, object]] = []
    columns: list[dict[str, object]] = []
    for index, meta in enumerate(sorted(catalog_tables, key=lambda t: (t.database, t.table))):
        qualified = f"{meta.database}.{meta.table}"
        tables.append(
            {
                "schema_name": meta.database,
                "table_name": qualified,
                "table_type": "table",
                "utype": None,
                "description": meta.description,
                "table_index": index,
            }
        )
        for position, col in enumerate(meta.columns):
            datatype, arraysize, xtype = votable_datatype(arrow_type_of(col.arrow_type))
            key_columns = {meta.key_column, meta.ra_column, meta.dec_column}
            columns.append(
                {
                    "table_name": qualified,
                    "column_name": col.name,
                    "utype": col.utype or None,
                    "ucd": col.ucd or None,
                    "unit": col.unit or None,
                    "description": col.description,
                    "datatype": datatype,
                    "arraysize": str(col.length) + "*" if col.length and arraysize else arraysize,
                    "xtype": xtype,
                    "size": col.length,
                    "principal": int(col.principal),
                    "indexed": int(col.name in key_columns),
                    "std": 0,
                    "column_index": col.column_index
                    if col.column_index not in (None, 999)
                    else 1000 + position,
                }
            )
    for index, (name, cols) in enumerate(_SELF.items()):
        qualified = f"{TAP_SCHEMA_NAME}.{name}"
        tables.append(
            {
                "schema_name": TAP_SCHEMA_NAME,
                "table_name": qualified,
                "table_type": "table",
                "utype": None,
                "description": f"TAP_SCHEMA {name}",
                "table_index": 100000 + index,
            }
        )
        for position, (col, datatype, description) in enumerate(cols):
            columns.append(
                {
                    "table_name": qualified,
                    "column_name": col,
                    "utype": None,
                    "ucd": None,
                    "unit": None,
                    "description": description,
                    "datatype": datatype,
                    "arraysize": "*" if datatype == "char" else None,
                    "xtype": None,
                    "size": None,
                    "principal": 1,
                    "indexed": 0,
                    "std": 1,
                    "column_index": position + 1,
                }
            )
    published = {(t.database, t.table) for t in catalog_tables}
    keys, key_columns = [], []
    for db, source, column, target, target_column in _FOREIGN_KEYS:
        if (db, source) in published and (db, target) in published:
            key_id = f"{db}.{source}.{column}"
            keys.append(
                {
                    "key_id": key_id,
                    "from_table": f"{db}.{source}",
                    "target_table": f"{db}.{target}",
                    "utype": None,
                    "description": f"{source}.{column} refers to {target}.{target_column}",
                }
            )
            key_columns.append(
                {"key_id": key_id, "from_column": column, "target_column": target_column}
            )
    return TapSchema(
        {
            "schemas": _arrow_table("schemas", schemas),
            "tables": _arrow_table("tables", tables),
            "columns": _arrow_table("columns", columns),
            "keys": _arrow_table("keys", keys),
            "key_columns": _arrow_table("key_columns", key_columns),
        }
    )
