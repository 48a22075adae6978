"""Where things live in a catalog store, and the store's commit point.

A store is a folder::

    STORE/
      dpzero-store.json                 the commit point: what each database holds
      .lock                             taken by an ingest while it runs
      <database>/
        <table>  -> <table>@<version>   symlink, for LSDB and other HATS readers
        <table>@<version>/              one HATS collection per table version
          collection.properties
          <table>/                      the HATS catalog (Norder=/Dir=/Npix= Parquet)
          <table>_10arcs/               its margin cache
          dpzero-index/<key>/           objectId → partition and row group
          dpzero-rows/                  row-major copies of the partitions (`_rows`)
          dpzero-table.json             table and column metadata from Felis
      .staging-<version>/               only while an ingest runs

Readers go through ``dpzero-store.json`` only, so an ingest becomes visible at the single
``os.replace`` that writes it. Anything not named there is garbage that the next ingest
removes: a staging folder or table version left by an interrupted ingest (never seen by a
reader) at once, a replaced version only once it has been retired for
`RETIRED_GRACE_SECONDS`: a query planned on the old manifest (a long async TAP job, a
stream still being read) keeps reading the files it planned on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpzero.catalog._errors import StoreBusyError, UnknownTableError
from dpzero.errors import InvalidInputError

__all__ = [
    "MARGIN_SUFFIX",
    "STORE_FILE",
    "StoreManifest",
    "TableEntry",
    "collect_garbage",
    "commit_manifest",
    "new_version",
    "partition_file",
    "read_manifest",
    "read_partitions",
    "retire_replaced",
    "store_lock",
]

STORE_FILE = "dpzero-store.json"
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
TABLE_META_FILE = "dpzero-table.json"
INDEX_DIR = "dpzero-index"
MARGIN_SUFFIX = "_10arcs"
FORMAT_VERSION = 1
RETIRED_FILE = ".retired"
# Longer than the TAP service's largest EXECUTIONDURATION (6 h by default), so no query
# that planned on a replaced version can outlive its files.
RETIRED_GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class TableEntry:
    """One table version as the store manifest records it.

    Attributes
    ----------
    database, table
        Names as queries spell them: ``<database>.<table>``.
    version
        The ingest that wrote this version.
    rows
        Number of rows.
    ra_column, dec_column
        Position columns.
    key_column
        Column of the objectId index, or None when the table has none.
    margin_arcsec
        Radius of the margin cache.
    """

    database: str
    table: str
    version: str
    rows: int
    ra_column: str
    dec_column: str
    key_column: str | None
    margin_arcsec: float

    @property
    def relative_dir(self) -> str:
        """Folder of this version, relative to the store."""
        return f"{self.database}/{self.table}@{self.version}"

    def collection_dir(self, store: Path) -> Path:
        """The HATS collection folder of this version."""
        return store / self.relative_dir

    def catalog_dir(self, store: Path) -> Path:
        """The HATS catalog folder (partitions) of this version."""
        return self.collection_dir(store) / self.table

    def margin_dir(self, store: Path) -> Path:
        """The HATS margin catalog folder of this version."""
        return self.collection_dir(store) / f"{self.table}{MARGIN_SUFFIX}"

    def index_dir(self, store: Path) -> Path | None:
        """The objectId index folder, if the table has one."""
        if self.key_column is None:
            return None
        return self.collection_dir(store) / INDEX_DIR / self.key_column

    def metadata_file(self, store: Path) -> Path:
        """The table and column metadata of this version."""
        return self.collection_dir(store) / TABLE_META_FILE

    def to_json(self) -> dict[str, Any]:
        """JSON form, as kept in the manifest."""
        return {
            "version": self.version,
            "rows": self.rows,
            "ra_column": self.ra_column,
            "dec_column": self.dec_column,
            "key_column": self.key_column,
            "margin_arcsec": self.margin_arcsec,
        }


@dataclass(frozen=True)
class StoreManifest:
    """What a store holds: database → schema key and table entries."""

    schemas: dict[str, str] = field(default_factory=dict)
    tables: dict[tuple[str, str], TableEntry] = field(default_factory=dict)

    def databases(self) -> list[str]:
        """Database names, sorted."""
        return sorted(self.schemas)

    def entry(self, database: str, table: str) -> TableEntry:
        """The entry of ``database.table``.

        Raises
        ------
        UnknownTableError
            If the store holds no such table.
        """
        try:
            return self.tables[(database, table)]
        except KeyError:
            known = ", ".join(f"{d}.{t}" for d, t in sorted(self.tables)) or "none"
            raise UnknownTableError(
                f"the store holds no table {database}.{table}; tables: {known}"
            ) from None

    def with_tables(self, schema_key: str, entries: list[TableEntry]) -> StoreManifest:
        """A new manifest with ``entries`` added or replacing older versions."""
        schemas = dict(self.schemas)
        tables = dict(self.tables)
        for e in entries:
            schemas[e.database] = schema_key
            tables[(e.database, e.table)] = e
        return StoreManifest(schemas=schemas, tables=tables)

    def to_json(self) -> dict[str, Any]:
        """JSON form of the manifest."""
        dbs: dict[str, Any] = {}
        for db, key in sorted(self.schemas.items()):
            dbs[db] = {
                "schema": key,
                "tables": {t: e.to_json() for (d, t), e in sorted(self.tables.items()) if d == db},
            }
        return {"format_version": FORMAT_VERSION, "databases": dbs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreManifest:
        """Read the JSON form written by `to_json`."""
        schemas: dict[str, str] = {}
        tables: dict[tuple[str, str], TableEntry] = {}
        for db, spec in data.get("databases", {}).items():
            schemas[db] = spec["schema"]
            for t, e in spec.get("tables", {}).items():
                tables[(db, t)] = TableEntry(database=db, table=t, **e)
        return cls(schemas=schemas, tables=tables)


def read_partitions(catalog_dir: Path) -> list[tuple[int, int]]:
    """(Norder, Npix) of a HATS catalog's partitions, from its ``partition_info.csv``.

    Read here rather than with hats, whose import costs seconds on every query command.
    """
    path = catalog_dir / "partition_info.csv"
    if not path.is_file():
        return []
    lines = path.read_text().split()
    header = lines[0].split(",")
    i_order, i_pix = header.index("Norder"), header.index("Npix")
    out = []
    for line in lines[1:]:
        cells = line.split(",")
        out.append((int(cells[i_order]), int(cells[i_pix])))
    return out


def partition_file(catalog_dir: Path, order: int, pixel: int) -> Path:
    """The Parquet file of one partition in the HATS layout."""
    directory = (pixel // 10_000) * 10_000
    return (
        catalog_dir / "dataset" / f"Norder={order}" / f"Dir={directory}" / f"Npix={pixel}.parquet"
    )


def read_manifest(store: Path, *, must_exist: bool = True) -> StoreManifest:
    """The manifest of ``store``; empty when the store is new and ``must_exist`` is False.

    Raises
    ------
    InvalidInputError
        If ``must_exist`` and ``store`` is not a catalog store.
    """
    path = store / STORE_FILE
    if not path.is_file():
        if must_exist:
            raise InvalidInputError(f"{store} is not a dpzero catalog store (no {STORE_FILE})")
        return StoreManifest()
    data = json.loads(path.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(
            f"{path} has format version {data.get('format_version')}, "
            f"this dpzero reads {FORMAT_VERSION}"
        )
    return StoreManifest.from_json(data)


def new_version() -> str:
    """A fresh, sortable version name for an ingest."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def staging_dir(store: Path, version: str) -> Path:
    """Scratch folder of the ingest ``version`` (inside the store: same file system)."""
    return store / f"{STAGING_PREFIX}{version}"


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold the store's ingest lock.

    Raises
    ------
    StoreBusyError
        If another ingest holds it.
    """
    store.mkdir(parents=True, exist_ok=True)
    with open(store / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusyError(f"another ingest is writing to {store}; try again later") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_manifest(store: Path, manifest: StoreManifest) -> None:
    """Make ``manifest`` the store's content in one atomic rename, then point the symlinks.

    The version folders it names must already be in place.
    """
    tmp = store / f".{STORE_FILE}.{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as fh:
        json.dump(manifest.to_json(), fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, store / STORE_FILE)
    _fsync_dir(store)
    link_tables(store, manifest)


def link_tables(store: Path, manifest: StoreManifest) -> None:
    """Point each ``<database>/<table>`` symlink at the manifest's version (atomic swap)."""
    for entry in manifest.tables.values():
        link = store / entry.database / entry.table
        target = f"{entry.table}@{entry.version}"
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = link.with_name(f".{entry.table}.link-{uuid.uuid4().hex[:8]}")
        os.symlink(target, tmp)
        os.replace(tmp, link)


