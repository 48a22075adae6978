"""Pruning math: covers never miss a row, at the poles and across RA 0/360 too."""

from __future__ import annotations

import numpy as np
import pytest

from dpzero.catalog._pruning import (
    Cone,
    Polygon,
    contained,
    coverage_ranges,
    healpix29,
    overlapping,
    pixel_range,
    rows_in_ranges,
)
from dpzero.errors import InvalidInputError


def _sep_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def _points_near(ra, dec, spread, n, rng):
    """Random points in a box around (ra, dec), Dec clipped to the sphere."""
    ras = np.mod(ra + rng.uniform(-spread, spread, n) / max(np.cos(np.radians(dec)), 0.05), 360)
    decs = np.clip(dec + rng.uniform(-spread, spread, n), -90, 90)
    return ras, decs


@pytest.mark.parametrize(
    ("ra", "dec", "radius"),
    [
        (56.0, -36.0, 0.01),  # arcsecond-scale cone in DC2
        (56.0, -36.0, 1.0),
        (0.0, -30.0, 0.5),  # straddles RA 0/360
        (359.9, 10.0, 0.3),
        (123.0, -90.0, 0.7),  # centred on the south pole
        (10.0, 89.8, 0.5),  # contains the north pole
        (200.0, 0.0, 120.0),  # larger than a hemisphere: the whole sky
    ],
)
def test_cone_cover_keeps_every_inside_point(ra, dec, radius):
    rng = np.random.default_rng(1)
    pra, pdec = _points_near(ra, dec, min(radius * 3, 90), 20_000, rng)
    inside = _sep_deg(ra, dec, pra, pdec) <= radius
    assert inside.sum() > 100
    kept = rows_in_ranges(coverage_ranges(Cone(ra, dec, radius)), healpix29(pra, pdec))
    assert not (inside & ~kept).any()
    if radius < 10:
        # The cover is tight: most points well outside the cone are dropped.
        far = _sep_deg(ra, dec, pra, pdec) > 2 * radius
        if far.sum() > 100:
            assert kept[far].mean() < 0.1


def test_cone_points_exactly_on_the_edge_are_kept():
    rng = np.random.default_rng(2)
    pa_ = rng.uniform(0, 2 * np.pi, 2000)
    r = np.radians(0.2)
    # Points at distance exactly r from (0, -30) computed with the sphere's formulas.
    d0, a0 = np.radians(-30.0), 0.0
    dec = np.arcsin(np.sin(d0) * np.cos(r) + np.cos(d0) * np.sin(r) * np.cos(pa_))
    ra = a0 + np.arctan2(np.sin(pa_) * np.sin(r) * np.cos(d0), np.cos(r) - np.sin(d0) * np.sin(dec))
    kept = rows_in_ranges(
        coverage_ranges(Cone(0.0, -30.0, 0.2)),
        healpix29(np.mod(np.degrees(ra), 360), np.degrees(dec)),
    )
    assert kept.all()


def _inside_convex(poly, ra, dec):
    """Brute force: inside a convex spherical polygon (counter-clockwise or not)."""

    def xyz(r, d):
        r, d = np.radians(r), np.radians(d)
        return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)

    v = xyz(np.array([p[0] for p in poly]), np.array([p[1] for p in poly]))
    p = xyz(ra, dec)
    signs = [np.einsum("ij,j->i", p, np.cross(v[i], v[(i + 1) % len(v)])) for i in range(len(v))]
    s = np.stack(signs)
    return (s >= 0).all(axis=0) | (s <= 0).all(axis=0)


@pytest.mark.parametrize(
    "poly",
    [
        ((55.0, -37.0), (57.0, -37.0), (57.0, -35.0), (55.0, -35.0)),
        ((359.5, -30.5), (0.5, -30.5), (0.5, -29.5), (359.5, -29.5)),  # across RA 0
        ((0.0, -88.0), (120.0, -88.0), (240.0, -88.0)),  # around the south pole
    ],
)
def test_polygon_cover_keeps_every_inside_point(poly):
    rng = np.random.default_rng(3)
    cra = np.degrees(
        np.arctan2(
            *[
                np.mean([np.sin(np.radians(p[0])) for p in poly]),
                np.mean([np.cos(np.radians(p[0])) for p in poly]),
            ]
        )
    )
    cdec = float(np.mean([p[1] for p in poly]))
    if cdec < -85:
        pra, pdec = rng.uniform(0, 360, 20_000), rng.uniform(-90, -86, 20_000)
    else:
        pra, pdec = _points_near(cra % 360, cdec, 2.0, 20_000, rng)
    inside = _inside_convex(poly, pra, pdec)
    assert inside.sum() > 100
    kept = rows_in_ranges(coverage_ranges(Polygon(poly)), healpix29(pra, pdec))
    assert not (inside & ~kept).any()


def test_dilation_covers_neighbours_outside_the_region():
    rng = np.random.default_rng(4)
    grow = 10 / 3600
    pra, pdec = _points_near(0.0, -30.0, 0.3, 50_000, rng)
    sep = _sep_deg(0.0, -30.0, pra, pdec)
    near = sep <= 0.1 + grow
    for region in (
        Cone(0.0, -30.0, 0.1),
        Polygon(((359.9, -30.1), (0.1, -30.1), (0.1, -29.9), (359.9, -29.9))),
    ):
        kept = rows_in_ranges(coverage_ranges(region, dilate_deg=grow), healpix29(pra, pdec))
        if isinstance(region, Cone):
            assert not (near & ~kept).any()
        else:
            box_near = (np.abs(((pra + 180) % 360) - 180) <= 0.1 * 1.2 + grow / 0.86) & (
                np.abs(pdec + 30) <= 0.1 + grow * 0.99
            )
            inside = _inside_convex(region.vertices, pra, pdec)
            assert not (inside & ~kept).any()
            assert kept[box_near & (np.abs(pdec + 30) <= 0.1 + grow * 0.99)].mean() > 0.99


def test_overlapping_intervals_and_pixel_ranges():
    lo, hi = pixel_range(3, 5)
    assert (lo, hi) == (5 << 52, 6 << 52)
    ranges = np.array([[10, 20], [30, 40]], dtype=np.int64)
    got = overlapping(
        ranges, np.array([0, 0, 19, 20, 25, 39, 40, 5]), np.array([9, 10, 19, 29, 30, 45, 50, 100])
    )
    assert got.tolist() == [False, True, True, False, True, True, False, True]
    assert rows_in_ranges(ranges, np.array([9, 10, 19, 20, 30, 40])).tolist() == [
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    assert not overlapping(np.empty((0, 2), np.int64), np.array([1]), np.array([2])).any()


def test_contained_intervals_against_brute_force():
    rng = np.random.default_rng(3)
    ranges = np.array([[10, 20], [30, 40], [41, 60]], dtype=np.int64)
    lo = rng.integers(0, 70, 2000)
    hi = lo + rng.integers(0, 15, 2000)
    expected = [any(a <= x and y < b for a, b in ranges) for x, y in zip(lo, hi, strict=True)]
    assert contained(ranges, lo, hi).tolist() == expected
    assert not contained(np.empty((0, 2), np.int64), np.array([1]), np.array([2])).any()


def test_invalid_regions_are_user_errors():
    with pytest.raises(InvalidInputError):
        Cone(0.0, 91.0, 1.0)
    with pytest.raises(InvalidInputError):
        Cone(0.0, 0.0, -1.0)
    with pytest.raises(InvalidInputError):
        Polygon(((0.0, 0.0), (1.0, 0.0)))
