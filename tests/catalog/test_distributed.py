"""The Dask backend on a LocalCluster of worker processes answers like the local store."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dpzero.catalog import DaskCatalogStore, PartitionedPlan, open_store
from dpzero.catalog._adql import adql_plan

OBJ = "dp01_dc2_catalogs.object"
TRUTH = "dp01_dc2_catalogs.truth_match"

# (query class, ADQL, whether row order is part of the answer)
QUERIES = [
    (
        "cone",
        f"SELECT objectId, ra, dec, psFlux_i FROM {OBJ} "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.0, -36.0, 0.3)) = 1",
        False,
    ),
    (
        "polygon across RA 0",
        f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), "
        "POLYGON('ICRS', 359.7, -30.2, 0.3, -30.2, 0.3, -29.6, 359.7, -29.6)) = 1",
        False,
    ),
    ("id list", f"SELECT objectId, tract FROM {OBJ} WHERE objectId IN ({{ids}})", False),
    (
        "objectId join",
        f"SELECT o.objectId, t.match_objectId, o.ra, t.redshift FROM {OBJ} AS o "
        f"JOIN {TRUTH} AS t ON o.objectId = t.match_objectId",
        False,
    ),
    (
        "pair join",
        f"SELECT a.objectId AS a_id, b.objectId AS b_id FROM {OBJ} AS a JOIN {OBJ} AS b "
        "ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < 0.0025 "
        "WHERE a.objectId <> b.objectId",
        False,
    ),
    (
        "aggregate",
        f"SELECT tract, COUNT(*) AS n, MIN(psFlux_i) AS lo, MAX(ra) AS hi, SUM(tract) AS s "
        f"FROM {OBJ} GROUP BY tract ORDER BY tract",
        True,
    ),
    (
        "full scan TOP with ORDER BY",
        f"SELECT TOP 25 objectId, ra, dec FROM {OBJ} ORDER BY dec DESC",
        True,
    ),
]


@pytest.fixture(scope="module")
def cluster_store(tiny_store):
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        yield DaskCatalogStore(tiny_store, client)


def rows(table: pa.Table, ordered: bool) -> list[tuple]:
    out = [tuple(r.values()) for r in table.to_pylist()]
    key = [(tuple((v is None, v) for v in r)) for r in out]
    return out if ordered else [r for _, r in sorted(zip(key, out, strict=True))]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "query", "ordered"), QUERIES, ids=[q[0] for q in QUERIES])
def test_distributed_equals_local(cluster_store, tiny_store, tiny_inputs, kind, query, ordered):
    local = open_store(tiny_store)
    ids = tiny_inputs[1]["object"].column("objectId").to_pylist()[::150]
    query = query.replace("{ids}", ", ".join(map(str, [*ids, 12345])))
    want = local.query_adql(query)
    assert want.num_rows > 0, kind
    got = cluster_store.query_adql(query)
    assert got.schema.names == want.schema.names
    assert rows(got, ordered) == rows(want, ordered)
    streamed = cluster_store.stream_adql(query).read_all()
    assert rows(streamed, ordered) == rows(want, ordered)


def test_whole_table_queries_fan_out_to_the_workers(cluster_store, tiny_store):
    """Joins, pairs and aggregates over whole tables are per-partition plans, run as
    tasks on both workers (not in this process)."""
    from dask.distributed import get_task_stream

    local = open_store(tiny_store)
    for kind, query, ordered in QUERIES[3:6]:
        plan = adql_plan(local, query)
        assert isinstance(plan, PartitionedPlan), kind
        with get_task_stream(cluster_store.client) as stream:
            got = cluster_store.query_adql(query)
        assert rows(got, ordered) == rows(local.query_adql(query), ordered), kind
        tasks = [t for t in stream.data if str(t["key"]).startswith("_run_partition")]
        assert len(tasks) == len(local.plan_partitions(plan)) > 1, kind
        assert len({t["worker"] for t in tasks}) == 2, kind
