"""Fixtures shared by every part: a tiny simulated survey made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpzero.sim import CatalogManifest, simulate_catalogs


@pytest.fixture(scope="session")
def tiny_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of ``dpzero sim catalogs --size tiny --seed 1`` (≈ 7 k objects)."""
    out = tmp_path_factory.mktemp("sim") / "tiny-1"
    simulate_catalogs(size="tiny", seed=1, out=out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_manifest(tiny_survey: Path) -> CatalogManifest:
    """Manifest of the tiny survey."""
    return CatalogManifest.read(tiny_survey)


@pytest.fixture(scope="session")
def tiny_store(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog store holding the tiny survey's five tables."""
    from dpzero.catalog import IngestOptions, ingest_catalogs

    store = tmp_path_factory.mktemp("store") / "tiny"
    ingest_catalogs(
        tiny_survey,
        store,
        options=IngestOptions(row_group_rows=500),
    )
    return store
