"""A conversion refuses bad legacy trees up front and can always be finished by rerunning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.repo.convert import LegacyLayoutError, convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.repository import RepoSpec
from dpzero.sim.images.layout import LegacyLayout

from .conftest import LegacyFacts, exposure_for, write_exposure


def copy_of(legacy: LegacyFacts, tmp_path: Path, *parts: str) -> Path:
    """A copy of the tiny legacy tree, or of some of its folders only."""
    target = tmp_path / "legacy"
    if not parts:
        shutil.copytree(legacy.root, target)
    for part in parts:
        shutil.copytree(legacy.root / part, target / part)
    return target


def count_calexps(repo: Path) -> int:
    with Butler(str(repo), collections=RELEASE_COLLECTION) as butler:
        return len(butler.query_datasets("calexp", explain=False))


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(LegacyLayoutError, match="does not exist"):
        convert_legacy(tmp_path / "nope", RepoSpec(str(repo)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LegacyLayoutError, match="no dataset files"):
        convert_legacy(tmp_path / "empty", RepoSpec(str(repo)))
    assert not repo.exists()


def test_corrupt_file_is_refused_and_a_rerun_finishes(legacy: LegacyFacts, tmp_path: Path) -> None:
    tree = copy_of(legacy, tmp_path, "raw", "rerun/dp01/calexp")
    repo = tmp_path / "repo"
    convert_legacy(tree, RepoSpec(str(repo)))
    assert count_calexps(repo) == 2
    # A new calexp for visit 512056 arrives, truncated.
    path = LegacyLayout(tree).path("calexp", visit=512056, band="r", detector=94)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(LegacyLayoutError, match=r"calexp_00512056-r-094\.fits"):
        convert_legacy(tree, RepoSpec(str(repo)))
    assert count_calexps(repo) == 2  # untouched and readable
    path.unlink()
    write_exposure(exposure_for(512056, "r", 94, 3.0), path)
    report = convert_legacy(tree, RepoSpec(str(repo)))
    assert report.ingested["calexp"] == 1
    assert sum(report.ingested.values()) == 1
    assert count_calexps(repo) == 3
    with Butler(str(repo), collections=RELEASE_COLLECTION) as butler:
        assert butler.get("calexp", visit=512056, detector=94).image[0, 0] == 3.0


def test_band_disagreeing_with_path(legacy: LegacyFacts, tmp_path: Path) -> None:
    tree = copy_of(legacy, tmp_path)
    path = LegacyLayout(tree).path("calexp", visit=512055, band="i", detector=94)
    path.unlink()
    write_exposure(exposure_for(512055, "g", 94, 1.0), path)
    with pytest.raises(LegacyLayoutError, match="taken in band g but its path says i"):
        convert_legacy(tree, RepoSpec(str(tmp_path / "repo")))


def test_visit_without_description(legacy: LegacyFacts, tmp_path: Path) -> None:
    tree = copy_of(legacy, tmp_path)
    layout = LegacyLayout(tree)
    for detector in legacy.detectors:
        layout.path("raw", visit=512056, band="r", detector=detector).unlink()
    orphan = layout.path("src", visit=512056, band="r", detector=94)
    orphan.parent.mkdir(parents=True)
    shutil.copy(layout.path("src", visit=512055, band="i", detector=94), orphan)
    with pytest.raises(LegacyLayoutError, match="visit 512056 has no raw or calexp"):
        convert_legacy(tree, RepoSpec(str(tmp_path / "repo")))


def test_cli(legacy: LegacyFacts, tmp_path: Path, repo_root: Path) -> None:
    runner = CliRunner()
    repo = repo_root
    tree = copy_of(legacy, tmp_path, "ref_cats", "camera")
    result = runner.invoke(main, ["repo", "convert", str(tree), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "2 datasets ingested" in result.output
    assert f"collection {RELEASE_COLLECTION} = " in result.output
    bad = runner.invoke(main, ["repo", "convert", str(tmp_path / "nope"), "--repo", str(repo)])
    assert bad.exit_code == 2
    assert "does not exist" in bad.output
    pg = runner.invoke(main, ["repo", "create", str(tmp_path / "r2"), "--registry", "mysql://x/y"])
    assert pg.exit_code == 2 and "must start with postgresql://" in pg.output


@pytest.mark.slow
def test_interrupted_ingest_is_finished_by_a_rerun(
    legacy: LegacyFacts, tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between two ingest batches leaves a readable repository; a rerun completes it."""
    from dpzero.repo.convert import ingest

    tree = copy_of(legacy, tmp_path, "raw", "rerun/dp01/calexp", "rerun/dp01/src")
    repo = repo_root
    real = ingest._ingest_run
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "_ingest_run", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        convert_legacy(tree, RepoSpec(str(repo)))
    monkeypatch.setattr(ingest, "_ingest_run", real)
    with Butler(str(repo)) as butler:  # readable, with what was ingested before the crash
        assert butler.query_datasets("raw", collections="2.2i/raw/all", explain=False) != []
    report = convert_legacy(tree, RepoSpec(str(repo)))
    assert report.already_present > 0
    assert sum(report.ingested.values()) + report.already_present == 4 + 2 + 2  # raw, calexp, src
    assert count_calexps(repo) == 2


@pytest.mark.slow
def test_a_later_calibration_shortens_the_earlier_one(
    legacy: LegacyFacts, tmp_path: Path, repo_root: Path
) -> None:
    tree = copy_of(legacy, tmp_path, "raw", "CALIB")
    layout = LegacyLayout(tree)
    for det in legacy.detectors:  # start with the 2022-01-01 biases only
        layout.path("bias", detector=det, calib_date="2022-10-07").unlink()
    convert_legacy(tree, RepoSpec(str(repo_root)))
    with Butler(str(repo_root), collections=RELEASE_COLLECTION) as butler:
        assert butler.get("bias", detector=94, exposure=512056).image[0, 0] == 1.0
    write_exposure(
        exposure_for(0, "i", 94, 2.0), layout.path("bias", detector=94, calib_date="2022-10-07")
    )
    report = convert_legacy(tree, RepoSpec(str(repo_root)))
    assert report.ingested["bias"] == 1
    with Butler(str(repo_root), collections=RELEASE_COLLECTION) as butler:
        assert butler.get("bias", detector=94, exposure=512055).image[0, 0] == 1.0
        assert butler.get("bias", detector=94, exposure=512056).image[0, 0] == 2.0
