"""`convert_legacy` on every backend: SQLite + files, PostgreSQL + files, PostgreSQL + S3.

One contract suite: the tiny legacy tree is converted once per backend, then read
back with plain Butler code, as a user's notebook would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from lsst.daf.butler import Butler, CollectionType

from dpzero.repo.convert import ConvertReport, convert_legacy
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.repo.exposure import Box, Exposure, read_exposure
from dpzero.repo.info import repo_info
from dpzero.repo.repository import CALIB_CHAIN, RAW_RUN, RepoSpec
from dpzero.sim.images.background import Background
from dpzero.sim.images.layout import LegacyLayout
from dpzero.sim.skymap import RingsSkyMap

from .conftest import BACKENDS, LegacyFacts, backend_spec, memory_folder


@dataclass(frozen=True)
class Converted:
    spec: RepoSpec
    first: ConvertReport
    second: ConvertReport | None
    legacy: LegacyFacts


@pytest.fixture(scope="module", params=BACKENDS)
def converted(
    request: pytest.FixtureRequest,
    legacy: LegacyFacts,
) -> Iterator[Converted]:
    with (
        memory_folder(request.param.replace("+", "-")) as folder,
        backend_spec(request.param, folder / "repo", request) as spec,
    ):
        first = convert_legacy(legacy.root, spec)
        # Idempotence is a registry matter: checked on both registries, not again on S3.
        second = convert_legacy(legacy.root, spec) if request.param != "s3" else None
        yield Converted(spec, first, second, legacy)


@pytest.fixture(scope="module")
def butler(converted: Converted) -> Iterator[Butler]:
    butler = Butler(converted.spec.root, collections=RELEASE_COLLECTION)
    yield butler
    butler.close()


def test_report_and_idempotence(converted: Converted) -> None:
    first, second = converted.first, converted.second
    assert first.ingested == {
        "raw": 4,
        "calexp": 2,
        "calexpBackground": 2,
        "src": 2,
        "icSrc": 2,
        "bias": 4,
        "flat": 2,
        "cal_ref_cat": 1,
        "camera": 1,
        "deepCoadd": 1,
        "deepCoadd_calexp": 1,
        "deepCoadd_meas": 1,
        "deepCoadd_ref": 1,
    }
    assert first.already_present == 0
    assert first.visits == 2
    assert converted.legacy.tract in first.tracts
    assert first.ignored == ("README.txt",)
    assert "24 datasets ingested" in first.summary()
    if second is not None:
        assert sum(second.ingested.values()) == 0
        assert second.already_present == sum(first.ingested.values())


def test_collections(converted: Converted, butler: Butler) -> None:
    rerun_run = f"{RELEASE_COLLECTION}/{converted.legacy.rerun}"
    info = butler.collections.get_info(RELEASE_COLLECTION)
    assert info.type is CollectionType.CHAINED
    assert list(info.children) == [rerun_run, RAW_RUN, CALIB_CHAIN, "refcats/DP0.1", "skymaps"]
    assert butler.collections.get_info(CALIB_CHAIN).type is CollectionType.CHAINED


def test_calexp_as_in_a_notebook(converted: Converted, butler: Butler) -> None:
    path = LegacyLayout(converted.legacy.root).path("calexp", visit=512055, band="i", detector=94)
    expected = read_exposure(path)
    calexp = butler.get("calexp", visit=512055, detector=94)
    assert isinstance(calexp, Exposure)
    np.testing.assert_array_equal(calexp.image, expected.image)
    assert calexp.visit_info == expected.visit_info
    assert butler.get("calexp.visitInfo", visit=512055, detector=94) == expected.visit_info
    assert butler.get("calexp.photoCalib", visit=512055, detector=94).njy_per_count == 57.5
    assert butler.get("calexp.psf", visit=512055, detector=94).fwhm == 3.5
    assert butler.get("calexp.bbox", visit=512055, detector=94) == expected.bbox
    wcs = butler.get("calexp.wcs", visit=512055, detector=94)
    np.testing.assert_allclose(wcs.wcs.crval, expected.wcs.wcs.crval)
    box = Box(10, 5, 7, 4)
    cut = butler.get("calexp", visit=512055, detector=94, parameters={"bbox": box})
    assert cut.bbox == box
    np.testing.assert_array_equal(cut.image, expected.image[5:9, 10:17])
    image = butler.get("calexp.image", visit=512055, detector=94, parameters={"bbox": box})
    np.testing.assert_array_equal(image, expected.image[5:9, 10:17])


def test_queries(converted: Converted, butler: Butler) -> None:
    refs = butler.query_datasets("calexp", where="band = 'i'")
    assert sorted(r.dataId["detector"] for r in refs) == [94, 95]
    assert butler.query_datasets("raw", where="band = 'r'", explain=False) != []
    assert len(butler.query_datasets("raw")) == 4
    visits = butler.query_dimension_records("visit", where="band = 'r'")
    assert [v.id for v in visits] == [512056]
    assert visits[0].region is not None and visits[0].timespan is not None
    # Detector 94 of visit 512055 is centred 10″ north of (62, -37); 95 is 60″ east.
    here = "visit_detector_region.region OVERLAPS POINT(62.0, -36.99722)"
    refs = butler.query_datasets("calexp", where=here)
    assert [(r.dataId["visit"], r.dataId["detector"]) for r in refs] == [(512055, 94)]
    far = "visit.region OVERLAPS CIRCLE(10.0, 10.0, 0.1)"
    assert butler.query_datasets("calexp", where=far, explain=False) == []
    tract = converted.legacy.tract
    patches = butler.query_dimension_records("patch", where=f"tract = {tract} AND skymap = 'DC2'")
    assert len(patches) == 49


def test_calibrations_by_validity(butler: Butler) -> None:
    # The second bias (2022-10-07) is valid from then on: visit 512055 (Oct 6) gets
    # the first (pixel value 1 + column), visit 512056 (Oct 7, 04:48) the second.
    early = butler.get("bias", detector=94, exposure=512055)
    late = butler.get("bias", detector=94, exposure=512056)
    assert early.image[0, 0] == 1.0 and late.image[0, 0] == 2.0
    flat = butler.get("flat", detector=95, physical_filter="i_sim_1.4", exposure=512055)
    assert flat.filter.band == "i"


def test_other_datasets(converted: Converted, butler: Butler) -> None:
    raw = butler.get("raw", exposure=512056, detector=95)
    assert isinstance(raw, fits.HDUList)
    assert [h.name for h in raw[1:]] == ["SEGMENT10", "SEGMENT11"]
    assert raw[1].data[0, 0] == 1000
    background = butler.get("calexpBackground", visit=512055, detector=94)
    assert isinstance(background, Background) and background.image()[3, 3] == 5.0
    src = butler.get("src", visit=512055, detector=95)
    assert isinstance(src, Table) and len(src) == 5 and src["id"][0] == 95000
    few = butler.get("src", visit=512055, detector=95, parameters={"columns": ["id"]})
    assert few.colnames == ["id"]
    legacy = converted.legacy
    patch = legacy.patch[0] + 7 * legacy.patch[1]
    coadd = butler.get("deepCoadd", tract=legacy.tract, patch=patch, band="i")
    assert coadd.bbox.x0 > 0 and coadd.image[0, 0] == 7.0
    assert len(butler.get("deepCoadd_ref", tract=legacy.tract, patch=patch)) == 6
    assert len(butler.get("cal_ref_cat", htm7=legacy.htm7)) == 8
    assert butler.get("camera")["name"] == "LSSTCam-imSim"
    assert isinstance(butler.get("skyMap", skymap="DC2"), RingsSkyMap)


def test_read_only_butler_rejects_puts(butler: Butler) -> None:
    exposure = butler.get("calexp", visit=512055, detector=94)
    with pytest.raises(Exception, match=r"(?i)read.?only|not writeable|writeable"):
        butler.put(exposure, "calexp", visit=512055, detector=95, run="mine")


def test_files_went_to_the_datastore(converted: Converted, butler: Butler) -> None:
    uri = butler.getURI("calexp", visit=512055, detector=94)
    if converted.spec.datastore is None:
        assert uri.scheme == "file"
        assert Path(uri.ospath).is_relative_to(Path(converted.spec.root))  # in the repo
    else:
        assert uri.scheme == "s3"
        assert uri.geturl().startswith(converted.spec.datastore)


def test_info(converted: Converted) -> None:
    info = repo_info(converted.spec.root)
    assert info.datasets["calexp"] == 2
    assert info.datasets["bias"] == 4  # both validity ranges
    assert info.visits == {"i": 1, "r": 1}
    assert info.tracts == (converted.legacy.tract,)
    assert ("2.2i/calib/certified", "CALIBRATION") in info.collections
    assert "raw: 4" in info.summary()
