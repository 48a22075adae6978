"""``dpzero pipeline validate``: its statistics and its errors (the run itself: test_run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.pipelines import validate


def test_fifty_percent_magnitude_interpolates_the_completeness_curve() -> None:
    rng = np.random.default_rng(4)
    mag = rng.uniform(20, 26, 40_000)
    # A logistic completeness falling through 50 % at 24.3.
    found = rng.uniform(size=mag.size) < 1 / (1 + np.exp((mag - 24.3) / 0.15))
    bins = validate._completeness(mag, found)
    assert validate._fifty_percent(bins) == pytest.approx(24.3, abs=0.05)
    assert math.isnan(validate._fifty_percent(validate._completeness(mag, np.ones(mag.size, bool))))


def test_depth_without_visit_conditions_is_coadd_noise_over_the_psf_area() -> None:
    # The PSF-weighted flux error of a Gaussian PSF, brute force on pixels.
    fwhm, variance = 3.5, 16.0
    sigma = fwhm / 2.3548
    r = np.arange(-30, 31)
    psf = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    noise = math.sqrt(variance / ((psf / psf.sum()) ** 2).sum())
    coadd = validate._Coadd(
        wcs=None, shape=(1, 1), n_image=np.ones((1, 1)), variance=variance, psf_kernel=psf,
        visits=[7],
    )  # fmt: skip
    expected = validate.AB_NJY - 2.5 * math.log10(5 * noise)
    depth, source = validate._depth([coadd], {})
    assert depth == pytest.approx(expected, abs=0.01)
    assert source == "coadd variance"


def test_visit_noise_matches_psf_fluxes_measured_on_simulated_sky() -> None:
    # Sky, dark and read noise drawn in electrons as the simulator does; the optimal
    # PSF flux (weights p / Σp²) measured at many places scatters by the noise given.
    import galsim

    from dpzero.sim.images.camera import GAIN, READ_NOISE_ADU
    from dpzero.sim.images.instrument import DARK_CURRENT
    from dpzero.sim.images.observing import Visit

    conditions = validate.VisitConditions("i", 30.0, 1.1, 0.7, 20.4)
    visit = Visit(0, "i", 0.0, 30.0, 1.1, 0.7, 0.0, 0.0, 20.4, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(3)
    mean = visit.sky_electrons + DARK_CURRENT * 30.0
    pixels = rng.poisson(mean, (1000, 1000)) + rng.normal(0, READ_NOISE_ADU * GAIN, (1000, 1000))
    kernel = galsim.Kolmogorov(fwhm=0.7).drawImage(nx=31, ny=31, scale=0.2).array
    kernel /= kernel.sum()
    stamps = np.lib.stride_tricks.sliding_window_view(pixels - mean, kernel.shape)[::31, ::31]
    fluxes = (stamps * kernel).sum(axis=(-1, -2)) / (kernel**2).sum()
    measured = float(np.std(fluxes)) / visit.electrons_per_njy
    assert validate.visit_psf_flux_noise(conditions) == pytest.approx(measured, rel=0.05)
    # A Kolmogorov PSF's wings: its noise area is well above a Gaussian's 4πσ².
    sigma = 0.7 / 0.2 / 2.3548
    assert 1 / (kernel**2).sum() > 1.3 * 4 * math.pi * sigma**2


def test_depth_from_visits_combines_them_by_inverse_variance() -> None:
    a = validate.VisitConditions("r", 30.0, 1.0, 0.7, 21.2)
    b = validate.VisitConditions("r", 30.0, 1.3, 1.0, 20.5)
    noise = validate.visit_psf_flux_noise(a) ** -2 + validate.visit_psf_flux_noise(b) ** -2
    expected = validate.AB_NJY - 2.5 * math.log10(5 * noise**-0.5)
    coadd = validate._Coadd(
        wcs=None, shape=(2, 2), n_image=np.array([[2, 2], [2, 0]]), variance=1.0,
        psf_kernel=None, visits=[1, 2],
    )  # fmt: skip
    depth, source = validate._depth([coadd], {1: a, 2: b})
    assert depth == pytest.approx(expected, abs=1e-6)
    assert source == "simulated visits"


def test_robust_scatter_ignores_outliers() -> None:
    values = np.random.default_rng(1).normal(0, 0.01, 2000)
    values[:20] = 5.0
    assert validate._robust_sigma(values) == pytest.approx(0.01, rel=0.1)


def test_truth_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="either --truth FILE or --truth-size"):
        validate.load_truth_table(None, None, 1)
    with pytest.raises(InvalidInputError, match="either"):
        validate.load_truth_table("x.parquet", "tiny", 1)
    with pytest.raises(InvalidInputError, match="cannot read the truth file"):
        validate.load_truth_table(str(tmp_path / "missing.parquet"), None, 1)
    path = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"ra": [1.0], "dec": [2.0]}), path)
    with pytest.raises(InvalidInputError, match="truth_type"):
        validate.load_truth_table(str(path), None, 1)


def test_cli_refuses_a_folder_that_is_no_repository(tmp_path: Path) -> None:
    path = tmp_path / "truth.parquet"
    pq.write_table(pa.table({"ra": [1.0], "dec": [2.0], "truth_type": [2]}), path)
    result = CliRunner().invoke(
        main,
        [
            "pipeline", "validate", "--repo", str(tmp_path), "--collection", "u/x",
            "--truth", str(path),
        ],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "not a Butler repository" in result.output
    assert "Traceback" not in result.output


def test_a_star_with_a_bright_neighbour_within_3_arcsec_is_not_isolated() -> None:
    from dpzero.pipelines.validate import _isolated

    arcsec = 1 / 3600
    # Stars 0, 2 and 4; 1 is a bright galaxy 1" from star 0, 3 a faint source 1" from
    # star 2 (1 % of its flux), 5 a bright one 4" from star 4.
    ra = np.array([60.0, 60.0, 61.0, 61.0, 62.0, 62.0])
    dec = np.array([-37.0, -37.0 + arcsec, -37.0, -37.0 + arcsec, -37.0, -37.0 + 4 * arcsec])
    flux = np.array([1000.0, 500.0, 1000.0, 10.0, 1000.0, 5000.0])
    assert _isolated(ra, dec, flux, np.array([0, 2, 4])).tolist() == [False, True, True]
