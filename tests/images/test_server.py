"""End to end: ``dpzero serve --repo``, read by pyvo as a DataLink and SODA client."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from lsst.daf.butler import Butler
from pyvo.dal.adhoc import DatalinkResults

from dpzero.repo.exposure import read_exposure
from tap.conftest import ServerProcess

from .conftest import ImageRepo

PIXEL = 0.2 / 3600


class ImageServer(ServerProcess):
    """``dpzero serve --store STORE --repo REPO`` on a free loopback port."""

    def __init__(self, store: Path, state_dir: Path, repo: str) -> None:
        super().__init__(store, state_dir)
        self.repo = repo

    def start(self) -> ImageServer:
        cmd = [
            sys.executable, "-m", "dpzero.cli", "serve", "--store", str(self.store),
            "--repo", self.repo, "--port", str(self.port), "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.tap_url + "/availability", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become available")


@pytest.fixture(scope="module")
def server(
    tiny_store: Path, images_repo: ImageRepo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImageServer]:
    state = tmp_path_factory.mktemp("images-server") / "state"
    running = ImageServer(tiny_store, state, images_repo.root).start()
    yield running
    running.stop()


def test_pyvo_follows_links_to_the_file_and_a_cutout(
    server: ImageServer, images_repo: ImageRepo
) -> None:
    dataset_id = images_repo.id_of(images_repo.calexp)
    links = DatalinkResults.from_result_url(
        f"{server.url}/api/datalink/links?ID={quote(dataset_id, safe='')}"
    )
    this = next(links.bysemantics("#this", include_narrower=False))
    assert not this.error_message and this.content_type == "application/fits"
    with Butler(images_repo.root) as butler:
        stored = butler.getURI(images_repo.calexp).read()
    download = httpx.get(this.access_url, timeout=60)
    assert download.status_code == 200 and download.content == stored
    assert this.content_length == len(stored)

    cutout_link = next(links.bysemantics("#cutout", include_narrower=False))
    assert cutout_link.access_url == f"{server.url}/api/cutout/sync"
    full = images_repo.full("calexp")
    ra, dec = (float(v) for v in full.parent_to_sky(12, 20))
    stream = cutout_link.processed(circle=(ra, dec, 2 * PIXEL))
    cut = read_exposure(io.BytesIO(stream.read()))
    assert cut.bbox.x0 == 10 and cut.bbox.y0 == 18 and cut.image.shape == (5, 5)
    np.testing.assert_array_equal(cut.image, full.image[18:23, 10:15])
    np.testing.assert_allclose(
        cut.wcs.pixel_to_world_values(0, 0), full.wcs.pixel_to_world_values(10, 18), atol=1e-10
    )


def test_unknown_id_through_the_server(server: ImageServer) -> None:
    missing = "butler://dp01/00000000-0000-4000-8000-000000000000"
    links = DatalinkResults.from_result_url(
        f"{server.url}/api/datalink/links?ID={quote(missing, safe='')}"
    )
    row = next(iter(links))
    assert row.error_message.startswith("NotFoundFault: no dataset")
    cutout = httpx.get(
        f"{server.url}/api/cutout/sync", params={"ID": missing, "CIRCLE": "62 -37 0.01"}
    )
    assert cutout.status_code == 404 and cutout.text.startswith("NotFoundFault: ")
