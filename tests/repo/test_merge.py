"""Outputs of a run made in a separate repository are merged into the main one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.repo.dimensions import INSTRUMENT, RELEASE_COLLECTION
from dpzero.repo.merge import merge_runs
from dpzero.repo.records import visit_records
from dpzero.repo.repository import RepoSpec, create_repo, insert_records

from .conftest import exposure_for
from .test_repository import _observation

RUN = "u/someone/reprocess"


def test_merge_runs(tmp_path: Path) -> None:
    source, target = tmp_path / "remote", tmp_path / "main"
    with create_repo(RepoSpec(str(source))) as butler:
        insert_records(butler, visit_records([_observation(512055, 94)]))
        butler.registry.registerRun(RUN)
        butler.put(
            exposure_for(512055, "i", 94, 42.0),
            "calexp",
            instrument=INSTRUMENT,
            visit=512055,
            detector=94,
            run=RUN,
        )
    create_repo(RepoSpec(str(target))).close()  # knows no visit yet

    report = merge_runs(str(source), str(target), chain=RELEASE_COLLECTION)
    assert report.runs == (RUN,)
    assert report.transferred == {"calexp": 1}
    with Butler(str(target), collections=RELEASE_COLLECTION) as butler:
        calexp = butler.get("calexp", visit=512055, detector=94)
        assert calexp.image[0, 0] == 42.0
        assert butler.query_dimension_records("visit")[0].region is not None
        assert butler.getURI("calexp", visit=512055, detector=94).ospath.startswith(str(target))
    again = merge_runs(str(source), str(target), [RUN], chain=RELEASE_COLLECTION)
    assert again.transferred == {} and again.already_present == 1
    assert "1 already present" in again.summary()
    with Butler(str(target)) as butler:
        assert list(butler.collections.get_info(RELEASE_COLLECTION).children) == [RUN]
    with pytest.raises(InvalidInputError, match="not RUN collections"):
        merge_runs(str(source), str(target), ["nope"])
    cli = CliRunner().invoke(main, ["repo", "merge", str(source), "--repo", str(target)])
    assert cli.exit_code == 0, cli.output
    assert "0 datasets copied, 1 already present" in cli.output
    np.testing.assert_array_equal(calexp.variance, 2.0)
