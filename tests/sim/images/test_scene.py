"""Rendering: flux and position of exact profiles and of Gaussian stand-ins; light curves."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from dpzero.sim.images.background import Background, estimate_background
from dpzero.sim.images.scene import SceneObjects, flux_at, mean_flux, render

from .conftest import stand_in_truth

JACOBIAN = (-0.2 * 0.8, -0.2 * 0.6, -0.2 * 0.6, 0.2 * 0.8)  # rotated, x toward west


def _objects(n: int, point: bool) -> SceneObjects:
    rng = np.random.default_rng(4)
    zeros = np.zeros(n)
    return SceneObjects(
        x=rng.uniform(40, 160, n),
        y=rng.uniform(40, 110, n),
        flux=np.full(n, 1000.0),
        is_point=np.full(n, point),
        hlr_bulge=np.full(n, 0.2),
        hlr_disk=np.full(n, 0.5),
        bulge_fraction=np.full(n, 0.3),
        e1_bulge=zeros,
        e2_bulge=zeros,
        e1_disk=rng.normal(0, 0.2, n),
        e2_disk=rng.normal(0, 0.2, n),
    )


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("point", [True, False])
def test_flux_and_centroid(exact: bool, point: bool) -> None:
    psf = galsim.Kolmogorov(fwhm=0.8)
    for i in range(3):
        obj = _objects(3, point)
        one = SceneObjects(**{k: getattr(obj, k)[i : i + 1] for k in obj.__dataclass_fields__})
        image = render(one, (150, 200), psf, JACOBIAN, exact_above=0.0 if exact else 1e9)
        total = image.sum()
        assert total == pytest.approx(1000.0, rel=0.02)
        yy, xx = np.mgrid[0:150, 0:200]
        cx, cy = (image * xx).sum() / total, (image * yy).sum() / total
        assert cx == pytest.approx(one.x[0], abs=0.05)
        assert cy == pytest.approx(one.y[0], abs=0.05)


def test_galaxy_orientation_follows_the_sky() -> None:
    """e1 > 0 stretches a galaxy east–west whatever the image's rotation."""
    psf = galsim.Gaussian(fwhm=0.5)
    obj = SceneObjects(
        x=np.array([50.0]), y=np.array([50.0]), flux=np.array([1.0]),
        is_point=np.array([False]), hlr_bulge=np.zeros(1), hlr_disk=np.array([1.0]),
        bulge_fraction=np.zeros(1), e1_bulge=np.zeros(1), e2_bulge=np.zeros(1),
        e1_disk=np.array([0.5]), e2_disk=np.zeros(1),
    )  # fmt: skip
    for exact in (True, False):
        image = render(obj, (100, 100), psf, JACOBIAN, exact_above=0.0 if exact else 1e9)
        yy, xx = np.mgrid[0:100, 0:100]
        # pixel offsets → sky offsets (east u, north v)
        u = JACOBIAN[0] * (xx - 50) + JACOBIAN[1] * (yy - 50)
        v = JACOBIAN[2] * (xx - 50) + JACOBIAN[3] * (yy - 50)
        assert (image * u * u).sum() > 1.5 * (image * v * v).sum()


def test_light_curves() -> None:
    truth = stand_in_truth(n_galaxies=10, n_stars=10)
    sn = truth.column("truth_type").to_numpy() == 3
    peak = truth.column("flux_r").to_numpy()[sn]
    assert flux_at(truth, "r", 60000.0)[sn] == pytest.approx(peak, rel=1e-6)
    assert flux_at(truth, "r", 60000.0 - 7.5)[sn] == pytest.approx(0.5 * peak, rel=1e-3)
    assert flux_at(truth, "r", 60030.0)[sn] == pytest.approx(peak / np.e, rel=1e-3)
    assert (flux_at(truth, "r", 59000.0)[sn] == 0).all()
    assert (mean_flux(truth, "r")[sn] < 0.05 * peak).all()
    assert flux_at(truth, "r", 60000.0)[~sn] == pytest.approx(
        truth.column("flux_r").to_numpy()[~sn]
    )


def test_background_recovers_a_smooth_sky() -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:256, 0:320]
    sky = 100.0 + 0.05 * xx - 0.02 * yy
    image = sky + rng.normal(0, 3, sky.shape)
    image[100:104, 200:204] += 5000.0  # a bright source
    background = estimate_background(image, 64)
    assert background.mesh.shape == (4, 5)
    model = background.image()
    assert np.abs(model - sky)[32:-32, 32:-32].max() < 1.0


def test_background_file_round_trip(tmp_path) -> None:
    bg = Background(np.arange(6, dtype=np.float32).reshape(2, 3), 64, 190, 128)
    bg.write_fits(tmp_path / "b.fits")
    back = Background.read_fits(tmp_path / "b.fits")
    assert back.bin_size == 64 and (back.width, back.height) == (190, 128)
    assert np.array_equal(back.image(), bg.image())
