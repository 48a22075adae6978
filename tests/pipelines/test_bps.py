"""Workflow execution through lsst-ctrl-bps: site configurations, submit and restart."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from lsst.ctrl.bps import BpsConfig
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.pipelines import (
    PipelineRunError,
    pipeline_path,
    restart_pipeline,
    run_pipeline,
    run_pipeline_bps,
)
from dpzero.pipelines.bps import SITE_CONFIGS, WorkflowProgress, site_config_path

from .conftest import DETECTORS, VISITS
from .failures import corrupt_raw


@pytest.mark.slow
def test_bps_parsl_local_submit(tiny_repo: Path, tmp_path: Path) -> None:
    config = Path(str(resources.files("dpzero.pipelines") / "bps" / "parsl-local.yaml"))
    work = tmp_path / "bps"
    work.mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["DPZERO_PIPELINE"] = f"{pipeline_path()}#step1"
    env["DPZERO_REPO"] = str(tiny_repo)
    bps = str(Path(sys.executable).parent / "bps")
    done = subprocess.run(
        [bps, "submit", str(config)], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with Butler.from_config(str(tiny_repo)) as butler:
        calexps = butler.query_datasets("calexp", collections="u/*/drp", find_first=False)
        assert len(calexps) == len(VISITS) * len(DETECTORS)


@pytest.fixture
def bps_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped configurations leave repository and pipeline to the environment.
    monkeypatch.setenv("DPZERO_REPO", "/data/repo")
    monkeypatch.setenv("DPZERO_PIPELINE", f"{pipeline_path()}#step1")


@pytest.mark.usefixtures("bps_environment")
@pytest.mark.parametrize("site", sorted(SITE_CONFIGS))
def test_site_configurations_load_in_bps(site: str) -> None:
    config = BpsConfig(str(site_config_path(site)))
    service = config["wmsServiceClass"]
    expected = {
        "local": "lsst.ctrl.bps.parsl.ParslService",
        "slurm": "lsst.ctrl.bps.parsl.ParslService",
        "htcondor": "lsst.ctrl.bps.htcondor.HTCondorService",
        "panda": "lsst.ctrl.bps.panda.PanDAService",
    }
    assert service == expected[site]
    found, repo = config.search("butlerConfig", {"expandEnvVars": True})
    assert found and repo == "/data/repo"
    found, pipeline = config.search("pipelineYaml", {"expandEnvVars": True})
    assert found and Path(pipeline.split("#")[0]) == pipeline_path()
    found, inputs = config.search("inCollection")
    assert found and inputs.split(",")[0] == "2.2i/raw/all"
    assert config["computeSite"] in config["site"] or site in ("htcondor", "panda")


@pytest.mark.usefixtures("bps_environment")
def test_parsl_cluster_configurations_build_their_executors() -> None:
    from lsst.ctrl.bps.parsl.site import SiteConfig

    config = BpsConfig(str(site_config_path("slurm")))
    config["uniqProcName"] = "drp_test"  # set by bps at submission
    (executor,) = SiteConfig.from_config(config).get_executors()
    provider = executor.provider
    assert type(provider).__name__ == "SlurmProvider"
    assert (provider.nodes_per_block, provider.cores_per_node) == (1, 32)
    assert provider.walltime == "04:00:00" and provider.account == "dpzero"
    assert "--export=ALL" in provider.scheduler_options
    local = BpsConfig(str(site_config_path("local")))
    local["uniqProcName"] = "drp_test"
    (executor,) = SiteConfig.from_config(local).get_executors()
    assert type(executor.provider).__name__ == "LocalProvider"


def test_unknown_site_and_bad_directories(tmp_path: Path, tiny_repo: Path) -> None:
    with pytest.raises(InvalidInputError, match="known: local"):
        site_config_path("cloud")
    with pytest.raises(InvalidInputError, match="not a bps submit directory"):
        restart_pipeline(tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(OutputExistsError, match="directory of its own"):
        run_pipeline_bps(str(tiny_repo), "u/test/b", workflow_dir=busy, subset="step1")
    result = CliRunner().invoke(main, ["pipeline", "restart", str(tmp_path)])
    assert result.exit_code == 2 and "not a bps submit directory" in result.output


def test_progress_follows_the_parsl_log() -> None:
    progress = WorkflowProgress()
    lines = [
        "parsl.dataflow.dflow INFO: Task 0 submitted for App isr, not waiting on any dependency",
        "parsl.dataflow.dflow INFO: Task 1 submitted for App calibrate, waiting on task 0",
        "parsl.dataflow.dflow INFO: Task 2 submitted for App finalJob, waiting on task 1",
        "parsl.dataflow.dflow INFO: Task 0 changing state from launched to exec_done",
        "parsl.dataflow.dflow INFO: Task 1 changing state from pending to memo_done",
        "parsl.dataflow.dflow INFO: Task 2 changing state from launched to exec_done",
        "parsl.dataflow.dflow INFO: something else",
    ]
    changed = [progress.feed(line) for line in lines]
    assert changed == [True] * 6 + [False]
    assert progress.executed_quanta() == 1  # the final job is not a quantum
    assert progress.line() == "jobs: 2 done, 1 restored, 0 failed, 0 blocked, of 3"


def test_pipetask_failed_quantum_alone_then_resume_reruns_it_and_downstream(
    tiny_repo: Path,
) -> None:
    where = "detector = 94"  # 2 visits × (isr → calibrate)
    failing = pytest.raises(PipelineRunError, match="pipetask failed")
    with corrupt_raw(tiny_repo, visit=1001, detector=94), failing as caught:
        run_pipeline(str(tiny_repo), "u/test/fail", subset="step1", where=where)
    report = caught.value.report
    assert report is not None
    # isr 1001 failed alone, calibrate 1001 blocked; visit 1002 went through.
    assert (report.succeeded, report.failed, report.remaining, report.total) == (2, 1, 1, 4)
    with Butler.from_config(str(tiny_repo), collections="u/test/fail") as butler:
        assert [ref.dataId["visit"] for ref in butler.query_datasets("calexp")] == [1002]
    again = run_pipeline(str(tiny_repo), "u/test/fail", subset="step1", where=where, resume=True)
    assert (again.succeeded, again.failed, again.total) == (2, 0, 2)  # only those two ran
    with Butler.from_config(str(tiny_repo), collections="u/test/fail") as butler:
        assert sorted(ref.dataId["visit"] for ref in butler.query_datasets("calexp")) == [
            1001,
            1002,
        ]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~3 min on an idle machine; Parsl start-up per job is long
def test_bps_failed_job_alone_then_restart_reruns_it_and_downstream(
    tiny_repo: Path, tmp_path: Path
) -> None:
    seen: list[str] = []
    workflow = tmp_path / "workflow"
    with corrupt_raw(tiny_repo, visit=1001, detector=94):
        report = run_pipeline_bps(
            str(tiny_repo),
            "u/test/bps",
            workflow_dir=workflow,
            subset="step1",
            where="detector = 94",
            on_progress=lambda p: seen.append(p.line()),
        )
    assert (report.succeeded, report.failed, report.blocked, report.total) == (2, 1, 1, 4)
    assert report.executed == 2
    assert seen[-1].startswith("jobs:") and "1 failed, 1 blocked" in seen[-1]
    assert report.submit_dir.is_relative_to(workflow)
    with Butler.from_config(str(tiny_repo), collections="u/test/bps") as butler:
        assert [ref.dataId["visit"] for ref in butler.query_datasets("calexp")] == [1002]
    # Fixed (the raw is back): the restart runs the failed job and the blocked one only.
    result = CliRunner().invoke(main, ["pipeline", "restart", str(report.submit_dir)])
    assert result.exit_code == 0, result.output
    assert "4 quanta succeeded, 0 failed, 0 blocked, of 4 (2 run now)" in result.output
    with Butler.from_config(str(tiny_repo), collections="u/test/bps") as butler:
        calexps = butler.query_datasets("calexp")
        assert sorted(ref.dataId["visit"] for ref in calexps) == [1001, 1002]
