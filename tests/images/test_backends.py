"""Files and cutouts served from the production backends: an S3 datastore (and a
PostgreSQL registry), through the HTTP routes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from lsst.daf.butler import Butler

from dpzero.config import Settings
from dpzero.images.handlers import images_router
from dpzero.images.service import ImageService
from dpzero.repo.convert import convert_legacy
from dpzero.repo.exposure import read_exposure
from repo.conftest import LegacyFacts, backend_spec

from .conftest import image_repo, serve_in_thread

PIXEL = 0.2 / 3600


@pytest.fixture(params=["s3", pytest.param("postgresql+s3", marks=pytest.mark.slow)])
def backend_client(
    request: pytest.FixtureRequest, legacy: LegacyFacts, tmp_path: Path
) -> Iterator[tuple[httpx.Client, str]]:
    with backend_spec(request.param, tmp_path / "repo", request) as spec:
        convert_legacy(legacy.root, spec)
        service = ImageService.open(spec.root)
        app = FastAPI()
        app.state.image_service = service
        app.include_router(images_router(Settings()))
        try:
            with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
                yield client, spec.root
        finally:
            service.close()


def test_file_and_cutout_from_s3(backend_client: tuple[httpx.Client, str]) -> None:
    client, root = backend_client
    repo = image_repo(root)
    with Butler(root) as butler:
        uri = butler.getURI(repo.calexp)
        assert uri.scheme == "s3"
        stored = uri.read()
        full = butler.get(repo.calexp)
    download = client.get("/api/datalink/file", params={"ID": repo.id_of(repo.calexp)})
    assert download.status_code == 200
    assert download.content == stored
    assert int(download.headers["content-length"]) == len(stored)
    assert 'filename="calexp_94_512055.fits"' in download.headers["content-disposition"]

    ra, dec = (float(v) for v in full.parent_to_sky(33, 3))
    cutout = client.post(
        "/api/cutout/sync",
        data={"ID": repo.id_of(repo.calexp), "CIRCLE": f"{ra} {dec} {3 * PIXEL}"},
    )
    assert cutout.status_code == 200, cutout.text
    cut = read_exposure(io.BytesIO(cutout.content))
    assert (cut.bbox.x0, cut.bbox.y0, cut.image.shape) == (30, 0, (7, 7))
    np.testing.assert_array_equal(cut.image, full.image[0:7, 30:37])
    np.testing.assert_array_equal(cut.variance, full.variance[0:7, 30:37])
