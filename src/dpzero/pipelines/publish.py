"""Publishing the pipeline's tables as the catalog-store database ``dp02_dc2_catalogs``.

`publish_catalogs` reads the DP0.2 table datasets of a collection from the Butler,
brings each to its ``dp02_dc2`` Felis table (schema order and types; columns the
pipeline does not fill become nulls, columns the schema does not know are refused),
writes them as a catalog input folder and hands that to the store's own ingest
(`dpzero.catalog.ingest_catalogs`), which publishes every table at once with one
atomic manifest rename. The TAP service re-reads the manifest on its next query, so
TAP_SCHEMA lists the new tables then; queries already running keep reading the files
they opened (the ingest never rewrites a published file).

Visit and CcdVisit have no sources but do have positions (the pointing and the
detector centre, ``ra``/``decl``): the store partitions them on those like any other
table, so they are stored and queried the same way (a cone finds the visits whose
centre lies in it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from lsst.daf.butler import Butler

    from dpzero.catalog import IngestOptions, IngestReport
    from dpzero.schema import TableSpec

__all__ = ["DP02_DATABASE", "TABLE_DATASETS", "PublishReport", "conform_table", "publish_catalogs"]

DP02_DATABASE = "dp02_dc2_catalogs"
SCHEMA_KEY = "dp02_dc2"

TABLE_DATASETS: dict[str, tuple[str, ...]] = {
    "Object": ("objectTable_tract", "objectTable"),
    "Source": ("sourceTable_visit", "sourceTable"),
    "ForcedSource": ("forcedSourceTable_tract", "forcedSourceTable"),
    "Visit": ("visitTable",),
    "CcdVisit": ("ccdVisitTable",),
}
"""Schema table → dataset types that hold it (per tract or visit, or whole)."""


@dataclass(frozen=True)
class PublishReport:
    """What a publish did: the ingest's report and where each table came from."""

    ingest: IngestReport
    datasets: dict[str, int]
    null_columns: dict[str, int]

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [self.ingest.summary()]
        for table, n in sorted(self.datasets.items()):
            lines.append(
                f"  {table}: from {n} dataset(s); "
                f"{self.null_columns[table]} schema columns not measured (null)"
            )
        return "\n".join(lines)


def conform_table(table: pa.Table, spec: TableSpec, origin: str) -> tuple[pa.Table, int]:
    """``table`` with exactly the columns of ``spec``, in order, with the schema's types.

    Returns the table and how many columns were filled with nulls.

    Raises
    ------
    InvalidInputError
        If ``table`` has a column the schema does not define, lacks a column the
        schema requires, or holds values that do not fit the schema's type.
    """
    expected = spec.arrow_schema()
    unknown = [name for name in table.column_names if name not in expected.names]
    if unknown:
        raise InvalidInputError(
            f"{origin}: columns not in the schema's {spec.name}: {', '.join(unknown[:5])}"
        )
    required = {c.name for c in spec.columns if not c.nullable}
    arrays = []
    filled = 0
    for field in expected:
        if field.name not in table.column_names:
            if field.name in required:
                raise InvalidInputError(
                    f"{origin}: lacks column {field.name}, which {spec.name} requires"
                )
            arrays.append(pa.nulls(table.num_rows, field.type))
            filled += 1
            continue
        column = table.column(field.name)
        try:
            arrays.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"{origin}: column {field.name} ({column.type}) does not fit {field.type}: {exc}"
            ) from None
    return pa.Table.from_arrays(arrays, schema=expected), filled


def _table_refs(butler: Butler, collection: str, table: str) -> list:
    known = {t.name for t in butler.registry.queryDatasetTypes()}
    refs = []
    for name in TABLE_DATASETS[table]:
        if name in known:
            refs.extend(butler.query_datasets(name, collections=collection, explain=False))
    return sorted(refs, key=lambda ref: str(ref.dataId))


def publish_catalogs(
    repo: str,
    collection: str,
    store: Path,
    *,
    database: str = DP02_DATABASE,
    options: IngestOptions | None = None,
    progress: bool = False,
) -> PublishReport:
    """Publish the DP0.2 tables of ``collection`` in ``store`` as ``database``.

    Parameters
    ----------
    repo
        Butler repository.
    collection
        Collection holding the pipeline's table datasets (a run's output chain).
    store
        The catalog store (created if missing); other databases in it are kept.
    database
        Database name in ADQL.
    options
        Partitioning parameters of the ingest.
    progress
        Show progress bars.

    Raises
    ------
    InvalidInputError
        If the repository or collection is missing, it holds none of the tables, or
        a table does not fit its schema; the store is then left as it was.
    StoreBusyError
        If another ingest is writing the store.
    """
    from lsst.daf.butler import Butler, MissingCollectionError

    from dpzero.catalog import ingest_catalogs
    from dpzero.schema import load_schema

    if "://" not in repo and not (Path(repo) / "butler.yaml").is_file():
        raise InvalidInputError(f"{repo} is not a Butler repository (no butler.yaml)")
    schema = load_schema(SCHEMA_KEY)
    store = store.absolute()
    store.parent.mkdir(parents=True, exist_ok=True)
    # The input folder sits next to the store: same file system, removed afterwards.
    staging = Path(tempfile.mkdtemp(prefix=f".{store.name}-publish-", dir=store.parent))
    try:
        listed: dict[str, dict[str, object]] = {}
        datasets: dict[str, int] = {}
        nulls: dict[str, int] = {}
        with Butler.from_config(repo) as butler:
            try:
                butler.collections.get_info(collection)
            except MissingCollectionError:
                raise InvalidInputError(f"no collection {collection} in {repo}") from None
            for table, _ in TABLE_DATASETS.items():
                refs = _table_refs(butler, collection, table)
                if not refs:
                    continue
                spec = schema.table(table)
                files, rows = [], 0
                for i, ref in enumerate(refs):
                    data = butler.get(ref, storageClass="ArrowTable")
                    origin = f"{ref.datasetType.name} {ref.dataId}"
                    conformed, nulls[table] = conform_table(data, spec, origin)
                    name = f"{table}/{i:05d}.parquet"
                    (staging / table).mkdir(exist_ok=True)
                    pq.write_table(conformed, staging / name)
                    files.append(name)
                    rows += conformed.num_rows
                listed[table] = {"files": files, "rows": rows}
                datasets[table] = len(refs)
        if not listed:
            wanted = ", ".join(n for names in TABLE_DATASETS.values() for n in names)
            raise InvalidInputError(f"{collection} holds none of the table datasets ({wanted})")
        manifest = {"schema": SCHEMA_KEY, "tables": listed}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        report = ingest_catalogs(
            staging, store, database=database, options=options, progress=progress
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PublishReport(report, datasets, nulls)
