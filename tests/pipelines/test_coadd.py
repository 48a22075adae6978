"""Warps and coadds: flux and positions carried onto the sky map, stacking arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from astropy.table import Table

from dpzero.repo.exposure import Exposure, mask_bits
from dpzero.sim.skymap import DC2_SKYMAP

from .conftest import NJY_PER_E, TinyRelease
from .test_calibrate import reference
from .test_isr import run_isr


@pytest.fixture(scope="module")
def warp(tiny_release: TinyRelease) -> Exposure:
    from dpzero.pipelines.tasks.calibrate import CalibrateTask
    from dpzero.pipelines.tasks.coadd import MakeWarpTask

    ref = reference(tiny_release)
    calexps = [CalibrateTask().run(run_isr(tiny_release, 1001, d), ref).calexp for d in (94, 95)]
    loc = DC2_SKYMAP.locate([tiny_release.stars[44].ra], [tiny_release.stars[44].dec])
    tract = int(loc.tract[0])
    patch = int(loc.patch_x[0]) + 7 * int(loc.patch_y[0])
    return MakeWarpTask().run(calexps, DC2_SKYMAP, tract, patch).warp


def test_warp_carries_star_fluxes_and_positions(warp: Exposure, tiny_release: TinyRelease) -> None:
    import sep

    tract = int(DC2_SKYMAP.locate([62.0], [-37.0]).tract[0])
    ra = np.array([s.ra for s in tiny_release.stars])
    dec = np.array([s.dec for s in tiny_release.stars])
    x, y = DC2_SKYMAP.sky_to_pixel(tract, ra, dec)
    # The warp's WCS is the tract's projection shifted to its box.
    wx, wy = warp.wcs.all_world2pix(ra, dec, 0)
    np.testing.assert_allclose(wx, x - warp.bbox.x0, atol=1e-6)
    np.testing.assert_allclose(wy, y - warp.bbox.y0, atol=1e-6)
    inside = (wx > 15) & (wx < warp.bbox.width - 16) & (wy > 15) & (wy < warp.bbox.height - 16)
    data = (warp.mask & mask_bits("NO_DATA")) == 0
    checked = 0
    for i in np.nonzero(inside)[0]:
        r, c = round(float(wy[i])), round(float(wx[i]))
        if not data[r - 13 : r + 14, c - 13 : c + 14].all() or i == 44:
            continue
        flux, _, _ = sep.sum_circle(
            np.ascontiguousarray(warp.image, dtype=np.float64), [wx[i]], [wy[i]], 12.0
        )
        truth = tiny_release.stars[i].electrons["i"] * NJY_PER_E["i"]
        assert flux[0] == pytest.approx(truth, rel=0.05, abs=400.0), i
        checked += 1
    assert checked >= 5


def test_coadd_warps_is_a_clipped_weighted_mean() -> None:
    from dpzero.pipelines.tasks.coadd import coadd_warps

    rng = np.random.default_rng(3)
    images = rng.normal(10.0, 1.0, (5, 4, 6))
    variances = np.full(images.shape, 1.0)
    weights = np.array([1.0, 2.0, 1.0, 0.5, 1.0])
    images[2, 1, 1] = 1e4  # an artefact in one warp
    images[0, 3, :] = np.nan  # no data there in one warp
    image, variance, count = coadd_warps(images, variances, weights, clip_sigma=3.0)
    assert count[1, 1] == 4 and count[3, 0] == 4 and count[0, 0] == 5
    keep = np.ones(5, bool)
    keep[2] = False
    expected = np.average(images[keep, 1, 1], weights=weights[keep])
    assert image[1, 1] == pytest.approx(expected)
    assert image[0, 0] == pytest.approx(np.average(images[:, 0, 0], weights=weights))
    assert variance[0, 0] == pytest.approx((weights**2).sum() / weights.sum() ** 2)


def test_single_warp_coadd_is_the_warp(warp: Exposure) -> None:
    from dpzero.pipelines.tasks.coadd import AssembleCoaddTask

    result = AssembleCoaddTask().run([warp])
    coadd = result.coadd
    assert coadd.bbox == warp.bbox
    data = (warp.mask & mask_bits("NO_DATA")) == 0
    np.testing.assert_allclose(coadd.image[data], warp.image[data], rtol=1e-6)
    assert (result.n_image[data] == 1).all() and (result.n_image[~data] == 0).all()
    assert coadd.psf.fwhm == pytest.approx(warp.psf.fwhm)


@dataclass(frozen=True)
class CoaddChain:
    """The coadd measurement chain on one band's coadd of the tiny release's patch."""

    coadd: Exposure
    n_image: np.ndarray
    tract: int
    patch: int
    catalog: Table
    footprints: np.ndarray
    measurements: Table
    reference: Table
    forced: Table


@pytest.fixture(scope="module")
def coadd_chain(warp: Exposure, tiny_release: TinyRelease) -> CoaddChain:
    """Coadd, detect, merge, deblend, measure, pick the reference band, force (band i)."""
    from dpzero.pipelines.tasks.coadd import AssembleCoaddTask
    from dpzero.pipelines.tasks.measure_coadd import (
        DeblendCoaddTask,
        DetectCoaddTask,
        ForcedPhotCoaddTask,
        MeasureCoaddTask,
        MergeDetectionsTask,
        MergeMeasurementsTask,
    )

    assembled = AssembleCoaddTask().run([warp])
    coadd, n_image = assembled.coadd, assembled.n_image
    loc = DC2_SKYMAP.locate([tiny_release.stars[44].ra], [tiny_release.stars[44].dec])
    tract, patch = int(loc.tract[0]), int(loc.patch_x[0]) + 7 * int(loc.patch_y[0])
    det = DetectCoaddTask().run(coadd, DC2_SKYMAP, tract).detections
    merged = MergeDetectionsTask().run({"i": det}).merged
    deblended = DeblendCoaddTask().run({"i": coadd}, merged, DC2_SKYMAP, tract, patch)
    cat, footprints = deblended.catalog, deblended.footprints
    meas = MeasureCoaddTask().run(coadd, n_image, cat, footprints, DC2_SKYMAP, tract)
    ref = MergeMeasurementsTask().run({"i": meas.measurements}, cat, DC2_SKYMAP, tract).reference
    forced = ForcedPhotCoaddTask().run(coadd, n_image, ref, footprints, DC2_SKYMAP, tract)
    return CoaddChain(
        coadd, n_image, tract, patch, cat, footprints, meas.measurements, ref, forced.measurements
    )


def test_coadd_measurement_against_truth(
    coadd_chain: CoaddChain, tiny_release: TinyRelease
) -> None:
    from astropy.coordinates import SkyCoord

    coadd, tract, patch = coadd_chain.coadd, coadd_chain.tract, coadd_chain.patch
    ref, forced = coadd_chain.reference, coadd_chain.forced
    assert len(np.unique(ref["id"])) == len(ref)
    assert (np.asarray(ref["id"]) >> 43 == tract * 49 + patch).all()
    assert (ref["refBand"] == "i").all()
    stars = SkyCoord(
        [s.ra for s in tiny_release.stars], [s.dec for s in tiny_release.stars], unit="deg"
    )
    found = SkyCoord(ref["coord_ra"], ref["coord_dec"], unit="deg")
    idx, sep, _ = found.match_to_catalog_sky(stars)
    truth = np.array([tiny_release.stars[i].electrons["i"] * NJY_PER_E["i"] for i in idx])
    flux = np.asarray(forced["psfFlux"])
    x, y = ref["x"] - coadd.bbox.x0, ref["y"] - coadd.bbox.y0
    good = (sep.arcsec < 0.3) & (idx != 44) & (truth > 1e4)
    good &= ~np.asarray(forced["ap12Flux_flag"])  # no hole in the aperture
    good &= (x > 14) & (x < coadd.bbox.width - 15) & (y > 14) & (y < coadd.bbox.height - 15)
    good &= np.asarray(ref["deblend_nChild"]) == 0
    assert good.sum() >= 5
    assert float(np.sqrt(np.mean(sep.arcsec[good] ** 2))) < 0.02
    offset = flux[good] / truth[good] - 1
    assert abs(float(np.median(offset))) < 0.01
    assert float(np.max(np.abs(offset))) < 0.05
    # Stars are point sources, and their inputs are counted.
    assert np.nanmean(np.asarray(forced["extendedness"])[good]) < 0.2
    assert (np.asarray(forced["inputCount"])[good] == 1).all()