def retire_replaced(store: Path, before: StoreManifest, after: StoreManifest) -> None:
    """Mark the versions ``before`` named and ``after`` does not as retired from now.

    `collect_garbage` keeps a retired version for `RETIRED_GRACE_SECONDS`.
    """
    live = {e.relative_dir for e in after.tables.values()}
    for entry in before.tables.values():
        folder = store / entry.relative_dir
        if entry.relative_dir not in live and folder.is_dir():
            (folder / RETIRED_FILE).write_text(f"{time.time()}\n")


def _in_grace(version_dir: Path, grace_seconds: float) -> bool:
    marker = version_dir / RETIRED_FILE
    try:
        return time.time() - marker.stat().st_mtime < grace_seconds
    except FileNotFoundError:
        return False  # never published (an interrupted ingest): no reader can hold it


def collect_garbage(
    store: Path, manifest: StoreManifest, grace_seconds: float = RETIRED_GRACE_SECONDS
) -> list[Path]:
    """Remove staging folders and table versions the manifest does not name.

    A version retired less than ``grace_seconds`` ago stays (see `retire_replaced`).
    Call only while holding `store_lock`. Returns what was removed.
    """
    removed: list[Path] = []
    live = {e.relative_dir for e in manifest.tables.values()}
    for child in store.iterdir():
        if child.name.startswith(STAGING_PREFIX) or (
            child.name.startswith(f".{STORE_FILE}.") and child.is_file()
        ):
            _remove(child)
            removed.append(child)
    for db in manifest.databases() + [
        p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")
    ]:
        db_dir = store / db
        if not db_dir.is_dir():
            continue
        for child in db_dir.iterdir():
            if "@" in child.name and not child.is_symlink():
                if f"{db}/{child.name}" not in live and not _in_grace(child, grace_seconds):
                    _remove(child)
                    removed.append(child)
            elif child.name.startswith(".") and child.is_symlink():
                child.unlink()
                removed.append(child)
    link_tables(store, manifest)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
