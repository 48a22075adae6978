"""Translated queries run on a real DuckDB connection, checked against brute force."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import angular_separation as astropy_separation
from lsst.sphgeom import ConvexPolygon, UnitVector3d

from dpzero.adql import (
    AdqlGeometryError,
    AdqlUnsupportedError,
    ColumnInfo,
    Polygon,
    TableCatalog,
    box_polygon,
    parse_adql,
    register_adql_functions,
    resolve,
    to_duckdb,
)
from dpzero.adql._geometry import unit_vectors
from tests_support import points_near

CONES = [
    (62.0, -37.0, 0.1),  # DC2
    (0.0, 10.0, 2.0),  # across RA 0/360
    (359.9, -5.0, 0.5),
    (123.0, 89.5, 1.0),  # over the north pole
    (200.0, -89.9, 0.3),  # over the south pole
    (45.0, 30.0, 1 / 3600),  # 1 arcsec
    (300.0, -20.0, 90.0),  # a hemisphere
]

POLYGONS = [
    ((60.0, -40.0), (65.0, -40.0), (65.0, -35.0), (60.0, -35.0)),
    ((355.0, -2.0), (5.0, -2.0), (5.0, 2.0), (355.0, 2.0)),  # across RA 0
    ((0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)),  # north pole inside
    ((0.0, -85.0), (270.0, -85.0), (180.0, -85.0), (90.0, -85.0)),  # south pole, clockwise
    ((10.0, 60.0), (100.0, 70.0), (190.0, 65.0)),  # big triangle near the pole
]


def scatter(ra: float, dec: float, radius: float, n: int, rng: np.random.Generator):
    return points_near(ra, dec, radius, n, rng)


@pytest.fixture(scope="module")
def objects() -> pa.Table:
    rng = np.random.default_rng(42)
    ras, decs = [rng.uniform(0, 360, 5000)], [np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))]
    for ra, dec, radius in CONES:
        r, d = scatter(ra, dec, min(2 * radius, 170), 3000, rng)
        ras.append(r)
        decs.append(d)
    for vertices in POLYGONS:
        centre = Polygon(vertices).centroid
        r, d = scatter(*centre, 30.0, 3000, rng)
        ras.append(r)
        decs.append(d)
    ra, dec = np.concatenate(ras), np.concatenate(decs)
    n = len(ra)
    mag = rng.uniform(16, 28, n)
    mag[::7] = np.nan
    flux = 10 ** ((31.4 - rng.uniform(16, 28, n)) / 2.5)
    flux[::11] = -flux[::11]
    flux[::13] = np.nan
    names = np.array(["NGC 1", "ngc 2", "M31", "IC 10"])[np.arange(n) % 4]
    mask = np.zeros(n, dtype=bool)
    mask[3::17] = True
    return pa.table(
        {
            "objectId": pa.array(np.arange(n, dtype=np.int64) + 2**40),
            "ra": ra,
            "dec": dec,
            "mag": pa.array(mag, mask=mask),
            "flux": flux,
            "fluxErr": np.abs(flux) * 0.1,
            "name": names,
        }
    )


@pytest.fixture(scope="module")
def catalog() -> TableCatalog:
    columns = [
        ColumnInfo("objectId", "long"),
        ColumnInfo("ra", "double", "deg"),
        ColumnInfo("dec", "double", "deg"),
        ColumnInfo("mag", "double", "mag"),
        ColumnInfo("flux", "double", "nJy"),
        ColumnInfo("fluxErr", "double", "nJy"),
        ColumnInfo("name", "char"),
    ]
    sources = [ColumnInfo("id", "long"), ColumnInfo("ra", "double"), ColumnInfo("dec", "double")]
    return TableCatalog({"dp.obj": tuple(columns), "TAP_UPLOAD.src": tuple(sources)})


@pytest.fixture(scope="module")
def con(objects: pa.Table) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    register_adql_functions(connection)
    connection.register("obj_arrow", objects)
    rng = np.random.default_rng(7)
    ra, dec = scatter(62.0, -37.0, 3.0, 25, rng)
    sources = pa.table({"id": np.arange(25), "ra": ra, "dec": dec})
    connection.register("src_arrow", sources)
    return connection


def run(con, catalog, text: str, **kwargs) -> list[tuple]:
    sql = to_duckdb(
        resolve(parse_adql(text), catalog),
        table_names={"dp.obj": "obj_arrow", "tap_upload.src": "src_arrow"},
        **kwargs,
    )
    return con.sql(sql).fetchall()


def ids(con, catalog, where: str) -> set[int]:
    return {row[0] for row in run(con, catalog, f"SELECT objectId FROM dp.obj WHERE {where}")}


def separation(ra, dec, ra0, dec0) -> np.ndarray:
    return np.degrees(
        astropy_separation(np.radians(ra), np.radians(dec), math.radians(ra0), math.radians(dec0))
    )


@pytest.mark.parametrize(("ra0", "dec0", "radius"), CONES)
def test_cone_equals_great_circle_brute_force(con, catalog, objects, ra0, dec0, radius) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    inside = separation(ra, dec, ra0, dec0) <= radius
    expected = set(objects["objectId"].to_numpy()[inside].tolist())
    assert len(expected) > 50
    circle = f"CIRCLE('ICRS', {ra0!r}, {dec0!r}, {radius!r})"
    assert ids(con, catalog, f"CONTAINS(POINT('ICRS', ra, dec), {circle}) = 1") == expected
    assert ids(con, catalog, f"1 = INTERSECTS({circle}, POINT('ICRS', ra, dec))") == expected
    outside = ids(con, catalog, f"CONTAINS(POINT('ICRS', ra, dec), {circle}) = 0")
    assert outside == set(objects["objectId"].to_numpy()[~inside].tolist())
    distance = f"DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra0!r}, {dec0!r}))"
    assert ids(con, catalog, f"{distance} <= {radius!r}") == expected


def test_cone_by_scisql_and_distances_match(con, catalog, objects) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    expected = set(objects["objectId"].to_numpy()[separation(ra, dec, 62.0, -37.0) <= 0.1].tolist())
    assert ids(con, catalog, "scisql_s2PtInCircle(ra, dec, 62.0, -37.0, 0.1) = 1") == expected
    rows = run(
        con,
        catalog,
        "SELECT objectId, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 62, -37)) AS d, "
        "scisql_angSep(ra, dec, 62, -37) AS s FROM dp.obj ORDER BY objectId",
    )
    d = np.array([r[1] for r in rows])
    np.testing.assert_allclose(d, separation(ra, dec, 62.0, -37.0), rtol=0, atol=1e-9)
    np.testing.assert_allclose([r[2] for r in rows], d, rtol=0, atol=1e-12)


def sphgeom_inside(vertices, ra, dec) -> np.ndarray:
    polygon = Polygon(tuple(vertices))
    ordered = vertices if polygon.oriented is polygon._raw else vertices[::-1]
    region = ConvexPolygon([UnitVector3d(*unit_vectors(*v)) for v in ordered])
    u = unit_vectors(ra, dec)
    return np.asarray(region.contains(u[:, 0], u[:, 1], u[:, 2]), dtype=bool)


@pytest.mark.parametrize("vertices", POLYGONS)
def test_polygon_equals_sphgeom(con, catalog, objects, vertices) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    inside = sphgeom_inside(vertices, ra, dec)
    expected = set(objects["objectId"].to_numpy()[inside].tolist())
    assert len(expected) > 50
    numbers = ", ".join(f"{x!r}" for v in vertices for x in v)
    where = f"CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {numbers})) = 1"
    assert ids(con, catalog, where) == expected
    points = ", ".join(f"POINT({v[0]!r}, {v[1]!r})" for v in vertices)
    assert ids(con, catalog, f"CONTAINS(POINT(ra, dec), POLYGON({points})) = 1") == expected


def test_box_equals_its_polygon(con, catalog, objects) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    for centre, size in (((0.0, 10.0), (3.0, 2.0)), ((123.0, 89.5), (1.5, 1.5))):
        polygon = box_polygon(*centre, *size)
        inside = sphgeom_inside(list(polygon.vertices), ra, dec)
        expected = set(objects["objectId"].to_numpy()[inside].tolist())
        assert len(expected) > 20
        box = f"BOX('ICRS', {centre[0]}, {centre[1]}, {size[0]}, {size[1]})"
        assert ids(con, catalog, f"CONTAINS(POINT('ICRS', ra, dec), {box}) = 1") == expected


def test_non_convex_polygon_is_exact(con, catalog, objects) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    part_a = [(350.0, 0.0), (10.0, 0.0), (10.0, 4.0), (0.0, 4.0), (350.0, 4.0)]
    part_b = [(350.0, 4.0), (0.0, 4.0), (0.0, 15.0), (350.0, 15.0)]
    inside = sphgeom_inside(part_a, ra, dec) | sphgeom_inside(part_b, ra, dec)
    expected = set(objects["objectId"].to_numpy()[inside].tolist())
    assert len(expected) > 50
    where = (
        "CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 350, 0, 10, 0, 10, 4, 0, 4, "
        "0, 15, 350, 15)) = 1"
    )
    assert ids(con, catalog, where) == expected


def test_crossmatch_join_with_column_circles(con, catalog, objects) -> None:
    rows = run(
        con,
        catalog,
        "SELECT o.objectId, s.id FROM dp.obj AS o JOIN TAP_UPLOAD.src AS s "
        "ON CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', s.ra, s.dec, 0.05)) = 1",
    )
    sources = con.sql("SELECT id, ra, dec FROM src_arrow").fetchall()
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    oid = objects["objectId"].to_numpy()
    expected = set()
    for sid, sra, sdec in sources:
        expected |= {(int(o), sid) for o in oid[separation(ra, dec, sra, sdec) <= 0.05]}
    assert len(expected) > 10
    assert set(rows) == expected


def test_constant_geometry_functions(con, catalog) -> None:
    (row,) = run(
        con,
        catalog,
        "SELECT TOP 1 AREA(CIRCLE('ICRS', 10, 20, 1)), AREA(POLYGON('ICRS', 0, 0, 90, 0, 0, 90)), "
        "COORD1(CENTROID(CIRCLE('ICRS', 10, 20, 1))), COORD2(POINT('ICRS', 5, 6)), "
        "DISTANCE(POINT('ICRS', 0, 0), POINT('ICRS', 90, 0)), POINT('ICRS', 1.5, 2.5), "
        "CIRCLE('ICRS', 1, 2, 3), COORDSYS(POINT('ICRS', 1, 2)), "
        "CONTAINS(CIRCLE('ICRS', 0, 0, 1), CIRCLE('ICRS', 0, 0, 2)), "
        "INTERSECTS(CIRCLE('ICRS', 0, 0, 1), POLYGON('ICRS', 1.5, -1, 3, -1, 3, 1, 1.5, 1)), "
        "INTERSECTS(CIRCLE('ICRS', 0, 0, 2), POLYGON('ICRS', 1.5, -1, 3, -1, 3, 1, 1.5, 1)), "
        "CONTAINS(CIRCLE('ICRS', 0, 0, 1), POINT('ICRS', 0, 0)), "
        "CONTAINS(CIRCLE('ICRS', 0, 0, 0), POINT('ICRS', 0, 0)), "
        "CAST('12.5 -45' AS POINT), "
        "CONTAINS(CAST('1 2' AS POINT), CAST('0 0 10 0 10 10 0 10' AS POLYGON)) "
        "FROM dp.obj",
    )
    sq_deg = (180 / math.pi) ** 2
    assert row[0] == pytest.approx(2 * math.pi * (1 - math.cos(math.radians(1))) * sq_deg)
    assert row[1] == pytest.approx(4 * math.pi / 8 * sq_deg)
    assert row[2:5] == (10, 6, pytest.approx(90.0))
    assert row[5] == [1.5, 2.5] and row[6] == [1.0, 2.0, 3.0]
    assert row[7:] == ("ICRS", 1, 0, 1, 0, 1, [12.5, -45.0], 1)


# ------------------------------------------------------------------ NaN and NULL


def test_nan_behaves_as_null_in_every_comparison(con, catalog, objects) -> None:
    mag = objects["mag"].to_numpy(zero_copy_only=False)  # NULL → nan as well
    oid = objects["objectId"].to_numpy()
    finite = np.isfinite(mag)

    def expect(mask) -> set[int]:
        return set(oid[mask & finite].tolist())

    assert ids(con, catalog, "mag < 99") == expect(mag < 99)
    assert ids(con, catalog, "99 >= mag AND mag <= 99") == expect(mag <= 99)
    assert ids(con, catalog, "mag < 99 OR mag > 20") == expect((mag < 99) | (mag > 20))
    assert ids(con, catalog, "mag > 20") == expect(mag > 20)
    assert ids(con, catalog, "mag >= 20 AND mag <= 22") == expect((mag >= 20) & (mag <= 22))
    assert ids(con, catalog, "mag BETWEEN 20 AND 22") == expect((mag >= 20) & (mag <= 22))
    assert ids(con, catalog, "mag <> 20") == expect(mag != 20)
    assert ids(con, catalog, "NOT (mag > 20)") == expect(mag <= 20)
    assert ids(con, catalog, "mag IS NULL") == set(oid[~finite].tolist())
    assert ids(con, catalog, "COALESCE(mag, -1) = -1") == set(oid[~finite].tolist())
    # With a WHERE that every NaN row fails, the aggregates read the column without NULLIF.
    cut = "SELECT COUNT(mag), AVG(mag), MAX(mag), MIN(mag) FROM dp.obj WHERE mag < 99"
    ((count, mean, high, low),) = run(con, catalog, cut)
    assert count == (finite & (mag < 99)).sum()
    assert mean == pytest.approx(np.mean(mag[finite & (mag < 99)]))
    assert (high, low) == pytest.approx((mag[finite & (mag < 99)].max(), np.nanmin(mag)))
    ((count, mean, high),) = run(con, catalog, "SELECT COUNT(mag), AVG(mag), MAX(mag) FROM dp.obj")
    assert count == finite.sum()
    assert mean == pytest.approx(np.nanmean(mag))
    assert high == pytest.approx(np.nanmax(mag))
    first = run(con, catalog, "SELECT TOP 3 mag FROM dp.obj ORDER BY mag")
    assert [r[0] for r in first] == pytest.approx(np.sort(mag[finite])[:3].tolist())
    last = run(con, catalog, "SELECT mag FROM dp.obj ORDER BY mag")
    assert all(r[0] is None for r in last[-int((~finite).sum()) :])
    top = run(con, catalog, "SELECT TOP 3 mag FROM dp.obj ORDER BY mag DESC")
    assert [r[0] for r in top] == pytest.approx(np.sort(mag[finite])[::-1][:3].tolist())


def test_nan_as_null_on_parquet_statistics(tmp_path: Path, catalog) -> None:
    # Parquet statistics let DuckDB's optimizer decide comparisons from min/max:
    # NaN rows must still behave as NULL with constants above the column's maximum.
    path = tmp_path / "obj.parquet"
    values = np.array([1.0, 2.0, np.nan, 3.0, np.nan])
    table = pa.table({"objectId": np.arange(5), "mag": values})
    pq.write_table(table, path, row_group_size=2)
    connection = duckdb.connect()
    register_adql_functions(connection)
    connection.execute(f"CREATE VIEW obj_file AS SELECT * FROM read_parquet('{path}')")
    local = TableCatalog({"dp.obj": (ColumnInfo("objectId", "long"), ColumnInfo("mag", "double"))})
    for where, expected in (
        ("mag < 100", {0, 1, 3}),
        # Compared without NULLIF (a WHERE condition NaN fails anyway): still no NaN row.
        ("mag <= 100 AND 100 > mag", {0, 1, 3}),
        ("mag BETWEEN -5 AND 100", {0, 1, 3}),
        ("mag = 3", {3}),
        ("mag < 100 OR objectId = 2", {0, 1, 2, 3}),
        ("mag > 2.5", {3}),
        ("mag < 2.5", {0, 1}),
        ("mag >= -100", {0, 1, 3}),
        ("NOT (mag < 100)", set()),
    ):
        sql = to_duckdb(
            resolve(parse_adql(f"SELECT objectId FROM dp.obj WHERE {where}"), local),
            table_names={"dp.obj": "obj_file"},
        )
        assert {r[0] for r in connection.sql(sql).fetchall()} == expected, where


def test_nan_kept_when_asked(con, catalog, objects) -> None:
    mag = objects["mag"].to_numpy(zero_copy_only=False)
    nans = int(np.isnan(objects["mag"].fill_null(0.0).to_numpy()).sum())
    ((count,),) = run(con, catalog, "SELECT COUNT(*) FROM dp.obj WHERE mag > 20", nan_as_null=False)
    assert count == int((mag > 20).sum()) + nans


# ------------------------------------------------------------------ functions


def test_math_functions(con, catalog) -> None:
    (row,) = run(
        con,
        catalog,
        "SELECT TOP 1 ABS(-2.5), CEILING(1.2), FLOOR(-1.2), LOG(10.0), LOG10(1000.0), EXP(1.0), "
        "SQRT(16.0), POWER(2.0, 10), MOD(7, 3), MOD(-7.5, 2), ROUND(2.567, 2), ROUND(-2.5), "
        "TRUNCATE(2.567, 2), TRUNCATE(-2.7), PI(), DEGREES(PI()), RADIANS(180.0), SIN(0.5), "
        "COS(0.5), TAN(0.5), COT(0.5), ASIN(0.5), ACOS(0.5), ATAN(0.5), ATAN2(1.0, 2.0), "
        "RAND() FROM dp.obj",
    )
    expected = [
        2.5, 2, -2, math.log(10), 3, math.e, 4, 1024, 1, -1.5, 2.57, -3, 2.56, -2, math.pi,
        180, math.pi, math.sin(0.5), math.cos(0.5), math.tan(0.5), 1 / math.tan(0.5),
        math.asin(0.5), math.acos(0.5), math.atan(0.5), math.atan2(1, 2),
    ]  # fmt: skip
    assert [float(x) for x in row[:-1]] == pytest.approx(expected)
    assert 0 <= row[-1] < 1


def test_scisql_photometry(con, catalog, objects) -> None:
    rows = run(
        con,
        catalog,
        "SELECT scisql_nanojanskyToAbMag(flux), scisql_nanojanskyToAbMagSigma(flux, fluxErr) "
        "FROM dp.obj ORDER BY objectId",
    )
    flux, err = objects["flux"].to_numpy(), objects["fluxErr"].to_numpy()
    good = flux > 0
    mags = np.array([np.nan if r[0] is None else r[0] for r in rows])
    sigmas = np.array([np.nan if r[1] is None else r[1] for r in rows])
    np.testing.assert_allclose(mags[good], -2.5 * np.log10(flux[good]) + 31.4, rtol=1e-12)
    np.testing.assert_allclose(sigmas[good], 2.5 / np.log(10) * err[good] / flux[good], rtol=1e-12)
    assert np.all(np.isnan(mags[~good])) and np.all(np.isnan(sigmas[~good]))
    ((zero,),) = run(con, catalog, "SELECT TOP 1 scisql_nanojanskyToAbMag(3631e9) FROM dp.obj")
    assert zero == pytest.approx(31.4 - 2.5 * math.log10(3631e9))


def test_strings_casts_and_conditionals(con, catalog) -> None:
    rows = run(
        con,
        catalog,
        "SELECT TOP 4 name || '!', LOWER(name), UPPER(name), CAST(objectId AS CHAR(5)), "
        "CAST(name AS VARCHAR(2)), CAST(2.7 AS INTEGER), "
        "CASE WHEN name LIKE 'NGC%' THEN 'ngc' WHEN name ILIKE 'ngc%' THEN 'lower' "
        "ELSE 'other' END FROM dp.obj ORDER BY objectId",
    )
    assert rows[0] == ("NGC 1!", "ngc 1", "NGC 1", "10995", "NG", 3, "ngc")
    assert rows[1][-1] == "lower" and rows[2][-1] == "other"
    assert {
        r[0] for r in run(con, catalog, "SELECT DISTINCT name FROM dp.obj WHERE name ILIKE 'ngc%'")
    } == {
        "NGC 1",
        "ngc 2",
    }


def test_top_offset_order_group_and_set_operations(con, catalog, objects) -> None:
    base = 2**40
    rows = run(con, catalog, "SELECT TOP 5 objectId FROM dp.obj ORDER BY objectId OFFSET 10")
    assert [r[0] for r in rows] == [base + i for i in range(10, 15)]
    rows = run(
        con,
        catalog,
        "SELECT name, COUNT(*) AS n FROM dp.obj GROUP BY name HAVING COUNT(*) > 10 ORDER BY name",
    )
    assert [r[0] for r in rows] == ["IC 10", "M31", "NGC 1", "ngc 2"]
    assert sum(r[1] for r in rows) == objects.num_rows
    rows = run(
        con,
        catalog,
        "(SELECT TOP 2 objectId FROM dp.obj ORDER BY objectId) UNION "
        "(SELECT TOP 2 objectId FROM dp.obj ORDER BY objectId DESC) ORDER BY 1",
    )
    n = objects.num_rows
    assert [r[0] for r in rows] == [base, base + 1, base + n - 2, base + n - 1]
    rows = run(
        con,
        catalog,
        "SELECT s.id FROM TAP_UPLOAD.src AS s WHERE s.id IN (SELECT TOP 3 id FROM TAP_UPLOAD.src "
        "ORDER BY id) EXCEPT SELECT id FROM TAP_UPLOAD.src WHERE id = 1 ORDER BY 1",
    )
    assert rows == [(0,), (2,)]
    rows = run(
        con,
        catalog,
        "WITH bright AS (SELECT objectId, mag FROM dp.obj WHERE mag < 17) "
        "SELECT COUNT(*) FROM bright WHERE EXISTS (SELECT 1 FROM TAP_UPLOAD.src WHERE id = 0)",
    )
    mag = objects["mag"].to_numpy(zero_copy_only=False)
    assert rows == [(int((mag < 17).sum()),)]


def test_output_names_are_the_catalog_names(con, catalog) -> None:
    sql = to_duckdb(
        resolve(parse_adql("SELECT TOP 1 objectid, MAG, m.ra AS r FROM dp.obj AS m"), catalog),
        table_names={"dp.obj": "obj_arrow"},
    )
    assert con.sql(sql).columns == ["objectId", "mag", "r"]


def test_select_star_columns_read_nan_as_null_under_their_names(con, catalog, objects) -> None:
    # Select-list columns are written as text, not nodes: same names, NaN still NULL.
    sql = to_duckdb(
        resolve(parse_adql("SELECT * FROM dp.obj AS o ORDER BY objectId"), catalog),
        table_names={"dp.obj": "obj_arrow"},
    )
    assert 'NULLIF("o"."mag", CAST(\'NaN\' AS DOUBLE)) AS "mag"' in sql
    assert '"o"."objectId",' in sql
    table = con.sql(sql).to_arrow_table()
    assert table.column_names == objects.column_names
    mag = objects.sort_by("objectId")["mag"].to_numpy(zero_copy_only=False)
    assert table["mag"].null_count == int(np.isnan(mag).sum()) > 0


def test_in_unit_converts_with_the_column_unit(con, catalog) -> None:
    rows = run(
        con, catalog, "SELECT TOP 3 ra, IN_UNIT(ra, 'rad'), IN_UNIT(ra, 'arcsec') FROM dp.obj"
    )
    for ra, rad, arcsec in rows:
        assert rad == pytest.approx(math.radians(ra)) and arcsec == pytest.approx(ra * 3600)
    with pytest.raises(AdqlUnsupportedError, match="cannot convert"):
        run(con, catalog, "SELECT IN_UNIT(ra, 'm') FROM dp.obj")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT REGION('Circle ICRS 1 2 3') FROM dp.obj", AdqlUnsupportedError),
        ("SELECT objectId FROM dp.obj WHERE CONTAINS(POINT('GALACTIC', ra, dec), "
         "CIRCLE('GALACTIC', 1, 2, 3)) = 1", AdqlUnsupportedError),
        ("SELECT CAST(name AS POINT) FROM dp.obj", AdqlUnsupportedError),
        ("SELECT CAST('1 2 3' AS POINT) FROM dp.obj", AdqlGeometryError),
        ("SELECT objectId FROM dp.obj WHERE CONTAINS(POINT(ra, dec), "
         "POLYGON(ra, dec, 1, 2, 3, 4)) = 1", AdqlUnsupportedError),
        ("SELECT objectId FROM dp.obj WHERE CONTAINS(POINT(ra, dec), "
         "CIRCLE(1, 95, 1)) = 1", AdqlGeometryError),
        ("SELECT objectId FROM dp.obj WHERE CONTAINS(POINT(ra, dec), "
         "POLYGON(0, 0, 0, 0, 1, 1)) = 1", AdqlGeometryError),
    ],
)  # fmt: skip
def test_unsupported_or_invalid_geometry_is_a_user_error(catalog, text, error) -> None:
    with pytest.raises(error) as info:
        to_duckdb(resolve(parse_adql(text), catalog))
    assert info.value.status_code == 400


def test_nan_and_null_positions_are_in_no_region_and_outside_none(catalog) -> None:
    connection = duckdb.connect()
    register_adql_functions(connection)
    nan = float("nan")
    table = pa.table(
        {
            "objectId": np.arange(6),
            "ra": pa.array([62.0, nan, 62.0, None, 10.0, 62.01]),
            "dec": pa.array([-37.0, -37.0, nan, -37.0, 10.0, None]),
        }
    )
    connection.register("positions", table)

    def found(where: str) -> set[int]:
        sql = to_duckdb(
            resolve(parse_adql(f"SELECT objectId FROM dp.obj WHERE {where}"), catalog),
            table_names={"dp.obj": "positions"},
        )
        return {r[0] for r in connection.sql(sql).fetchall()}

    for region in ("CIRCLE('ICRS', 62, -37, 1)", "POLYGON('ICRS', 60, -38, 64, -38, 62, -35)"):
        assert found(f"CONTAINS(POINT('ICRS', ra, dec), {region}) = 1") == {0}
        assert found(f"CONTAINS(POINT('ICRS', ra, dec), {region}) = 0") == {4}
        assert found(f"NOT (CONTAINS(POINT('ICRS', ra, dec), {region}) = 1)") == {4}
    assert found("DISTANCE(POINT(ra, dec), POINT(62, -37)) < 1") == {0}
    assert found("DISTANCE(POINT(ra, dec), POINT(62, -37)) >= 1") == {4}


def sampled_distance(vertices, ra, dec) -> np.ndarray:
    """Distance from positions to a polygon's edges, by sampling the great-circle arcs."""
    best = np.full(len(ra), np.inf)
    for i in range(len(vertices)):
        a = unit_vectors(*vertices[i])
        b = unit_vectors(*vertices[(i + 1) % len(vertices)])
        angle = np.arccos(np.clip(a @ b, -1, 1))
        t = np.linspace(0, 1, 1500)[:, None]
        points = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
        pra = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
        pdec = np.degrees(np.arcsin(points[:, 2]))
        for j in range(0, len(ra), 2000):
            d = separation_matrix(ra[j : j + 2000], dec[j : j + 2000], pra, pdec)
            best[j : j + 2000] = np.minimum(best[j : j + 2000], d.min(axis=1))
    return best


