"""step1 over the simulator's tiny images: calibrations against the simulator's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from lsst.daf.butler import Butler

from dpzero.pipelines import run_pipeline
from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.repository import RepoSpec
from dpzero.sim.images.simulate import simulate_images


@pytest.mark.slow
def test_step1_on_simulated_images(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    simulate_images("tiny", 1, legacy, progress=False, bands=("i", "r"), detectors=(94,))
    repo = str(tmp_path / "repo")
    convert_legacy(legacy, RepoSpec(repo))
    report = run_pipeline(repo, "u/test/sim", subset="step1")
    assert report.failed == 0 and report.succeeded == report.total == 4
    with Butler.from_config(repo) as butler:
        for ref in butler.query_datasets("calexp", collections="u/test/sim"):
            mine = butler.get(ref)
            sim = butler.get("calexp", dataId=ref.dataId, collections=RELEASE_COLLECTION)
            ratio = mine.photo_calib.njy_per_count / sim.photo_calib.njy_per_count
            assert ratio == pytest.approx(1.0, abs=0.03)
            g = np.linspace(0, sim.image.shape[0] - 1, 5)
            gx, gy = np.meshgrid(g, g)
            a = SkyCoord(*mine.wcs.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
            b = SkyCoord(*sim.wcs.all_pix2world(gx.ravel(), gy.ravel(), 0), unit="deg")
            assert a.separation(b).arcsec.max() < 0.05
            assert mine.psf.fwhm == pytest.approx(sim.psf.fwhm, rel=0.1)
