"""Calibration of the tiny release's exposures against its known stars."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from astropy.table import Table

from dpzero.repo.exposure import Exposure

from .conftest import FWHM, NJY_PER_E, SIZE, SKY, VISITS, TinyRelease, true_wcs
from .test_isr import run_isr


def reference(release: TinyRelease) -> Table:
    table = Table(
        {
            "coord_ra": np.radians([s.ra for s in release.stars]),
            "coord_dec": np.radians([s.dec for s in release.stars]),
        }
    )
    for band, njy in NJY_PER_E.items():
        table[f"{band}_flux"] = [s.electrons[band] * njy for s in release.stars]
    return table


def on_detector(release: TinyRelease, visit: int, detector: int) -> np.ndarray:
    x, y = true_wcs(visit, detector).all_world2pix(
        [s.ra for s in release.stars], [s.dec for s in release.stars], 0
    )
    return np.nonzero((x > 10) & (x < SIZE - 11) & (y > 10) & (y < SIZE - 11))[0]


def match_stars(
    release: TinyRelease, visit: int, detector: int, sources: Table
) -> tuple[np.ndarray, np.ndarray, Angle]:
    """The true stars on a detector, their nearest source's index and separation."""
    stars = on_detector(release, visit, detector)
    star_sky = SkyCoord(
        [release.stars[i].ra for i in stars], [release.stars[i].dec for i in stars], unit="deg"
    )
    found = SkyCoord(sources["coord_ra"], sources["coord_dec"], unit="deg")
    idx, sep, _ = star_sky.match_to_catalog_sky(found)
    return stars, idx, sep


@pytest.fixture(scope="module")
def calibrated(tiny_release: TinyRelease) -> dict:
    from dpzero.pipelines.tasks.calibrate import CalibrateTask

    ref = reference(tiny_release)
    out = {}
    for visit, detector in ((1001, 94), (1002, 95)):
        exposure = run_isr(tiny_release, visit, detector)
        out[visit, detector] = CalibrateTask().run(exposure, ref, id_base=visit << 20)
    return out


