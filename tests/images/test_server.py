"""End to end: ``dpzero serve --repo``, read by pyvo as a DataLink and SODA client."""

from __future__ import annotations

import io
from urllib.parse import quote

import httpx
import numpy as np
import pyvo
from lsst.daf.butler import Butler
from pyvo.dal.adhoc import DatalinkResults

from dpzero.repo.exposure import read_exposure
from tap.conftest import ServerProcess

from .conftest import ImageRepo

PIXEL = 0.2 / 3600


def test_pyvo_follows_links_to_the_file_and_a_cutout(
    server: ServerProcess, images_repo: ImageRepo
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


def test_unknown_id_through_the_server(server: ServerProcess) -> None:
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


def test_from_an_obscore_row_to_a_cutout(server: ServerProcess, images_repo: ImageRepo) -> None:
    """The DP0.2 tutorial path: ADQL on ivoa.ObsCore, the row's DataLink, then SODA."""
    full = images_repo.full("calexp")
    ra, dec = (float(v) for v in full.parent_to_sky(25, 14))
    tap = pyvo.dal.TAPService(server.tap_url)
    rows = tap.search(
        "SELECT * FROM ivoa.ObsCore WHERE dataproduct_subtype = 'lsst.calexp' "
        f"AND CONTAINS(POINT('ICRS', {ra}, {dec}), s_region) = 1 AND lsst_detector = 94"
    )
    assert len(rows) == 1
    record = rows[0]
    assert record["obs_publisher_did"] == images_repo.id_of(images_repo.calexp)
    links = DatalinkResults.from_result_url(record["access_url"])
    stream = links.get_first_proc().processed(circle=(ra, dec, 1.5 * PIXEL))
    cut = read_exposure(io.BytesIO(stream.read()))
    assert cut.bbox.x0 == 23 and cut.bbox.y0 == 12 and cut.image.shape == (5, 5)
    np.testing.assert_array_equal(cut.image, full.image[12:17, 23:28])
