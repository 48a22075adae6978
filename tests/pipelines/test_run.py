"""``dpzero pipeline run`` end to end on the tiny repository, and resuming a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.pipelines import pipeline_path, run_pipeline

from .conftest import DETECTORS, NJY_PER_E, VISITS


def test_pipeline_yaml_has_rubin_shape() -> None:
    from lsst.pipe.base import Pipeline

    pipeline = Pipeline.from_uri(str(pipeline_path()))
    step3 = {
        "makeWarp", "assembleCoadd", "detection", "mergeDetections", "deblend", "measure",
        "mergeMeasurements", "forcedPhotCoadd", "writeObjectTable",
    }  # fmt: skip
    step2 = {"writeSourceTable", "makeVisitTable"}
    step4, step5 = {"forcedPhotCcd"}, {"writeForcedSourceTable"}
    assert set(pipeline.task_labels) == {"isr", "calibrate", *step2, *step3, *step4, *step5}
    graph = pipeline.to_graph()
    assert set(graph.task_subsets["step1"]) == {"isr", "calibrate"}
    assert set(graph.task_subsets["step2"]) == step2
    assert set(graph.task_subsets["step3"]) == step3
    assert set(graph.task_subsets["step4"]) == step4
    assert set(graph.task_subsets["step5"]) == step5


def test_run_then_resume_only_missing(tiny_repo: Path) -> None:
    report = run_pipeline(
        str(tiny_repo), "u/test/drp", subset="step1", jobs=1, where="detector = 94"
    )
    n = len(VISITS)
    assert (report.succeeded, report.failed, report.total) == (2 * n, 0, 2 * n)
    with Butler.from_config(str(tiny_repo), collections="u/test/drp", writeable=True) as butler:
        calexps = butler.query_datasets("calexp")
        assert len(calexps) == n
        for ref in calexps:
            calexp = butler.get(ref)
            band = ref.dataId["band"]
            assert calexp.photo_calib.njy_per_count == pytest.approx(NJY_PER_E[band], rel=0.02)
            src = butler.get("src", dataId=ref.dataId)
            assert len(src) > 5 and np.isfinite(src["coord_ra"]).all()
            assert butler.get("calexpBackground", dataId=ref.dataId).width == calexp.image.shape[1]
        assert len(butler.query_datasets("postISRCCD")) == n
        # One calibrate quantum lost its outputs (as if its job died before finishing).
        victim = calexps[0].dataId
        lost = [
            ref
            for name in ("calexp", "src", "calexpBackground", "calibrate_metadata", "calibrate_log")
            for ref in butler.query_datasets(name, data_id=victim)
        ]
        butler.pruneDatasets(lost, disassociate=True, unstore=True, purge=True)
    again = run_pipeline(
        str(tiny_repo), "u/test/drp", subset="step1", resume=True, where="detector = 94"
    )
    assert (again.succeeded, again.failed, again.total) == (1, 0, 1)
    with Butler.from_config(str(tiny_repo), collections="u/test/drp") as butler:
        assert len(butler.query_datasets("calexp")) == n
        runs = butler.collections.query("u/test/drp/*")
        assert len(runs) == 1  # extended, not a second run
    with pytest.raises(OutputExistsError, match="--resume"):
        run_pipeline(str(tiny_repo), "u/test/drp")


@pytest.mark.slow
def test_whole_pipeline_two_processes_and_nothing_left_to_do(tiny_repo: Path) -> None:
    report = run_pipeline(str(tiny_repo), "u/test/j2", jobs=2)
    assert report.failed == 0 and report.succeeded == report.total
    with Butler.from_config(str(tiny_repo), collections="u/test/j2") as butler:
        assert len(butler.query_datasets("calexp")) == len(VISITS) * len(DETECTORS)
        coadds = butler.query_datasets("deepCoadd")
        assert {ref.dataId["band"] for ref in coadds} == {"i", "r"}
        warps = butler.query_datasets("deepCoadd_directWarp")
        assert len(warps) >= len(coadds)
        coadd = butler.get(coadds[0])
        assert np.isfinite(coadd.image).all() and coadd.psf is not None
        assert len(butler.query_datasets("deepCoadd_meas")) >= 1
    nothing = run_pipeline(str(tiny_repo), "u/test/j2", resume=True)
    assert (nothing.succeeded, nothing.total) == (0, 0)


def test_run_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a Butler repository"):
        run_pipeline(str(tmp_path), "u/test/x")
    with pytest.raises(InvalidInputError, match="jobs"):
        run_pipeline(str(tmp_path), "u/test/x", jobs=0)
    result = CliRunner().invoke(
        main, ["pipeline", "run", "--repo", str(tmp_path), "--output", "u/test/x"]
    )
    assert result.exit_code == 2
    assert "not a Butler repository" in result.output
