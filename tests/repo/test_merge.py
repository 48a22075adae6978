"""Outputs of a run made in a separate repository are merged into the main one."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.merge import merge_runs
from dpzero.repo.repository import RepoSpec, create_repo

from .test_repository import RUN, repo  # noqa: F401 (the source repository fixture)


@pytest.mark.slow
def test_merge_runs(repo: Path, repo_root: Path) -> None:  # noqa: F811
    source, target = repo, repo_root
    create_repo(RepoSpec(str(target))).close()  # knows no visit yet

    report = merge_runs(str(source), str(target), chain=RELEASE_COLLECTION)
    assert report.runs == (RUN,)
    assert report.transferred == {"calexp": 1, "calexpBackground": 1}
    with Butler(str(target), collections=RELEASE_COLLECTION) as butler:
        calexp = butler.get("calexp", visit=512055, detector=94)
        assert calexp.image[0, 0] == 10.0
        assert butler.query_dimension_records("visit")[0].region is not None
        uri = butler.getURI("calexp", visit=512055, detector=94)
        assert uri.ospath.startswith(str(target))
    again = merge_runs(str(source), str(target), [RUN], chain=RELEASE_COLLECTION)
    assert again.transferred == {} and again.already_present == 2
    with Butler(str(target)) as butler:
        assert list(butler.collections.get_info(RELEASE_COLLECTION).children) == [RUN]
    with pytest.raises(InvalidInputError, match="not RUN collections"):
        merge_runs(str(source), str(target), ["nope"])
    cli = CliRunner().invoke(main, ["repo", "merge", str(source), "--repo", str(target)])
    assert cli.exit_code == 0, cli.output
    assert "0 datasets copied, 2 already present" in cli.output
