"""A tiny rendered release: datasets present, pixels agreeing with the truth, determinism."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sep
import yaml
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.repo import read_exposure
from dpzero.sim.images import DATASET_TYPES, LegacyLayout, simulate_images
from dpzero.sim.images.coadd import COADD_NJY_PER_COUNT, coadd_noise
from dpzero.sim.images.scene import flux_at, mean_flux

from .conftest import QUICK


def _layout(root: Path) -> LegacyLayout:
    return LegacyLayout(root)


def test_every_dataset_type_is_written(tiny_release: Path) -> None:
    layout = _layout(tiny_release)
    found = {name: list(layout.find(name)) for name in DATASET_TYPES}
    assert all(found.values()), [name for name, items in found.items() if not items]
    n_visits = len(QUICK["bands"])  # one visit per band in tiny
    n_dets = len(QUICK["detectors"])
    for name in ("raw", "calexp", "calexpBackground", "src", "icSrc", "srcMatch", "skyCorr"):
        assert len(found[name]) == n_visits * n_dets, name
    assert len(found["bias"]) == len(found["dark"]) == n_dets
    assert len(found["flat"]) == 6 * n_dets
    patches = {(d["tract"], d["patch"]) for d, _ in found["deepCoadd_mergeDet"]}
    assert patches
    for name in ("deepCoadd", "deepCoadd_calexp", "deepCoadd_meas", "deepCoadd_nImage"):
        assert len(found[name]) == len(QUICK["bands"]) * len(patches), name
    manifest = yaml.safe_load((tiny_release / "images.yaml").read_text())
    assert manifest["instrument"] == "LSSTCam-imSim"
    assert {v["band"] for v in manifest["visits"]} == set(QUICK["bands"])


def test_raw_headers_and_overscan(tiny_release: Path) -> None:
    data_id, path = next(_layout(tiny_release).find("raw"))
    assert (
        path.name
        == f"lsst_a_{data_id['visit']}_R22_S{path.name.split('_S')[1][:2]}_{data_id['band']}.fits"
    )
    with fits.open(path) as raw:
        primary = raw[0].header
        assert primary["RUNNUM"] == data_id["visit"]
        assert primary["DETNUM"] == data_id["detector"]
        assert primary["FILTNAME"] == f"{data_id['band']}_sim_1.4"
        assert 1.0 <= primary["AIRMASS"] <= 1.5
        assert primary["EXPTIME"] == 30.0
        assert len(raw) == 17
        # the nominal WCS puts the boresight where the camera geometry says
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)  # a primary HDU has no pixels
            nominal = WCS(primary)
        calexp = read_exposure(_layout(tiny_release).path("calexp", **data_id), component="wcs")
        corners = np.array([[0.0, 0.0], [511.0, 511.0]])
        assert np.allclose(
            nominal.all_pix2world(corners, 0), calexp.all_pix2world(corners, 0), atol=1e-9
        )
        for hdu in raw[1:]:
            x0, x1 = (int(v) for v in hdu.header["BIASSEC"][1:].split(",")[0].split(":"))
            overscan = hdu.data[:, x0 - 1 : x1]
            assert abs(np.median(overscan) - hdu.header["BIASLVL"]) < 5
            assert hdu.header["GAIN"] == 0.7
            assert hdu.header["SATURATE"] == 142_857


def _truth_on(exposure, truth: pa.Table, flux: np.ndarray, border: float = 15.0):
    ra = truth.column("ra").to_numpy()
    dec = truth.column("dec").to_numpy()
    x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    h, w = exposure.image.shape
    inside = (x > border) & (x < w - border) & (y > border) & (y < h - border)
    return x, y, inside


def _measure_stars(exposure, truth: pa.Table, flux_njy: np.ndarray, min_snr: float):
    """sep detections matched to isolated truth stars: (dx, dy, flux ratio, σ of ratio)."""
    image = np.nan_to_num(exposure.image.astype(np.float64))
    sigma = np.sqrt(np.nan_to_num(exposure.variance.astype(np.float64), nan=1e12))
    objects = sep.extract(image, 5.0, err=float(np.median(sigma)), minarea=5)
    x, y, inside = _truth_on(exposure, truth, flux_njy)
    star = truth.column("truth_type").to_numpy() == 2
    rows = []
    for i in np.nonzero(inside & star)[0]:
        others = np.hypot(x - x[i], y - y[i])
        others[i] = np.inf
        neighbours = flux_njy[others < 25] if np.isfinite(others).any() else []
        if np.sum(neighbours) > 0.01 * flux_njy[i]:
            continue  # not isolated
        d = np.hypot(objects["x"] - x[i], objects["y"] - y[i])
        if d.size == 0 or d.min() > 1.0:
            rows.append((np.nan, np.nan, np.nan, np.nan, flux_njy[i]))
            continue
        k = int(d.argmin())
        counts, err, _ = sep.sum_circle(
            image, [objects["x"][k]], [objects["y"][k]], 20.0, err=sigma
        )
        cal = exposure.photo_calib.njy_per_count
        rows.append(
            (objects["x"][k] - x[i], objects["y"][k] - y[i], counts[0] * cal / flux_njy[i],
             err[0] * cal / flux_njy[i], flux_njy[i])
        )  # fmt: skip
    rows = np.array(rows).reshape(-1, 5)
    return rows[rows[:, 3] < 1.0 / min_snr] if len(rows) else rows


def test_calexp_sources_at_truth_positions_and_fluxes(tiny_release: Path, truth: pa.Table) -> None:
    results = []
    for data_id, path in _layout(tiny_release).find("calexp"):
        exposure = read_exposure(path)
        info = exposure.visit_info
        assert info.id == data_id["visit"]
        assert exposure.filter.band == data_id["band"]
        flux = flux_at(truth, data_id["band"], info.mjd)
        results.append(_measure_stars(exposure, truth, flux, min_snr=30))
    rows = np.concatenate(results)
    assert len(rows) >= 10
    assert np.isfinite(rows).all(), "a bright isolated star was not detected"
    dx, dy, ratio, err = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    assert abs(np.median(dx)) < 0.05 and abs(np.median(dy)) < 0.05  # pixels
    assert np.percentile(np.hypot(dx, dy), 90) < 0.3
    # A 4″ aperture holds ~99 % of a star's light; the rest is the PSF's far wing.
    chi = (ratio - 0.99) / np.hypot(err, 0.01)
    assert abs(np.median(ratio) - 0.99) < 0.015
    assert np.percentile(np.abs(chi), 90) < 3.5


def test_calexp_metadata(tiny_release: Path) -> None:
    manifest = yaml.safe_load((tiny_release / "images.yaml").read_text())
    visits = {v["id"]: v for v in manifest["visits"]}
    data_id, path = next(_layout(tiny_release).find("calexp"))
    exposure = read_exposure(path)
    visit = visits[data_id["visit"]]
    assert exposure.visit_info.airmass == pytest.approx(visit["airmass"])
    assert exposure.psf.fwhm == pytest.approx(visit["seeing"] / 0.2, rel=0.05)
    assert exposure.psf.kernel.shape == (31, 31)
    assert 1e-3 < exposure.photo_calib.njy_per_count < 10
    assert exposure.image.shape == (512, 512)
    # The sky is subtracted: the image median is near zero compared with the noise.
    assert abs(np.median(exposure.image)) < 0.2 * np.sqrt(np.median(exposure.variance))
    assert (exposure.mask & (1 << 5)).any()  # DETECTED


def test_coadd_depth_and_photometry(tiny_release: Path, truth: pa.Table) -> None:
    rows = []
    for data_id, path in _layout(tiny_release).find("deepCoadd_calexp"):
        exposure = read_exposure(path)
        assert exposure.photo_calib.njy_per_count == pytest.approx(COADD_NJY_PER_COUNT)
        band = data_id["band"]
        noise = coadd_noise(band)
        covered = np.isfinite(exposure.image)
        assert covered.any()
        assert np.median(np.sqrt(exposure.variance[covered])) == pytest.approx(
            noise.sigma, rel=0.05
        )
        # Pixel noise far from sources is the coadd's sky noise.
        quiet = covered & ((exposure.mask & (1 << 5)) == 0)
        assert np.std(exposure.image[quiet]) == pytest.approx(noise.sigma, rel=0.15)
        rows.append(_measure_stars(exposure, truth, mean_flux(truth, band), min_snr=100))
    rows = np.concatenate(rows)
    assert len(rows) >= 10 and np.isfinite(rows).all()
    assert abs(np.median(rows[:, 2]) - 0.99) < 0.015
    assert np.percentile(np.hypot(rows[:, 0], rows[:, 1]), 90) < 0.1
    # nImage counts the band's visits (one per band in tiny) on the rendered detectors.
    for _, path in _layout(tiny_release).find("deepCoadd_nImage"):
        n_image = fits.getdata(path)
        assert n_image.min() >= 0 and n_image.max() == 1


def test_source_catalogs(tiny_release: Path, truth: pa.Table) -> None:
    layout = _layout(tiny_release)
    _data_id, path = next(layout.find("src"))
    src = pq.read_table(path)
    assert src.num_rows > 0
    ids = src.column("id").to_numpy()
    assert len(np.unique(ids)) == len(ids)
    for column in ("coord_ra", "coord_dec", "base_PsfFlux_instFlux", "base_SdssCentroid_x"):
        assert column in src.column_names
    # Every source lies within 1″ of a truth object.
    ra, dec = (
        np.degrees(src.column("coord_ra").to_numpy()),
        np.degrees(src.column("coord_dec").to_numpy()),
    )
    t_ra, t_dec = truth.column("ra").to_numpy(), truth.column("dec").to_numpy()
    sep_arcsec = (
        np.array(
            [
                np.min(np.hypot((t_ra - a) * math.cos(math.radians(d)), t_dec - d))
                for a, d in zip(ra, dec, strict=False)
            ]
        )
        * 3600
    )
    assert np.all(sep_arcsec < 1.0)
    ref = pq.read_table(next(layout.find("deepCoadd_ref"))[1])
    assert ref.num_rows > 0
    ids = ref.column("id").to_numpy()
    tract = next(layout.find("deepCoadd_ref"))[0]["tract"]
    assert np.all(ids >> 42 == tract)
    meas = pq.read_table(next(layout.find("deepCoadd_meas"))[1])
    assert "modelfit_CModel_instFlux" in meas.column_names


def test_same_seed_same_bytes(tmp_path: Path, truth: pa.Table) -> None:
    subset = {"bands": ("i",), "detectors": (94,)}
    a, b = tmp_path / "a", tmp_path / "b"
    simulate_images("tiny", 9, a, truth=truth, progress=False, **subset)
    simulate_images("tiny", 9, b, truth=truth, progress=False, **subset)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_user_errors(tmp_path: Path, truth: pa.Table) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(OutputExistsError):
        simulate_images("tiny", 1, tmp_path / "full", truth=truth, progress=False)
    with pytest.raises(InvalidInputError, match="band"):
        simulate_images("tiny", 1, tmp_path / "o", truth=truth, progress=False, bands=("q",))
    with pytest.raises(InvalidInputError, match="size"):
        simulate_images("huge", 1, tmp_path / "o", truth=truth, progress=False)
    with pytest.raises(InvalidInputError, match="lacks columns"):
        simulate_images("tiny", 1, tmp_path / "o", truth=truth.drop(["flux_r"]), progress=False)


@pytest.mark.slow
def test_cli_tiny_with_the_truth_universe(tmp_path: Path) -> None:
    """The whole tiny release from ``dpzero sim images``, checked against load_truth."""
    from click.testing import CliRunner

    from dpzero.cli import main
    from dpzero.sim import load_truth

    out = tmp_path / "legacy"
    result = CliRunner().invoke(
        main, ["sim", "images", "--size", "tiny", "--seed", "1", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "6 visits × 9 detectors" in result.output
    layout = _layout(out)
    for name in DATASET_TYPES:
        assert any(True for _ in layout.find(name)), name
    truth = load_truth("tiny", 1)
    rows = []
    for data_id, path in layout.find("calexp"):
        exposure = read_exposure(path)
        rows.append(
            _measure_stars(
                exposure, truth, flux_at(truth, data_id["band"], exposure.visit_info.mjd), 30
            )
        )
    rows = np.concatenate(rows)
    assert len(rows) >= 10 and np.isfinite(rows).all()
    assert abs(np.median(rows[:, 2]) - 0.99) < 0.015
    assert np.percentile(np.hypot(rows[:, 0], rows[:, 1]), 90) < 0.3
    again = CliRunner().invoke(
        main, ["sim", "images", "--size", "tiny", "--seed", "1", "--out", str(out), "--quiet"]
    )
    assert again.exit_code == 2 and "not empty" in again.output


def test_cli_reports_user_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dpzero.cli import main

    args = ["sim", "images", "--size", "tiny", "--out", str(tmp_path / "o"), "--quiet"]
    result = CliRunner().invoke(main, [*args, "--band", "q"])
    assert result.exit_code == 2
    assert "band q not simulated" in result.output
    result = CliRunner().invoke(main, [*args, "--detector", "7"])
    assert result.exit_code == 2 and "detector 7" in result.output


def test_every_bright_truth_object_is_in_the_calexps(tiny_release: Path, truth: pa.Table) -> None:
    """Galaxies and stars alike: each isolated object with S/N > 20 is detected where it is."""
    from dpzero.sim.images.scene import SceneObjects

    checked = 0
    for data_id, path in _layout(tiny_release).find("calexp"):
        exposure = read_exposure(path)
        image = exposure.image.astype(np.float64)
        sigma = float(np.sqrt(np.median(exposure.variance)))
        objects = sep.extract(image, 1.5, err=sigma, minarea=5)
        flux = flux_at(truth, data_id["band"], exposure.visit_info.mjd)
        counts = flux / exposure.photo_calib.njy_per_count
        x, y, inside = _truth_on(exposure, truth, flux, border=20)
        # Matched-filter S/N of each object's Gaussian-equivalent image, PSF included.
        size = SceneObjects.from_truth(truth, x, y, counts).gaussian_sigma(
            exposure.visit_info.seeing_fwhm
        )
        snr = counts / (sigma * np.sqrt(4 * math.pi) * size / 0.2)
        for i in np.nonzero(inside & (snr > 20))[0]:
            d = np.hypot(x - x[i], y - y[i])
            d[i] = np.inf
            if (counts[d < 15] > 0.05 * counts[i]).any():
                continue  # a blend: the detection's centroid is shared
            nearest = np.hypot(objects["x"] - x[i], objects["y"] - y[i]).min()
            assert nearest < 1.5, (data_id, int(truth.column("id")[i].as_py()))
            checked += 1
    assert checked >= 20
