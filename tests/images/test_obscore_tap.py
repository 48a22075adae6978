"""ivoa.ObsCore through TAP: a real `dpzero serve --repo` queried with pyvo, answers
checked against brute force over the table's own rows with lsst.sphgeom."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import pyvo
from astropy.table import Table
from lsst.sphgeom import Angle, Circle, ConvexPolygon, LonLat, UnitVector3d

from dpzero.adql import Polygon, parse_stcs
from dpzero.schema import load_schema
from tap.conftest import ServerProcess


@pytest.fixture(scope="module")
def tap(server: ServerProcess) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(server.tap_url)


@pytest.fixture(scope="module")
def everything(tap: pyvo.dal.TAPService) -> Table:
    table = tap.search("SELECT * FROM ivoa.ObsCore").to_table()
    assert len(table) == 7  # 2 calexps, 1 coadd, 4 raws in the tiny release
    return table


def _vector(ra: float, dec: float) -> UnitVector3d:
    return UnitVector3d(LonLat.fromDegrees(ra, dec))


def _polygon(text: str) -> ConvexPolygon:
    region = parse_stcs(text)
    assert isinstance(region, Polygon)
    return ConvexPolygon([_vector(ra, dec) for ra, dec in region.vertices])


def _ids(table: Table) -> set[str]:
    return {str(x) for x in table["obs_publisher_did"]}


@pytest.mark.parametrize(
    ("ra", "dec"), [(62.0, -37.0), (62.0, -36.997), (62.0209, -36.9972), (62.5, -37.0)]
)
def test_contains_point(tap: pyvo.dal.TAPService, everything: Table, ra: float, dec: float) -> None:
    got = tap.search(
        f"SELECT * FROM ivoa.ObsCore WHERE CONTAINS(POINT('ICRS', {ra}, {dec}), s_region) = 1"
    ).to_table()
    expected = {
        str(row["obs_publisher_did"])
        for row in everything
        if _polygon(str(row["s_region"])).contains(_vector(ra, dec))
    }
    assert _ids(got) == expected
    if (ra, dec) == (62.0, -37.0):
        assert {str(x) for x in got["dataproduct_subtype"]} == {"lsst.deepCoadd_calexp"}
    if (ra, dec) == (62.0, -36.997):
        assert len(expected) == 3  # calexp, raw of visit 512055 and raw of visit 512056


@pytest.mark.parametrize(
    ("ra", "dec", "radius"),
    [(62, -37, 0.1), (62.0209, -36.9972, 0.0005), (62.0, -36.9995, 0.0004), (63, -37, 0.1)],
)
def test_intersects_circle(
    tap: pyvo.dal.TAPService, everything: Table, ra: float, dec: float, radius: float
) -> None:
    got = tap.search(
        f"SELECT obs_publisher_did FROM ivoa.ObsCore "
        f"WHERE INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {radius}), s_region) = 1"
    ).to_table()
    circle = Circle(_vector(ra, dec), Angle.fromDegrees(radius))
    expected = {
        str(row["obs_publisher_did"])
        for row in everything
        if not _polygon(str(row["s_region"])).isDisjointFrom(circle)
    }
    assert _ids(got) == expected
    if radius == 0.1 and ra == 62:
        assert len(expected) == 7


def test_subtype_and_band(tap: pyvo.dal.TAPService, everything: Table) -> None:
    got = tap.search(
        "SELECT * FROM ivoa.ObsCore WHERE dataproduct_subtype = 'lsst.calexp' AND lsst_band = 'i'"
    ).to_table()
    expected = {
        str(row["obs_publisher_did"])
        for row in everything
        if row["dataproduct_subtype"] == "lsst.calexp" and row["lsst_band"] == "i"
    }
    assert len(expected) == 2 and _ids(got) == expected
    assert got["s_ra"].unit == "deg" and got["em_min"].unit == "m"


def test_tap_schema_lists_obscore(tap: pyvo.dal.TAPService, server: ServerProcess) -> None:
    tables = tap.search("SELECT table_name FROM tap_schema.tables").to_table()
    assert "ivoa.ObsCore" in {str(x) for x in tables["table_name"]}
    columns = tap.search(
        "SELECT column_name, unit, ucd, utype FROM tap_schema.columns "
        "WHERE table_name = 'ivoa.ObsCore'"
    ).to_table()
    spec = load_schema("dp02_obscore").table("ObsCore")
    assert {str(x) for x in columns["column_name"]} == set(spec.column_names)

    def text(value: object) -> str:
        return "" if np.ma.is_masked(value) else str(value)

    for row in columns:
        column = spec.column(str(row["column_name"]))
        got = (text(row["unit"]), text(row["ucd"]), text(row["utype"]))
        assert got == (column.unit, column.ucd, column.utype)
    assert spec.column("s_region").utype  # the schema gives utypes: the check is not vacuous
    vosi = httpx.get(server.tap_url + "/tables", timeout=30).text
    assert "ivoa.ObsCore" in vosi and "pos.outline;obs.field" in vosi
    assert f"<utype>{spec.column('s_region').utype}</utype>" in vosi


def test_result_fields_carry_the_schema_utypes(tap: pyvo.dal.TAPService) -> None:
    result = tap.search("SELECT TOP 1 obs_id, s_region, access_url FROM ivoa.ObsCore")
    spec = load_schema("dp02_obscore").table("ObsCore")
    fields = {f.name: f for f in result.resultstable.fields}
    for name in ("obs_id", "s_region", "access_url"):
        assert fields[name].utype == spec.column(name).utype
        assert result.fieldname_with_utype(spec.column(name).utype) == name


@pytest.mark.slow  # an async worker process starts: ~15 s on 2 busy cores
def test_async_and_upload(tap: pyvo.dal.TAPService, everything: Table) -> None:
    points = Table({"pid": [1, 2, 3], "ra": [62.0, 62.0209, 62.5], "dec": [-37.0, -36.9972, -37.0]})
    query = (
        "SELECT u.pid, o.obs_publisher_did FROM TAP_UPLOAD.pts AS u "
        "JOIN ivoa.ObsCore AS o ON CONTAINS(POINT('ICRS', u.ra, u.dec), o.s_region) = 1"
    )
    job = tap.submit_job(query, uploads={"pts": points})
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=120)
    assert job.phase == "COMPLETED", job.phase
    got = {(int(r["pid"]), str(r["obs_publisher_did"])) for r in job.fetch_result().to_table()}
    job.delete()
    expected = {
        (int(p["pid"]), str(row["obs_publisher_did"]))
        for p in points
        for row in everything
        if _polygon(str(row["s_region"])).contains(_vector(float(p["ra"]), float(p["dec"])))
    }
    assert got == expected and {pid for pid, _ in got} == {1, 2}


def test_non_region_column_is_a_clear_error(server: ServerProcess) -> None:
    response = httpx.post(
        server.tap_url + "/sync",
        data={
            "LANG": "ADQL",
            "QUERY": "SELECT * FROM ivoa.ObsCore WHERE CONTAINS(POINT(62, -37), s_ra) = 1",
        },
        timeout=30,
    )
    assert response.status_code == 400
    assert "s_ra" in response.text and "not region-valued" in response.text


def test_objects_with_their_images(tap: pyvo.dal.TAPService, everything: Table) -> None:
    """A catalog table joined with ObsCore on the image footprints (pruned by the cone)."""
    cone = "CONTAINS(POINT('ICRS', o.ra, o.dec), CIRCLE('ICRS', 62.0, -37.0, 0.01)) = 1"
    got = tap.search(
        "SELECT o.objectId, c.obs_publisher_did FROM dp01_dc2_catalogs.object AS o "
        "JOIN ivoa.ObsCore AS c ON CONTAINS(POINT('ICRS', o.ra, o.dec), c.s_region) = 1 "
        f"WHERE {cone}"
    ).to_table()
    objects = tap.search(
        f"SELECT o.objectId, o.ra, o.dec FROM dp01_dc2_catalogs.object AS o WHERE {cone}"
    ).to_table()
    expected = {
        (int(obj["objectId"]), str(row["obs_publisher_did"]))
        for obj in objects
        for row in everything
        if _polygon(str(row["s_region"])).contains(_vector(float(obj["ra"]), float(obj["dec"])))
    }
    assert len(objects) > 0 and expected  # 99 objects, 2 of them on an image
    assert {(int(r["objectId"]), str(r["obs_publisher_did"])) for r in got} == expected
