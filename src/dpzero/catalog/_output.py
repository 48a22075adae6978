"""Query results for people: a plain-text table, and column descriptions from Felis."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pyarrow as pa

from dpzero.catalog._store import CatalogStore, ColumnMetadata, TableMetadata

__all__ = ["describe_columns", "describe_columns_of", "format_text"]


def describe_columns_of(
    tables: Iterable[TableMetadata], schema: pa.Schema
) -> dict[str, ColumnMetadata]:
    """Schema metadata of the result columns named like a column of ``tables``.

    A result column keeps no lineage, so it is matched by name (case-insensitively);
    the first table holding that name describes it.
    """
    known: dict[str, ColumnMetadata] = {}
    for meta in tables:
        for col in meta.columns:
            known.setdefault(col.name.lower(), col)
    return {f.name: known[f.name.lower()] for f in schema if f.name.lower() in known}


def describe_columns(store: CatalogStore, schema: pa.Schema) -> dict[str, ColumnMetadata]:
    """Schema metadata of result columns named like a column of any table of ``store``."""
    tables = (store.table_metadata(db, t) for db in store.databases() for t in store.tables(db))
    return describe_columns_of(tables, schema)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.10g}"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def format_text(table: pa.Table, *, max_rows: int | None = None) -> str:
    """The rows as an aligned text table with a header and a row count.

    Parameters
    ----------
    table
        The result.
    max_rows
        Show at most this many rows (the count line says how many there were).
    """
    shown = table if max_rows is None else table.slice(0, max_rows)
    names = table.column_names
    rows = [[_cell(v) for v in row.values()] for row in shown.to_pylist()]
    widths = [len(n) for n in names]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return " | ".join(out).rstrip()

    lines = [" | ".join(n.center(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [line(r) for r in rows]
    count = f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
    if shown.num_rows < table.num_rows:
        count += f", {shown.num_rows} shown"
    lines.append(count + ")")
    return "\n".join(lines)
