"""Spherical geometry against independent references (lsst.sphgeom, astropy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.coordinates import angular_separation as astropy_separation
from lsst.sphgeom import ConvexPolygon, UnitVector3d

from dpzero.adql import AdqlGeometryError, Circle, Polygon, box_polygon
from dpzero.adql._geometry import angular_separation, unit_vectors
from tests_support import points_near


def random_sky(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def near(ra: float, dec: float, radius: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points scattered within ``radius`` degrees of a position (crowding its boundary)."""
    return points_near(ra, dec, radius, n, np.random.default_rng(seed))


def sphgeom_contains(vertices: list[tuple[float, float]], ra: np.ndarray, dec: np.ndarray):
    polygon = ConvexPolygon([UnitVector3d(*unit_vectors(*v)) for v in vertices])
    u = unit_vectors(ra, dec)
    return np.asarray(polygon.contains(u[:, 0], u[:, 1], u[:, 2]), dtype=bool)


def test_separation_matches_astropy_at_all_scales() -> None:
    ra1, dec1 = random_sky(2000, 1)
    ra2, dec2 = random_sky(2000, 2)
    ours = angular_separation(ra1, dec1, ra2, dec2)
    theirs = np.degrees(
        astropy_separation(np.radians(ra1), np.radians(dec1), np.radians(ra2), np.radians(dec2))
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    tiny = angular_separation(10.0, 20.0, 10.0, 20.0 + 1e-7)
    assert tiny == pytest.approx(1e-7, rel=1e-6)


CIRCLES = [
    (62.0, -37.0, 0.1),  # DC2
    (0.0, 10.0, 2.0),  # across RA 0/360
    (359.9, -5.0, 0.5),
    (123.0, 89.5, 1.0),  # over the north pole
    (200.0, -89.9, 0.3),  # over the south pole
    (45.0, 30.0, 1 / 3600),  # 1 arcsec
    (300.0, -20.0, 90.0),  # a hemisphere
    (10.0, 0.0, 170.0),
]


@pytest.mark.parametrize(("ra", "dec", "radius"), CIRCLES)
def test_circle_contains_equals_brute_force(ra: float, dec: float, radius: float) -> None:
    pra, pdec = near(ra, dec, min(2 * radius, 180), 20000, 3)
    sra, sdec = random_sky(5000, 4)
    pra, pdec = np.concatenate([pra, sra]), np.concatenate([pdec, sdec])
    expected = angular_separation(ra, dec, pra, pdec) <= radius
    got = Circle(ra, dec, radius).contains(pra, pdec)
    assert expected.sum() > 100
    assert np.array_equal(got, expected)


def test_circle_area_and_dec_range() -> None:
    assert Circle(0, 0, 180).area == pytest.approx(4 * math.pi * (180 / math.pi) ** 2)
    assert Circle(10, 10, 1).area == pytest.approx(
        math.pi * (1 - 1 / 12 * (math.pi / 180) ** 2 * 1)
    )
    assert Circle(0, 89, 2).dec_range() == (87.0, 90.0)


def small_circle_polygon(ra, dec, radius, n, reverse=False):
    centre = unit_vectors(ra, dec)
    axis = np.cross(centre, [0.0, 0.0, 1.0] if abs(dec) < 89 else [1.0, 0.0, 0.0])
    axis /= np.linalg.norm(axis)
    other = np.cross(centre, axis)
    r = math.radians(radius)
    out = []
    for k in range(n):
        phi = 2 * math.pi * k / n
        v = math.cos(r) * centre + math.sin(r) * (math.cos(phi) * axis + math.sin(phi) * other)
        out.append((math.degrees(math.atan2(v[1], v[0])) % 360, math.degrees(math.asin(v[2]))))
    return out[::-1] if reverse else out


POLYGONS = [
    [(60.0, -40.0), (65.0, -40.0), (65.0, -35.0), (60.0, -35.0)],
    [(355.0, -2.0), (5.0, -2.0), (5.0, 2.0), (355.0, 2.0)],  # across RA 0
    [(0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)],  # around the north pole
    [(0.0, -80.0), (270.0, -80.0), (180.0, -80.0), (90.0, -80.0)],  # south pole, other order
    small_circle_polygon(30.0, 45.0, 1 / 3600, 6),  # 1 arcsec
    small_circle_polygon(200.0, -10.0, 60.0, 7, reverse=True),  # huge
    [(0.0, 0.0), (90.0, 0.0), (0.0, 90.0)],  # an octant
]


@pytest.mark.parametrize("vertices", POLYGONS)
def test_convex_polygon_contains_equals_sphgeom(vertices) -> None:
    polygon = Polygon(tuple(vertices))
    assert polygon.is_convex
    centre = polygon.centroid
    extent = max(float(angular_separation(*centre, *v)) for v in vertices)
    pra, pdec = near(*centre, min(1.5 * extent, 180), 20000, 5)
    sra, sdec = random_sky(5000, 6)
    pra, pdec = np.concatenate([pra, sra]), np.concatenate([pdec, sdec])
    oriented = vertices if polygon.oriented is polygon._raw else vertices[::-1]
    expected = sphgeom_contains(oriented, pra, pdec)
    assert expected.sum() > 100
    assert np.array_equal(polygon.contains(pra, pdec), expected)
    # either vertex order means the same (smaller) region
    assert np.array_equal(Polygon(tuple(vertices[::-1])).contains(pra, pdec), expected)


def test_poles_and_areas() -> None:
    north = Polygon(((0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)))
    assert bool(north.contains(0.0, 90.0)) and not bool(north.contains(0.0, -90.0))
    assert north.dec_range() == (pytest.approx(80.0), 90.0)
    octant = Polygon(((0.0, 0.0), (90.0, 0.0), (0.0, 90.0)))
    assert octant.area == pytest.approx(4 * math.pi / 8 * (180 / math.pi) ** 2)
    # the octant's edges are great circles: the dec range is exactly its vertices'
    assert octant.dec_range() == (pytest.approx(0.0, abs=1e-12), pytest.approx(90.0))
    centre = octant.centroid
    assert centre[0] == pytest.approx(45.0)
    # a great-circle edge bulges toward the pole beyond its vertices' declination
    band = Polygon(((0.0, 60.0), (120.0, 60.0), (240.0, 60.0)))
    assert band.dec_range()[1] == 90.0
    edge = Polygon(((0.0, 60.0), (60.0, 60.0), (30.0, 50.0)))
    assert edge.dec_range()[1] > 60.5


def test_non_convex_polygon_equals_union_of_convex_parts() -> None:
    # an L shape across RA 0 in the south: two convex parts sharing the edge
    # (358, -58)-(0, -58) (edges are great circles, so the lower part needs the
    # vertex (0, -58) too)
    part_a = [(358.0, -60.0), (4.0, -60.0), (4.0, -58.0), (0.0, -58.0), (358.0, -58.0)]
    part_b = [(358.0, -58.0), (0.0, -58.0), (0.0, -54.0), (358.0, -54.0)]
    shape = Polygon(
        ((358.0, -60.0), (4.0, -60.0), (4.0, -58.0), (0.0, -58.0), (0.0, -54.0), (358.0, -54.0))
    )
    assert not shape.is_convex
    pra, pdec = near(1.0, -57.0, 6.0, 30000, 7)
    expected = np.zeros(pra.shape, dtype=bool)
    for part in (part_a, part_b):
        poly = Polygon(tuple(part))
        ordered = part if poly.oriented is poly._raw else part[::-1]
        expected |= sphgeom_contains(ordered, pra, pdec)
    assert expected.sum() > 1000
    assert np.array_equal(shape.contains(pra, pdec), expected)


def test_box_is_a_great_circle_polygon_centred_on_the_position() -> None:
    box = box_polygon(10.0, 0.0, 2.0, 1.0)
    corners = sorted(box.vertices)
    assert corners[0] == pytest.approx((9.0, -0.49992385), abs=1e-6)
    assert corners[-1] == pytest.approx((11.0, 0.49992385), abs=1e-6)
    assert box.centroid == pytest.approx((10.0, 0.0), abs=1e-9)
    # midpoints of the sides lie width/2 and height/2 from the centre
    assert bool(box.contains(10.0, 0.4999)) and not bool(box.contains(10.0, 0.5001))
    assert bool(box.contains(10.9999, 0.0)) and not bool(box.contains(11.0001, 0.0))
    polar = box_polygon(0.0, 89.9, 1.0, 1.0)
    assert bool(polar.contains(123.0, 90.0))
    wrap = box_polygon(0.0, 0.0, 2.0, 2.0)
    assert bool(wrap.contains(359.5, 0.5)) and bool(wrap.contains(0.5, -0.5))


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Polygon(((0.0, 0.0), (1.0, 0.0))),
        lambda: Polygon(((0.0, 0.0), (0.0, 0.0), (1.0, 1.0))),
        lambda: Polygon(((0.0, 0.0), (180.0, 0.0), (90.0, 10.0))),
        lambda: Circle(0.0, 91.0, 1.0),
        lambda: Circle(0.0, 0.0, -1.0),
        lambda: box_polygon(0.0, 0.0, 0.0, 1.0),
        lambda: box_polygon(0.0, 0.0, 190.0, 1.0),
    ],
)
def test_invalid_regions_are_user_errors(bad) -> None:
    with pytest.raises(AdqlGeometryError):
        bad()


