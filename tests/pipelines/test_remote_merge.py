"""Remote execution: a run in its own SQLite repository merged into a PostgreSQL main one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.pipelines import run_pipeline
from dpzero.repo.convert import convert_legacy
from dpzero.repo.merge import MergeConflictError, merge_runs
from dpzero.repo.repository import RepoSpec

from .conftest import TinyRelease

PG_URL = "postgresql://postgres@127.0.0.1:5432"
OUTPUT = "u/remote/drp"


@pytest.fixture
def pg_registry() -> Iterator[str]:
    """A PostgreSQL database of its own for the main repository's registry."""
    name = f"dpzero_remote_merge_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_URL}/{name}"
    finally:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_remote_run_merges_into_postgresql_main_once_and_refuses_conflicts(
    tiny_release: TinyRelease, tiny_repo: Path, pg_registry: str, tmp_path: Path
) -> None:
    main_root = tmp_path / "main"
    convert_legacy(tiny_release.legacy, RepoSpec(str(main_root), registry=pg_registry))
    remote = str(tiny_repo)  # the remote site's own SQLite registry and datastore
    run_pipeline(remote, OUTPUT, subset="step1", where="visit = 1002 AND detector = 94")
    with Butler.from_config(remote, collections=OUTPUT) as butler:
        (remote_calexp,) = butler.query_datasets("calexp")
        remote_image = butler.get(remote_calexp).image
        outputs = sum(
            len(butler.query_datasets(t, explain=False))
            for t in butler.collections.get_info(
                remote_calexp.run, include_summary=True
            ).dataset_types
        )

    report = merge_runs(remote, str(main_root), chain=OUTPUT)
    assert report.runs == (remote_calexp.run,)
    assert sum(report.transferred.values()) == outputs and report.already_present == 0
    assert report.transferred["calexp"] == 1 and report.transferred["src"] == 1
    with Butler.from_config(str(main_root), collections=OUTPUT) as butler:
        assert butler.registry.getCollectionChain(OUTPUT) == (remote_calexp.run,)
        merged = butler.get("calexp", dataId=remote_calexp.dataId)
        np.testing.assert_array_equal(merged.image, remote_image)
        assert butler.find_dataset("calexp", remote_calexp.dataId).id == remote_calexp.id
        assert Path(butler.getURI("calexp", dataId=remote_calexp.dataId).ospath).is_relative_to(
            main_root
        )

    again = merge_runs(remote, str(main_root), chain=OUTPUT)
    assert again.transferred == {} and again.already_present == outputs

    # The remote site reran one quantum into the same run: its calexp is another dataset.
    with Butler.from_config(remote, writeable=True) as butler:
        calexp = butler.get(remote_calexp)
        butler.pruneDatasets([remote_calexp], disassociate=True, unstore=True, purge=True)
        rewritten = butler.put(calexp, "calexp", dataId=remote_calexp.dataId, run=remote_calexp.run)
    assert rewritten.id != remote_calexp.id
    with pytest.raises(MergeConflictError, match="other datasets for 1 of its datasets"):
        merge_runs(remote, str(main_root), chain=OUTPUT)
    cli = CliRunner().invoke(main, ["repo", "merge", remote, "--repo", str(main_root)])
    assert cli.exit_code == 2 and "first: calexp" in cli.output, cli.output
    with Butler.from_config(str(main_root), collections=OUTPUT) as butler:
        assert butler.find_dataset("calexp", remote_calexp.dataId).id == remote_calexp.id
