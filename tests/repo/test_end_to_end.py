"""The simulator's legacy release converts, and reads back as a DP0.1 user reads it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from lsst.daf.butler import Butler

from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.exposure import Box, read_exposure
from dpzero.repo.repository import RepoSpec
from dpzero.sim.images import LegacyLayout
from dpzero.sim.images.simulate import simulate_images


@pytest.mark.slow
def test_simulated_release(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    simulate_images("tiny", 1, legacy, progress=False, bands=("i",), detectors=(94,))
    report = convert_legacy(legacy, RepoSpec(str(tmp_path / "repo")))
    assert report.ignored == ()
    for name in ("raw", "calexp", "src", "deepCoadd", "deepCoadd_meas", "bias", "flat"):
        assert report.ingested.get(name, 0) > 0, name
    with Butler(str(tmp_path / "repo"), collections=RELEASE_COLLECTION) as butler:
        refs = butler.query_datasets("calexp", where="band = 'i' AND detector = 94")
        assert refs
        data_id = refs[0].dataId
        calexp = butler.get("calexp", dataId=data_id)
        path = LegacyLayout(legacy).path("calexp", visit=data_id["visit"], band="i", detector=94)
        np.testing.assert_array_equal(calexp.image, read_exposure(path).image)
        box = Box(10, 20, 30, 40)
        cut = butler.get("calexp", dataId=data_id, parameters={"bbox": box})
        np.testing.assert_array_equal(cut.image, calexp.image[20:60, 10:40])
        ra, dec = calexp.parent_to_sky(256, 256)
        here = f"visit_detector_region.region OVERLAPS POINT({float(ra)}, {float(dec)})"
        assert data_id["visit"] in {
            r.dataId["visit"] for r in butler.query_datasets("calexp", where=here)
        }
        patches = butler.query_data_ids(
            ["tract", "patch"], where=f"visit = {data_id['visit']} AND skymap = 'DC2'"
        )
        assert len(patches) > 0
        src = butler.get("src", dataId=data_id)
        assert len(src) > 0


@pytest.mark.slow
def test_raws_only_release_gets_the_same_regions(tmp_path: Path) -> None:
    """Raws carry no WCS: their regions come from the pointing and camera.yaml."""
    legacy = tmp_path / "legacy"
    simulate_images("tiny", 2, legacy, progress=False, bands=("r",), detectors=(94, 95))
    raws = tmp_path / "raws"
    for part in ("raw", "camera", "CALIB"):
        shutil.copytree(legacy / part, raws / part)
    convert_legacy(legacy, RepoSpec(str(tmp_path / "full")))
    convert_legacy(raws, RepoSpec(str(tmp_path / "raw-only")))
    regions = []
    for repo in ("full", "raw-only"):
        with Butler(str(tmp_path / repo)) as butler:
            records = butler.query_dimension_records("visit_detector_region")
            regions.append({(r.visit, r.detector): r.region for r in records})
    assert regions[0].keys() == regions[1].keys() and regions[0]
    for key, full in regions[0].items():
        mine = regions[1][key]
        for vertex in mine.getVertices():
            assert full.contains(vertex) or full.getBoundingCircle().contains(vertex)
        assert (
            abs(
                full.getBoundingCircle().getOpeningAngle().asDegrees()
                - mine.getBoundingCircle().getOpeningAngle().asDegrees()
            )
            < 1e-9
        )
