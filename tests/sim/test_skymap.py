"""The DC2 rings sky map against the numbers DP0.1 users know."""

from __future__ import annotations

import numpy as np
import pytest

from dpzero.sim.skymap import DC2_SKYMAP, gnomonic_forward, gnomonic_inverse


def test_tract_count_and_tract_3828_centre() -> None:
    assert DC2_SKYMAP.num_tracts == 18938
    info = DC2_SKYMAP.tract_info(3828)
    assert info.ra == pytest.approx(56.650, abs=1e-3)
    assert info.dec == pytest.approx(-36.446, abs=1e-3)


def test_dc2_corners_fall_in_dp01_tract_range() -> None:
    ra = [52.25, 71.46, 73.79, 49.92, 61.86]
    dec = [-27.25, -27.25, -44.33, -44.33, -35.79]
    tracts = DC2_SKYMAP.find_tract(ra, dec)
    assert ((tracts >= 2723) & (tracts <= 5074)).all()


def test_tract_centre_maps_to_its_own_tract_and_central_patch() -> None:
    for tract in (2723, 3828, 4431, 5074):
        info = DC2_SKYMAP.tract_info(tract)
        loc = DC2_SKYMAP.locate([info.ra], [info.dec])
        assert loc.tract[0] == tract
        assert (loc.patch_x[0], loc.patch_y[0]) == (3, 3)


def test_pixel_round_trip_and_orientation() -> None:
    rng = np.random.default_rng(3)
    info = DC2_SKYMAP.tract_info(3828)
    ra = info.ra + rng.uniform(-0.7, 0.7, 100)
    dec = info.dec + rng.uniform(-0.7, 0.7, 100)
    x, y = DC2_SKYMAP.sky_to_pixel(3828, ra, dec)
    back_ra, back_dec = DC2_SKYMAP.pixel_to_sky(3828, x, y)
    np.testing.assert_allclose(back_ra, ra, atol=1e-9)
    np.testing.assert_allclose(back_dec, dec, atol=1e-9)
    # x grows toward lower RA, y toward the north; 0.2″ pixels.
    x1, _y1 = DC2_SKYMAP.sky_to_pixel(3828, [info.ra - 0.01], [info.dec])
    assert x1[0] > info.crpix
    _x2, y2 = DC2_SKYMAP.sky_to_pixel(3828, [info.ra], [info.dec + 0.01])
    assert y2[0] - info.crpix == pytest.approx(0.01 * 3600 / 0.2, rel=1e-3)


def test_ra_wraps_at_zero() -> None:
    near_zero = DC2_SKYMAP.find_tract([0.001, 359.999], [-36.4, -36.4])
    assert near_zero[0] == near_zero[1]  # tract 0 of the ring straddles RA 0
    xi, eta = gnomonic_forward(359.9, -10.0, [0.1], [-10.0])
    ra, _dec = gnomonic_inverse(359.9, -10.0, xi, eta)
    assert ra[0] == pytest.approx(0.1, abs=1e-9)
    assert xi[0] > 0


def test_polar_caps() -> None:
    tracts = DC2_SKYMAP.find_tract([10.0, 10.0], [-89.9, 89.9])
    assert tracts.tolist() == [0, DC2_SKYMAP.num_tracts - 1]
