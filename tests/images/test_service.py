"""Cutouts, files and links of the tiny converted release, read back and compared."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from lsst.daf.butler import Butler
from lsst.resources import ResourcePath

from dpzero.images.cutout import CircleRegion, PolygonRegion, RangeRegion, parse_region
from dpzero.images.faults import NotFoundFault, UsageFault
from dpzero.images.fits_template import ExposureFitsTemplate
from dpzero.images.service import ImageService
from dpzero.repo.exposure import Box, Exposure, read_exposure

from .conftest import ImageRepo

MISSING = "butler://dp01/00000000-0000-4000-8000-000000000000"


def full_image(repo: ImageRepo, which: str = "calexp") -> Exposure:
    return repo.full(which)


def sky_of(exposure: Exposure, x: float, y: float) -> tuple[float, float]:
    """Sky position of a parent-frame pixel position."""
    ra, dec = exposure.parent_to_sky(x, y)
    return float(ra), float(dec)


def check_cutout(data: bytes, full: Exposure, box: Box) -> Exposure:
    """The cutout holds exactly the box's pixels of the full image, with its sky."""
    cut = read_exposure(io.BytesIO(data))
    assert cut.bbox == box
    rows, cols = box.slices_within(full.bbox)
    np.testing.assert_array_equal(cut.image, full.image[rows, cols])
    np.testing.assert_array_equal(cut.mask, full.mask[rows, cols])
    np.testing.assert_array_equal(cut.variance, full.variance[rows, cols])
    # Corner pixels map to the same sky through the cutout's WCS and the full image's.
    for col, row in (
        (0, 0),
        (box.width - 1, 0),
        (0, box.height - 1),
        (box.width - 1, box.height - 1),
    ):
        got = cut.wcs.pixel_to_world_values(col, row)
        want = full.wcs.pixel_to_world_values(
            col + box.x0 - full.bbox.x0, row + box.y0 - full.bbox.y0
        )
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # A plain FITS reader sees the same: CRPIX shifted by the box's offset.
    with fits.open(io.BytesIO(data)) as hdul:
        header = hdul["IMAGE"].header
        plain = WCS(header)
        offset = np.array([box.x0 - full.bbox.x0, box.y0 - full.bbox.y0])
        np.testing.assert_allclose(plain.wcs.crpix, full.wcs.wcs.crpix - offset)
        np.testing.assert_array_equal(hdul["IMAGE"].data, full.image[rows, cols])
        assert hdul[0].header["SODABBOX"] == f"{box.x0} {box.y0} {box.width} {box.height}"
    return cut


def test_circle_cutout_is_exact(images_repo: ImageRepo, image_service: ImageService) -> None:
    full = full_image(images_repo)
    ra, dec = sky_of(full, 17, 11)
    radius = 3.2 * 0.2 / 3600  # 3.2 pixels
    cutout = image_service.cutout(
        images_repo.id_of(images_repo.calexp), CircleRegion(ra, dec, radius)
    )
    assert cutout.box == Box(14, 8, 7, 7)
    check_cutout(cutout.data, full, cutout.box)
    assert cutout.filename == "calexp_94_512055_cutout.fits"


def test_polygon_cutout_is_exact(images_repo: ImageRepo, image_service: ImageService) -> None:
    full = full_image(images_repo)
    corners = [sky_of(full, x, y) for x, y in ((3.2, 4.4), (20.6, 6.0), (12.0, 25.3))]
    cutout = image_service.cutout(
        images_repo.id_of(images_repo.calexp), PolygonRegion(tuple(corners))
    )
    assert cutout.box == Box(3, 4, 19, 22)
    check_cutout(cutout.data, full, cutout.box)


def test_cutout_is_clipped_to_the_image(
    images_repo: ImageRepo, image_service: ImageService
) -> None:
    full = full_image(images_repo)
    ra, dec = sky_of(full, -2, 28)  # off the left edge, near the top
    region = CircleRegion(ra, dec, 6 * 0.2 / 3600)
    cutout = image_service.cutout(images_repo.id_of(images_repo.calexp), region)
    assert cutout.box == Box(0, 22, 5, 8)
    check_cutout(cutout.data, full, cutout.box)


def test_coadd_cutout_keeps_the_tract_frame(
    images_repo: ImageRepo, image_service: ImageService
) -> None:
    full = full_image(images_repo, "coadd")
    assert full.bbox.x0 > 0 and full.bbox.y0 > 0
    x, y = full.bbox.x0 + 30, full.bbox.y0 + 5
    ra, dec = sky_of(full, x, y)
    cutout = image_service.cutout(
        images_repo.id_of(images_repo.coadd), CircleRegion(ra, dec, 2 * 0.2 / 3600)
    )
    assert cutout.box == Box(x - 2, y - 2, 5, 5)
    check_cutout(cutout.data, full, cutout.box)


