"""Tables the TAP service publishes next to the catalog store's, from Parquet files.

A small table built by another part (``ivoa.ObsCore`` of the Butler repository) is
one Parquet file whose schema metadata carries its `TableMetadata`; the service reads
it into memory and queries it through the same ADQL engine (as it does TAP_SCHEMA and
uploads), so TAP_SCHEMA, /tables, every format and joins with uploads work unchanged.
Async workers read the same files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.catalog import ColumnMetadata, TableMetadata
from dpzero.errors import InvalidInputError

__all__ = ["read_attached_table", "write_attached_table"]

_META_KEY = b"dpzero.tap.table"


def write_attached_table(
    path: Path, metadata: TableMetadata, table: pa.Table, extra: dict[bytes, bytes] | None = None
) -> None:
    """Write ``table`` with its description to ``path`` (atomically).

    Parameters
    ----------
    path
        The Parquet file.
    metadata
        How TAP describes the table (database, name, columns with units and UCDs).
    table
        The rows; its columns must be those of ``metadata``.
    extra
        More key/value pairs for the file's schema metadata.

    Raises
    ------
    ValueError
        If the columns of ``table`` are not those of ``metadata``.
    """
    if table.column_names != metadata.column_names:
        raise ValueError(f"the columns of the rows are not those of {metadata.table}")
    described = json.dumps(asdict(metadata)).encode()
    table = table.replace_schema_metadata({**(extra or {}), _META_KEY: described})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def read_attached_table(path: Path) -> tuple[TableMetadata, pa.Table]:
    """The description and rows written by `write_attached_table`.

    Raises
    ------
    InvalidInputError
        If ``path`` is not such a file.
    """
    try:
        table = pq.read_table(path)
        described = json.loads((table.schema.metadata or {})[_META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        raise InvalidInputError(f"{path} is not a table TAP can publish: {exc}") from None
    columns = tuple(ColumnMetadata(**c) for c in described.pop("columns"))
    described["rows"] = table.num_rows
    return TableMetadata(**described, columns=columns), table.replace_schema_metadata(None)