@pytest.mark.parametrize(("visit", "detector"), [(1001, 94), (1002, 95)])
def test_astrometry_against_truth(
    calibrated: dict, tiny_release: TinyRelease, visit: int, detector: int
) -> None:
    result = calibrated[visit, detector]
    wcs = result.calexp.wcs
    truth = true_wcs(visit, detector)
    # The fitted WCS corrects the 1″ pointing error: over the detector it agrees
    # with the true one to tens of mas (about ten stars fix six parameters).
    gx, gy = np.meshgrid(np.linspace(0, SIZE - 1, 5), np.linspace(0, SIZE - 1, 5))
    fit = SkyCoord(*wcs.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
    true = SkyCoord(*truth.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
    assert np.median(fit.separation(true).arcsec) < 0.03
    assert fit.separation(true).arcsec.max() < 0.1
    # Source positions of the unsaturated stars match the truth within 20 mas rms.
    src = result.sources
    stars, idx, sep = match_stars(tiny_release, visit, detector, src)
    good = ~np.asarray(src["base_PixelFlags_flag_saturatedCenter"])[idx]
    assert (sep.arcsec < 0.3).sum() >= len(stars) - 1
    rms = np.sqrt(np.mean(sep.arcsec[good & (sep.arcsec < 0.3)] ** 2))
    assert rms < 0.020
    assert src["calib_astrometry_used"].sum() >= 4


@pytest.mark.parametrize(("visit", "detector"), [(1001, 94), (1002, 95)])
def test_photometry_against_truth(
    calibrated: dict, tiny_release: TinyRelease, visit: int, detector: int
) -> None:
    result = calibrated[visit, detector]
    band, _ = VISITS[visit]
    calib = result.calexp.photo_calib
    assert calib.njy_per_count == pytest.approx(NJY_PER_E[band], rel=0.01)
    src = result.sources
    stars, idx, sep = match_stars(tiny_release, visit, detector, src)
    true_flux = np.array([tiny_release.stars[i].electrons[band] for i in stars]) * NJY_PER_E[band]
    flux = np.asarray(src["base_PsfFlux_flux"])[idx]
    ok = (sep.arcsec < 0.3) & ~np.asarray(src["base_PixelFlags_flag_saturatedCenter"])[idx]
    bright = ok & (true_flux > 1e4)
    offset = flux[bright] / true_flux[bright] - 1
    assert bright.sum() >= 3
    assert abs(float(np.median(offset))) < 0.01
    assert float(np.max(np.abs(offset))) < 0.03


def test_psf_and_background(calibrated: dict) -> None:
    result = calibrated[1001, 94]
    calexp: Exposure = result.calexp
    assert calexp.psf.fwhm == pytest.approx(FWHM, rel=0.05)
    assert np.isclose(calexp.psf.kernel.sum(), 1.0)
    model = result.background.image()
    assert model.shape == (SIZE, SIZE)
    flat_mean = float(np.median(model))
    assert flat_mean == pytest.approx(SKY, rel=0.03)
    sky = calexp.mask == 0
    assert abs(float(np.median(calexp.image[sky]))) < 3.0
    ids = np.asarray(result.sources["id"])
    assert len(np.unique(ids)) == len(ids) and ids.min() >= 1001 << 20


def test_reference_stars_without_a_source_fail_clearly(tiny_release: TinyRelease) -> None:
    from dpzero.pipelines.tasks.calibrate import CalibrateTask, CalibrationFailedError

    # One reference star on the detector, on the pixel farthest from every true star:
    # the detector has references, yet none matches (as with a WCS far off).
    wcs = true_wcs(1001, 94)
    x, y = wcs.all_world2pix(
        [s.ra for s in tiny_release.stars], [s.dec for s in tiny_release.stars], 0
    )
    gx, gy = np.meshgrid(np.arange(SIZE), np.arange(SIZE))
    distance = np.hypot(gx.ravel()[:, None] - x, gy.ravel()[:, None] - y).min(axis=1)
    far = int(np.argmax(distance))
    assert distance[far] > 20  # the first, widest match pass reaches 4 × 5 pixels
    ra, dec = wcs.all_pix2world([gx.ravel()[far]], [gy.ravel()[far]], 0)
    lonely = reference(tiny_release)[:1]
    lonely["coord_ra"], lonely["coord_dec"] = np.radians(ra), np.radians(dec)
    with pytest.raises(CalibrationFailedError, match="0 reference matches"):
        CalibrateTask().run(run_isr(tiny_release, 1001, 94), lonely)


def test_a_detector_without_reference_stars_is_unprocessable(tiny_release: TinyRelease) -> None:
    from lsst.pipe.base import NoWorkFound

    from dpzero.pipelines.tasks.calibrate import CalibrateTask, NoReferenceStarsError

    # None of the loaded reference stars falls on the detector: no quantum failure
    # (which would block every coadd of the visit), but no work with a clear message.
    far = reference(tiny_release)
    far["coord_dec"] = far["coord_dec"] + np.radians(1.0)
    with pytest.raises(NoReferenceStarsError, match=r"none of the \d+ reference stars") as caught:
        CalibrateTask().run(run_isr(tiny_release, 1001, 94), far)
    assert isinstance(caught.value, NoWorkFound)


def test_astrometric_fit_drops_a_wrong_pair() -> None:
    from dpzero.pipelines.tasks.calibrate import fit_astrometry

    # 30 stars on a 2048² detector with 5 mas of centroid noise, and one source paired
    # with a reference star 0.4″ away (a blend): the fit must not follow it.
    truth = true_wcs(1001, 94)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 2048, 30), rng.uniform(0, 2048, 30)
    ra, dec = truth.all_pix2world(x, y, 0)
    noise = 0.005 / 3600
    ra = ra + rng.normal(0, noise, 30) / np.cos(np.radians(dec))
    dec = dec + rng.normal(0, noise, 30)
    dec[7] += 0.4 / 3600
    start = truth.deepcopy()
    start.wcs.crpix = np.asarray(start.wcs.crpix) + 3.0  # a pointing error of 0.6″
    start.wcs.set()
    fitted, rms, kept = fit_astrometry(start, x, y, ra, dec, 4)
    assert not kept[7] and kept.sum() == 29
    assert rms < 0.008
    gx, gy = np.meshgrid(np.linspace(0, 2047, 5), np.linspace(0, 2047, 5))
    fit = SkyCoord(*fitted.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
    true = SkyCoord(*truth.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
    assert fit.separation(true).arcsec.max() < 0.01
