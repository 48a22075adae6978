"""Reading an input folder and checking its files against the Felis schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dpzero.catalog._errors import CatalogInputError
from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from dpzero.schema import TableSpec

__all__ = [
    "InputCatalogs",
    "InputTable",
    "TableRole",
    "raise_duplicate",
    "read_input",
    "table_role",
    "validate_table",
]

# Rows per batch while validating: bounds memory whatever the file size.
_BATCH_ROWS = 200_000


@dataclass(frozen=True)
class TableRole:
    """How the store treats one table: its position columns and its objectId key.

    Attributes
    ----------
    ra_column, dec_column
        Position columns used for HEALPix partitioning.
    key_column
        Column indexed objectId → partition, or None.
    unique_key
        Whether ``key_column`` must be unique (a primary key).
    null_key
        A key value meaning "no object" that is neither indexed nor checked for
        uniqueness (truth_match's -1 for unmatched truth rows).
    """

    ra_column: str
    dec_column: str
    key_column: str | None
    unique_key: bool
    null_key: int | None = None


# DP0.1's tables. Tables of other schemas are recognised from their column names.
_ROLES: dict[str, TableRole] = {
    "object": TableRole("ra", "dec", "objectId", True),
    "position": TableRole("coord_ra", "coord_dec", "objectId", True),
    "reference": TableRole("coord_ra", "coord_dec", "objectId", True),
    "forced_photometry": TableRole("coord_ra", "coord_dec", "objectId", True),
    "truth_match": TableRole("ra", "dec", "match_objectId", False, null_key=-1),
}


def table_role(spec: TableSpec) -> TableRole:
    """The role of a table: known for DP0.1, else guessed from its column names.

    Raises
    ------
    InvalidInputError
        If the table has no recognisable position columns.
    """
    if spec.name in _ROLES:
        return _ROLES[spec.name]
    names = set(spec.column_names)
    # DP0.2's Visit and CcdVisit carry their centre as ra/decl.
    pairs = (("ra", "dec"), ("coord_ra", "coord_dec"), ("s_ra", "s_dec"), ("ra", "decl"))
    for ra, dec in pairs:
        if ra in names and dec in names:
            key = "objectId" if "objectId" in names else None
            unique = key is not None and spec.primary_key == ("objectId",)
            return TableRole(ra, dec, key, unique)
    raise InvalidInputError(f"table {spec.name} has no position columns to partition on")


@dataclass(frozen=True)
class InputTable:
    """One table of an input folder."""

    spec: TableSpec
    role: TableRole
    files: tuple[str, ...]
    rows: int | None


@dataclass(frozen=True)
class InputCatalogs:
    """An input folder as its ``manifest.json`` describes it."""

    root: Path
    schema_key: str
    tables: tuple[InputTable, ...]
    skipped: tuple[str, ...]


def read_input(root: Path) -> InputCatalogs:
    """Read ``root/manifest.json`` and check that every file it lists exists.

    Tables the schema does not define (the simulator's truth universe, for example)
    are listed in ``skipped``.

    Raises
    ------
    InvalidInputError
        If the manifest is missing or malformed, names an unknown schema, or lists a
        file that does not exist.
    """
    from dpzero.schema import KNOWN_SCHEMAS, load_schema

    path = root / "manifest.json"
    if not path.is_file():
        raise InvalidInputError(f"{root} has no manifest.json; is it a catalog folder?")
    try:
        manifest = json.loads(path.read_text())
        schema_key = manifest["schema"]
        listed = manifest["tables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a valid catalog manifest ({exc})") from None
    if schema_key not in KNOWN_SCHEMAS:
        raise InvalidInputError(f"{path}: unknown schema {schema_key!r}")
    schema = load_schema(schema_key)
    known = {t.name for t in schema.tables}
    tables = []
    skipped = []
    for name, info in sorted(listed.items()):
        if name not in known:
            skipped.append(name)
            continue
        files = tuple(info.get("files", ()))
        if not files:
            raise InvalidInputError(f"{path}: table {name} lists no files")
        for f in files:
            if not (root / f).is_file():
                raise InvalidInputError(f"{path}: table {name} lists {f}, which does not exist")
        spec = schema.table(name)
        tables.append(InputTable(spec, table_role(spec), files, info.get("rows")))
    if not tables:
        raise InvalidInputError(f"{path} lists no table of schema {schema_key}")
    return InputCatalogs(root, schema_key, tuple(tables), tuple(skipped))


def _check_schema(name: str, found: pa.Schema, spec: TableSpec) -> None:
    expected = spec.arrow_schema()
    found_names = list(found.names)
    for col in expected.names:
        if col not in found_names:
            raise CatalogInputError(name, "missing column required by the schema", column=col)
    for col in found_names:
        if col not in expected.names:
            raise CatalogInputError(name, "column not in the schema", column=col)
    if found_names != expected.names:
        first = next(
            i for i, (a, b) in enumerate(zip(found_names, expected.names, strict=True)) if a != b
        )
        raise CatalogInputError(
            name,
            f"columns out of schema order: position {first} holds {found_names[first]!r}, "
            f"the schema puts {expected.names[first]!r} there",
            column=found_names[first],
        )
    for f in expected:
        got = found.field(f.name).type
        if got != f.type:
            raise CatalogInputError(name, f"type {got}, the schema says {f.type}", column=f.name)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_batch(
    name: str, batch: pa.RecordBatch, offset: int, role: TableRole, not_null: list[str]
) -> None:
    for col in not_null:
        arr = batch.column(col)
        if arr.null_count:
            bad = _first(np.asarray(pc.is_null(arr)))
            raise CatalogInputError(
                name, "null in a non-nullable column", column=col, row=offset + bad
            )
    for col, lo, hi in ((role.ra_column, 0.0, 360.0), (role.dec_column, -90.0, 90.0)):
        values = batch.column(col).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            bad_mask = ~((values >= lo) & (values <= hi))
        if bad_mask.any():
            i = _first(bad_mask)
            raise CatalogInputError(
                name, f"value {values[i]!r} outside [{lo:g}, {hi:g}]", column=col, row=offset + i
            )


def validate_table(
    root: Path, table: InputTable, *, on_file: Callable[[str], None] | None = None
) -> int:
    """Check every file of ``table``; return its total row count.

    Checks, in order: column names, order and types against the schema; nulls in
    non-nullable columns; RA in [0, 360] and Dec in [-90, 90]; duplicate keys
    within each file when the key is unique (across files, the objectId index
    finds them: see `raise_duplicate`); the row count in the manifest. Memory: one
    batch of a few columns at a time, and one file's keys.

    Raises
    ------
    CatalogInputError
        At the first problem, naming the file, column and row.
    """
    spec, role = table.spec, table.role
    not_null = [c.name for c in spec.columns if not c.nullable]
    check_cols = list(dict.fromkeys([*not_null, role.ra_column, role.dec_column]))
    if role.key_column:
        check_cols = list(dict.fromkeys([*check_cols, role.key_column]))
    total = 0
    for name in table.files:
        offset = 0
        keys: list[np.ndarray] = []
        with pq.ParquetFile(root / name) as pf:
            _check_schema(name, pf.schema_arrow, spec)
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=check_cols):
                _check_batch(name, batch, offset, role, not_null)
                if role.unique_key and role.key_column:
                    keys.append(batch.column(role.key_column).to_numpy(zero_copy_only=False))
                offset += batch.num_rows
        total += offset
        if keys:
            ids = np.sort(np.concatenate(keys))
            dup = np.flatnonzero(ids[1:] == ids[:-1])
            if dup.size:
                raise_duplicate(root, table, int(ids[dup[0]]))
        if on_file is not None:
            on_file(name)
    if table.rows is not None and table.rows != total:
        raise CatalogInputError(
            "manifest.json", f"table {spec.name} lists {table.rows} rows, its files hold {total}"
        )
    return total


def raise_duplicate(root: Path, table: InputTable, value: int) -> NoReturn:
    """Raise the error for key ``value`` found twice in ``table``, naming both places.

    Raises
    ------
    CatalogInputError
        Always.
    """
    col = table.role.key_column
    assert col is not None
    # Only on failure: where are the two copies?
    seen: list[tuple[str, int]] = []
    for name in table.files:
        with pq.ParquetFile(root / name) as pf:
            ids = pf.read(columns=[col]).column(col).to_numpy()
        for row in np.flatnonzero(ids == value):
            seen.append((name, int(row)))
        if len(seen) >= 2:
            break
    first_file, first_row = seen[0]
    file, row = seen[1]
    raise CatalogInputError(
        file,
        f"duplicate {col} {value}, also in {first_file} row {first_row}",
        column=col,
        row=row,
    )
