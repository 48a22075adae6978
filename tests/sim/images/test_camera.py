"""The reduced LSSTCam-imSim camera: detectors, amplifiers, filters."""

from __future__ import annotations

import numpy as np

from dpzero.sim.images.camera import FILTERS, make_camera


def test_raft_r22_detectors() -> None:
    camera = make_camera(512, 512, 16)
    assert camera.name == "LSSTCam-imSim"
    assert [d.id for d in camera.detectors] == list(range(90, 99))
    centre = camera.detector(94)
    assert centre.full_name == "R22_S11"
    assert (centre.focal_x, centre.focal_y) == (0, 0)
    assert camera.detector(90).full_name == "R22_S00"
    assert camera.detector(98).focal_x == camera.detector(98).focal_y == 512 + 16


def test_amplifiers_tile_the_detector_once() -> None:
    det = make_camera(512, 512, 16).detector(94)
    assert len(det.amplifiers) == 16
    hits = np.zeros((det.height, det.width), dtype=int)
    for amp in det.amplifiers:
        b = amp.data_box
        hits[b.y0 : b.y1, b.x0 : b.x1] += 1
        assert amp.gain == 0.7
        assert amp.saturation == 142_857
        assert 980 <= amp.bias_level <= 1020
    assert (hits == 1).all()
    assert {a.segment for a in det.amplifiers} == {
        f"Segment{r}{k}" for r in (0, 1) for k in range(8)
    }


def test_filters() -> None:
    assert [f.physical_filter for f in FILTERS.values()] == [f"{b}_sim_1.4" for b in "ugrizy"]
    assert FILTERS["i"].coadd_m5 == 26.2


def test_camera_description() -> None:
    description = make_camera(512, 512, 16).to_dict()
    assert description["name"] == "LSSTCam-imSim"
    assert [d["name"] for d in description["detectors"]][4] == "R22_S11"
    assert len(description["detectors"][0]["amplifiers"]) == 16
