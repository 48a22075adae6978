"""A tiny raws-only release with known stars: raws, calibrations, camera, reference catalog.

Two visits (bands i and r, the second rotated by 30°) on two 128×128-pixel detectors,
each read through four amplifiers (readout flipped as on LSSTCam), with bias, dark,
flat, sky, photon and read noise, one cosmic ray and one saturated star. The true
pointing lies 1″ from the one written in the raw headers, so the astrometric fit has
something to correct. Stars are circular Gaussians of known FWHM; the reference
catalog holds every star with its true position and flux.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from astropy.io import fits
from astropy.wcs import WCS
from scipy.special import erf

from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import physical_filter_of
from dpzero.repo.exposure import Exposure, FilterLabel
from dpzero.repo.repository import RepoSpec
from dpzero.sim.images.layout import LegacyLayout
from dpzero.sim.images.refcat import htm_index

RA, DEC = 62.0, -37.0
SIZE = 128
GAIN = 0.7
READ_NOISE = 5.0
BIAS_LEVEL = 1000.0
SATURATE = 20_000.0
SKY = 300.0  # electrons per pixel
DARK = 0.05  # electrons per second
EXPTIME = 30.0
FWHM = 3.5  # pixels
NJY_PER_E = {"i": 0.6, "r": 0.5}
POINTING_ERROR_ARCSEC = 1.0
VISITS = {1001: ("i", 0.0), 1002: ("r", 30.0)}
DETECTORS = {94: (0.0, 0.0), 95: (136.0, 0.0)}  # focal-plane offsets, pixels
CR_PIXELS = ((20, 100), (21, 101), (22, 102))  # (row, col), visit 1001 detector 94
SATURATED = 44  # index of the star bright enough to saturate (on detector 94)


@dataclass(frozen=True)
class Star:
    """A star of the scene."""

    ra: float
    dec: float
    electrons: dict[str, float]  # per band, before the flat


@dataclass(frozen=True)
class TinyRelease:
    """The tiny release and its truth."""

    legacy: Path
    stars: tuple[Star, ...]


def true_wcs(visit: int, detector: int, *, offset: bool = True) -> WCS:
    """TAN WCS of a detector in a visit; ``offset`` moves the pointing by the error."""
    _, rotation = VISITS[visit]
    fx, fy = DETECTORS[detector]
    theta = math.radians(rotation)
    c, s = math.cos(theta), math.sin(theta)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    shift = POINTING_ERROR_ARCSEC / 3600.0 if offset else 0.0
    wcs.wcs.crval = [RA + shift / math.cos(math.radians(DEC)), DEC + shift]
    wcs.wcs.crpix = [(SIZE - 1) / 2 - fx + 1, (SIZE - 1) / 2 - fy + 1]
    wcs.wcs.cd = 0.2 / 3600 * np.array([[-c, -s], [-s, c]])
    wcs.wcs.set()
    return wcs


def make_stars() -> tuple[Star, ...]:
    """Stars on a jittered grid over both detectors, one bright enough to saturate."""
    rng = np.random.default_rng(5)
    wcs = true_wcs(1001, 94)
    stars = []
    # A jittered grid over both detectors in both visits' orientations.
    for gx in np.arange(-60, 330, 26.0):
        for gy in np.arange(-60, 190, 26.0):
            x, y = gx + rng.uniform(-4, 4), gy + rng.uniform(-4, 4)
            ra, dec = wcs.all_pix2world(x, y, 0)
            total = float(10 ** rng.uniform(3.7, 5.0))
            stars.append(Star(float(ra), float(dec), {"i": total, "r": total * 0.8}))
    bright = stars[SATURATED]
    stars[SATURATED] = Star(bright.ra, bright.dec, {"i": 2.0e6, "r": 1.6e6})
    return tuple(stars)


def _gaussian_scene(x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Pixel-integrated circular Gaussians (exact pixel sums)."""
    sigma = FWHM / 2.3548
    edges = np.arange(SIZE + 1) - 0.5
    scene = np.zeros((SIZE, SIZE))
    for xi, yi, fi in zip(x, y, flux, strict=True):
        px = np.diff(0.5 * (1 + erf((edges - xi) / (math.sqrt(2) * sigma))))
        py = np.diff(0.5 * (1 + erf((edges - yi) / (math.sqrt(2) * sigma))))
        scene += fi * np.outer(py, px)
    return scene


