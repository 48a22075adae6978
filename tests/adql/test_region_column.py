"""CONTAINS/INTERSECTS with a region-valued column (ObsCore's s_region, STC-S text),
on a real DuckDB connection, checked against lsst.sphgeom."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, UnitVector3d

from dpzero.adql import (
    AdqlGeometryError,
    AdqlUnsupportedError,
    ColumnInfo,
    TableCatalog,
    parse_adql,
    register_adql_functions,
    resolve,
    to_duckdb,
)
from dpzero.adql._geometry import parse_stcs
from tests_support import points_near

# Footprint centres: DC2, across RA 0/360, at both poles.
CENTRES = [(62.0, -37.0), (0.05, 3.0), (359.8, -1.0), (10.0, 89.7), (250.0, -89.8), (180.0, 45.0)]
CATALOG = TableCatalog(
    {
        "ivoa.obscore": (
            ColumnInfo("obs_id", "long"),
            ColumnInfo("s_region", "string"),
            ColumnInfo("s_ra", "double", "deg"),
        ),
        "tap_upload.points": (
            ColumnInfo("pid", "long"),
            ColumnInfo("ra", "double", "deg"),
            ColumnInfo("dec", "double", "deg"),
        ),
    }
)


def _vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def _footprints(rng: np.random.Generator) -> list[tuple[str, ConvexPolygon]]:
    """Rotated quadrilaterals (detector-like) around each centre, as STC-S and sphgeom."""
    out = []
    for ra, dec in CENTRES:
        for _ in range(6):
            size = rng.uniform(0.02, 0.4)
            corner_ra, corner_dec = points_near(ra, dec, 0.3, 1, rng)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 4))
            centre = _vector(float(corner_ra[0]), float(corner_dec[0]))
            lon = LonLat(centre)
            c_ra, c_dec = lon.getLon().asDegrees(), lon.getLat().asDegrees()
            vertices = []
            for a in angles:
                # a point `size` degrees away from the centre at position angle a
                d0, r = math.radians(c_dec), math.radians(size)
                d = math.asin(math.sin(d0) * math.cos(r) + math.cos(d0) * math.sin(r) * math.cos(a))
                dra = math.atan2(
                    math.sin(a) * math.sin(r) * math.cos(d0),
                    math.cos(r) - math.sin(d0) * math.sin(d),
                )
                vertices.append(((c_ra + math.degrees(dra)) % 360, math.degrees(d)))
            text = "POLYGON ICRS " + " ".join(f"{x!r}" for v in vertices for x in v)
            polygon = ConvexPolygon([_vector(*v) for v in vertices])
            out.append((text, polygon))
    return out


@pytest.fixture(scope="module")
def footprints() -> list[tuple[str, ConvexPolygon]]:
    return _footprints(np.random.default_rng(7))


@pytest.fixture(scope="module")
def connection(footprints: list[tuple[str, ConvexPolygon]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    register_adql_functions(con)
    regions = [text for text, _ in footprints] + [None, "not a region", "CIRCLE ICRS 62 -37 0.25"]
    con.register(
        "obscore",
        pa.table({"obs_id": np.arange(len(regions), dtype=np.int64), "s_region": regions}),
    )
    rng = np.random.default_rng(8)
    ras, decs = [], []
    for ra, dec in CENTRES:
        r, d = points_near(ra, dec, 0.6, 80, rng)
        ras.append(r)
        decs.append(d)
    ra, dec = np.concatenate(ras), np.concatenate(decs)
    con.register("points", pa.table({"pid": np.arange(ra.size), "ra": ra, "dec": dec}))
    return con


def run(con: duckdb.DuckDBPyConnection, adql: str) -> list[tuple]:
    sql = to_duckdb(
        resolve(parse_adql(adql), CATALOG),
        table_names={"ivoa.obscore": "obscore", "tap_upload.points": "points"},
    )
    return con.sql(sql).fetchall()


def test_point_in_region_against_sphgeom(
    connection: duckdb.DuckDBPyConnection, footprints: list[tuple[str, ConvexPolygon]]
) -> None:
    points = connection.sql("SELECT pid, ra, dec FROM points").fetchall()
    got = set(
        run(
            connection,
            "SELECT p.pid, o.obs_id FROM tap_upload.points AS p, ivoa.obscore AS o "
            "WHERE CONTAINS(POINT('ICRS', p.ra, p.dec), o.s_region) = 1",
        )
    )
    expected = {
        (pid, i)
        for pid, ra, dec in points
        for i, (_, polygon) in enumerate(footprints)
        if polygon.contains(_vector(ra, dec))
    }
    circle = Circle(_vector(62.0, -37.0), Angle.fromDegrees(0.25))
    expected |= {
        (pid, len(footprints) + 2) for pid, ra, dec in points if circle.contains(_vector(ra, dec))
    }
    assert len(expected) > 50
    assert got == expected


@pytest.mark.parametrize(("ra", "dec"), [*CENTRES, (62.1, -37.05)])
@pytest.mark.parametrize("radius", [0.01, 0.1, 0.35])
def test_circle_intersects_region_against_sphgeom(
    connection: duckdb.DuckDBPyConnection,
    footprints: list[tuple[str, ConvexPolygon]],
    ra: float,
    dec: float,
    radius: float,
) -> None:
    def meets(r: float, polygon: ConvexPolygon) -> bool:
        circle = Circle(_vector(ra, dec), Angle.fromDegrees(r))
        return not polygon.isDisjointFrom(circle)

    expected = set()
    for i, (_, polygon) in enumerate(footprints):
        inside, outside = meets(radius * (1 - 1e-9), polygon), meets(radius * (1 + 1e-9), polygon)
        if inside != outside:
            pytest.skip("a footprint touches the circle: no exact answer to compare with")
        if inside:
            expected.add(i)
    for query in (
        f"SELECT obs_id FROM ivoa.obscore WHERE INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {radius}),"
        " s_region) = 1",
        f"SELECT obs_id FROM ivoa.obscore WHERE 1 = INTERSECTS(s_region, CIRCLE({ra}, {dec},"
        f" {radius}))",
    ):
        got = {i for (i,) in run(connection, query) if i < len(footprints)}
        assert got == expected


def test_region_inside_circle_and_circle_inside_region(
    connection: duckdb.DuckDBPyConnection, footprints: list[tuple[str, ConvexPolygon]]
) -> None:
    for ra, dec in CENTRES:
        for radius in (0.05, 0.3, 0.8):
            circle = Circle(_vector(ra, dec), Angle.fromDegrees(radius))
            within = {
                i for i, (_, p) in enumerate(footprints) if circle.contains(p)
            }  # region inside the circle
            holds = {i for i, (_, p) in enumerate(footprints) if p.contains(circle)}
            got_within = run(
                connection,
                f"SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(s_region, "
                f"CIRCLE({ra}, {dec}, {radius})) = 1",
            )
            got_holds = run(
                connection,
                f"SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(CIRCLE({ra}, {dec}, {radius}),"
                " s_region) = 1",
            )
            assert {i for (i,) in got_within if i < len(footprints)} == within
            assert {i for (i,) in got_holds if i < len(footprints)} == holds


def test_null_and_bad_regions_match_nothing(connection: duckdb.DuckDBPyConnection) -> None:
    n = len(CENTRES) * 6
    rows = dict(
        run(
            connection,
            "SELECT obs_id, CONTAINS(POINT(62.0, -37.0), s_region) FROM ivoa.obscore "
            f"WHERE obs_id >= {n}",
        )
    )
    assert rows == {n: None, n + 1: None, n + 2: 1}
    negated = run(
        connection,
        "SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT(62.0, -37.0), s_region) = 0 "
        f"AND obs_id >= {n}",
    )
    assert negated == []


def test_user_errors() -> None:
    def translate(adql: str) -> str:
        return to_duckdb(resolve(parse_adql(adql), CATALOG))

    with pytest.raises(AdqlUnsupportedError, match=r"s_ra .* is not region-valued"):
        translate("SELECT * FROM ivoa.obscore WHERE CONTAINS(POINT(1, 2), s_ra) = 1")
    with pytest.raises(AdqlGeometryError):
        translate("SELECT * FROM ivoa.obscore WHERE INTERSECTS(CIRCLE(1, 2, -1), s_region) = 1")
    with pytest.raises(AdqlUnsupportedError, match="AREA"):
        translate("SELECT AREA(s_region) FROM ivoa.obscore")


@pytest.mark.parametrize(
    "text",
    ["", "POLYGON ICRS 1 2 3", "CIRCLE GALACTIC 1 2 3", "POLYGON 1 2 1 2 1 2", "BOX 1 2 x 4"],
)
def test_parse_stcs_rejects(text: str) -> None:
    with pytest.raises(AdqlGeometryError):
        parse_stcs(text)


def test_parse_stcs_shapes() -> None:
    assert parse_stcs("POSITION ICRS 10 20") == (10.0, 20.0)
    assert parse_stcs("circle icrs 10 20 0.5").radius == 0.5  # type: ignore[union-attr]
    box = parse_stcs("BOX ICRS 10 20 1 1")
    assert len(box.vertices) == 4  # type: ignore[union-attr]


def test_region_columns_on_both_sides(
    connection: duckdb.DuckDBPyConnection, footprints: list[tuple[str, ConvexPolygon]]
) -> None:
    n = len(footprints)
    got = set(
        run(
            connection,
            "SELECT a.obs_id, b.obs_id FROM ivoa.obscore AS a, ivoa.obscore AS b "
            f"WHERE INTERSECTS(a.s_region, b.s_region) = 1 AND a.obs_id < {n} "
            f"AND b.obs_id < {n}",
        )
    )
    expected = {
        (i, j)
        for i, (_, p) in enumerate(footprints)
        for j, (_, q) in enumerate(footprints)
        if not p.isDisjointFrom(q)
    }
    assert len(expected) > n  # overlapping pairs besides each footprint with itself
    assert got == expected


def test_region_inside_region(
    connection: duckdb.DuckDBPyConnection, footprints: list[tuple[str, ConvexPolygon]]
) -> None:
    n = len(footprints)
    got = set(
        run(
            connection,
            "SELECT a.obs_id, b.obs_id FROM ivoa.obscore AS a, ivoa.obscore AS b "
            f"WHERE CONTAINS(a.s_region, b.s_region) = 1 AND a.obs_id < {n} AND b.obs_id < {n}",
        )
    )
    expected = {
        (i, j)
        for i, (_, p) in enumerate(footprints)
        for j, (_, q) in enumerate(footprints)
        if q.contains(p)
    }
    assert {(i, i) for i in range(n)} <= expected  # each footprint lies in itself
    assert got == expected
