"""``bps submit`` with the Parsl plugin and dpzero's local site configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from lsst.daf.butler import Butler

from dpzero.pipelines import pipeline_path

from .conftest import DETECTORS, VISITS


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
