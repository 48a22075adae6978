"""The HTTP surface of DataLink and cutouts: parameters, statuses and fault texts."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from astropy.io.votable import parse
from fastapi import FastAPI
from lsst.daf.butler import Butler

from dpzero.auth import READ_IMAGE, READ_TAP, install_auth
from dpzero.config import Settings
from dpzero.images.handlers import images_router
from dpzero.images.service import ImageService
from dpzero.repo.exposure import read_exposure

from .conftest import ImageRepo, serve_in_thread

MISSING = "butler://dp01/00000000-0000-4000-8000-000000000000"
PIXEL = 0.2 / 3600


@pytest.fixture(scope="module")
def client(image_service: ImageService) -> Iterator[httpx.Client]:
    """A client of the image routes alone, served by uvicorn in a thread."""
    app = FastAPI()
    app.state.image_service = image_service
    app.include_router(images_router(Settings(base_url="https://data.example.org/")))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as test_client:
        yield test_client


def links_table(content: bytes) -> dict[str, list]:
    table = parse(io.BytesIO(content)).get_first_table().to_table()
    return {name: list(table[name]) for name in table.colnames}


def test_links_of_a_calexp(client: httpx.Client, images_repo: ImageRepo) -> None:
    dataset_id = images_repo.id_of(images_repo.calexp)
    response = client.get(
        "/api/datalink/links",
        params={"id": dataset_id, "responseformat": "application/x-votable+xml; content=datalink"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-votable+xml")
    rows = links_table(response.content)
    assert rows["semantics"] == ["#this", "#cutout", "#auxiliary", "#auxiliary", "#auxiliary"]
    assert rows["ID"] == [dataset_id] * 5
    url = urlparse(rows["access_url"][0])
    assert (url.scheme, url.netloc, url.path) == ("https", "data.example.org", "/api/datalink/file")
    assert parse_qs(url.query) == {"ID": [dataset_id]}
    assert rows["service_def"][1] == "cutout-sync"
    assert rows["content_type"][:2] == ["application/fits", "application/fits"]
    size = len(client.get(rows["access_url"][0].removeprefix("https://data.example.org")).content)
    assert rows["content_length"][0] == size
    # The other products of the visit and detector, each its own file.
    with Butler(images_repo.root) as butler:
        expected = {
            name: butler.find_dataset(
                name, images_repo.calexp.dataId, collections=images_repo.calexp.run
            )
            for name in ("calexpBackground", "icSrc", "src")
        }
        for index, name in enumerate(sorted(expected), start=2):
            other = expected[name]
            assert other is not None
            link = parse_qs(urlparse(rows["access_url"][index]).query)["ID"][0]
            assert link == images_repo.id_of(other)
            assert rows["description"][index].startswith(f"The {name} of detector 94, visit 512055")
            path = rows["access_url"][index].removeprefix("https://data.example.org")
            assert client.get(path).content == butler.getURI(other).read()


def test_links_of_several_ids_with_faults(client: httpx.Client, images_repo: ImageRepo) -> None:
    ids = [
        images_repo.id_of(images_repo.table),
        MISSING,
        "nonsense",
        images_repo.id_of(images_repo.coadd),
    ]
    response = client.post("/api/datalink/links", data={"ID": ids})
    assert response.status_code == 200, response.text
    rows = links_table(response.content)
    assert rows["ID"] == [ids[0]] * 4 + [ids[1], ids[2]] + [ids[3]] * 4
    assert rows["semantics"] == [
        *("#this", "#auxiliary", "#auxiliary", "#auxiliary"),  # src: calexp, background, icSrc
        *("#this", "#this"),
        *("#this", "#cutout", "#auxiliary", "#auxiliary"),  # deepCoadd: _calexp, _meas
    ]
    assert rows["content_type"][0] == "application/vnd.apache.parquet"  # a table: no cutout
    assert rows["error_message"][4].startswith("NotFoundFault: no dataset")
    assert rows["error_message"][5].startswith("UsageFault: invalid dataset ID 'nonsense'")
    assert rows["description"][-2].startswith("The deepCoadd_calexp of ")
    assert rows["description"][-1].startswith("The deepCoadd_meas of ")


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("/api/datalink/links", {}, 400, "UsageFault: the ID parameter is missing"),
        (
            "/api/datalink/links",
            {"ID": "x", "RESPONSEFORMAT": "csv"},
            400,
            "UsageFault: RESPONSEFORMAT 'csv'",
        ),
        (
            "/api/datalink/links",
            {"ID": "dp01_dc2_catalogs.object?1"},
            400,
            "UsageFault: object IDs need the service's catalogs",
        ),
        (
            "/api/datalink/links",
            {"ID": [MISSING, "dp01_dc2_catalogs.object?x"]},
            400,
            "UsageFault: ID 'dp01_dc2_catalogs.object?x': objectId 'x' is not an integer",
        ),
        ("/api/datalink/file", {}, 400, "UsageFault: the ID parameter is missing"),
        ("/api/datalink/file", {"ID": MISSING}, 404, "NotFoundFault: no dataset"),
        ("/api/datalink/file", {"ID": "butler://dp01/xyz"}, 400, "UsageFault: invalid dataset ID"),
        ("/api/cutout/sync", {"CIRCLE": "62 -37 0.01"}, 400, "UsageFault: the ID parameter"),
        (
            "/api/cutout/sync",
            {"ID": MISSING, "CIRCLE": "62 -37 0.01"},
            404,
            "NotFoundFault: no dataset",
        ),
        ("/api/cutout/sync", {"ID": MISSING}, 400, "UsageFault: no region given"),
        (
            "/api/cutout/sync",
            {"ID": MISSING, "circle": "62 -37"},
            400,
            "UsageFault: CIRCLE needs 3",
        ),
        (
            "/api/cutout/sync",
            {"ID": MISSING, "POS": "BOX 1 2 3 4"},
            400,
            "UsageFault: POS must start",
        ),
        ("/api/cutout/sync", {"ID": MISSING, "POLYGON": "1 2 3"}, 400, "UsageFault: POLYGON needs"),
    ],
)
def test_faults(client: httpx.Client, path: str, params: dict, status: int, text: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.text.startswith(text), response.text
    assert response.headers["content-type"].startswith("text/plain")


def test_cutout_get_and_post(client: httpx.Client, images_repo: ImageRepo) -> None:
    full = images_repo.full("calexp")
    ra, dec = (float(v) for v in full.parent_to_sky(30, 10))
    params = {"ID": images_repo.id_of(images_repo.calexp), "POS": f"CIRCLE {ra} {dec} {4 * PIXEL}"}
    got = client.get("/api/cutout/sync", params=params)
    posted = client.post("/api/cutout/sync", data=params)
    assert got.status_code == posted.status_code == 200, got.text
    assert got.headers["content-type"] == "application/fits"
    assert 'filename="calexp_94_512055_cutout.fits"' in got.headers["content-disposition"]
    cut = read_exposure(io.BytesIO(got.content))
    assert cut.bbox.x0 == 26 and cut.bbox.y0 == 6 and cut.image.shape == (9, 9)
    np.testing.assert_array_equal(cut.image, full.image[6:15, 26:35])
    assert read_exposure(io.BytesIO(posted.content)).bbox == cut.bbox


def test_cutout_out_of_footprint_and_not_an_image(
    client: httpx.Client, images_repo: ImageRepo
) -> None:
    full = images_repo.full("calexp")
    ra, dec = (float(v) for v in full.parent_to_sky(100, 15))
    off = client.get(
        "/api/cutout/sync",
        params={"ID": images_repo.id_of(images_repo.calexp), "CIRCLE": f"{ra} {dec} {5 * PIXEL}"},
    )
    assert off.status_code == 400
    assert off.text.startswith("UsageFault: region does not overlap the image: CIRCLE")
    table = client.get(
        "/api/cutout/sync",
        params={"ID": images_repo.id_of(images_repo.table), "CIRCLE": f"{ra} {dec} 1"},
    )
    assert table.status_code == 400 and "not an image" in table.text


def test_two_ids_or_regions_are_refused(client: httpx.Client, images_repo: ImageRepo) -> None:
    dataset_id = images_repo.id_of(images_repo.calexp)
    two_ids = client.get(
        "/api/cutout/sync", params=[("ID", dataset_id), ("ID", dataset_id), ("CIRCLE", "62 -37 1")]
    )
    assert two_ids.status_code == 400 and "one ID per request, got 2" in two_ids.text
    two_regions = client.get(
        "/api/cutout/sync",
        params={"ID": dataset_id, "CIRCLE": "62 -37 1", "POS": "CIRCLE 62 -37 1"},
    )
    assert two_regions.status_code == 400 and "one region per request" in two_regions.text


def test_the_gate_guards_the_image_routes(
    image_service: ImageService, images_repo: ImageRepo, tmp_path: Path
) -> None:
    """With logins configured: no token 401, a token without read:image 403, else 200."""
    settings = Settings(
        state_dir=tmp_path,
        auth={"oidc": {"issuer": "http://127.0.0.1:1", "client_id": "a", "client_secret": "b"}},
    )
    app = FastAPI()
    app.state.image_service = image_service
    app.include_router(images_router(settings))
    context = install_auth(app, settings)
    assert context.store is not None
    now = datetime.now(UTC)
    image_token, _ = context.store.create("ann", "images", (READ_IMAGE,), None, now)
    tap_token, _ = context.store.create("ann", "tap only", (READ_TAP,), None, now)
    params = {"ID": images_repo.id_of(images_repo.calexp)}
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            anonymous = client.get("/api/datalink/links", params=params)
            assert anonymous.status_code == 401
            wrong_scope = client.get(
                "/api/datalink/links",
                params=params,
                headers={"Authorization": f"Bearer {tap_token}"},
            )
            assert wrong_scope.status_code == 403 and READ_IMAGE in wrong_scope.text
            allowed = client.get(
                "/api/datalink/links",
                params=params,
                headers={"Authorization": f"Bearer {image_token}"},
            )
            assert allowed.status_code == 200
            rows = links_table(allowed.content)
            assert set(rows["link_auth"]) == {"required"}
    finally:
        context.store.close()
