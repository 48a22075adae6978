"""Regions and id constraints a query promises, for partition pruning."""

from __future__ import annotations

import pytest

from dpzero.adql import (
    Circle,
    IdConstraint,
    Polygon,
    RaDecRange,
    TableCatalog,
    box_polygon,
    id_constraints,
    parse_adql,
    resolve,
    search_regions,
)
from dpzero.schema import load_schema


@pytest.fixture(scope="module")
def catalog() -> TableCatalog:
    return TableCatalog.from_schema(load_schema("dp01_dc2"), "dp01_dc2_catalogs")


def regions(text: str, catalog: TableCatalog, **kwargs):
    return search_regions(resolve(parse_adql(text), catalog).query, **kwargs)


def test_cone_of_a_dp01_query(catalog: TableCatalog) -> None:
    found = regions(
        "SELECT TOP 10 objectId, ra, dec, mag_i_cModel FROM dp01_dc2_catalogs.object "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62, -37, 0.1)) = 1 "
        "AND extendedness = 0",
        catalog,
    )
    (restriction,) = found.values()
    assert restriction.table == "dp01_dc2_catalogs.object"
    assert (restriction.ra_column, restriction.dec_column) == ("ra", "dec")
    assert restriction.regions == (Circle(62.0, -37.0, 0.1),)


def test_forms_of_the_same_cone(catalog: TableCatalog) -> None:
    expected = (Circle(62.0, -37.0, 0.5),)
    for where in (
        "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62, -37, 0.5))",
        "INTERSECTS(CIRCLE('ICRS', 62, -37, 0.5), POINT('ICRS', ra, dec)) = 1",
        "CONTAINS(POINT(ra, dec), CIRCLE(POINT(62, -37), 0.5)) = 1",
        "CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 1.0 / 2)) = 1",
        "scisql_s2PtInCircle(ra, dec, 62, -37, 0.5) = 1",
        "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 62, -37)) < 0.5",
        "0.5 >= DISTANCE(POINT(62, -37), POINT(ra, dec))",
        "DISTANCE(ra, dec, 62, -37) <= 0.5",
        "scisql_angSep(62, -37, ra, dec) < 0.5",
    ):
        found = regions(f"SELECT ra FROM dp01_dc2_catalogs.object WHERE {where}", catalog)
        assert found["object"].regions == expected, where


def test_polygon_box_and_ranges_intersect(catalog: TableCatalog) -> None:
    found = regions(
        "SELECT p.objectId FROM dp01_dc2_catalogs.position AS p WHERE "
        "CONTAINS(POINT(p.coord_ra, p.coord_dec), POLYGON(60, -40, 65, -40, 62, -35)) = 1 "
        "AND CONTAINS(POINT(p.coord_ra, p.coord_dec), BOX(62, -38, 2, 2)) = 1 "
        "AND p.coord_dec BETWEEN -39 AND -36 AND p.coord_ra > 61",
        catalog,
    )
    restriction = found["p"]
    assert (restriction.ra_column, restriction.dec_column) == ("coord_ra", "coord_dec")
    assert restriction.regions == (
        Polygon(((60.0, -40.0), (65.0, -40.0), (62.0, -35.0))),
        box_polygon(62.0, -38.0, 2.0, 2.0),
        RaDecRange(61.0, 360.0, -39.0, -36.0),
    )


def test_nothing_promised_unless_every_row_must_satisfy_it(catalog: TableCatalog) -> None:
    for where in (
        "CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 1)) = 1 OR ra > 3",
        "CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 1)) = 0",
        "NOT (CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 1)) = 1)",
        "CONTAINS(POINT(ra + 1, dec), CIRCLE(62, -37, 1)) = 1",
        "CONTAINS(POINT(x, y), CIRCLE(62, -37, 1)) = 1",
        "DISTANCE(POINT(ra, dec), POINT(62, -37)) > 0.5",
        "DISTANCE(POINT(ra, dec), POINT(ra, -37)) < 0.5",
    ):
        assert regions(f"SELECT ra FROM dp01_dc2_catalogs.object WHERE {where}", catalog) == {}


def test_each_alias_gets_its_own_regions(catalog: TableCatalog) -> None:
    found = regions(
        "SELECT o.objectId FROM dp01_dc2_catalogs.object AS o "
        "JOIN dp01_dc2_catalogs.truth_match AS t ON o.objectId = t.match_objectId "
        "WHERE CONTAINS(POINT(o.ra, o.dec), CIRCLE(62, -37, 0.2)) = 1 "
        "AND CONTAINS(POINT(t.ra, t.dec), CIRCLE(62.1, -37, 0.3)) = 1 "
        "UNION SELECT objectId FROM dp01_dc2_catalogs.object "
        "WHERE CONTAINS(POINT(ra, dec), CIRCLE(10, 10, 1)) = 1",
        catalog,
    )
    assert found["o"].regions == (Circle(62.0, -37.0, 0.2),)
    assert found["t"].table == "dp01_dc2_catalogs.truth_match"
    assert found["t"].regions == (Circle(62.1, -37.0, 0.3),)
    assert found["object"].regions == (Circle(10.0, 10.0, 1.0),)


def test_subquery_regions_are_found(catalog: TableCatalog) -> None:
    found = regions(
        "SELECT q.objectId FROM (SELECT objectId FROM dp01_dc2_catalogs.object "
        "WHERE CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 0.2)) = 1) AS q",
        catalog,
    )
    assert found["object"].regions == (Circle(62.0, -37.0, 0.2),)


def test_position_columns_restrict_which_regions_count(catalog: TableCatalog) -> None:
    text = (
        "SELECT ra FROM dp01_dc2_catalogs.object "
        "WHERE CONTAINS(POINT(ra, dec), CIRCLE(62, -37, 0.2)) = 1"
    )
    assert regions(text, catalog, position_columns={"dp01_dc2_catalogs.object": ("x", "y")}) == {}
    found = regions(text, catalog, position_columns={"dp01_dc2_catalogs.object": ("ra", "dec")})
    assert found["object"].regions == (Circle(62.0, -37.0, 0.2),)


def test_id_constraints(catalog: TableCatalog) -> None:
    big = 1_251_384_430_297_219_073  # a DP0.1 objectId beyond a float's 53 bits
    query = resolve(
        parse_adql(
            "SELECT o.objectId FROM dp01_dc2_catalogs.object AS o "
            "JOIN dp01_dc2_catalogs.truth_match AS t ON o.objectId = t.match_objectId "
            f"WHERE o.objectId IN ({big}, 2, 3) AND o.objectId <> 5 AND {big} = o.objectId "
            "AND t.id = 'abc'"
        ),
        catalog,
    ).query
    assert id_constraints(query) == [
        IdConstraint("dp01_dc2_catalogs.object", "o", "objectId", frozenset({big}))
    ]
    none = resolve(
        parse_adql("SELECT ra FROM dp01_dc2_catalogs.object WHERE objectId = 1 OR objectId = 2"),
        catalog,
    ).query
    assert id_constraints(none) == []
