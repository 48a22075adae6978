"""``dpzero catalog ingest``: input Parquet → HATS collections in a store, atomically."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dpzero.catalog._index import DuplicateKey, build_index
from dpzero.catalog._layout import (
    INDEX_DIR,
    MARGIN_SUFFIX,
    TABLE_META_FILE,
    TableEntry,
    collect_garbage,
    commit_manifest,
    new_version,
    read_manifest,
    retire_replaced,
    staging_dir,
    store_lock,
)
from dpzero.catalog._margin import build_margin
from dpzero.catalog._partition import partition_table
from dpzero.catalog._rows import rows_file, write_rows
from dpzero.catalog._store import ColumnMetadata
from dpzero.catalog._validate import (
    InputCatalogs,
    InputTable,
    raise_duplicate,
    read_input,
    validate_table,
)
from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from dpzero.schema import SchemaSpec

__all__ = ["IngestOptions", "IngestReport", "ingest_catalogs"]

MARGIN_ARCSEC = 10.0
CODECS = ("lz4", "zstd", "snappy", "none")


@dataclass(frozen=True)
class IngestOptions:
    """Tuning of an ingest.

    Attributes
    ----------
    partition_rows
        Maximum rows per HEALPix partition.
    highest_order
        Finest HEALPix order a partition may have; raised automatically (up to 10)
        when one cell at this order holds more than ``partition_rows`` rows.
    row_group_rows
        Rows per Parquet row group inside a partition: scans pay a cost per row group;
        point queries decode whole row groups only where they cannot use the index, the
        sky columns and the row copy (see docs/benchmarks-catalog.md for the figures).
    margin_arcsec
        Radius of the margin cache.
    chunk_rows
        Rows read from an input file at once (fewer for wide tables; bounds memory).
    threads
        Partitions sorted and written at once.
    compression
        Parquet codec of the partitions: ``lz4`` (default; decodes about twice as fast
        as zstd for ~5 % larger files), ``zstd``, ``snappy`` or ``none``.
    compression_level
        zstd level, when ``compression`` is ``zstd`` (hats' default 15 costs ~3.5× the
        CPU of 3 for ~1.5 % smaller files).
    row_copies
        Also write a row-major copy of each partition of the tables with an objectId
        index (`dpzero.catalog._rows`): id lookups and small cones read their rows whole
        instead of decoding column chunks, for ~1.3× the table's disk.
    """

    partition_rows: int = 100_000
    highest_order: int = 8
    row_group_rows: int = 16_000
    margin_arcsec: float = MARGIN_ARCSEC
    chunk_rows: int = 200_000
    threads: int = 2
    compression: str = "lz4"
    compression_level: int = 3
    row_copies: bool = True

    def __post_init__(self) -> None:
        if self.compression not in CODECS:
            raise InvalidInputError(
                f"compression must be one of {', '.join(CODECS)}, not {self.compression!r}"
            )
        for name in ("partition_rows", "row_group_rows", "chunk_rows", "threads"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 1 <= self.compression_level <= 22:
            raise InvalidInputError(
                f"compression_level must lie in 1..22, not {self.compression_level}"
            )
        if not 0 <= self.highest_order <= 19:
            raise InvalidInputError(f"highest_order must lie in 0..19, not {self.highest_order}")
        if not 0.0 < self.margin_arcsec <= 3600.0:
            raise InvalidInputError(
                f"margin_arcsec must lie in (0, 3600], not {self.margin_arcsec}"
            )


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did."""

    store: Path
    database: str
    tables: tuple[TableEntry, ...]
    skipped: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        """A few human-readable lines."""
        rows = sum(t.rows for t in self.tables)
        lines = [
            f"ingested {len(self.tables)} table(s), {rows} rows, into {self.store} "
            f"as {self.database} in {self.seconds:.1f} s"
        ]
        lines += [f"  {self.database}.{t.table}: {t.rows} rows" for t in self.tables]
        if self.skipped:
            lines.append(f"  not in the schema, skipped: {', '.join(self.skipped)}")
        return "\n".join(lines)


