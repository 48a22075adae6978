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


def test_depth_is_five_sigma_over_the_psf_area() -> None:
    # Noise over the effective area 4πσ² of a Gaussian PSF, brute force on pixels.
    fwhm, variance = 3.5, 16.0
    sigma = fwhm / 2.3548
    r = np.arange(-30, 31)
    psf = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    psf /= psf.sum()
    noise = math.sqrt(variance / (psf**2).sum())  # PSF-weighted flux error
    coadd = validate._Coadd(
        wcs=None, shape=(1, 1), n_image=np.ones((1, 1)), variance=variance, fwhm=fwhm
    )
    expected = validate.AB_NJY - 2.5 * math.log10(5 * noise)
    assert validate._depth([coadd]) == pytest.approx(expected, abs=0.01)


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
