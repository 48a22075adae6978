"""Felis schemas as column specs and Arrow schemas (the one source of table layouts)."""

from dpzero.schema._felis import KNOWN_SCHEMAS, ColumnSpec, SchemaSpec, TableSpec, load_schema

__all__ = ["KNOWN_SCHEMAS", "ColumnSpec", "SchemaSpec", "TableSpec", "load_schema"]