def ingest_catalogs(
    source: Path,
    store: Path,
    *,
    database: str | None = None,
    options: IngestOptions | None = None,
    progress: bool = False,
) -> IngestReport:
    """Validate the catalogs in ``source`` and publish them in ``store``, all or nothing.

    Every table listed in ``source/manifest.json`` is checked against the schema, then
    partitioned by the streaming partitioner (`partition_table`) into a staging folder
    inside the store, with its margin cache, objectId index and Felis metadata. Only
    when every table is ready does one atomic rename of the store manifest publish
    them, replacing older versions of the same tables; a failure or an interruption
    before that leaves the store's content as it was (leftovers are removed by the next
    ingest).

    Parameters
    ----------
    source
        Folder written by ``dpzero sim catalogs`` (``manifest.json`` + Parquet).
    store
        The catalog store; created if missing.
    database
        Database name in queries; defaults to the schema's (``dp01_dc2_catalogs``).
    options
        Partitioning parameters.
    progress
        Show progress bars.

    Raises
    ------
    InvalidInputError
        If the input is malformed; `CatalogInputError` names file, column and row.
    StoreBusyError
        If another ingest is writing the store.
    """
    from dpzero.schema import load_schema

    options = options or IngestOptions()
    started = time.perf_counter()
    inputs = read_input(source)
    schema = load_schema(inputs.schema_key)
    database = database or schema.name
    if not database.isidentifier():
        raise InvalidInputError(f"database name {database!r} is not a valid identifier")
    if store.exists() and not store.is_dir():
        raise InvalidInputError(f"{store} exists and is not a folder")
    created = not store.exists()
    try:
        return _ingest_locked(source, store, inputs, schema, database, options, progress, started)
    except BaseException:
        if created:
            shutil.rmtree(store, ignore_errors=True)
        raise