def test_polygon_relations() -> None:
    square = Polygon(((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)))
    small = Polygon(((2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0)))
    ell = Polygon(((0.0, 0.0), (10.0, 0.0), (10.0, 3.0), (3.0, 3.0), (3.0, 10.0), (0.0, 10.0)))
    across = Polygon(((1.0, 8.0), (8.0, 1.0), (1.0, 1.0)))  # vertices in the L, edge not
    corner = Polygon(((0.5, 0.5), (2.0, 0.5), (2.0, 2.0)))
    assert square.contains_polygon(small) and not small.contains_polygon(square)
    assert not ell.contains_polygon(across) and ell.contains_polygon(corner)
    assert square.intersects_polygon(small) and ell.intersects_polygon(across)
    far = Polygon(((50.0, 50.0), (52.0, 50.0), (51.0, 52.0)))
    assert not square.intersects_polygon(far)
    crossing = Polygon(((5.0, -5.0), (6.0, -5.0), (6.0, 15.0), (5.0, 15.0)))
    assert square.intersects_polygon(crossing) and square.edges_cross(crossing)
    assert square.distance_to(5.0, 5.0) == 0.0
    assert square.distance_to(15.0, 5.0) == pytest.approx(5.0 * math.cos(math.radians(5)), rel=1e-2)