def flat_field(detector: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    fx, fy = DETECTORS[detector]
    r2 = ((xx - 63.5 + fx) ** 2 + (yy - 63.5 + fy) ** 2) / 200.0**2
    return (1.0 - 0.05 * r2).astype(np.float32)


def bias_frame(detector: int) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (0.5 * yy / SIZE + 0.2 * (xx % 7) + detector % 3).astype(np.float32)


def dark_frame() -> np.ndarray:
    dark = np.full((SIZE, SIZE), DARK, dtype=np.float32)
    dark[70, 40] = 20.0  # a hot pixel
    return dark


def scene_electrons(stars: tuple[Star, ...], visit: int, detector: int) -> np.ndarray:
    """Expected electrons above the atmosphere and flat: sky plus stars."""
    band, _ = VISITS[visit]
    wcs = true_wcs(visit, detector)
    x, y = wcs.all_world2pix([s.ra for s in stars], [s.dec for s in stars], 0)
    flux = np.array([s.electrons[band] for s in stars])
    return SKY + _gaussian_scene(x, y, flux)


def _amp_boxes() -> list[tuple[str, slice, slice, bool, bool]]:
    half = SIZE // 2
    return [
        ("Segment10", slice(half, SIZE), slice(0, half), False, True),
        ("Segment11", slice(half, SIZE), slice(half, SIZE), False, True),
        ("Segment01", slice(0, half), slice(0, half), True, False),
        ("Segment00", slice(0, half), slice(half, SIZE), True, False),
    ]


def write_raw(
    path: Path, visit: int, detector: int, electrons: np.ndarray, rng: np.random.Generator
) -> None:
    band, rotation = VISITS[visit]
    adu = electrons / GAIN + bias_frame(detector)
    header = fits.Header()
    header["RUNNUM"] = visit
    header["FILTER"] = band
    header["FILTNAME"] = physical_filter_of(band)
    header["EXPTIME"] = EXPTIME
    header["MJD-OBS"] = 60000.2 + (visit - 1001)
    header["AIRMASS"] = 1.1
    header["SEEING"] = FWHM * 0.2
    header["RATEL"] = RA
    header["DECTEL"] = DEC
    header["ROTANGLE"] = rotation
    header["DETNUM"] = detector
    header["DETSIZE"] = f"[1:{SIZE},1:{SIZE}]"
    hdus: list = [fits.PrimaryHDU(header=header)]
    half = SIZE // 2
    for name, rows, cols, flip_x, flip_y in _amp_boxes():
        data = adu[rows, cols]
        data = data[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
        raw = rng.normal(BIAS_LEVEL, READ_NOISE, (half + 8, 3 + half + 16))
        raw[:half, 3 : 3 + half] += data
        raw = np.minimum(np.round(raw), BIAS_LEVEL + SATURATE + 50)
        h = fits.Header()
        h["DATASEC"] = f"[4:{3 + half},1:{half}]"
        h["BIASSEC"] = f"[{4 + half}:{3 + half + 16},1:{half}]"
        xs = (cols.stop, cols.start + 1) if flip_x else (cols.start + 1, cols.stop)
        ys = (rows.stop, rows.start + 1) if flip_y else (rows.start + 1, rows.stop)
        h["DETSEC"] = f"[{xs[0]}:{xs[1]},{ys[0]}:{ys[1]}]"
        h["DETSIZE"] = f"[1:{SIZE},1:{SIZE}]"
        h["GAIN"] = GAIN
        h["RDNOISE"] = READ_NOISE
        h["SATURATE"] = SATURATE
        h["BIASLVL"] = BIAS_LEVEL
        hdu = fits.ImageHDU(raw.astype(np.int32), header=h)
        hdu.header["EXTNAME"] = name
        hdus.append(hdu)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path)


def build_release(root: Path) -> TinyRelease:
    """Write the tiny raws-only release under ``root``."""
    layout = LegacyLayout(root, "dp01")
    stars = make_stars()
    rng = np.random.default_rng(11)
    for visit, (band, _) in VISITS.items():
        for det in DETECTORS:
            expected = scene_electrons(stars, visit, det) * flat_field(det)
            expected = expected + dark_frame() * EXPTIME
            electrons = rng.poisson(expected).astype(np.float64)
            if (visit, det) == (1001, 94):
                for r, c in CR_PIXELS:
                    electrons[r, c] += 4000.0
            path = layout.path("raw", visit=visit, band=band, detector=det)
            write_raw(path, visit, det, electrons, rng)
    zero = np.zeros((SIZE, SIZE), np.int32)
    tiny = np.full((SIZE, SIZE), 1e-4, np.float32)
    for det in DETECTORS:
        ids = {"detector": det, "calib_date": "2022-01-01"}
        for name, image in (("bias", bias_frame(det)), ("dark", dark_frame())):
            path = layout.path(name, **ids)
            path.parent.mkdir(parents=True, exist_ok=True)
            Exposure(image, zero, tiny).write_fits(path)
        for band in ("i", "r"):
            label = FilterLabel(band, physical_filter_of(band))
            path = layout.path("flat", physical_filter=label.physical_filter, **ids)
            path.parent.mkdir(parents=True, exist_ok=True)
            Exposure(flat_field(det), zero, tiny, filter=label).write_fits(path)
    camera = {
        "name": "LSSTCam-imSim",
        "pixel_scale_arcsec": 0.2,
        "detectors": [
            {
                "id": det,
                "name": f"R22_S1{det - 93}",
                "bbox": [0, 0, SIZE, SIZE],
                "focal_plane_offset_pixels": list(offset),
            }
            for det, offset in DETECTORS.items()
        ],
    }
    path = layout.path("camera")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(camera))
    ra = np.array([s.ra for s in stars])
    dec = np.array([s.dec for s in stars])
    shard = htm_index(ra, dec)
    columns = {
        "id": np.arange(len(stars), dtype=np.int64),
        "coord_ra": np.radians(ra),
        "coord_dec": np.radians(dec),
    }
    for band, njy in NJY_PER_E.items():
        columns[f"{band}_flux"] = np.array([s.electrons[band] * njy for s in stars])
        columns[f"{band}_fluxErr"] = columns[f"{band}_flux"] * 0.005
    table = pa.table(columns)
    for h in np.unique(shard):
        path = layout.path("cal_ref_cat", htm7=int(h))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(shard == h)), path)
    return TinyRelease(root, stars)


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> TinyRelease:
    return build_release(tmp_path_factory.mktemp("tiny-release"))


@pytest.fixture(scope="session")
def tiny_repo_template(tiny_release: TinyRelease, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny release converted once into a SQLite repository."""
    root = tmp_path_factory.mktemp("tiny-repo") / "repo"
    convert_legacy(tiny_release.legacy, RepoSpec(str(root)))
    return root


@pytest.fixture
def tiny_repo(tiny_repo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the converted tiny repository."""
    root = tmp_path / "repo"
    shutil.copytree(tiny_repo_template, root)
    return root