def separation_matrix(ra1, dec1, ra2, dec2) -> np.ndarray:
    u, v = unit_vectors(ra1, dec1), unit_vectors(ra2, dec2)
    return np.degrees(np.arccos(np.clip(u @ v.T, -1, 1)))


@pytest.mark.parametrize("vertices", [POLYGONS[1], POLYGONS[2], POLYGONS[4]])
def test_circles_of_columns_meeting_a_polygon(con, catalog, objects, vertices) -> None:
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    radius = 0.7
    inside = sphgeom_inside(list(vertices), ra, dec)
    distance = np.full(len(ra), np.inf)
    centre = Polygon(vertices).centroid
    extent = max(float(separation(v[0], v[1], *centre)) for v in vertices)
    near = separation(ra, dec, *centre) < extent + radius + 1
    distance[near] = sampled_distance(list(vertices), ra[near], dec[near])
    expected_mask = inside | (distance <= radius)
    clear = np.abs(distance - radius) > 1e-3  # sampling cannot decide closer than this
    numbers = ", ".join(f"{x!r}" for v in vertices for x in v)
    got = ids(
        con,
        catalog,
        f"INTERSECTS(CIRCLE('ICRS', ra, dec, {radius}), POLYGON('ICRS', {numbers})) = 1",
    )
    oid = objects["objectId"].to_numpy()
    got_mask = np.isin(oid, list(got))
    assert expected_mask.sum() > 50 and (expected_mask & ~inside).sum() > 20
    wrong = np.flatnonzero((got_mask != expected_mask) & clear)
    assert wrong.size == 0, np.stack([ra[wrong], dec[wrong], distance[wrong]], axis=1)