def _ingest_locked(
    source: Path,
    store: Path,
    inputs: InputCatalogs,
    schema: SchemaSpec,
    database: str,
    options: IngestOptions,
    progress: bool,
    started: float,
) -> IngestReport:
    with store_lock(store):
        manifest = read_manifest(store, must_exist=False)
        if database in manifest.schemas and manifest.schemas[database] != inputs.schema_key:
            raise InvalidInputError(
                f"database {database} in {store} holds schema {manifest.schemas[database]}, "
                f"not {inputs.schema_key}"
            )
        collect_garbage(store, manifest)
        version = new_version()
        staging = staging_dir(store, version)
        try:
            staging.mkdir()
            rows = _validate_all(source, inputs.tables, progress)
            entries = [
                _build_table(
                    source,
                    table,
                    rows[table.spec.name],
                    schema,
                    database,
                    version,
                    staging,
                    options,
                    progress,
                )
                for table in inputs.tables
            ]
            db_dir = store / database
            db_dir.mkdir(exist_ok=True)
            for e in entries:
                (staging / e.table).rename(db_dir / f"{e.table}@{e.version}")
            new_manifest = manifest.with_tables(inputs.schema_key, entries)
            try:
                commit_manifest(store, new_manifest)
            except BaseException:
                for e in entries:
                    shutil.rmtree(db_dir / f"{e.table}@{e.version}", ignore_errors=True)
                if not any(db_dir.iterdir()):
                    db_dir.rmdir()
                raise
            retire_replaced(store, manifest, new_manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        collect_garbage(store, new_manifest)
    return IngestReport(
        store=store,
        database=database,
        tables=tuple(entries),
        skipped=inputs.skipped,
        seconds=time.perf_counter() - started,
    )


def _validate_all(source: Path, tables: tuple[InputTable, ...], progress: bool) -> dict[str, int]:
    from tqdm import tqdm

    n_files = sum(len(t.files) for t in tables)
    rows = {}
    with tqdm(total=n_files, desc="Validating", unit="file", disable=not progress) as bar:
        for t in tables:
            rows[t.spec.name] = validate_table(source, t, on_file=lambda _: bar.update(1))
    return rows


def _build_table(
    source: Path,
    table: InputTable,
    rows: int,
    schema: SchemaSpec,
    database: str,
    version: str,
    staging: Path,
    options: IngestOptions,
    progress: bool,
) -> TableEntry:
    from hats.catalog.dataset.collection_properties import CollectionProperties
    from tqdm import tqdm

    name = table.spec.name
    role = table.role
    collection = staging / name
    with tqdm(total=rows, desc=f"{name}: partition", unit="row", disable=not progress) as bar:
        partitions = partition_table(
            [source / f for f in table.files],
            collection / name,
            ra_column=role.ra_column,
            dec_column=role.dec_column,
            highest_order=options.highest_order,
            partition_rows=options.partition_rows,
            row_group_rows=options.row_group_rows,
            chunk_rows=options.chunk_rows,
            threads=options.threads,
            compression=options.compression,
            compression_level=options.compression_level,
            properties={"obs_title": f"{database}.{name}"},
            on_rows=bar.update,
        )
    margin_name = f"{name}{MARGIN_SUFFIX}"
    with tqdm(
        total=len(partitions), desc=f"{name}: margin", unit="partition", disable=not progress
    ) as bar:
        build_margin(
            collection / name,
            collection / margin_name,
            radius_arcsec=options.margin_arcsec,
            ra_column=role.ra_column,
            dec_column=role.dec_column,
            on_partition=lambda: bar.update(1),
            compression=options.compression,
            compression_level=options.compression_level,
        )
    CollectionProperties(
        obs_collection=name,
        hats_primary_table_url=name,
        all_margins=[margin_name],
        default_margin=margin_name,
    ).to_properties_file(collection)
    if role.key_column is not None:
        built = build_index(
            partitions,
            role.key_column,
            collection / INDEX_DIR / role.key_column,
            rows=rows,
            null_key=role.null_key,
            unique=role.unique_key,
        )
        if isinstance(built, DuplicateKey):
            raise_duplicate(source, table, built.key)
        if options.row_copies:
            files = _partition_files(collection / name)
            with tqdm(
                total=len(files), desc=f"{name}: rows", unit="partition", disable=not progress
            ) as bar:
                for order, pixel, path in files:
                    write_rows(
                        path,
                        rows_file(collection, order, pixel),
                        sky=(role.ra_column, role.dec_column),
                    )
                    bar.update(1)
    _write_table_metadata(collection / TABLE_META_FILE, schema, table, database)
    return TableEntry(
        database=database,
        table=name,
        version=version,
        rows=rows,
        ra_column=role.ra_column,
        dec_column=role.dec_column,
        key_column=role.key_column,
        margin_arcsec=options.margin_arcsec,
    )


def _partition_files(catalog_dir: Path) -> list[tuple[int, int, Path]]:
    from hats.catalog import PartitionInfo
    from hats.io import paths

    info = PartitionInfo.read_from_dir(catalog_dir)
    return [
        (p.order, p.pixel, Path(str(paths.pixel_catalog_file(catalog_dir, p))))
        for p in info.get_healpix_pixels()
    ]


def _write_table_metadata(path: Path, schema: SchemaSpec, table: InputTable, database: str) -> None:
    spec = table.spec
    meta = {
        "database": database,
        "schema": schema.key,
        "schema_version": schema.version,
        "schema_description": schema.description,
        "table": spec.name,
        "description": spec.description,
        "primary_key": list(spec.primary_key),
        "ra_column": table.role.ra_column,
        "dec_column": table.role.dec_column,
        "key_column": table.role.key_column,
        "columns": [asdict(ColumnMetadata.from_spec(c)) for c in spec.columns],
    }
    path.write_text(json.dumps(meta, indent=1))
