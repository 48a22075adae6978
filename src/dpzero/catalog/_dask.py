"""The distributed backend: the local store's per-partition plans scattered over Dask.

Like Qserv's czar fanning chunk queries out to workers, a `PartitionedPlan` runs one
task per partition of its driving scan on the workers of a ``dask.distributed`` client;
the results come back and are merged here. Workers open the same store folder (a shared
file system, or the same machine). Other plans run in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from dpzero.catalog._layout import TableEntry
from dpzero.catalog._local import LocalCatalogStore
from dpzero.catalog._store import CatalogStore, PartitionedPlan, QueryPlan, TableMetadata

if TYPE_CHECKING:
    from dask.distributed import Client

    from dpzero.catalog._selection import Selection

__all__ = ["DaskCatalogStore"]

_OPEN: dict[str, LocalCatalogStore] = {}
_OPEN_LOCK = threading.Lock()


def _worker_store(path: str) -> LocalCatalogStore:
    """One open store per worker process and path (footers stay cached between tasks)."""
    with _OPEN_LOCK:
        if path not in _OPEN:
            _OPEN[path] = LocalCatalogStore(Path(path))
        return _OPEN[path]


def _run_partition(
    path: str,
    plan: PartitionedPlan,
    partition: tuple[int, int],
    pinned: dict[str, TableEntry],
) -> pa.Table:
    return _worker_store(path).run_partition(plan, partition, pinned=pinned)


class DaskCatalogStore(CatalogStore):
    """A catalog store whose partitioned plans run on a Dask cluster.

    Parameters
    ----------
    path
        The store folder, readable by every worker at the same path.
    client
        A ``dask.distributed`` client.
    """

    def __init__(self, path: Path, client: Client) -> None:
        self.path = Path(path).resolve()
        self.client = client
        self._local = LocalCatalogStore(self.path)

    def databases(self) -> list[str]:
        """Database names, sorted."""
        return self._local.databases()

    def tables(self, database: str) -> list[str]:
        """Table names of ``database``, sorted."""
        return self._local.tables(database)

    def table_metadata(self, database: str, table: str) -> TableMetadata:
        """Felis metadata and partitioning facts of one table."""
        return self._local.table_metadata(database, table)

    def all_table_metadata(self) -> list[TableMetadata]:
        """`table_metadata` of every table."""
        return self._local.all_table_metadata()

    def query(self, query: str | QueryPlan | PartitionedPlan) -> pa.Table:
        """Run a plan; partitioned plans fan out to the workers, one task per partition."""
        if not isinstance(query, PartitionedPlan):
            return self._local.query(query)
        pinned = self._local.pin(query)
        partitions = self._local.plan_partitions(query, pinned)
        futures = [
            self.client.submit(_run_partition, str(self.path), query, p, pinned, pure=False)
            for p in partitions
        ]
        return self._local.merge_partials(query, self.client.gather(futures))

    def select(self, selection: Selection, limit: int | None = None) -> pa.RecordBatchReader:
        """Rows of a plain selection, read in this process (a few row groups)."""
        return self._local.select(selection, limit)

    def stream(self, query: str | QueryPlan | PartitionedPlan) -> pa.RecordBatchReader:
        """Like `query`; partitioned plans without merge SQL yield each partition's rows
        in sky order (tasks run meanwhile); other plans stream from this process."""
        if not isinstance(query, PartitionedPlan):
            return self._local.stream(query)
        if query.merge_sql is not None:
            merged = self.query(query)
            return pa.RecordBatchReader.from_batches(merged.schema, merged.to_batches())
        pinned = self._local.pin(query)
        partitions = self._local.plan_partitions(query, pinned)
        if not partitions:
            return self._local.stream(query)
        futures = [
            self.client.submit(_run_partition, str(self.path), query, p, pinned, pure=False)
            for p in partitions
        ]
        first = futures[0].result()

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from first.to_batches()
                for future in futures[1:]:
                    yield from future.result().to_batches()
            finally:
                for future in futures:
                    future.cancel()

        return pa.RecordBatchReader.from_batches(first.schema, batches())
