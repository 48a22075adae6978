"""The catalog store: HEALPix-partitioned HATS collections, an objectId index, a query engine.

Write with `ingest_catalogs`; read with `open_store`, which returns a `CatalogStore`.
"""

from dpzero.catalog._dask import DaskCatalogStore
from dpzero.catalog._errors import CatalogInputError, StoreBusyError, UnknownTableError
from dpzero.catalog._ingest import IngestOptions, IngestReport, ingest_catalogs
from dpzero.catalog._layout import StoreManifest, TableEntry, read_manifest
from dpzero.catalog._local import LocalCatalogStore, open_store
from dpzero.catalog._output import describe_columns, describe_columns_of, format_text
from dpzero.catalog._pruning import Cone, Polygon, Region, Zone
from dpzero.catalog._store import (
    CatalogStore,
    ColumnMetadata,
    PartitionedPlan,
    QueryPlan,
    TableMetadata,
    TableScan,
)

__all__ = [
    "CatalogInputError",
    "CatalogStore",
    "ColumnMetadata",
    "Cone",
    "DaskCatalogStore",
    "IngestOptions",
    "IngestReport",
    "LocalCatalogStore",
    "PartitionedPlan",
    "Polygon",
    "QueryPlan",
    "Region",
    "StoreBusyError",
    "StoreManifest",
    "TableEntry",
    "TableMetadata",
    "TableScan",
    "UnknownTableError",
    "Zone",
    "describe_columns",
    "describe_columns_of",
    "format_text",
    "ingest_catalogs",
    "open_store",
    "read_manifest",
]