PAIR_FORMS = [
    "ON CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, {r})) = 1",
    "ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {r}",
    "ON {r} >= DISTANCE(POINT(a.ra, a.dec), POINT(b.ra, b.dec))",
    "ON 1 = 1 WHERE DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) <= {r}",
]


@pytest.mark.slow
@pytest.mark.parametrize("form", PAIR_FORMS)
def test_neighbour_pairs_equal_brute_force_and_join_by_range(con, catalog, objects, form) -> None:
    """Each form of a pair condition gives the brute-force pairs (NaN/NULL rows too) and
    is planned as a range join on declination, not a nested loop over all pairs."""
    r = 0.05
    objects = objects.slice(0, 8000)  # the all-sky rows and the dense DC2 cone
    con.register("pair_arrow", objects)
    text = f"SELECT a.objectId, b.objectId FROM dp.obj AS a JOIN dp.obj AS b {form.format(r=r)}"
    sql = to_duckdb(resolve(parse_adql(text), catalog), table_names={"dp.obj": "pair_arrow"})
    assert "IE_JOIN" in con.sql(f"EXPLAIN {sql}").fetchall()[0][1].upper().replace(" ", "_")
    got = set(con.sql(sql).fetchall())
    ra, dec = objects["ra"].to_numpy(), objects["dec"].to_numpy()
    ident = objects["objectId"].to_numpy()
    order = np.argsort(dec)
    want = set()
    for i in range(len(ra)):
        lo, hi = np.searchsorted(dec[order], [dec[i] - r - 1e-6, dec[i] + r + 1e-6])
        near = order[lo:hi]
        close = near[separation(ra[near], dec[near], ra[i], dec[i]) <= r]
        want.update((int(ident[i]), int(ident[j])) for j in close)
    assert len(want) > len(ra)  # every row with itself and some neighbours
    assert got == want
