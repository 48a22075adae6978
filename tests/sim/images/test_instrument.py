"""Raw readout and instrument signature removal invert each other within the noise."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from dpzero.sim.images.camera import PRESCAN, SERIAL_OVERSCAN, make_camera
from dpzero.sim.images.instrument import assemble_raw, isr, make_calibs, read_out
from dpzero.sim.images.observing import IMAGE_SIZES, plan_visits
from dpzero.sim.images.raw import raw_hdulist


def _raw(scene: np.ndarray, seed: int = 1):
    camera = make_camera(64, 32, 4)
    det = camera.detector(94)
    calibs = make_calibs(det, ("r",), camera.focal_plane_extent, seed=1)
    rng = np.random.default_rng(seed)
    amps, rays = read_out(scene, det, calibs, "r", 30.0, rng)
    visit = plan_visits(IMAGE_SIZES["tiny"], 62.0, -37.0, seed=1)[0]
    return camera, det, calibs, raw_hdulist(amps, visit, det, camera), rays


def test_isr_recovers_the_scene() -> None:
    scene = np.full((32, 64), 1000.0)
    scene[10, 20] = 50_000.0
    scene[20:23, 40:43] = 300_000.0  # saturates
    _camera, det, calibs, raw, rays = _raw(scene)
    adu, saturated = assemble_raw(raw, det)
    image, variance, mask = isr(adu, saturated, det, calibs, "r", 30.0, rays)
    clean = mask == 0
    residual = (image - scene)[clean] / np.sqrt(variance[clean])
    assert abs(residual.mean()) < 0.15
    assert 0.8 < residual.std() < 1.2
    assert saturated[20:23, 40:43].all()
    assert (mask[20:23, 40:43] & 2).all()  # SAT
    # The excess charge bleeds along the columns: the trail is saturated too, and the
    # column holds (nearly) all the charge put in.
    assert saturated[18:25, 41].all()
    column = image[:, 41] - scene[:, 41]
    assert column.sum() == pytest.approx(0.0, abs=0.01 * 3 * 300_000)
    assert abs(image[10, 20] - 50_000.0) < 5 * np.sqrt(variance[10, 20])
    cr = np.zeros(scene.shape, dtype=bool)
    cr.flat[rays.index] = True
    assert (mask[cr & ~saturated] & 8).all()  # CR


def test_raw_layout_and_headers() -> None:
    _camera, _det, _, raw, _ = _raw(np.full((32, 64), 500.0))
    primary = raw[0].header
    assert primary["CHIPID"] == "R22_S11"
    assert primary["INSTRUME"] == "LSSTCam-imSim"
    assert primary["EXPTIME"] == 30.0
    assert primary["FILTER"] in "ugrizy"
    assert len(raw) == 17
    for hdu in raw[1:]:
        h = hdu.header
        assert h["EXTNAME"].startswith("Segment")
        assert hdu.data.dtype == np.int32
        assert h["DATASEC"] == f"[{PRESCAN + 1}:{PRESCAN + 8},1:16]"
        assert hdu.data.shape == (16 + 48, PRESCAN + 8 + SERIAL_OVERSCAN)
        overscan = hdu.data[:16, PRESCAN + 8 :]
        assert abs(np.median(overscan) - h["BIASLVL"]) < 3
        assert 6 < overscan.std() < 8  # 7 ADU read noise
        data = hdu.data[:16, PRESCAN : PRESCAN + 8]
        assert abs(np.median(data) - h["BIASLVL"] - 500 / 0.7) < 15
    fits.HDUList(list(raw)).verify("exception")
