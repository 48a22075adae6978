"""Round trips of `Exposure` through FITS, whole, by box and by component."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dpzero.errors import InvalidInputError
from dpzero.repo.exposure import (
    COMPONENTS,
    MASK_PLANES,
    Box,
    BoxOutsideError,
    Exposure,
    ExposureFileError,
    FilterLabel,
    PhotoCalib,
    Psf,
    VisitInfo,
    mask_bits,
    read_exposure,
)


def make_wcs(ra: float = 62.0, dec: float = -37.0, crpix: float = 20.0) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [crpix, crpix]
    wcs.wcs.cd = [[-0.2 / 3600, 0.0], [0.0, 0.2 / 3600]]
    return wcs


def make_exposure(x0: int = 100, y0: int = 200, shape: tuple[int, int] = (30, 40)) -> Exposure:
    rng = np.random.default_rng(3)
    image = rng.normal(10.0, 2.0, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.int32)
    mask[3, 4] = mask_bits("SAT", "CR")
    mask[-1, :] = mask_bits("EDGE")
    band = FilterLabel("i", "i_sim_1.4")
    return Exposure(
        image=image,
        mask=mask,
        variance=np.full(shape, 4.0, dtype=np.float32),
        wcs=make_wcs(),
        psf=Psf.gaussian(3.5),
        photo_calib=PhotoCalib(57.54, 0.3),
        visit_info=VisitInfo(
            exposure_time=30.0,
            mjd=59853.1234567,
            airmass=1.2,
            seeing_fwhm=0.71,
            boresight_ra=61.9,
            boresight_dec=-36.8,
            rotation_angle=12.5,
            filter=band,
            id=512055,
        ),
        bbox=Box(x0, y0, shape[1], shape[0]),
        filter=band,
    )


def test_mask_planes_are_lsst_bits() -> None:
    assert MASK_PLANES["BAD"] == 0
    assert MASK_PLANES["SAT"] == 1
    assert MASK_PLANES["DETECTED"] == 5
    assert MASK_PLANES["NO_DATA"] == 8
    assert len(set(MASK_PLANES.values())) == len(MASK_PLANES)
    assert mask_bits("SAT", "CR") == 0b1010
    with pytest.raises(ValueError, match="unknown mask plane"):
        mask_bits("NOPE")


def test_psf_is_normalised_and_odd() -> None:
    psf = Psf.gaussian(3.0)
    assert psf.kernel.shape[0] % 2 == 1
    assert psf.kernel.sum() == pytest.approx(1.0)
    centre = psf.kernel.shape[0] // 2
    row = psf.kernel[centre]
    half = row[centre] / 2
    # FWHM measured on the kernel by linear interpolation agrees with the stated one.
    above = np.flatnonzero(row >= half)
    lo, hi = above[0], above[-1]
    left = lo - 1 + (half - row[lo - 1]) / (row[lo] - row[lo - 1])
    right = hi + (row[hi] - half) / (row[hi] - row[hi + 1])
    assert right - left == pytest.approx(3.0, rel=0.05)
    with pytest.raises(InvalidInputError):
        Psf(kernel=np.ones((4, 5)), fwhm=2.0)


def test_round_trip_whole(tmp_path: Path) -> None:
    exposure = make_exposure()
    path = tmp_path / "calexp.fits"
    exposure.write_fits(path)
    back = read_exposure(path)
    assert back.image.dtype == np.float32 and back.mask.dtype == np.int32
    np.testing.assert_array_equal(back.image, exposure.image)
    np.testing.assert_array_equal(back.mask, exposure.mask)
    np.testing.assert_array_equal(back.variance, exposure.variance)
    np.testing.assert_allclose(back.psf.kernel, exposure.psf.kernel)
    assert back.psf.fwhm == exposure.psf.fwhm
    assert back.photo_calib == exposure.photo_calib
    assert back.visit_info == exposure.visit_info
    assert back.bbox == exposure.bbox
    assert back.filter == exposure.filter
    cols, rows = np.meshgrid(np.arange(40.0), np.arange(30.0))
    np.testing.assert_allclose(
        back.wcs.all_pix2world(cols, rows, 0), exposure.wcs.all_pix2world(cols, rows, 0)
    )


def test_files_are_plain_fits(tmp_path: Path) -> None:
    path = tmp_path / "e.fits"
    make_exposure().write_fits(path)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE", "PSF"]
        assert hdul["MASK"].header["MP_SAT"] == 1
        assert hdul["IMAGE"].header["LTV1"] == -100
        assert hdul["IMAGE"].header["CRVAL2A"] == 200
    with pytest.raises(OSError):
        make_exposure().write_fits(path)
    make_exposure().write_fits(path, overwrite=True)


def test_bbox_read_matches_subset(tmp_path: Path) -> None:
    exposure = make_exposure()
    path = tmp_path / "e.fits"
    exposure.write_fits(path)
    box = Box(110, 205, 7, 9)
    part = read_exposure(path, bbox=box)
    expected = exposure.subset(box)
    assert part.bbox == box
    assert part.image.shape == (9, 7)
    np.testing.assert_array_equal(part.image, exposure.image[5:14, 10:17])
    np.testing.assert_array_equal(part.mask, expected.mask)
    np.testing.assert_array_equal(part.variance, expected.variance)
    # The cut's WCS puts the same sky under the same parent pixel.
    ra0, dec0 = exposure.parent_to_sky([110, 116.5], [205, 213])
    ra1, dec1 = part.parent_to_sky([110, 116.5], [205, 213])
    np.testing.assert_allclose(ra1, ra0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec1, dec0, rtol=0, atol=1e-10)
    wcs_only = read_exposure(path, bbox=box, component="wcs")
    np.testing.assert_allclose(wcs_only.wcs.crpix, part.wcs.wcs.crpix)
    assert wcs_only.wcs.crpix[0] == pytest.approx(20.0 - 10)


def test_components(tmp_path: Path) -> None:
    exposure = make_exposure()
    path = tmp_path / "e.fits"
    exposure.write_fits(path)
    assert read_exposure(path, component="bbox") == exposure.bbox
    assert read_exposure(path, component="photoCalib") == exposure.photo_calib
    assert read_exposure(path, component="visitInfo") == exposure.visit_info
    assert read_exposure(path, component="filter") == exposure.filter
    assert read_exposure(path, component="psf").fwhm == 3.5
    mask = read_exposure(path, component="mask", bbox=Box(100, 229, 40, 1))
    assert np.all(mask == mask_bits("EDGE"))
    for component in COMPONENTS:
        read_exposure(path, component=component)
    with pytest.raises(InvalidInputError, match="unknown exposure component"):
        read_exposure(path, component="nope")


def test_bbox_read_reads_only_needed_rows(tmp_path: Path) -> None:
    """A one-row box reads a few blocks, not the 4 MB of pixels."""
    shape = (1000, 1000)
    big = Exposure.from_image(np.arange(1e6, dtype=np.float32).reshape(shape))
    path = tmp_path / "big.fits"
    big.write_fits(path)

    class CountingFile:
        def __init__(self, raw) -> None:
            self.raw = raw
            self.read_bytes = 0

        def read(self, n: int = -1) -> bytes:
            data = self.raw.read(n)
            self.read_bytes += len(data)
            return data

        def __getattr__(self, name: str):
            return getattr(self.raw, name)

    with path.open("rb") as raw:
        counting = CountingFile(raw)
        row = read_exposure(counting, bbox=Box(10, 500, 5, 1), component="image")
    np.testing.assert_array_equal(row[0], np.arange(500_010, 500_015, dtype=np.float32))
    assert counting.read_bytes < 100_000, counting.read_bytes


def test_minimal_exposure_and_errors(tmp_path: Path) -> None:
    bare = Exposure.from_image(np.zeros((4, 5)))
    assert bare.bbox == Box(0, 0, 5, 4)
    path = tmp_path / "bare.fits"
    bare.write_fits(path)
    back = read_exposure(path)
    assert back.wcs is None and back.psf is None and back.visit_info is None
    assert back.photo_calib is None and back.filter is None
    with pytest.raises(BoxOutsideError):
        read_exposure(path, bbox=Box(3, 0, 5, 4))
    with pytest.raises(InvalidInputError, match="one shape"):
        Exposure(image=np.zeros((2, 2)), mask=np.zeros((2, 3)), variance=np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="does not match"):
        Exposure.from_image(np.zeros((2, 2)), bbox=Box(0, 0, 3, 2))
    other = tmp_path / "other.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(other)
    with pytest.raises(ExposureFileError):
        read_exposure(other)


def test_nan_visit_info_survives(tmp_path: Path) -> None:
    band = FilterLabel("r", "r_sim_1.4")
    info = VisitInfo(30.0, math.nan, 1.0, math.nan, 0.0, 0.0, 0.0, band)
    exposure = Exposure.from_image(np.zeros((3, 3)), visit_info=info)
    path = tmp_path / "n.fits"
    exposure.write_fits(path)
    back = read_exposure(path, component="visitInfo")
    assert math.isnan(back.mjd) and math.isnan(back.seeing_fwhm)
    assert back.exposure_time == 30.0 and back.id is None
