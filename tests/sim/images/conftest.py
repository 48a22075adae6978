"""Fixtures of the image simulation tests: a small stand-in truth universe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

BANDS = ("u", "g", "r", "i", "z", "y")


def stand_in_truth(
    n_galaxies: int = 1200,
    n_stars: int = 400,
    ra0: float = 62.0,
    dec0: float = -37.0,
    half_width: float = 0.07,
    seed: int = 3,
) -> pa.Table:
    """A truth table with the columns of the truth universe, in a square around a centre."""
    rng = np.random.default_rng(seed)
    n_sn = 2
    n = n_galaxies + n_stars + n_sn
    cos_dec = np.cos(np.radians(dec0))
    ra = ra0 + rng.uniform(-half_width, half_width, n) / cos_dec
    dec = dec0 + rng.uniform(-half_width, half_width, n)
    truth_type = np.array([1] * n_galaxies + [2] * n_stars + [3] * n_sn, dtype=np.int64)
    # Number counts rising 0.35 dex per magnitude, i from 18 to 27.
    u = rng.random(n_galaxies)
    k = 0.35 * np.log(10.0)
    mag_gal = 18.0 + np.log1p(u * (np.exp(k * 9.0) - 1.0)) / k
    mag_star = rng.uniform(16.5, 24.0, n_stars)
    mag_sn = np.array([21.0, 22.0])
    mag_i = np.concatenate([mag_gal, mag_star, mag_sn])
    colours = {"u": 1.2, "g": 0.6, "r": 0.25, "i": 0.0, "z": -0.15, "y": -0.25}
    columns: dict[str, object] = {
        "id": np.arange(1, n + 1, dtype=np.int64) * 7,
        "truth_type": truth_type,
        "ra": ra,
        "dec": dec,
        "redshift": np.where(truth_type == 2, 0.0, rng.uniform(0.1, 1.5, n)).astype(np.float32),
        "host_galaxy": np.where(truth_type == 3, 7, -1).astype(np.int64),
        "is_variable": np.zeros(n, dtype=np.int32),
        "is_pointsource": (truth_type != 1).astype(np.int32),
    }
    for band in BANDS:
        mag = mag_i + colours[band] + rng.normal(0.0, 0.1, n)
        flux = 10.0 ** (-0.4 * (mag - 31.4))
        columns[f"flux_{band}"] = flux.astype(np.float32)
        columns[f"flux_{band}_noMW"] = (flux * 1.05).astype(np.float32)
    columns["mag_r"] = (31.4 - 2.5 * np.log10(columns["flux_r"])).astype(np.float32)
    columns["tract"] = np.full(n, 3831, dtype=np.int64)
    columns["patch"] = np.array(["3,1"] * n)
    gal = truth_type == 1
    hlr = np.where(gal, 0.9 * 10.0 ** (-0.12 * (mag_i - 20.0)), 0.0)
    columns["size_bulge_true"] = (hlr * 0.6).astype(np.float32)
    columns["size_disk_true"] = hlr.astype(np.float32)
    columns["sersic_bulge"] = np.full(n, 4.0, dtype=np.float32)
    columns["sersic_disk"] = np.full(n, 1.0, dtype=np.float32)
    columns["bulge_to_total_ratio_i"] = np.where(gal, rng.uniform(0, 0.7, n), 0).astype(np.float32)
    for comp in ("bulge", "disk"):
        for c in (1, 2):
            e = np.where(gal, rng.normal(0.0, 0.2, n), 0.0).clip(-0.7, 0.7)
            columns[f"ellipticity_{c}_{comp}_true"] = e.astype(np.float32)
    var = np.zeros(n, dtype=np.float32)
    columns["variability_amplitude_mag"] = var
    columns["variability_period_days"] = var
    columns["variability_phase"] = var
    columns["sn_peak_mjd"] = np.where(truth_type == 3, 60000.0, np.nan)
    return pa.table(columns)


@pytest.fixture(scope="session")
def truth() -> pa.Table:
    """The stand-in truth universe (around RA 62, Dec −37)."""
    return stand_in_truth()


QUICK = {"bands": ("r", "i"), "detectors": (93, 94, 95)}
"""The part of the tiny simulation the default tests render: two bands, three detectors."""


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory, truth: pa.Table) -> Path:
    """A part of the tiny image simulation, rendered once per test session."""
    from dpzero.sim.images import simulate_images

    out = tmp_path_factory.mktemp("tiny") / "legacy"
    simulate_images(size="tiny", seed=5, out=out, truth=truth, progress=False, **QUICK)
    return out
