"""WCSs of detectors and patches, and what the visits of each size cover."""

from __future__ import annotations

import numpy as np
import pytest

from dpzero.sim.images.camera import make_camera
from dpzero.sim.images.coadd import coverage
from dpzero.sim.images.geometry import (
    detector_corners,
    detector_wcs,
    focal_plane_corners,
    patch_box,
    patch_wcs,
)
from dpzero.sim.images.observing import IMAGE_SIZES, plan_visits
from dpzero.sim.images.simulate import pointing_centre
from dpzero.sim.skymap import DC2_SKYMAP


def test_detector_wcs_places_the_boresight_and_rotation() -> None:
    camera = make_camera(512, 512, 16)
    visit = plan_visits(IMAGE_SIZES["tiny"], 62.0, -37.0, seed=3)[0]
    centre = camera.detector(94)
    wcs = detector_wcs(centre, visit, camera.pixel_scale)
    ra, dec = wcs.all_pix2world([255.5], [255.5], 0)
    assert ra[0] == pytest.approx(visit.ra, abs=1e-9)
    assert dec[0] == pytest.approx(visit.dec, abs=1e-9)
    scale = np.sqrt(abs(np.linalg.det(wcs.wcs.cd))) * 3600
    assert scale == pytest.approx(0.2)
    # +y points north rotated by the visit's rotation angle (east of north).
    ra1, dec1 = wcs.all_pix2world([255.5], [355.5], 0)
    east = (ra1[0] - ra[0]) * np.cos(np.radians(dec[0]))
    north = dec1[0] - dec[0]
    angle = np.degrees(np.arctan2(-east, north))
    assert angle == pytest.approx(visit.rotation, abs=0.01)
    # neighbouring detectors sit one detector plus the gap away
    right = detector_corners(camera.detector(95), visit, camera)
    x, _ = wcs.all_world2pix(right[:, 0], right[:, 1], 0)
    assert x.min() == pytest.approx(512 + 16 - 0.5, abs=0.01)


def test_patch_wcs_matches_the_sky_map() -> None:
    box = patch_box(3831, 3, 1)
    assert (box.x0, box.y0, box.width, box.height) == (11_900, 3_900, 4_200, 4_200)
    wcs = patch_wcs(3831, box)
    cols = np.array([0.0, 100.0, 4199.0])
    rows = np.array([0.0, 2000.0, 4199.0])
    ra, dec = wcs.all_pix2world(cols, rows, 0)
    ra2, dec2 = DC2_SKYMAP.pixel_to_sky(3831, cols + box.x0, rows + box.y0)
    assert np.allclose(ra, ra2, atol=1e-10) and np.allclose(dec, dec2, atol=1e-10)


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_small_covers_a_whole_patch_in_every_band(seed: int) -> None:
    spec = IMAGE_SIZES["small"]
    camera = make_camera(spec.detector_width, spec.detector_height, spec.detector_gap)
    ra, dec = pointing_centre(spec)
    loc = DC2_SKYMAP.locate([ra], [dec])
    tract = int(loc.tract[0])
    box = patch_box(tract, int(loc.patch_x[0]), int(loc.patch_y[0]))
    visits = plan_visits(spec, ra, dec, seed)
    for band in "ugrizy":
        quads = []
        for visit in (v for v in visits if v.band == band):
            corners = focal_plane_corners(camera, visit)
            x, y = DC2_SKYMAP.sky_to_pixel(tract, corners[:, 0], corners[:, 1])
            quads.append(np.column_stack([x, y]))
        assert len(quads) == spec.visits_per_band
        assert (coverage(box, quads, block=50) > 0).all(), band


def test_coverage_counts_overlaps() -> None:
    from dpzero.repo import Box

    square = np.array([[-0.5, -0.5], [9.5, -0.5], [9.5, 9.5], [-0.5, 9.5]])
    counts = coverage(Box(0, 0, 20, 12), [square, square + np.array([5.0, 0.0])], block=1)
    assert counts[:, :5].tolist() == [[1] * 5] * 10 + [[0] * 5] * 2
    assert (counts[:10, 5:10] == 2).all() and (counts[:10, 10:15] == 1).all()
    assert (counts[:, 15:] == 0).all()
