"""Synchronous TAP queries through pyvo against a running server, checked by brute force."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import pyvo
from astropy.io.votable import parse as parse_votable
from astropy.io.votable import parse_single_table
from astropy.table import Table

from tests_support import angular_separation_deg

CONE = "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62.0, -37.0, 0.03)) = 1"


def objects(survey: Path) -> pa.Table:
    return pq.read_table(
        survey / "object", columns=["objectId", "ra", "dec", "mag_i", "extendedness"]
    )


def test_cone_search_matches_brute_force(tap_server, tiny_survey: Path) -> None:
    service = pyvo.dal.TAPService(tap_server.tap_url)
    result = service.search(
        f"SELECT objectId, ra, dec, mag_i FROM dp01_dc2_catalogs.object WHERE {CONE}", maxrec=100000
    ).to_table()
    obj = objects(tiny_survey)
    sep = angular_separation_deg(obj["ra"].to_numpy(), obj["dec"].to_numpy(), 62.0, -37.0)
    expected = np.sort(obj["objectId"].to_numpy()[sep <= 0.03])
    assert expected.size > 100
    np.testing.assert_array_equal(np.sort(np.asarray(result["objectId"])), expected)
    assert result["ra"].unit == "deg" or str(result["ra"].unit) in ("deg", "")


def test_columns_carry_schema_metadata(tap_server) -> None:
    service = pyvo.dal.TAPService(tap_server.tap_url)
    votable = service.search(
        "SELECT TOP 5 objectId, psFlux_i, mag_i FROM dp01_dc2_catalogs.object"
    ).votable
    psflux = votable.get_field_by_id_or_name("psFlux_i")
    assert str(psflux.unit) == "nmgy"  # the schema's label (values are nJy, as in DP0.1)
    assert "Point Source" in psflux.description
    assert votable.get_field_by_id_or_name("objectId").datatype == "long"


def test_maxrec_overflow(tap_server) -> None:
    service = pyvo.dal.TAPService(tap_server.tap_url)
    # pyvo does not warn when the client itself set MAXREC and got that many rows.
    result = service.search("SELECT objectId FROM dp01_dc2_catalogs.object", maxrec=7)
    assert len(result) == 7
    r = httpx.post(
        tap_server.tap_url + "/sync",
        data={
            "LANG": "ADQL",
            "QUERY": "SELECT objectId FROM dp01_dc2_catalogs.object",
            "MAXREC": "7",
        },
    )
    statuses = [i.value for i in parse_votable(io.BytesIO(r.content)).resources[0].infos
                if i.name == "QUERY_STATUS"]  # fmt: skip
    assert statuses == ["OK", "OVERFLOW"]
    exact = httpx.post(
        tap_server.tap_url + "/sync",
        data={
            "LANG": "ADQL",
            "QUERY": "SELECT TOP 3 objectId FROM dp01_dc2_catalogs.object",
            "MAXREC": "3",
        },
    )
    assert b"OVERFLOW" not in exact.content  # exactly MAXREC rows, none left out
    empty = httpx.post(
        tap_server.tap_url + "/sync",
        data={
            "LANG": "ADQL",
            "QUERY": "SELECT objectId FROM dp01_dc2_catalogs.object",
            "MAXREC": "0",
        },
    )
    table = parse_single_table(io.BytesIO(empty.content))
    assert len(table.array) == 0 and b"OVERFLOW" in empty.content


def test_aggregate_equals_brute_force(tap_server, tiny_survey: Path) -> None:
    service = pyvo.dal.TAPService(tap_server.tap_url)
    result = service.search(
        "SELECT extendedness, COUNT(*) AS n FROM dp01_dc2_catalogs.object "
        "WHERE mag_i < 24 GROUP BY extendedness ORDER BY extendedness"
    ).to_table()
    obj = objects(tiny_survey).to_pandas()
    bright = obj[obj.mag_i < 24]
    expected = bright.groupby("extendedness").size()
    got = {
        float(k): int(n)
        for k, n in zip(result["extendedness"], result["n"], strict=True)
        if k is not np.ma.masked
    }
    assert got == {float(k): int(v) for k, v in expected.items()}


def test_tap_schema_describes_the_release(tap_server) -> None:
    service = pyvo.dal.TAPService(tap_server.tap_url)
    tables = service.search("SELECT table_name FROM tap_schema.tables").to_table()
    names = {str(n) for n in tables["table_name"]}
    assert {
        "dp01_dc2_catalogs.object",
        "dp01_dc2_catalogs.truth_match",
        "dp01_dc2_catalogs.forced_photometry",
        "tap_schema.columns",
    } <= names
    count = service.search(
        "SELECT COUNT(*) AS n FROM tap_schema.columns WHERE table_name = 'dp01_dc2_catalogs.object'"
    ).to_table()
    assert int(count["n"][0]) == 137
    keys = service.search("SELECT from_table, target_table FROM tap_schema.keys").to_table()
    assert "dp01_dc2_catalogs.truth_match" in {str(t) for t in keys["from_table"]}
    vosi = service.tables
    assert "dp01_dc2_catalogs.object" in [t.name for t in vosi]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "votable/td", "votable"])
def test_formats_read_back(tap_server, fmt: str) -> None:
    query = (
        "SELECT TOP 20 objectId, ra, mag_i, patch FROM dp01_dc2_catalogs.object ORDER BY objectId"
    )
    r = httpx.post(
        tap_server.tap_url + "/sync",
        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": fmt},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    if fmt in ("csv", "tsv"):
        table = pacsv.read_csv(
            io.BytesIO(r.content),
            parse_options=pacsv.ParseOptions(delimiter="," if fmt == "csv" else "\t"),
        )
        ids = table["objectId"].to_pylist()
    elif fmt == "parquet":
        table = pq.read_table(io.BytesIO(r.content))
        assert table.schema.field("ra").metadata[b"unit"] == b"deg"
        assert table.schema.field("mag_i").type == pa.float64()
        ids = table["objectId"].to_pylist()
    else:
        table = parse_single_table(io.BytesIO(r.content))
        assert table.get_field_by_id_or_name("ra").unit == "deg"
        ids = [int(i) for i in table.array["objectId"]]
    assert len(ids) == 20 and ids == sorted(ids)


def test_upload_joins_with_the_catalog(tap_server, tiny_survey: Path) -> None:
    obj = objects(tiny_survey)
    chosen = obj["objectId"].to_numpy()[::500][:10]
    mine = Table({"id": chosen, "label": [f"obj{i}" for i in range(chosen.size)]})
    service = pyvo.dal.TAPService(tap_server.tap_url)
    result = service.run_sync(
        "SELECT u.label, o.objectId, o.ra FROM TAP_UPLOAD.mine AS u "
        "JOIN dp01_dc2_catalogs.object AS o ON o.objectId = u.id",
        uploads={"mine": mine},
    ).to_table()
    assert sorted(int(i) for i in result["objectId"]) == sorted(int(i) for i in chosen)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"QUERY": "SELECT TOP 5 FROM dp01_dc2_catalogs.object"}, "line 1, column"),
        ({"QUERY": "SELECT nope FROM dp01_dc2_catalogs.object"}, "nope"),
        ({"QUERY": "SELECT ra FROM dp01_dc2_catalogs.objekt"}, "object"),
        ({"QUERY": "SELECT 1", "LANG": "SQL"}, "LANG=SQL"),
        ({"QUERY": "SELECT TOP 1 ra FROM dp01_dc2_catalogs.object", "MAXREC": "-1"}, "MAXREC"),
        ({"QUERY": "SELECT TOP 1 ra FROM dp01_dc2_catalogs.object", "MAXREC": "x"}, "MAXREC"),
        (
            {"QUERY": "SELECT TOP 1 ra FROM dp01_dc2_catalogs.object", "RESPONSEFORMAT": "fits"},
            "fits",
        ),
        ({}, "QUERY"),
        (
            {
                "QUERY": "SELECT TOP 1 ra FROM dp01_dc2_catalogs.object",
                "REQUEST": "getCapabilities",
            },
            "REQUEST",
        ),
        ({"QUERY": "SELECT 1 FROM TAP_UPLOAD.t", "UPLOAD": "t,param:t"}, "UPLOAD"),
    ],
)
def test_bad_requests_get_a_votable_error(
    tap_server, params: dict[str, str], fragment: str
) -> None:
    r = httpx.post(tap_server.tap_url + "/sync", data={"LANG": "ADQL", **params}, timeout=60)
    assert r.status_code == 400, r.text
    with pytest.raises(pyvo.dal.DALQueryError) as err:
        pyvo.dal.TAPResults(parse_votable(io.BytesIO(r.content)))
    assert fragment in str(err.value)
    assert "Traceback" not in r.text


def test_vosi_endpoints(tap_server) -> None:
    avail = httpx.get(tap_server.tap_url + "/availability")
    assert avail.status_code == 200 and "<available>true</available>" in avail.text
    service = pyvo.dal.TAPService(tap_server.tap_url)
    assert service.maxrec == 100_000
    assert service.hardlimit == 50_000_000
    assert any("upload-inline" in m.ivo_id for m in service.upload_methods)
    table = httpx.get(tap_server.tap_url + "/tables/dp01_dc2_catalogs.object")
    assert table.status_code == 200 and "psFlux_i" in table.text
    assert httpx.get(tap_server.tap_url + "/tables/nope.nothing").status_code == 404
