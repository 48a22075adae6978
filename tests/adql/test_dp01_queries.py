"""DP0.1-style queries, end to end on DuckDB tables with the real DP0.1 schema."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import angular_separation

from dpzero.adql import (
    TableCatalog,
    id_constraints,
    parse_adql,
    register_adql_functions,
    resolve,
    search_regions,
    to_duckdb,
)
from dpzero.schema import load_schema

ROWS = 400
POSITION_COLUMNS = {"ra": "ra", "dec": "dec", "coord_ra": "ra", "coord_dec": "dec"}


def fake_column(name: str, kind: pa.DataType, rng: np.random.Generator, sky) -> pa.Array:
    if name in POSITION_COLUMNS:
        return pa.array(sky[POSITION_COLUMNS[name]])
    if name in ("objectId", "match_objectId", "id"):
        values = np.arange(ROWS, dtype=np.int64) + 10**15
        return pa.array(values.astype(str) if pa.types.is_string(kind) else values, kind)
    if pa.types.is_floating(kind):
        values = rng.uniform(16, 28, ROWS)
        values[::9] = np.nan
        return pa.array(values, kind)
    if pa.types.is_integer(kind):
        return pa.array(rng.integers(0, 3, ROWS), kind)
    if pa.types.is_boolean(kind):
        return pa.array(rng.random(ROWS) < 0.5)
    if pa.types.is_string(kind):
        return pa.array([f"{i % 7},{i % 5}" for i in range(ROWS)])
    return pa.nulls(ROWS, kind)


@pytest.fixture(scope="module")
def dp01() -> tuple[duckdb.DuckDBPyConnection, TableCatalog, dict]:
    schema = load_schema("dp01_dc2")
    rng = np.random.default_rng(11)
    sky = {"ra": rng.uniform(61.0, 63.0, ROWS), "dec": rng.uniform(-38.0, -36.0, ROWS)}
    con = duckdb.connect()
    register_adql_functions(con)
    con.execute("CREATE SCHEMA dp01_dc2_catalogs")
    for table in schema.tables:
        arrow_schema = table.arrow_schema()
        data = pa.table(
            [fake_column(f.name, f.type, rng, sky) for f in arrow_schema], schema=arrow_schema
        )
        con.register("incoming", data)
        con.execute(f'CREATE TABLE dp01_dc2_catalogs."{table.name}" AS SELECT * FROM incoming')
        con.unregister("incoming")
    return con, TableCatalog.from_schema(schema, "dp01_dc2_catalogs"), sky


def run(dp01, text: str) -> tuple[list[tuple], list[str]]:
    con, catalog, _ = dp01
    resolved = resolve(parse_adql(text), catalog)
    relation = con.sql(to_duckdb(resolved))
    assert relation.columns == [c.name for c in resolved.columns]
    return relation.fetchall(), relation.columns


def test_cone_on_object_with_a_tag_and_star(dp01) -> None:
    rows, columns = run(
        dp01,
        "SELECT 'run-7', 'cone-object', *\nFROM dp01_dc2_catalogs.object\n"
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62.0, -37.0, 0.3))=1",
    )
    sky = dp01[2]
    separation = np.degrees(
        angular_separation(
            np.radians(sky["ra"]), np.radians(sky["dec"]), np.radians(62.0), np.radians(-37.0)
        )
    )
    assert len(rows) == int((separation <= 0.3).sum()) > 5
    assert columns[:4] == ["col1", "col2", "objectId", "parentObjectId"]
    assert len(columns) == 2 + len(load_schema("dp01_dc2").table("object").columns)
    assert {r[0] for r in rows} == {"run-7"}


def test_cone_on_position_table(dp01) -> None:
    text = (
        "SELECT TOP 5 objectId, coord_ra, coord_dec FROM dp01_dc2_catalogs.position "
        "WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', 62, -37, 0.5)) = 1 "
        "ORDER BY objectId"
    )
    rows, columns = run(dp01, text)
    assert columns == ["objectId", "coord_ra", "coord_dec"]
    assert len(rows) == 5
    regions = search_regions(resolve(parse_adql(text), dp01[1]).query)
    assert regions["position"].ra_column == "coord_ra"


def test_magnitude_histogram_of_matched_stars(dp01) -> None:
    rows, columns = run(
        dp01,
        "SELECT COUNT(*), FLOOR(object.mag_r) as BIN\n"
        "FROM dp01_dc2_catalogs.object AS object\n"
        "JOIN dp01_dc2_catalogs.truth_match AS truth ON object.objectId = truth.match_objectId\n"
        "WHERE is_good_match = 1 AND truth_type = 2 AND object.mag_r IS NOT NULL\n"
        "AND extendedness = 0\nGROUP BY BIN\nORDER BY BIN",
    )
    assert columns == ["count", "BIN"]
    bins = [r[1] for r in rows]
    assert bins == sorted(bins) and all(b is not None for b in bins)


def test_object_by_ids_and_reference_join(dp01) -> None:
    ids = [10**15 + 3, 10**15 + 17, 10**15 + 250]
    text = (
        "SELECT 'q', *\nFROM dp01_dc2_catalogs.object\n"
        f"WHERE objectId IN ({', '.join(map(str, ids))})"
    )
    rows, _ = run(dp01, text)
    assert sorted(r[1] for r in rows) == ids
    (constraint,) = id_constraints(resolve(parse_adql(text), dp01[1]).query)
    assert constraint.values == frozenset(ids)
    rows, _ = run(
        dp01,
        "SELECT o.objectId, r.coord_ra FROM dp01_dc2_catalogs.object AS o\n"
        "JOIN dp01_dc2_catalogs.reference AS r ON o.objectId = r.objectId\n"
        f"WHERE o.objectId = {ids[0]}",
    )
    assert [r[0] for r in rows] == [ids[0]]


def test_photometry_functions_on_forced_photometry(dp01) -> None:
    rows, columns = run(
        dp01,
        "SELECT TOP 10 objectId, scisql_nanojanskyToAbMag(r_base_PsfFlux_instFlux * 57.54) AS m, "
        "scisql_angSep(coord_ra, coord_dec, 62, -37) AS sep "
        "FROM dp01_dc2_catalogs.forced_photometry WHERE r_base_PsfFlux_instFlux > 20 "
        "ORDER BY sep",
    )
    assert columns == ["objectId", "m", "sep"]
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    assert all(r[1] is not None for r in rows)
