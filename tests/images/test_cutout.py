"""SODA regions and the pixel box holding them, against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from dpzero.images.cutout import (
    CircleRegion,
    PolygonRegion,
    RangeRegion,
    cutout_box,
    parse_region,
)
from dpzero.images.faults import UsageFault
from dpzero.repo.exposure import Box
from tests_support import angular_separation_deg, points_near

SCALE = 0.2 / 3600


def tan_wcs(ra: float, dec: float, rotation_deg: float = 0.0) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [200.5, 150.5]
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    wcs.wcs.cd = (np.array([[-SCALE, 0.0], [0.0, SCALE]]) @ np.array([[c, -s], [s, c]])).tolist()
    return wcs


IMAGE = Box(1000, 2000, 400, 300)


def brute_box(xs: np.ndarray, ys: np.ndarray, image: Box) -> Box:
    """The box of the pixels the points fall in, clipped to the image."""
    cols, rows = np.floor(xs + 0.5).astype(int), np.floor(ys + 0.5).astype(int)
    x0, x1 = max(0, cols.min()), min(image.width - 1, cols.max())
    y0, y1 = max(0, rows.min()), min(image.height - 1, rows.max())
    return Box(image.x0 + x0, image.y0 + y0, x1 - x0 + 1, y1 - y0 + 1)


def assert_same_box(found: Box, xs: np.ndarray, ys: np.ndarray, image: Box) -> None:
    """``found`` is the brute-force box, but for a side whose extreme point lies within
    1/500 pixel of a pixel edge, where one more pixel (the outline's tolerance) is fine."""
    expected = brute_box(xs, ys, image)
    sides = {
        "x0": (found.x0, expected.x0, xs.min(), -1),
        "x1": (found.x1, expected.x1, xs.max(), 1),
        "y0": (found.y0, expected.y0, ys.min(), -1),
        "y1": (found.y1, expected.y1, ys.max(), 1),
    }
    for name, (mine, brute, extreme, outward) in sides.items():
        near_edge = abs((extreme + 0.5) - round(extreme + 0.5)) < 2e-3
        allowed = {brute, brute + outward} if near_edge else {brute}
        assert mine in allowed, (name, found, expected, extreme)


def params(**values: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in values.items()}


@pytest.mark.parametrize(
    ("ra", "dec", "rotation"), [(62.0, -37.0, 0.0), (0.01, 10.0, 33.0), (359.99, -89.9, 120.0)]
)
def test_circle_box_equals_brute_force(ra: float, dec: float, rotation: float) -> None:
    wcs = tan_wcs(ra, dec, rotation)
    rng = np.random.default_rng(5)
    for _ in range(8):
        x, y = rng.uniform(-50, 450), rng.uniform(-50, 350)
        cra, cdec = (float(v) for v in wcs.all_pix2world(x, y, 0))
        radius = rng.uniform(0.5, 60) * SCALE
        region = CircleRegion(cra % 360, cdec, radius)
        # Dense points inside the circle and on its edge, each to its pixel.
        pra, pdec = points_near(cra, cdec, radius, 50_000, rng)
        edge = SkyCoord(cra * u.deg, cdec * u.deg).directional_offset_by(
            np.linspace(0, 360, 20_000, endpoint=False) * u.deg, radius * u.deg
        )
        px, py = wcs.all_world2pix(np.r_[pra, edge.ra.deg], np.r_[pdec, edge.dec.deg], 0)
        on_image = (px > -0.5) & (px < 399.5) & (py > -0.5) & (py < 299.5)
        if not on_image.any():
            corners_ra, corners_dec = wcs.all_pix2world([-0.5, 399.5], [-0.5, 299.5], 0)
            if not region.contains(corners_ra, corners_dec).any():
                with pytest.raises(UsageFault, match="does not overlap"):
                    cutout_box(region, wcs, IMAGE)
                continue
        assert_same_box(cutout_box(region, wcs, IMAGE), px, py, IMAGE)


def test_polygon_box_is_the_box_of_its_vertices() -> None:
    """Great circles are straight lines in a TAN WCS: the box comes from the vertices."""
    wcs = tan_wcs(62.0, -37.0, 20.0)
    pixels = np.array([[10.2, 20.7], [180.4, 35.1], [150.0, 240.6], [60.6, 120.3]])
    ra, dec = wcs.all_pix2world(pixels[:, 0], pixels[:, 1], 0)
    region = PolygonRegion(tuple(zip(ra.tolist(), dec.tolist(), strict=True)))
    assert cutout_box(region, wcs, IMAGE) == Box(1000 + 10, 2000 + 21, 171, 221)
    # Clockwise order names the same (smaller) region.
    reverse = PolygonRegion(region.vertices[::-1])
    assert cutout_box(reverse, wcs, IMAGE) == Box(1000 + 10, 2000 + 21, 171, 221)


def test_polygon_contains_non_convex() -> None:
    # An L shape around (62, -37), 0.01° arms.
    d = 0.01
    shape = [(0, 0), (2 * d, 0), (2 * d, d), (d, d), (d, 2 * d), (0, 2 * d)]
    region = PolygonRegion(tuple((62 + x, -37 + y) for x, y in shape))
    inside = region.contains(np.array([62 + 0.5 * d, 62 + 1.5 * d]), np.array([-37 + 1.5 * d] * 2))
    assert inside.tolist() == [True, False]


def test_region_larger_than_the_image_gives_the_whole_image() -> None:
    wcs = tan_wcs(62.0, -37.0)
    assert cutout_box(CircleRegion(62.0, -37.0, 10.0), wcs, IMAGE) == IMAGE
    assert cutout_box(CircleRegion(62.0, 53.0, 120.0), wcs, IMAGE) == IMAGE
    assert cutout_box(RangeRegion(0.0, 360.0, -60.0, 0.0), wcs, IMAGE) == IMAGE


def test_range_box_matches_brute_force_across_ra_zero() -> None:
    wcs = tan_wcs(0.0, 0.0)
    region = parse_region(params(POS="RANGE 359.995 0.004 -0.003 0.002"))
    assert isinstance(region, RangeRegion)
    ra = (359.995 + np.linspace(0, 0.009, 400)[:, None]) % 360
    dec = np.linspace(-0.003, 0.002, 400)[None, :]
    px, py = wcs.all_world2pix(np.broadcast_to(ra, (400, 400)).ravel(),
                               np.broadcast_to(dec, (400, 400)).ravel(), 0)  # fmt: skip
    assert cutout_box(region, wcs, IMAGE) == brute_box(px, py, IMAGE)


def test_region_outside_the_image_is_a_usage_fault() -> None:
    wcs = tan_wcs(62.0, -37.0)
    with pytest.raises(UsageFault, match="UsageFault: region does not overlap"):
        cutout_box(CircleRegion(63.0, -37.0, 0.01), wcs, IMAGE)
    with pytest.raises(UsageFault, match="does not overlap"):
        cutout_box(CircleRegion(242.0, 37.0, 1.0), wcs, IMAGE)  # the far side of the sky
    with pytest.raises(UsageFault, match="does not overlap"):
        cutout_box(CircleRegion(242.0, 37.0, 179.0), wcs, IMAGE)  # all but the image's side


def test_parse_each_form() -> None:
    assert parse_region(params(CIRCLE="62 -37 0.01")) == CircleRegion(62.0, -37.0, 0.01)
    assert parse_region(params(POS="circle 422 -37 0.01")) == CircleRegion(62.0, -37.0, 0.01)
    polygon = parse_region(params(POLYGON="62 -37 62.01 -37 62.01 -36.99"))
    assert polygon == PolygonRegion(((62.0, -37.0), (62.01, -37.0), (62.01, -36.99)))
    assert parse_region(params(POS="POLYGON 62 -37 62.01 -37 62.01 -36.99")) == polygon
    assert parse_region(params(POS="RANGE 62 62.1 -37 -36.9")) == RangeRegion(
        62.0, 62.1, -37.0, -36.9
    )
    assert parse_region(params(POS="RANGE -Inf +Inf -91 +Inf")) == RangeRegion(
        0.0, 360.0, -90.0, 90.0
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "no region given"),
        ({"CIRCLE": ["62 -37 0.1"], "POS": ["CIRCLE 62 -37 0.1"]}, "one region per request"),
        ({"CIRCLE": ["62 -37"]}, "CIRCLE needs 3 numbers"),
        ({"CIRCLE": ["62 -37 abc"]}, "CIRCLE must hold numbers"),
        ({"CIRCLE": ["62 -97 0.1"]}, "CIRCLE: declination -97 is outside"),
        ({"CIRCLE": ["62 -37 -1"]}, "CIRCLE: the radius must be"),
        ({"CIRCLE": ["nan -37 1"]}, "CIRCLE must hold numbers"),
        ({"POLYGON": ["62 -37 62.1 -37"]}, "POLYGON needs an even count"),
        ({"POLYGON": ["62 -37 62.1 -37 62.1"]}, "POLYGON needs an even count"),
        ({"POLYGON": ["0 0 120 0 240 0"]}, "POLYGON: POLYGON must fit within a hemisphere"),
        ({"POS": ["BOX 62 -37 1 1"]}, "POS must start with CIRCLE, RANGE or POLYGON"),
        ({"POS": ["RANGE 62 63 -30 -40"]}, "POS: the Dec range -30 .. -40 is empty"),
        ({"POS": ["RANGE 62 63 -30"]}, "POS RANGE needs 4 numbers"),
        ({"POS": ["RANGE 62 +Inf -30 -20"]}, "open RA range"),
    ],
)
def test_malformed_regions_name_the_parameter(values: dict[str, list[str]], message: str) -> None:
    with pytest.raises(UsageFault, match=message) as info:
        parse_region(values)
    assert info.value.message.startswith("UsageFault: ")
    assert info.value.status_code == 400


def test_circle_contains_is_exact_on_the_sphere() -> None:
    rng = np.random.default_rng(2)
    ra, dec = rng.uniform(0, 360, 5000), np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    region = CircleRegion(359.5, -89.0, 3.0)
    expected = angular_separation_deg(ra, dec, 359.5, -89.0) <= 3.0
    assert (region.contains(ra, dec) == expected).all()