def test_range_bigger_than_the_image_gives_it_whole(
    images_repo: ImageRepo, image_service: ImageService
) -> None:
    full = full_image(images_repo)
    ra, dec = sky_of(full, 20, 15)
    region = RangeRegion(ra - 0.1, ra + 0.1, dec - 0.1, dec + 0.1)
    cutout = image_service.cutout(images_repo.id_of(images_repo.calexp), region)
    assert cutout.box == full.bbox
    check_cutout(cutout.data, full, cutout.box)


def test_region_off_the_image(images_repo: ImageRepo, image_service: ImageService) -> None:
    full = full_image(images_repo)
    ra, dec = sky_of(full, 60, 15)  # 20 pixels beyond the right edge
    with pytest.raises(UsageFault, match="UsageFault: region does not overlap the image"):
        image_service.cutout(
            images_repo.id_of(images_repo.calexp), CircleRegion(ra, dec, 5 * 0.2 / 3600)
        )


@pytest.mark.parametrize(
    ("dataset_id", "fault", "message"),
    [
        (MISSING, NotFoundFault, "NotFoundFault: no dataset butler://dp01/00000000"),
        (
            "butler://dp02/00000000-0000-4000-8000-000000000000",
            NotFoundFault,
            "names repository 'dp02'",
        ),
        ("butler://dp01/not-a-uuid", UsageFault, "UsageFault: invalid dataset ID"),
        ("calexp 512055 94", UsageFault, "expected butler://<repo-label>/<dataset UUID>"),
    ],
)
def test_bad_ids(
    image_service: ImageService, dataset_id: str, fault: type[Exception], message: str
) -> None:
    region = parse_region({"CIRCLE": ["62 -37 0.001"]})
    with pytest.raises(fault, match=message):
        image_service.cutout(dataset_id, region)
    with pytest.raises(fault, match=message):
        image_service.dataset_file(dataset_id)


def test_catalog_cannot_be_cut_out(images_repo: ImageRepo, image_service: ImageService) -> None:
    with pytest.raises(UsageFault, match=r"is a src .* not an image"):
        image_service.cutout(images_repo.id_of(images_repo.table), CircleRegion(62.0, -37.0, 0.001))


def test_file_is_the_datastore_file(images_repo: ImageRepo, image_service: ImageService) -> None:
    file = image_service.dataset_file(images_repo.id_of(images_repo.calexp))
    with Butler(images_repo.root) as butler:
        stored = butler.getURI(images_repo.calexp).read()
    assert b"".join(file.chunks()) == stored
    assert file.size == len(stored)
    assert file.content_type == "application/fits"
    assert ResourcePath(file.uri).exists()


@pytest.mark.parametrize("which", ["calexp", "coadd"])
def test_fits_template_writes_what_write_fits_writes(images_repo: ImageRepo, which: str) -> None:
    full = images_repo.full(which)
    first = full.subset(Box(full.bbox.x0 + 1, full.bbox.y0 + 2, 5, 7))
    template, _ = ExposureFitsTemplate.from_exposure(first)
    assert template is not None
    boxes = [(0, 0, 40, 30), (13, 9, 1, 1), (39, 29, 1, 1), (3, 17, 31, 12)]
    for x, y, width, height in boxes:
        cut = full.subset(Box(full.bbox.x0 + x, full.bbox.y0 + y, width, height))
        buffer = io.BytesIO()
        cut.write_fits(buffer)
        assert template.write(cut) == buffer.getvalue(), (x, y)
    long_text = "POLYGON " + " ".join(["62.0001234567 -37.0001234567"] * 12)
    with_cards = template.write(first, [("SODAID", "butler://dp01/x"), ("SODAPOS", long_text)])
    with fits.open(io.BytesIO(with_cards)) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["SODAPOS"] == long_text
        np.testing.assert_array_equal(hdul["IMAGE"].data, first.image)
        np.testing.assert_array_equal(hdul["MASK"].data, first.mask)


def test_missing_file_is_not_found(images_repo: ImageRepo, tmp_path: Path) -> None:
    """A dataset the registry knows but whose file is gone: 404, never a crash."""
    copy = tmp_path / "repo"
    shutil.copytree(images_repo.root, copy)
    with Butler(str(copy)) as butler:
        stored = Path(butler.getURI(images_repo.calexp).ospath)
        assert stored.is_relative_to(copy)  # the copy's own file, not the shared one
        stored.unlink()
    service = ImageService.open(str(copy))
    try:
        dataset_id = images_repo.id_of(images_repo.calexp)
        with pytest.raises(NotFoundFault, match=r"the file of dataset .* is missing"):
            service.cutout(dataset_id, CircleRegion(62.0, -37.0, 0.001))
        with pytest.raises(NotFoundFault, match="is missing"):
            service.dataset_file(dataset_id)
        links = service.links([dataset_id], "http://x")
        assert b"NotFoundFault: the file of dataset" in links
    finally:
        service.close()
