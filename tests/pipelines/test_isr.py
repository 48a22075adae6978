"""ISR of the tiny release's raws against the scene that made them."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from dpzero.repo.exposure import Exposure, mask_bits
from dpzero.sim.images.layout import LegacyLayout

from .conftest import (
    CR_PIXELS,
    DETECTORS,
    EXPTIME,
    GAIN,
    READ_NOISE,
    SATURATED,
    SIZE,
    VISITS,
    TinyRelease,
    bias_frame,
    dark_frame,
    flat_field,
    scene_electrons,
    true_wcs,
)


def calib(image: np.ndarray) -> Exposure:
    return Exposure.from_image(image)


def camera() -> dict:
    return {
        "pixel_scale_arcsec": 0.2,
        "detectors": [
            {"id": d, "focal_plane_offset_pixels": list(off)} for d, off in DETECTORS.items()
        ],
    }


def run_isr(release: TinyRelease, visit: int, detector: int) -> Exposure:
    from dpzero.pipelines.tasks.isr import IsrTask

    band, _ = VISITS[visit]
    path = LegacyLayout(release.legacy, "dp01").path(
        "raw", visit=visit, band=band, detector=detector
    )
    with fits.open(path) as raw:
        return (
            IsrTask()
            .run(
                raw,
                calib(bias_frame(detector)),
                calib(dark_frame()),
                calib(flat_field(detector)),
                camera(),
                detector,
            )
            .exposure
        )


def test_parse_section() -> None:
    from dpzero.pipelines.tasks.isr import parse_section

    rows, cols, fx, fy = parse_section("[64:1,257:512]")
    assert (rows, cols, fx, fy) == (slice(256, 512), slice(0, 64), True, False)
    with pytest.raises(ValueError, match="not a FITS section"):
        parse_section("[1:2]")


@pytest.mark.parametrize(("visit", "detector"), [(1001, 94), (1002, 95)])
def test_isr_recovers_the_scene(tiny_release: TinyRelease, visit: int, detector: int) -> None:
    exposure = run_isr(tiny_release, visit, detector)
    assert exposure.image.shape == (SIZE, SIZE)
    scene = scene_electrons(tiny_release.stars, visit, detector)
    clean = exposure.mask == 0
    pull = (exposure.image - scene) / np.sqrt(exposure.variance)
    # Overscan, bias, dark (with its hot pixel) and flat removed: residuals are noise.
    assert abs(float(np.mean(pull[clean]))) < 0.1
    assert 0.85 < float(np.std(pull[clean])) < 1.15
    assert abs(exposure.image[70, 40] - scene[70, 40]) < 5 * np.sqrt(exposure.variance[70, 40])
    # The variance knows the read noise of the sky-free limit.
    flat = flat_field(detector)
    expected_var = (scene * flat + dark_frame() * EXPTIME + (READ_NOISE * GAIN) ** 2) / flat**2
    ratio = exposure.variance[clean] / expected_var[clean]
    assert 0.9 < float(np.median(ratio)) < 1.1
    assert exposure.visit_info.id == visit
    assert exposure.filter.band == VISITS[visit][0]


def test_isr_masks_saturation_and_cosmic_rays(tiny_release: TinyRelease) -> None:
    exposure = run_isr(tiny_release, 1001, 94)
    cr = (exposure.mask & mask_bits("CR")) != 0
    for r, c in CR_PIXELS:
        assert cr[r, c], (r, c)
        assert exposure.mask[r, c] & mask_bits("INTRP")
    # The cosmic ray's pixels were replaced by values near the sky, not 4000 e⁻ above.
    scene = scene_electrons(tiny_release.stars, 1001, 94)
    for r, c in CR_PIXELS:
        assert abs(exposure.image[r, c] - scene[r, c]) < 200
    # No star core taken for a cosmic ray: away from the injected track CR is rare.
    assert cr.sum() < 3 * len(CR_PIXELS) + 10
    sat = (exposure.mask & mask_bits("SAT")) != 0
    bright = tiny_release.stars[SATURATED]
    x, y = true_wcs(1001, 94).all_world2pix(bright.ra, bright.dec, 0)
    assert sat[round(float(y)), round(float(x))]
    assert sat.sum() < 0.02 * SIZE * SIZE


def test_nominal_wcs_is_the_header_pointing(tiny_release: TinyRelease) -> None:
    exposure = run_isr(tiny_release, 1002, 95)
    nominal = true_wcs(1002, 95, offset=False)
    ra, dec = exposure.wcs.all_pix2world([0, 127], [0, 127], 0)
    ra0, dec0 = nominal.all_pix2world([0, 127], [0, 127], 0)
    np.testing.assert_allclose(ra, ra0, atol=1e-9)
    np.testing.assert_allclose(dec, dec0, atol=1e-9)
