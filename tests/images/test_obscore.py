"""ivoa.ObsCore rows of the tiny repository against its registry and its images."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from lsst.daf.butler import Butler
from lsst.sphgeom import LonLat, UnitVector3d

from dpzero.adql import Polygon, parse_stcs
from dpzero.images import dataset_id_uri, parse_dataset_id
from dpzero.images.obscore import (
    BAND_EDGES_M,
    build_obscore,
    obscore_metadata,
    obscore_rows,
    read_obscore,
)
from dpzero.repo.dimensions import RELEASE_COLLECTION
from dpzero.schema import load_schema

from .conftest import ImageRepo

URL = "http://127.0.0.1:8123"


@pytest.fixture(scope="module")
def butler(images_repo: ImageRepo) -> Butler:
    with Butler(images_repo.root, collections=RELEASE_COLLECTION) as butler:
        yield butler


@pytest.fixture(scope="module")
def rows(butler: Butler) -> list[dict]:
    table = obscore_rows(butler, URL)
    assert table.column_names == load_schema("dp02_obscore").table("ObsCore").column_names
    return table.to_pylist()


def _vertices(text: str) -> np.ndarray:
    region = parse_stcs(text)
    assert isinstance(region, Polygon)
    return np.array(region.vertices)


def test_one_row_per_image_dataset(butler: Butler, rows: list[dict]) -> None:
    for dataset_type, subtype, level in (
        ("calexp", "lsst.calexp", 2),
        ("deepCoadd_calexp", "lsst.deepCoadd_calexp", 3),
        ("raw", "lsst.raw", 1),
    ):
        refs = butler.query_datasets(dataset_type, limit=None)
        mine = [r for r in rows if r["dataproduct_subtype"] == subtype]
        assert refs and len(mine) == len(refs)
        assert {r["obs_publisher_did"] for r in mine} == {dataset_id_uri(ref) for ref in refs}
        assert {r["calib_level"] for r in mine} == {level}
    assert {r["dataproduct_type"] for r in rows} == {"image"}
    assert len({r["obs_publisher_did"] for r in rows}) == len(rows)


def test_calexp_rows_match_the_image(butler: Butler, rows: list[dict]) -> None:
    calexps = [r for r in rows if r["dataproduct_subtype"] == "lsst.calexp"]
    for row in calexps:
        ref = butler.find_dataset("calexp", visit=row["lsst_visit"], detector=row["lsst_detector"])
        assert ref is not None and dataset_id_uri(ref) == row["obs_publisher_did"]
        exposure = butler.get(ref)
        height, width = exposure.image.shape
        corners = exposure.wcs.pixel_to_world_values(
            [-0.5, width - 0.5, width - 0.5, -0.5], [-0.5, -0.5, height - 0.5, height - 0.5]
        )
        vertices = _vertices(row["s_region"])
        assert len(vertices) == 4
        for ra, dec in zip(*corners, strict=True):
            nearest = SkyCoord(vertices[:, 0], vertices[:, 1], unit="deg").separation(
                SkyCoord(ra, dec, unit="deg")
            )
            assert nearest.min().deg < 1e-9
        centre = exposure.wcs.pixel_to_world_values((width - 1) / 2, (height - 1) / 2)
        assert row["s_ra"] == pytest.approx(float(centre[0]), abs=1e-9)
        assert row["s_dec"] == pytest.approx(float(centre[1]), abs=1e-9)
        half_diagonal = np.hypot(width, height) / 2 * 0.2 / 3600
        assert row["s_fov"] == pytest.approx(2 * half_diagonal, rel=1e-4)
        assert row["s_resolution"] == pytest.approx(exposure.psf.fwhm * 0.2, rel=1e-9)
        assert (row["s_xel1"], row["s_xel2"]) == (width, height)
        visit = butler.query_dimension_records("visit", visit=row["lsst_visit"])[0]
        assert row["t_min"] == pytest.approx(visit.timespan.begin.tai.mjd, abs=1e-9)
        assert row["t_max"] == pytest.approx(visit.timespan.end.tai.mjd, abs=1e-9)
        assert row["t_max"] - row["t_min"] == pytest.approx(30.0 / 86400, rel=1e-6)
        assert row["t_exptime"] == 30.0
        assert row["lsst_band"] == "i" and row["lsst_filter"] == "i_sim_1.4"
        assert (row["em_min"], row["em_max"]) == BAND_EDGES_M["i"]
        assert row["lsst_ccdvisitid"] == row["lsst_visit"] * 200 + row["lsst_detector"]
        assert row["obs_id"] == str(row["lsst_visit"])


def test_raw_rows_take_the_registry_region(butler: Butler, rows: list[dict]) -> None:
    raws = [r for r in rows if r["dataproduct_subtype"] == "lsst.raw"]
    for row in raws:
        record = butler.query_dimension_records(
            "visit_detector_region", visit=row["lsst_visit"], detector=row["lsst_detector"]
        )[0]
        expected = [LonLat(v) for v in record.region.getVertices()]
        vertices = _vertices(row["s_region"])
        assert len(vertices) == len(expected)
        for (ra, dec), lonlat in zip(vertices, expected, strict=True):
            assert ra == pytest.approx(lonlat.getLon().asDegrees() % 360, abs=1e-9)
            assert dec == pytest.approx(lonlat.getLat().asDegrees(), abs=1e-9)
        centre = UnitVector3d(LonLat.fromDegrees(row["s_ra"], row["s_dec"]))
        assert record.region.contains(centre)
        assert row["s_resolution"] is None


def test_coadd_row(butler: Butler, rows: list[dict], images_repo: ImageRepo) -> None:
    (row,) = [r for r in rows if r["dataproduct_subtype"] == "lsst.deepCoadd_calexp"]
    ref = butler.query_datasets("deepCoadd_calexp", limit=None)[0]
    assert row["lsst_tract"] == ref.dataId["tract"] and row["lsst_patch"] == ref.dataId["patch"]
    assert row["obs_id"] == f"DC2-{row['lsst_tract']}-{row['lsst_patch']}"
    assert row["lsst_visit"] is None and row["t_min"] is None
    # The coadd of the tiny release is centred on (62, -37).
    assert bool(parse_stcs(row["s_region"]).contains(62.0, -37.0))  # type: ignore[union-attr]


def test_access_url_names_the_dataset(rows: list[dict]) -> None:
    for row in rows:
        prefix = URL + "/api/datalink/links?ID="
        assert row["access_url"].startswith(prefix)
        assert unquote(row["access_url"][len(prefix) :]) == row["obs_publisher_did"]
        assert "://" not in row["access_url"][len(prefix) :]  # URL-encoded
        assert parse_dataset_id(row["obs_publisher_did"]).repo_label == "dp01"
        assert row["access_format"] == "application/x-votable+xml;content=datalink"


def test_build_writes_once_and_rebuilds_on_change(
    images_repo: ImageRepo, tmp_path: Path, rows: list[dict]
) -> None:
    out = tmp_path / "obscore.parquet"
    first = build_obscore(images_repo.root, out, URL)
    assert not first.reused and sum(first.rows.values()) == len(rows)
    assert first.rows["lsst.calexp"] == 2
    again = build_obscore(images_repo.root, out, URL)
    assert again.reused
    moved = build_obscore(images_repo.root, out, "https://data.example.org")
    assert not moved.reused
    metadata, table = read_obscore(out)
    assert table.num_rows == metadata.rows == len(rows)
    assert table.column("access_url")[0].as_py().startswith("https://data.example.org/api/")
    assert pq.read_metadata(out).num_rows == len(rows)


def test_metadata_from_felis() -> None:
    meta = obscore_metadata()
    assert (meta.database, meta.table) == ("ivoa", "ObsCore")
    by_name = {c.name: c for c in meta.columns}
    assert by_name["s_ra"].unit == "deg" and by_name["s_ra"].ucd == "pos.eq.ra"
    assert by_name["em_min"].unit == "m"
    assert by_name["s_region"].ucd == "pos.outline;obs.field"
    assert by_name["t_min"].unit == "d"


def test_command(images_repo: ImageRepo, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dpzero.cli import main

    out = tmp_path / "obscore.parquet"
    result = CliRunner().invoke(main, ["repo", "obscore", images_repo.root, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "lsst.calexp 2, lsst.deepCoadd_calexp 1, lsst.raw 4" in result.output
    assert read_obscore(out)[1].num_rows == 7
    missing = CliRunner().invoke(
        main, ["repo", "obscore", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.parquet")]
    )
    assert missing.exit_code != 0 and "no Butler repository" in missing.output
    assert not (tmp_path / "x.parquet").exists()


def test_repository_without_images(images_repo: ImageRepo, tmp_path: Path) -> None:
    out = tmp_path / "empty.parquet"
    build = build_obscore(images_repo.root, out, URL, collections="no/such/collection")
    assert build.rows == {} and "no images" in build.summary()
    metadata, table = read_obscore(out)
    assert table.num_rows == 0 and table.column_names == list(metadata.column_names)
