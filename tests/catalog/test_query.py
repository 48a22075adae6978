"""Queries on a tiny store equal brute force over the input files."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dpzero.catalog import (
    Cone,
    PartitionedPlan,
    Polygon,
    QueryPlan,
    TableScan,
    UnknownTableError,
    open_store,
)
from dpzero.errors import DpzeroUserError, InvalidInputError

DB = "dp01_dc2_catalogs"
OBJ = f"{DB}.object"


def sep_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def inside_convex(vertices, ra, dec):
    def xyz(r, d):
        r, d = np.radians(np.asarray(r, dtype=float)), np.radians(np.asarray(d, dtype=float))
        return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)

    v = xyz([p[0] for p in vertices], [p[1] for p in vertices])
    p = xyz(ra, dec)
    s = np.stack([p @ np.cross(v[i], v[(i + 1) % len(v)]) for i in range(len(v))])
    return (s >= 0).all(axis=0) | (s <= 0).all(axis=0)


@pytest.fixture(scope="module")
def store(tiny_store):
    return open_store(tiny_store)


@pytest.fixture(scope="module")
def obj(tiny_inputs) -> pa.Table:
    return tiny_inputs[1]["object"]


def ids_of(table: pa.Table, column: str = "objectId") -> list[int]:
    return sorted(table.column(column).to_pylist())


CONES = [
    (56.0, -36.0, 0.2),  # inside the DC2-like field
    (56.3, -35.4, 0.05),
    (0.0, -30.0, 0.3),  # across RA 0/360
    (359.8, -29.8, 0.4),
    (77.0, -90.0, 0.4),  # on the south pole
    (56.0, -36.0, 0.0),  # empty
]


@pytest.mark.parametrize(("ra", "dec", "radius"), CONES)
def test_cone_plan_equals_brute_force(store, obj, ra, dec, radius):
    plan = QueryPlan(
        f"SELECT objectId FROM o WHERE adql_hav(ra, dec, {ra}, {dec}) "
        f"<= pow(sin(radians({radius}) / 2), 2)",
        {"o": TableScan(OBJ, region=Cone(ra, dec, radius))},
    )
    got = store.query(plan).column(0).to_pylist()
    want = np.asarray(obj.column("objectId"))[
        sep_deg(ra, dec, obj.column("ra"), obj.column("dec")) <= radius
    ]
    assert sorted(got) == sorted(want.tolist())
    if radius > 0:
        assert len(got) > 0


@pytest.mark.parametrize(("ra", "dec", "radius"), CONES[:5])
def test_adql_cone_equals_brute_force(store, obj, ra, dec, radius):
    got = store.query_adql(
        "SELECT objectId, ra, dec FROM dp01_dc2_catalogs.object "
        f"WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {radius})) = 1"
    )
    assert got.column_names == ["objectId", "ra", "dec"]
    d = sep_deg(ra, dec, obj.column("ra"), obj.column("dec"))
    want = np.asarray(obj.column("objectId"))[d <= radius]
    assert sorted(got.column(0).to_pylist()) == sorted(want.tolist())


POLYGONS = [
    ((55.5, -36.5), (56.5, -36.5), (56.5, -35.5), (55.5, -35.5)),
    ((359.7, -30.2), (0.3, -30.2), (0.3, -29.6), (359.7, -29.6)),  # across RA 0
    ((0.0, -89.6), (120.0, -89.6), (240.0, -89.6)),  # around the south pole
]


@pytest.mark.parametrize("vertices", POLYGONS)
def test_adql_polygon_equals_brute_force(store, obj, vertices):
    flat = ", ".join(f"{a}, {d}" for a, d in vertices)
    got = store.query_adql(
        "SELECT objectId FROM dp01_dc2_catalogs.object "
        f"WHERE CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {flat})) = 1"
    )
    want = np.asarray(obj.column("objectId"))[
        inside_convex(vertices, obj.column("ra"), obj.column("dec"))
    ]
    assert len(want) > 0
    assert sorted(got.column(0).to_pylist()) == sorted(want.tolist())
    plan = QueryPlan("SELECT objectId FROM p", {"p": TableScan(OBJ, region=Polygon(vertices))})
    # The pruned scan alone is a superset of the exact answer.
    assert set(want.tolist()) <= set(store.query(plan).column(0).to_pylist())


def test_id_lookups_equal_brute_force(store, obj, tiny_inputs):
    all_ids = obj.column("objectId").to_pylist()
    wanted = [*all_ids[::97], 42, -7]  # with ids that do not exist
    plan = QueryPlan("SELECT * FROM o", {"o": TableScan(OBJ, ids=tuple(wanted))})
    got = store.query(plan)
    assert got.column_names == obj.column_names
    assert ids_of(got) == sorted(all_ids[::97])
    # Whole rows come back unchanged.
    by_id = {r["objectId"]: r for r in obj.to_pylist()}
    for row in got.to_pylist():
        want = by_id[row["objectId"]]
        for k, v in row.items():
            assert v == want[k] or (v != v and want[k] != want[k])  # NaN == NaN here
    adql = store.query_adql(
        "SELECT objectId, ra FROM dp01_dc2_catalogs.object WHERE objectId IN "
        f"({', '.join(str(i) for i in wanted)})"
    )
    assert ids_of(adql) == sorted(all_ids[::97])
    truth = tiny_inputs[1]["truth_match"]
    one = all_ids[5]
    tm = store.query_adql(
        f"SELECT match_objectId, ra FROM dp01_dc2_catalogs.truth_match WHERE match_objectId = {one}"
    )
    want_tm = [i for i in truth.column("match_objectId").to_pylist() if i == one]
    assert tm.column(0).to_pylist() == want_tm


def test_id_join_touches_only_the_ids(store, obj):
    ids = obj.column("objectId").to_pylist()[:20]
    got = store.query_adql(
        "SELECT o.objectId, t.match_objectId, o.ra, t.ra AS tra "
        "FROM dp01_dc2_catalogs.object AS o JOIN dp01_dc2_catalogs.truth_match AS t "
        "ON o.objectId = t.match_objectId "
        f"WHERE o.objectId IN ({', '.join(map(str, ids))})"
    )
    assert sorted(got.column(0).to_pylist()) == sorted(ids)


def test_pair_query_across_partition_edges_is_exact_with_the_margin(store, obj):
    """Self-join within 9 arcsec, run partition by partition with the margin."""
    radius = 9.0 / 3600.0
    plan = PartitionedPlan(
        QueryPlan(
            "SELECT a.objectId AS a_id, b.objectId AS b_id FROM a JOIN b "
            f"ON adql_hav(a.ra, a.dec, b.ra, b.dec) <= pow(sin(radians({radius}) / 2), 2) "
            "WHERE a.objectId <> b.objectId",
            {"a": TableScan(OBJ), "b": TableScan(OBJ, with_margin=True)},
        ),
        driver="a",
        merge_sql="SELECT * FROM partials ORDER BY a_id, b_id",
    )
    got = store.query(plan)
    pairs = list(zip(got.column("a_id").to_pylist(), got.column("b_id").to_pylist(), strict=True))
    ra = np.asarray(obj.column("ra"))
    dec = np.asarray(obj.column("dec"))
    ids = np.asarray(obj.column("objectId"))
    want = []
    for i in range(len(ids)):
        close = np.flatnonzero(sep_deg(ra[i], dec[i], ra, dec) <= radius)
        want += [(int(ids[i]), int(ids[j])) for j in close if j != i]
    assert sorted(pairs) == sorted(want)
    assert len(want) > 100
    # Some pairs straddle a partition edge: only the margin could have found them.
    table = store._table(OBJ)
    from dpzero.catalog._pruning import healpix29

    hp = healpix29(ra, dec)
    part = np.searchsorted(table.lo, hp, side="right") - 1
    where = dict(zip(ids.tolist(), part.tolist(), strict=True))
    assert sum(where[a] != where[b] for a, b in pairs) > 0


def test_pair_query_in_a_region_with_a_dilated_neighbour_scan(store, obj):
    radius = 9.0 / 3600.0
    cone = Cone(56.0, -36.0, 0.3)
    plan = QueryPlan(
        "SELECT a.objectId AS a_id, b.objectId AS b_id FROM a JOIN b "
        f"ON adql_hav(a.ra, a.dec, b.ra, b.dec) <= pow(sin(radians({radius}) / 2), 2) "
        "WHERE a.objectId <> b.objectId "
        "AND adql_hav(a.ra, a.dec, 56.0, -36.0) <= pow(sin(radians(0.3) / 2), 2)",
        {
            "a": TableScan(OBJ, region=cone),
            "b": TableScan(OBJ, region=cone, dilate_arcsec=9.0),
        },
    )
    got = store.query(plan)
    ra, dec = np.asarray(obj.column("ra")), np.asarray(obj.column("dec"))
    ids = np.asarray(obj.column("objectId"))
    want = []
    for i in np.flatnonzero(sep_deg(56.0, -36.0, ra, dec) <= 0.3):
        close = np.flatnonzero(sep_deg(ra[i], dec[i], ra, dec) <= radius)
        want += [(int(ids[i]), int(ids[j])) for j in close if j != i]
    assert sorted(zip(got.column(0).to_pylist(), got.column(1).to_pylist(), strict=True)) == sorted(
        want
    )
    assert len(want) > 5


@pytest.mark.parametrize("pruned", [False, True])
def test_nan_compares_like_postgresql(store, obj, pruned):
    flux = np.asarray(obj.column("psFlux_i"), dtype=float)
    assert np.isnan(flux).any()
    scans = {"o": TableScan(OBJ, region=Cone(56.0, -36.0, 5.0) if pruned else None)}
    for op, c in (("<", 1000.0), ("<", 20.0), (">", -1000.0), (">=", 21.0)):
        got = store.query(QueryPlan(f"SELECT count(*) FROM o WHERE psFlux_i {op} {c}", scans))
        ra, dec = np.asarray(obj.column("ra")), np.asarray(obj.column("dec"))
        keep = sep_deg(56.0, -36.0, ra, dec) <= 5.0 if pruned else np.ones(flux.size, bool)
        with np.errstate(invalid="ignore"):
            # NaN is greater than every number: only `>` style comparisons keep it.
            want = {
                "<": flux < c,
                ">": (flux > c) | np.isnan(flux),
                ">=": (flux >= c) | np.isnan(flux),
            }[op]
        assert got.column(0)[0].as_py() == int((want & keep).sum()), (op, c)


def test_full_scan_aggregate(store, obj):
    got = store.query(f"SELECT count(*) AS n, max(objectId) AS m FROM {OBJ}").to_pylist()[0]
    assert got == {"n": obj.num_rows, "m": max(obj.column("objectId").to_pylist())}
    adql = store.query_adql("SELECT COUNT(*) AS n FROM dp01_dc2_catalogs.truth_match")
    assert adql.column(0)[0].as_py() == 2000 + 500


def test_catalog_listing_and_errors(store):
    assert store.databases() == [DB]
    assert store.tables(DB) == ["object", "truth_match"]
    with pytest.raises(UnknownTableError):
        store.tables("nope")
    with pytest.raises(UnknownTableError):
        store.table_metadata(DB, "nope")
    with pytest.raises(UnknownTableError):
        store.query(QueryPlan("SELECT * FROM x", {"x": TableScan(f"{DB}.nope", ids=(1,))}))
    with pytest.raises(InvalidInputError):
        store.query("SELECT nonsense FROM")
    with pytest.raises(InvalidInputError):
        store.query(f"SELECT no_such_column FROM {OBJ}")
    with pytest.raises(DpzeroUserError):
        store.query_adql("SELECT TOP 1 * FROM dp01_dc2_catalogs.objekt")
    with pytest.raises(InvalidInputError):
        TableScan("object")


def test_dask_backend_scatters_the_same_partition_plans(tiny_store, store):
    from dask.distributed import Client

    from dpzero.catalog import DaskCatalogStore

    radius = 9.0 / 3600.0
    plan = PartitionedPlan(
        QueryPlan(
            "SELECT a.objectId AS a_id, b.objectId AS b_id FROM a JOIN b "
            f"ON adql_hav(a.ra, a.dec, b.ra, b.dec) <= pow(sin(radians({radius}) / 2), 2) "
            "WHERE a.objectId <> b.objectId",
            {"a": TableScan(OBJ), "b": TableScan(OBJ, with_margin=True)},
        ),
        driver="a",
        merge_sql="SELECT count(*) AS n, sum(a_id % 1000) AS s FROM partials",
    )
    with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0") as c:
        remote = DaskCatalogStore(tiny_store, c)
        assert remote.tables(DB) == store.tables(DB)
        assert remote.query(plan).to_pylist() == store.query(plan).to_pylist()
        assert remote.query(plan).column("n")[0].as_py() > 100
        cone = QueryPlan("SELECT count(*) FROM o", {"o": TableScan(OBJ, region=Cone(56, -36, 0.2))})
        assert remote.query(cone).to_pylist() == store.query(cone).to_pylist()


def test_concurrent_queries_from_threads(store):
    from concurrent.futures import ThreadPoolExecutor

    def cone(i: int) -> list[int]:
        ra, dec = 55.5 + (i % 7) * 0.15, -36.5 + (i % 5) * 0.2
        return sorted(
            store.query_adql(
                "SELECT objectId FROM dp01_dc2_catalogs.object WHERE "
                f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.1)) = 1"
            )
            .column(0)
            .to_pylist()
        )

    serial = [cone(i) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(cone, range(24))) == serial
    assert sum(map(len, serial)) > 0


def test_ingest_options_reject_nonsense():
    from dpzero.catalog import IngestOptions

    with pytest.raises(InvalidInputError):
        IngestOptions(partition_rows=0)
    with pytest.raises(InvalidInputError):
        IngestOptions(highest_order=30)
    with pytest.raises(InvalidInputError, match="compression must be one of lz4"):
        IngestOptions(compression="brotli")
    with pytest.raises(TypeError):
        IngestOptions(partition_row=5)  # type: ignore[call-arg]


def test_join_on_objectid_reads_the_other_table_through_the_index(store, tiny_inputs):
    from dpzero.catalog._adql import adql_plan

    obj, truth = tiny_inputs[1]["object"], tiny_inputs[1]["truth_match"]
    query = (
        "SELECT o.objectId, t.match_objectId, t.redshift "
        "FROM dp01_dc2_catalogs.object AS o JOIN dp01_dc2_catalogs.truth_match AS t "
        "ON o.objectId = t.match_objectId "
        "WHERE CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', 56.0, -36.0, 0.3)) = 1"
    )
    plan = adql_plan(store, query)
    joined = [s for s in plan.scans.values() if s.table.endswith("truth_match")]
    assert len(joined) == 1 and joined[0].ids_from is not None
    got = store.query_adql(query)
    inside = sep_deg(56.0, -36.0, obj.column("ra"), obj.column("dec")) <= 0.3
    want_ids = set(np.asarray(obj.column("objectId"))[inside].tolist())
    want = sorted(i for i in truth.column("match_objectId").to_pylist() if i in want_ids)
    assert sorted(got.column("match_objectId").to_pylist()) == want
    assert sorted(got.column("objectId").to_pylist()) == want
    assert len(want) > 10
    # In a LEFT JOIN only the joined (right) table may be restricted to the other's ids.
    left = adql_plan(
        store,
        "SELECT o.objectId, t.redshift FROM dp01_dc2_catalogs.truth_match AS t "
        "LEFT JOIN dp01_dc2_catalogs.object AS o ON o.objectId = t.match_objectId "
        "WHERE t.match_objectId = 5",
    )
    assert [s.table for s in left.scans.values() if s.ids_from] == ["dp01_dc2_catalogs.object"]
    right = adql_plan(
        store,
        "SELECT o.objectId, t.redshift FROM dp01_dc2_catalogs.object AS o "
        "LEFT JOIN dp01_dc2_catalogs.truth_match AS t ON o.objectId = t.match_objectId "
        "WHERE t.match_objectId = 5",
    )
    assert not any(s.ids_from for s in right.scans.values())


def test_adql_neighbour_pairs_prune_the_other_side_by_the_grown_region(store, obj):
    from dpzero.catalog._adql import adql_plan

    r = 9.0 / 3600.0
    query = (
        "SELECT a.objectId AS a_id, b.objectId AS b_id "
        "FROM dp01_dc2_catalogs.object AS a JOIN dp01_dc2_catalogs.object AS b "
        f"ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) <= {r} "
        "WHERE CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', 56.0, -36.0, 0.3)) = 1 "
        "AND a.objectId <> b.objectId"
    )
    (scan,) = adql_plan(store, query).scans.values()
    assert scan.region == Cone(56.0, -36.0, 0.3)
    assert scan.dilate_arcsec == pytest.approx(9.0)
    got = store.query_adql(query)
    ra, dec = np.asarray(obj.column("ra")), np.asarray(obj.column("dec"))
    ids = np.asarray(obj.column("objectId"))
    want = []
    for i in np.flatnonzero(sep_deg(56.0, -36.0, ra, dec) <= 0.3):
        close = np.flatnonzero(sep_deg(ra[i], dec[i], ra, dec) <= r)
        want += [(int(ids[i]), int(ids[j])) for j in close if j != i]
    pairs = zip(got.column("a_id").to_pylist(), got.column("b_id").to_pylist(), strict=True)
    assert sorted(pairs) == sorted(want)
    assert len(want) > 5
    # A cone holding one member of a close pair and not the other: only the grown
    # region holds the neighbour.
    d = sep_deg(ra[:, None], dec[:, None], ra[None, :], dec[None, :])
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(np.argmin(np.where(d > 2 / 3600, d, np.inf)), d.shape)
    small = d[i, j] / 2
    got = store.query_adql(query.replace("56.0, -36.0, 0.3", f"{ra[i]}, {dec[i]}, {small}"))
    pairs = set(zip(got.column("a_id").to_pylist(), got.column("b_id").to_pylist(), strict=True))
    assert (int(ids[i]), int(ids[j])) in pairs
