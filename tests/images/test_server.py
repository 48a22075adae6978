"""End to end: ``dpzero serve --repo``, read by pyvo as a DataLink and SODA client."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, quote, urlparse

import httpx
import numpy as np
import pyvo
from lsst.daf.butler import Butler
from pyvo.dal.adhoc import DatalinkResults

from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.exposure import Exposure, read_exposure
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


OBJECTS = "dp01_dc2_catalogs.object"


def _links_of(server: ServerProcess, object_id: int) -> DatalinkResults:
    text = quote(f"{OBJECTS}?{object_id}", safe="")
    return DatalinkResults.from_result_url(f"{server.url}/api/datalink/links?ID={text}")


def _linked_ids(links: DatalinkResults) -> set[str]:
    """Dataset IDs of the ``#this`` rows (from their file URLs)."""
    return {
        parse_qs(urlparse(row.access_url).query)["ID"][0]
        for row in links.bysemantics("#this", include_narrower=False)
    }


def _holding(images: dict[str, Exposure], ra: float, dec: float) -> set[str]:
    """Brute force: the images whose pixel box holds the position, through their WCS."""
    held = set()
    for dataset_id, exposure in images.items():
        x, y = exposure.wcs.world_to_pixel_values(ra, dec)
        rows, cols = exposure.image.shape
        if -0.5 <= x < cols - 0.5 and -0.5 <= y < rows - 0.5:
            held.add(dataset_id)
    return held


def test_from_an_object_row_to_its_images_and_a_cutout(
    server: ServerProcess, images_repo: ImageRepo
) -> None:
    """ADQL on the object table, the object's DataLink, then its ready cutout."""
    with Butler(images_repo.root, collections=RELEASE_COLLECTION) as butler:
        refs = [*butler.query_datasets("calexp"), *butler.query_datasets("deepCoadd_calexp")]
        images = {images_repo.id_of(ref): butler.get(ref) for ref in refs}
    tap = pyvo.dal.TAPService(server.tap_url)
    rows = tap.search(
        f"SELECT objectId, ra, dec FROM {OBJECTS} "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62.0, -37.0, 0.02)) = 1"
    ).to_table()
    held = {
        int(row["objectId"]): _holding(images, float(row["ra"]), float(row["dec"])) for row in rows
    }
    inside = [object_id for object_id, ids in held.items() if ids]
    outside = [object_id for object_id, ids in held.items() if not ids][:5]
    assert inside and outside
    for object_id in [*inside, *outside]:
        links = _links_of(server, object_id)
        assert _linked_ids(links) == held[object_id], object_id
        assert not any(row.error_message for row in links)

    position = {int(row["objectId"]): (float(row["ra"]), float(row["dec"])) for row in rows}
    for object_id in inside:
        ra, dec = position[object_id]
        links = _links_of(server, object_id)
        ready = [
            row
            for row in links.bysemantics("#cutout", include_narrower=False)
            if not row.service_def
        ]
        assert len(ready) == len(held[object_id])
        for row in ready:
            assert row.content_type == "application/fits"
            cut = read_exposure(io.BytesIO(httpx.get(row.access_url, timeout=60).content))
            x, y = cut.wcs.world_to_pixel_values(ra, dec)
            assert -0.5 <= x < cut.image.shape[1] - 0.5 and -0.5 <= y < cut.image.shape[0] - 0.5
        # The SODA descriptor of each image takes any other region.
        circle = (ra, dec, 2 * PIXEL)
        cut = read_exposure(io.BytesIO(links.get_first_proc().processed(circle=circle).read()))
        x, y = cut.wcs.world_to_pixel_values(ra, dec)
        assert -0.5 <= x < cut.image.shape[1] - 0.5 and -0.5 <= y < cut.image.shape[0] - 0.5
        assert cut.image.shape[0] <= 5 and cut.image.shape[1] <= 5


def test_object_faults(server: ServerProcess) -> None:
    def get(text: str) -> httpx.Response:
        return httpx.get(f"{server.url}/api/datalink/links", params={"ID": text}, timeout=60)

    missing = get(f"{OBJECTS}?1")
    assert missing.status_code == 404
    assert missing.text.startswith(f"NotFoundFault: no object 1 in {OBJECTS}")
    malformed = get(f"{OBJECTS}?12a")
    assert malformed.status_code == 400
    assert malformed.text.startswith("UsageFault: ID ") and "objectId '12a'" in malformed.text
    not_objects = get("dp01_dc2_catalogs.position?12")
    assert not_objects.status_code == 400 and "not an object table" in not_objects.text
    not_here = get("dp02_dc2_catalogs.object?12")  # the tiny store holds DP0.1 tables
    assert not_here.status_code == 404
    assert not_here.text.startswith("NotFoundFault: this service has no table dp02_dc2_catalogs")
