"""ADQL run partition by partition (pairs with the margin, objectId joins, aggregates)
equals brute force, at partition edges, across RA 0/360 and at the pole."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.conftest import TINY_OPTIONS, make_table, sky_positions
from dpzero.catalog import PartitionedPlan, QueryPlan, ingest_catalogs, open_store
from dpzero.catalog._adql import adql_plan
from dpzero.catalog._pruning import healpix29
from tests_support import angular_separation_deg, points_near

OBJ = "dp01_dc2_catalogs.object"
TRUTH = "dp01_dc2_catalogs.truth_match"
PAIR_ARCSEC = 9.0


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, pa.Table]:
    """An object table with close pairs across partition edges, RA 0/360 and the pole."""
    rng = np.random.default_rng(11)
    ra, dec = sky_positions(1000, rng)
    near_wrap = points_near(0.0, -30.0, 0.01, 25, rng)
    near_pole = points_near(0.0, -90.0, 0.008, 25, rng)
    exact = (
        np.array([359.9997, 0.0003, 0.0, 180.0, 45.0]),
        np.array([-30.2, -30.2, -89.9996, -89.9996, -90.0]),
    )
    ra = np.concatenate([ra, near_wrap[0], near_pole[0], exact[0]])
    dec = np.concatenate([dec, near_wrap[1], near_pole[1], exact[1]])
    ids = (np.int64(3828) << 42) + rng.permutation(ra.size * 5)[: ra.size].astype(np.int64)
    table = make_table("object", ra.size, rng, ids, ra, dec)
    root = tmp_path_factory.mktemp("planted")
    (root / "in" / "object").mkdir(parents=True)
    pq.write_table(table, root / "in" / "object" / "object.parquet")
    manifest = {
        "schema": "dp01_dc2",
        "tables": {"object": {"files": ["object/object.parquet"], "rows": table.num_rows}},
    }
    (root / "in" / "manifest.json").write_text(json.dumps(manifest))
    ingest_catalogs(root / "in", root / "store", options=TINY_OPTIONS)
    return root / "store", table


def brute_pairs(table: pa.Table, radius: float) -> list[tuple[int, int]]:
    ra, dec = np.asarray(table.column("ra")), np.asarray(table.column("dec"))
    ids = np.asarray(table.column("objectId"))
    out = []
    for i in range(ids.size):
        close = np.flatnonzero(angular_separation_deg(ra, dec, ra[i], dec[i]) <= radius)
        out += [(int(ids[i]), int(ids[j])) for j in close if j != i]
    return sorted(out)


def pairs_of(result: pa.Table) -> list[tuple[int, int]]:
    return sorted(zip(result.column(0).to_pylist(), result.column(1).to_pylist(), strict=True))


PAIRS = (
    "SELECT a.objectId AS a_id, b.objectId AS b_id FROM {t} AS a JOIN {t} AS b "
    "ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) <= {r} "
    "WHERE a.objectId <> b.objectId"
)


def test_neighbour_pairs_run_per_partition_and_equal_brute_force(planted):
    path, table = planted
    store = open_store(path)
    r = PAIR_ARCSEC / 3600.0
    query = PAIRS.format(t=OBJ, r=r)
    plan = adql_plan(store, query)
    assert isinstance(plan, PartitionedPlan)
    assert len(store.plan_partitions(plan)) > 2
    got = pairs_of(store.query_adql(query))
    want = brute_pairs(table, r)
    assert got == want
    # Each pair once per direction; some across RA 0/360, some at the pole.
    assert len(set(got)) == len(got) > 100
    ra = dict(
        zip(table.column("objectId").to_pylist(), table.column("ra").to_pylist(), strict=True)
    )
    dec = dict(
        zip(table.column("objectId").to_pylist(), table.column("dec").to_pylist(), strict=True)
    )
    assert any(abs(ra[a] - ra[b]) > 180 for a, b in got)
    assert any(dec[a] < -89.99 and abs(ra[a] - ra[b]) > 90 for a, b in got)
    # And some straddle a partition edge, which only the margin can pair.
    part_table = store._table(OBJ)
    ids = np.asarray(table.column("objectId"))
    hp = healpix29(np.asarray(table.column("ra")), np.asarray(table.column("dec")))
    part = dict(
        zip(
            ids.tolist(),
            (np.searchsorted(part_table.lo, hp, side="right") - 1).tolist(),
            strict=True,
        )
    )
    assert sum(part[a] != part[b] for a, b in got) > 5
    # CONTAINS(POINT, CIRCLE) written either way round, with an aggregate on top.
    count = store.query_adql(
        f"SELECT COUNT(*) AS n FROM {OBJ} AS a, {OBJ} AS b WHERE a.objectId <> b.objectId "
        f"AND CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, {r})) = 1"
    )
    assert count.column("n").to_pylist() == [len(want)]


def test_pairs_wider_than_the_margin_stay_one_plan(planted):
    store = open_store(planted[0])
    plan = adql_plan(store, PAIRS.format(t=OBJ, r=11.0 / 3600.0))
    assert isinstance(plan, QueryPlan)


def test_top_pairs_ordered_by_distance_merge_exactly(planted):
    path, table = planted
    store = open_store(path)
    r = PAIR_ARCSEC / 3600.0
    query = (
        "SELECT TOP 7 a.objectId AS a_id, b.objectId AS b_id, "
        "DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) AS d "
        f"FROM {OBJ} AS a JOIN {OBJ} AS b "
        f"ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {r} "
        "WHERE a.objectId < b.objectId ORDER BY d DESC"
    )
    plan = adql_plan(store, query)
    assert isinstance(plan, PartitionedPlan) and plan.merge_sql is not None
    got = store.query_adql(query)
    ra, dec = np.asarray(table.column("ra")), np.asarray(table.column("dec"))
    ids = np.asarray(table.column("objectId"))
    d = [
        (angular_separation_deg(ra[i : i + 1], dec[i : i + 1], ra[j], dec[j])[0], a, b)
        for a, b in brute_pairs(table, r)
        if a < b
        for i, j in [(int(np.flatnonzero(ids == a)[0]), int(np.flatnonzero(ids == b)[0]))]
    ]
    want = sorted(d, reverse=True)[:7]
    assert got.column("a_id").to_pylist() == [w[1] for w in want]
    assert np.allclose(got.column("d").to_numpy(), [w[0] for w in want], rtol=1e-9)


@pytest.fixture(scope="module")
def store(tiny_store):
    return open_store(tiny_store)


def test_objectid_join_runs_co_partitioned(store, tiny_inputs):
    obj, truth = tiny_inputs[1]["object"], tiny_inputs[1]["truth_match"]
    query = (
        "SELECT o.objectId, t.match_objectId, o.ra, t.redshift "
        f"FROM {OBJ} AS o JOIN {TRUTH} AS t ON o.objectId = t.match_objectId"
    )
    plan = adql_plan(store, query)
    assert isinstance(plan, PartitionedPlan)
    assert [s.ids_from for s in plan.plan.scans.values() if s.ids_from] == [("__part", "objectId")]
    got = store.query_adql(query)
    ids = set(obj.column("objectId").to_pylist())
    want = sorted(i for i in truth.column("match_objectId").to_pylist() if i in ids)
    assert sorted(got.column("match_objectId").to_pylist()) == want
    assert got.column("objectId").to_pylist() == got.column("match_objectId").to_pylist()
    assert len(want) == 2000
    # A LEFT JOIN keeps the unmatched truth rows, driven by the left table.
    left = (
        f"SELECT t.match_objectId, o.objectId FROM {TRUTH} AS t "
        f"LEFT JOIN {OBJ} AS o ON o.objectId = t.match_objectId"
    )
    plan = adql_plan(store, left)
    assert isinstance(plan, PartitionedPlan) and plan.plan.scans["__part"].table == TRUTH
    rows = store.query_adql(left)
    assert rows.num_rows == truth.num_rows
    assert rows.column("objectId").null_count == sum(
        i not in ids for i in truth.column("match_objectId").to_pylist()
    )


def test_group_by_aggregates_merge_partials_exactly(store, obj_table):
    q = (
        "SELECT tract, COUNT(*) AS n, COUNT(psFlux_i) AS n_flux, SUM(tract) AS s, "
        "MIN(psFlux_i) AS lo, MAX(psFlux_i) AS hi, AVG(psFlux_i) AS mean "
        f"FROM {OBJ} WHERE tract >= 10 GROUP BY tract HAVING COUNT(*) > 10 ORDER BY n DESC, tract"
    )
    plan = adql_plan(store, q)
    assert isinstance(plan, PartitionedPlan) and plan.merge_sql is not None
    got = store.query_adql(q).to_pylist()
    tract = np.asarray(obj_table.column("tract"))
    flux = np.asarray(obj_table.column("psFlux_i"), dtype=float)
    keep = tract >= 10
    want = []
    for t in np.unique(tract[keep]):
        rows = keep & (tract == t)
        f = flux[rows][~np.isnan(flux[rows])]  # NaN reads as NULL in ADQL
        n = int(rows.sum())
        if n > 10:
            want.append((n, int(t), int(f.size), n * int(t), f.min(), f.max(), f.mean()))
    want.sort(key=lambda w: (-w[0], w[1]))
    assert [(r["n"], r["tract"]) for r in got] == [(w[0], w[1]) for w in want]
    assert len(got) > 3
    for r, w in zip(got, want, strict=True):
        assert r["n_flux"] == w[2] and int(r["s"]) == w[3]
        assert r["lo"] == pytest.approx(w[4]) and r["hi"] == pytest.approx(w[5])
        assert r["mean"] == pytest.approx(w[6], rel=1e-9)


def test_whole_table_aggregates_and_what_stays_global(store, obj_table):
    q = f"SELECT COUNT(*) AS n, MAX(objectId) AS m, AVG(ra) AS a FROM {OBJ}"
    assert isinstance(adql_plan(store, q), PartitionedPlan)
    (row,) = store.query_adql(q).to_pylist()
    assert row["n"] == obj_table.num_rows
    assert row["m"] == max(obj_table.column("objectId").to_pylist())
    assert row["a"] == pytest.approx(float(np.mean(obj_table.column("ra"))), rel=1e-12)
    # An aggregate over nothing still answers one row.
    (empty,) = store.query_adql(
        f"SELECT COUNT(*) AS n, SUM(ra) AS s FROM {OBJ} WHERE ra > 400"
    ).to_pylist()
    assert empty == {"n": 0, "s": None}
    # COUNT DISTINCT, DISTINCT, pruned queries: one plan.
    distinct = f"SELECT COUNT(DISTINCT tract) AS k FROM {OBJ}"
    assert isinstance(adql_plan(store, distinct), QueryPlan)
    k = store.query_adql(distinct).column("k").to_pylist()
    assert k == [len(set(obj_table.column("tract").to_pylist()))]
    assert isinstance(adql_plan(store, f"SELECT DISTINCT tract FROM {OBJ}"), QueryPlan)
    cone = (
        f"SELECT COUNT(*) FROM {OBJ} "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56, -36, 0.2)) = 1"
    )
    assert isinstance(adql_plan(store, cone), QueryPlan)


def test_partitioned_stream_stops_at_the_limit(store, obj_table):
    query = PAIRS.format(t=OBJ, r=PAIR_ARCSEC / 3600.0)
    everything = store.query_adql(query)
    limited = store.stream_adql(query, limit=5)
    assert limited.read_all().num_rows == 5
    assert store.query_adql(query, limit=5).num_rows == 5
    assert everything.num_rows > 5


@pytest.fixture(scope="module")
def obj_table(tiny_inputs) -> pa.Table:
    return tiny_inputs[1]["object"]


def test_histogram_grouped_by_an_output_name(store, obj_table):
    q = (
        "SELECT FLOOR(psFlux_i / 2) AS bin, COUNT(*) AS n, AVG(ra) AS mean_ra "
        f"FROM {OBJ} GROUP BY bin ORDER BY bin"
    )
    assert isinstance(adql_plan(store, q), PartitionedPlan)
    got = store.query_adql(q).to_pylist()
    flux = np.asarray(obj_table.column("psFlux_i"), dtype=float)
    ra = np.asarray(obj_table.column("ra"))
    bins = np.floor(flux / 2)
    want = [
        (float(b), int((bins == b).sum()), ra[bins == b].mean())
        for b in np.unique(bins[~np.isnan(bins)])
    ]
    want.append((None, int(np.isnan(bins).sum()), ra[np.isnan(bins)].mean()))  # NULLs last
    assert [(r["bin"], r["n"]) for r in got] == [(b, n) for b, n, _ in want]
    assert [r["mean_ra"] for r in got] == pytest.approx([m for _, _, m in want], rel=1e-12)


def test_one_table_scans_run_as_one_statement_locally_and_per_partition_on_request(
    store, obj_table
):
    """A whole-table aggregate carries its one-statement form; both forms give the
    brute-force answer, with and without a row limit."""
    tract = obj_table.column("tract").to_numpy()
    q = f"SELECT COUNT(*) AS n, SUM(ra) AS s, MIN(dec) AS d FROM {OBJ} WHERE tract <> {tract[0]}"
    plan = adql_plan(store, q)
    assert isinstance(plan, PartitionedPlan) and plan.single is not None
    keep = tract != tract[0]
    ra = obj_table.column("ra").to_numpy()[keep]
    want = {
        "n": int(keep.sum()),
        "s": float(ra.sum()),
        "d": float(obj_table["dec"].to_numpy()[keep].min()),
    }
    for form in (plan, replace(plan, single=None)):
        (row,) = store.query(form).to_pylist()
        assert row["n"] == want["n"]
        assert row["s"] == pytest.approx(want["s"], rel=1e-12)
        assert row["d"] == want["d"]
    top = f"SELECT TOP 9 objectId FROM {OBJ} ORDER BY ra DESC"
    ids = obj_table.column("objectId").to_numpy()[np.argsort(-obj_table.column("ra").to_numpy())]
    assert store.query_adql(top).column("objectId").to_pylist() == ids[:9].tolist()
    assert store.query_adql(top, limit=4).column("objectId").to_pylist() == ids[:4].tolist()
    # Pair and objectId-join plans keep the per-partition form only.
    pairs = adql_plan(store, PAIRS.format(t=OBJ, r=PAIR_ARCSEC / 3600.0))
    assert isinstance(pairs, PartitionedPlan) and pairs.single is None
