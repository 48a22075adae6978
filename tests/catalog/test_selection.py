"""Plain selections (one table, a region and/or ids) read without DuckDB give the DuckDB
path's rows, names and types exactly, and brute force's rows."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from dpzero.adql import AdqlError
from dpzero.catalog import PartitionedPlan, QueryPlan, open_store
from dpzero.catalog._adql import adql_plan, plan_or_selection
from dpzero.catalog._selection import ConeTest, Selection
from tests_support import angular_separation_deg

DB = "dp01_dc2_catalogs"
OBJ = f"{DB}.object"
TRUTH = f"{DB}.truth_match"


@pytest.fixture(scope="module")
def store(tiny_store):
    return open_store(tiny_store)


@pytest.fixture(scope="module")
def obj(tiny_inputs) -> pa.Table:
    return tiny_inputs[1]["object"]


def cone(ra: float, dec: float, r: float, alias: str = "") -> str:
    return f"CONTAINS(POINT('ICRS', {alias}ra, {alias}dec), CIRCLE('ICRS', {ra}, {dec}, {r!r})) = 1"


def both(store, query: str, limit: int | None = None) -> tuple[pa.Table, pa.Table]:
    """The selection's rows and the DuckDB plan's rows of the same query."""
    selection = plan_or_selection(store, query)
    assert isinstance(selection, Selection), query
    direct = store.select(selection, limit).read_all()
    plan = adql_plan(store, query)
    assert isinstance(plan, QueryPlan)
    if limit is not None:
        plan = QueryPlan(f"SELECT * FROM ({plan.sql}) AS l LIMIT {limit}", plan.scans)
    return direct, store.query(plan)


QUERIES = [
    f"SELECT * FROM {OBJ} WHERE {cone(56.0, -36.0, 0.2)}",
    f"SELECT * FROM {OBJ} WHERE {cone(0.0, -30.0, 0.3)}",  # across RA 0/360
    f"SELECT * FROM {OBJ} WHERE {cone(77.0, -90.0, 0.4)}",  # on the pole
    f"SELECT * FROM {OBJ} WHERE {cone(56.3, -35.4, 5 / 3600)}",
    f"SELECT objectId, ra AS r, dec, mag_i_cModel FROM {OBJ} AS o WHERE {cone(56, -36, 0.3, 'o.')}",
    f"SELECT TOP 7 * FROM {OBJ} WHERE {cone(56.0, -36.0, 0.3)}",
    f"SELECT TOP 0 objectId FROM {OBJ} WHERE {cone(56.0, -36.0, 0.3)}",
    # Other conditions go to DuckDB with the columns they read.
    f"SELECT objectId, psFlux_i FROM {OBJ} WHERE {cone(56, -36, 0.3)} AND psFlux_i > 20",
    f"SELECT * FROM {OBJ} WHERE {cone(56, -36, 0.3)} AND (psFlux_i > 21 OR tract = 3)",
    f"SELECT * FROM {OBJ} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
    "POLYGON('ICRS', 55.8, -36.2, 56.4, -36.1, 56.1, -35.7))",
    f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 0.0, -30.0, 0.6, 0.4))"
    " = 1",
    # Not convex: decided by DuckDB on the rows of the pruned row groups.
    f"SELECT objectId FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), "
    "POLYGON('ICRS', 55.5, -36.5, 56.5, -36.5, 56.0, -36.0, 56.5, -35.5, 55.5, -35.5)) = 1",
    f"SELECT * FROM {OBJ} WHERE ra BETWEEN 55.9 AND 56.1 AND dec BETWEEN -36.1 AND -35.9",
]


@pytest.mark.parametrize("query", QUERIES)
def test_selection_equals_the_duckdb_path(store, query):
    direct, general = both(store, query)
    assert direct.schema == general.schema
    assert direct.equals(general)


def test_selection_equals_brute_force_and_reads_nan_as_null(store, obj):
    got = store.query_adql(f"SELECT * FROM {OBJ} WHERE {cone(56.0, -36.0, 0.2)}")
    ra, dec = obj.column("ra").to_numpy(), obj.column("dec").to_numpy()
    d = angular_separation_deg(ra, dec, 56.0, -36.0)
    want = obj.filter(pa.array(d <= 0.2))
    assert sorted(got.column("objectId").to_pylist()) == sorted(want.column("objectId").to_pylist())
    flux = got.sort_by("objectId").column("psFlux_i").to_numpy(zero_copy_only=False)
    stored = want.sort_by("objectId").column("psFlux_i").to_numpy()
    assert got.column("psFlux_i").null_count == int(np.isnan(stored).sum()) > 0
    assert np.array_equal(np.isnan(flux), np.isnan(stored))


def test_id_lists_give_the_same_rows(store, obj):
    ids = obj.column("objectId").to_pylist()[::97]
    listed = ", ".join(str(i) for i in ids)
    for query in (
        f"SELECT * FROM {OBJ} WHERE objectId IN ({listed})",
        f"SELECT objectId, ra FROM {OBJ} WHERE objectId IN ({listed}) AND ra > 56",
        f"SELECT * FROM {OBJ} WHERE objectId = {ids[3]}",
        f"SELECT match_objectId, ra FROM {TRUTH} WHERE match_objectId IN ({listed})",
    ):
        direct, general = both(store, query)
        assert direct.schema == general.schema
        # No ORDER BY: DuckDB's IN join returns rows in any order.
        key = direct.column_names[0]
        assert direct.sort_by(key).equals(general.sort_by(key)), query
    got = store.query_adql(f"SELECT objectId FROM {OBJ} WHERE objectId IN ({listed})")
    assert sorted(got.column(0).to_pylist()) == sorted(ids)


@pytest.mark.parametrize("cold", [False, True])
def test_id_lookups_read_the_same_rows_with_and_without_read_ahead(store, obj, cold):
    """After a slow lookup the next one asks for its pages ahead: same rows either way."""
    from dpzero.catalog import _direct

    ids = obj.column("objectId").to_pylist()[5::61]
    listed = ", ".join(str(i) for i in [*ids, 424242])
    query = f"SELECT * FROM {OBJ} WHERE objectId IN ({listed})"
    general = both(store, query)[1]
    _direct._PAGE_CACHE.cold = cold
    got = store.query_adql(query)
    assert got.sort_by("objectId").equals(general.sort_by("objectId"))
    assert sorted(got.column("objectId").to_pylist()) == sorted(ids)
    _direct._PAGE_CACHE.saw(0.0)
    assert not _direct._PAGE_CACHE.cold
    _direct._PAGE_CACHE.saw(1.0)
    assert _direct._PAGE_CACHE.cold
    _direct._PAGE_CACHE.saw(0.0)


def test_limit_and_stream(store):
    query = f"SELECT * FROM {OBJ} WHERE {cone(56.0, -36.0, 0.3)}"
    direct, general = both(store, query, limit=11)
    assert direct.num_rows == 11 and direct.equals(general)
    reader = store.stream_adql(query, limit=5)
    assert reader.read_all().equals(general.slice(0, 5))
    assert store.query_adql(query, limit=3).equals(general.slice(0, 3))


def test_rows_on_the_circle_are_decided_as_duckdb_rounds(store, obj):
    ra, dec = obj.column("ra").to_numpy(), obj.column("dec").to_numpy()
    # Radii putting a row (almost) exactly on the circle: numpy cannot tell, DuckDB does.
    for i in (10, 20, 30):
        r = float(angular_separation_deg(ra[i], dec[i], 56.0, -36.0))
        for radius in (r, math.nextafter(r, 0.0), math.nextafter(r, 1.0)):
            query = f"SELECT objectId FROM {OBJ} WHERE {cone(56.0, -36.0, radius)}"
            direct, general = both(store, query)
            assert direct.equals(general)
    test = ConeTest("ra", "dec", 56.0, -36.0, -37.0, -35.0, 1e-6)
    h = test.limit
    values = {"ra": np.array([56.0, 56.0]), "dec": np.array([-36.0, -36.0])}
    sure, maybe = test.decide(values)
    assert sure.all() and not maybe.any()
    # A row whose haversine equals the limit is undecided.
    dec_on = -36.0 + math.degrees(2 * math.asin(math.sqrt(h)))
    sure, maybe = test.decide({"ra": np.array([56.0]), "dec": np.array([dec_on])})
    assert maybe.all() and not sure.any()


@pytest.mark.parametrize(
    ("ra0", "dec0", "radius"), [(59.7, -38.4, 0.5), (0.1, -30.0, 0.3), (12.0, -89.8, 0.4)]
)
def test_cone_test_agrees_with_duckdb_on_every_row(ra0, dec0, radius):
    import duckdb

    from dpzero.adql import Circle, register_adql_functions
    from dpzero.adql._translate import _number

    rng = np.random.default_rng(3)
    n = 200_000
    # A disk twice the cone, plus rows on its rim (within 1e-9 deg of the radius).
    r = radius * 2 * np.sqrt(rng.random(n))
    r[: n // 4] = radius + rng.uniform(-1e-9, 1e-9, n // 4)
    angle = rng.uniform(0, 2 * np.pi, n)
    dec = np.clip(dec0 + r * np.cos(angle), -90, 90)
    ra = np.mod(ra0 + r * np.sin(angle) / max(math.cos(math.radians(dec0)), 0.01), 360.0)
    dec[::997] = np.nan
    circle = Circle(ra0, dec0, radius)
    low, high = circle.dec_range()
    limit = math.sin(math.radians(radius) / 2) ** 2
    test = ConeTest("ra", "dec", ra0, dec0, low, high, limit)
    sure, maybe = test.decide({"ra": ra, "dec": dec})
    con = duckdb.connect()
    register_adql_functions(con)
    con.register("t", pa.table({"ra": ra, "dec": dec}))
    inside = (
        con.sql(
            f"SELECT coalesce(dec BETWEEN {_number(low)} AND {_number(high)} AND adql_hav(ra, dec, "
            f"{_number(ra0)}, {_number(dec0)}) <= {_number(limit)}, false) FROM t"
        )
        .to_arrow_table()
        .column(0)
        .to_numpy(zero_copy_only=False)
    )
    assert not (sure & maybe).any()
    assert (inside[sure]).all()
    assert not inside[~sure & ~maybe].any()
    assert sure.sum() > n // 10


@pytest.mark.parametrize(
    "query",
    [
        f"SELECT * FROM {OBJ} WHERE {cone(56, -36, 0.2)} ORDER BY ra",
        f"SELECT tract, COUNT(*) FROM {OBJ} WHERE {cone(56, -36, 0.2)} GROUP BY tract",
        f"SELECT ra * 2 AS x FROM {OBJ} WHERE {cone(56, -36, 0.2)}",
        f"SELECT * FROM {OBJ} WHERE psFlux_i > 20",  # no pruning: DuckDB reads the files
        f"SELECT o.objectId FROM {OBJ} AS o JOIN {TRUTH} AS t ON o.objectId = t.match_objectId "
        f"WHERE {cone(56, -36, 0.2, 'o.')}",
        f"SELECT ra, ra FROM {OBJ} WHERE {cone(56, -36, 0.2)}",
        f"SELECT * FROM {OBJ} WHERE {cone(56, -36, 0.2)} AND objectId IN "
        f"(SELECT match_objectId FROM {TRUTH})",
    ],
)
def test_other_queries_keep_the_duckdb_path(store, query):
    found = plan_or_selection(store, query)
    assert isinstance(found, QueryPlan | PartitionedPlan)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"SELECT * FROM {OBJ} WHERE {cone(56, -36, 0.2)} AND magg < 3", "column magg not found"),
        (f"SELECT * FROM {DB}.objekt WHERE {cone(56, -36, 0.2)}", "table"),
        (f"SELECT * FROM {OBJ} WHERE {cone(56, 95, 0.2)}", "95"),
        (f"SELECT * FROM {OBJ} WHERE {cone(56, -36, -1)}", "radius"),
        (
            f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('GALACTIC', ra, dec), "
            "CIRCLE('GALACTIC', 1, 2, 0.1)) = 1",
            "ICRS",
        ),
    ],
)
def test_errors_are_those_of_the_duckdb_path(store, query, message):
    with pytest.raises(AdqlError) as direct:
        store.query_adql(query)
    with pytest.raises(AdqlError) as general:
        store.query(adql_plan(store, query))
    assert str(direct.value) == str(general.value)
    assert message in str(direct.value)


@pytest.mark.parametrize("rows", [7, 30_000])
def test_nan_becomes_null_in_few_and_many_rows(rows):
    from dpzero.catalog._direct import _nan_as_null

    values = np.arange(rows, dtype=np.float64)
    values[::5] = np.nan
    nulls = np.zeros(rows, dtype=bool)
    nulls[1::7] = True
    half = rows // 2
    column = pa.chunked_array(
        [pa.array(values[:half], mask=nulls[:half]), pa.array(values[half:], mask=nulls[half:])]
    )
    got = _nan_as_null(column)
    assert got.type == pa.float64()
    assert (
        got.is_null().to_numpy(zero_copy_only=False).tolist() == (np.isnan(values) | nulls).tolist()
    )
    kept = ~(np.isnan(values) | nulls)
    assert np.array_equal(got.to_numpy()[kept], values[kept])
    clean = pa.chunked_array([pa.array(np.arange(rows, dtype=np.float64))])
    assert _nan_as_null(clean) is clean
    # Float32, and chunks that are slices of one array (offsets into shared buffers).
    single = pa.array(values.astype(np.float32), mask=nulls)
    pieces = [single.slice(0, half), single.slice(half, 3), single.slice(half + 3)]
    sliced = pa.chunked_array(pieces)
    got = _nan_as_null(sliced)
    got.validate(full=True)
    assert got.type == pa.float32()
    assert got.is_null().to_numpy(zero_copy_only=False).tolist() == (~kept).tolist()
    assert np.array_equal(got.to_numpy()[kept], values[kept].astype(np.float32))
