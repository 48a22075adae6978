"""The tiny legacy release of the repository tests, converted once, and its image service."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from lsst.daf.butler import Butler, DatasetRef

from dpzero.images.ids import dataset_id_uri
from dpzero.images.service import ImageService
from dpzero.repo.convert import convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.exposure import Exposure
from dpzero.repo.repository import RepoSpec
from repo.conftest import (  # noqa: F401  (fixtures of the repository tests, reused)
    LegacyFacts,
    legacy,
    memory_folder,
    pg_database,
    s3_server,
)
from tap.conftest import ServerProcess, free_port


@dataclass(frozen=True)
class ImageRepo:
    """A converted repository and a few of its datasets."""

    root: str
    calexp: DatasetRef
    coadd: DatasetRef
    table: DatasetRef

    def id_of(self, ref: DatasetRef) -> str:
        return dataset_id_uri(ref)

    @functools.cache  # noqa: B019  (the repository is read-only)
    def full(self, which: str) -> Exposure:
        """The whole image of ``calexp`` or ``coadd``, read by a plain Butler."""
        with Butler(self.root) as butler:
            return butler.get(getattr(self, which))


def image_repo(root: str) -> ImageRepo:
    with Butler(root, collections=RELEASE_COLLECTION) as butler:
        calexp = butler.find_dataset("calexp", visit=512055, detector=94)
        coadd = butler.query_datasets("deepCoadd", limit=1)[0]
        table = butler.find_dataset("src", visit=512055, detector=94)
    assert calexp is not None and table is not None
    return ImageRepo(root, calexp, coadd, table)


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def images_repo(legacy: LegacyFacts) -> Iterator[ImageRepo]:  # noqa: F811
    """The tiny release converted into an SQLite + local files repository."""
    with memory_folder("images") as folder:
        root = str(folder / "repo")
        convert_legacy(legacy.root, RepoSpec(root))
        yield image_repo(root)


@pytest.fixture(scope="session")
def image_service(images_repo: ImageRepo) -> Iterator[ImageService]:
    service = ImageService.open(images_repo.root)
    yield service
    service.close()


@pytest.fixture(scope="session")
def server(
    tiny_store: Path, images_repo: ImageRepo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``dpzero serve --store STORE --repo REPO`` on a free loopback port."""
    state = tmp_path_factory.mktemp("images-server") / "state"
    running = ServerProcess(tiny_store, state, args=("--repo", images_repo.root)).start()
    yield running
    running.stop()
