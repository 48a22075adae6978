"""Name resolution against the DP0.1 catalog: canonical names, suggestions, scopes."""

from __future__ import annotations

import pytest

from dpzero.adql import (
    AdqlNameError,
    ColumnInfo,
    TableCatalog,
    parse_adql,
    resolve,
)
from dpzero.schema import load_schema


@pytest.fixture(scope="module")
def catalog() -> TableCatalog:
    dp01 = TableCatalog.from_schema(load_schema("dp01_dc2"), "dp01_dc2_catalogs")
    uploads = TableCatalog.from_columns(
        {"TAP_UPLOAD.mine": ["id", ColumnInfo("ra", "double", "deg"), "dec"]}
    )
    return dp01.merged(uploads)


def names(text: str, catalog: TableCatalog) -> list[str]:
    return [c.name for c in resolve(parse_adql(text), catalog).columns]


def test_dp01_query_resolves_to_canonical_names(catalog: TableCatalog) -> None:
    resolved = resolve(
        parse_adql(
            "SELECT TOP 10 objectid, RA, Dec, MAG_I_CMODEL FROM DP01_DC2_CATALOGS.OBJECT "
            "WHERE extendedness = 0"
        ),
        catalog,
    )
    assert resolved.tables == ("dp01_dc2_catalogs.object",)
    assert [c.name for c in resolved.columns] == ["objectId", "ra", "dec", "mag_i_cModel"]
    assert resolved.columns[1].source == ColumnInfo("ra", "double", "deg")
    assert resolved.columns[1].table == "dp01_dc2_catalogs.object"
    sql = resolved.query.adql()
    assert '"object"."objectId"' in sql
    assert 'AS "object"' in sql
    assert '"object"."extendedness" = 0' in sql


def test_star_expands_to_every_column_in_schema_order(catalog: TableCatalog) -> None:
    columns = names("SELECT * FROM dp01_dc2_catalogs.truth_match", catalog)
    schema = load_schema("dp01_dc2").table("truth_match")
    assert columns == [c.name for c in schema.columns]
    mixed = names(
        "SELECT m.*, o.tract FROM TAP_UPLOAD.mine AS m, dp01_dc2_catalogs.object o", catalog
    )
    assert mixed == ["id", "ra", "dec", "tract"]


def test_unknown_table_names_closest(catalog: TableCatalog) -> None:
    with pytest.raises(AdqlNameError) as info:
        resolve(parse_adql("SELECT ra FROM dp01_dc2_catalogs.objects"), catalog)
    assert info.value.name == "dp01_dc2_catalogs.objects"
    assert (info.value.line, info.value.column) == (1, 16)
    assert info.value.message.startswith("line 1, column 16: table dp01_dc2_catalogs.objects")
    assert info.value.suggestions[0] == "dp01_dc2_catalogs.object"
    assert "did you mean dp01_dc2_catalogs.object" in info.value.message
    assert info.value.code == "adql_name"


def test_unqualified_table_suggests_the_schema(catalog: TableCatalog) -> None:
    with pytest.raises(AdqlNameError, match=r"table object not found.*dp01_dc2_catalogs\.object"):
        resolve(parse_adql("SELECT ra FROM object"), catalog)


def test_unknown_column_names_closest(catalog: TableCatalog) -> None:
    with pytest.raises(AdqlNameError) as info:
        resolve(parse_adql("SELECT ra,\n  mag_i_cmodle FROM dp01_dc2_catalogs.object"), catalog)
    assert info.value.suggestions[0] == "mag_i_cModel"
    assert (info.value.line, info.value.column) == (2, 3)
    assert "column mag_i_cmodle not found in dp01_dc2_catalogs.object" in info.value.message


def test_delimited_identifiers_are_case_sensitive(catalog: TableCatalog) -> None:
    assert names('SELECT "objectId" FROM dp01_dc2_catalogs.object', catalog) == ["objectId"]
    with pytest.raises(AdqlNameError, match='case-sensitive: write "objectId"'):
        resolve(parse_adql('SELECT "objectid" FROM dp01_dc2_catalogs.object'), catalog)


def test_double_quoted_string_gets_a_hint(catalog: TableCatalog) -> None:
    with pytest.raises(AdqlNameError, match="single quotes"):
        resolve(parse_adql('SELECT ra FROM dp01_dc2_catalogs.object WHERE patch = "1,2"'), catalog)


def test_ambiguous_column_must_be_qualified(catalog: TableCatalog) -> None:
    text = (
        "SELECT ra FROM dp01_dc2_catalogs.object AS o "
        "JOIN dp01_dc2_catalogs.truth_match AS t ON o.objectId = t.match_objectId"
    )
    with pytest.raises(AdqlNameError, match="ambiguous"):
        resolve(parse_adql(text), catalog)
    assert names(text.replace("SELECT ra", "SELECT o.ra, t.ra"), catalog) == ["ra", "ra"]


def test_unknown_alias(catalog: TableCatalog) -> None:
    with pytest.raises(AdqlNameError, match=r"table or alias q .*not in the FROM clause"):
        resolve(parse_adql("SELECT q.ra FROM dp01_dc2_catalogs.object AS o"), catalog)


def test_qualified_by_table_name_without_alias(catalog: TableCatalog) -> None:
    text = "SELECT object.ra, dp01_dc2_catalogs.object.dec FROM dp01_dc2_catalogs.object"
    assert names(text, catalog) == ["ra", "dec"]


def test_subquery_cte_and_correlation_scopes(catalog: TableCatalog) -> None:
    assert names(
        "SELECT x.n, x.t FROM (SELECT COUNT(*) AS n, tract AS t "
        "FROM dp01_dc2_catalogs.object GROUP BY tract) AS x ORDER BY n",
        catalog,
    ) == ["n", "t"]
    assert names(
        "WITH b AS (SELECT objectId, ra FROM dp01_dc2_catalogs.object) SELECT b.ra FROM b",
        catalog,
    ) == ["ra"]
    assert names(
        "SELECT o.ra FROM dp01_dc2_catalogs.object AS o WHERE EXISTS "
        "(SELECT 1 FROM dp01_dc2_catalogs.truth_match AS t WHERE t.match_objectId = o.objectId)",
        catalog,
    ) == ["ra"]
    with pytest.raises(AdqlNameError, match="column dec not found in x"):
        resolve(
            parse_adql("SELECT x.dec FROM (SELECT ra FROM dp01_dc2_catalogs.object) AS x"),
            catalog,
        )


def test_select_alias_usable_in_order_and_group(catalog: TableCatalog) -> None:
    assert names(
        "SELECT COUNT(*) AS n, ROUND(ra) AS band FROM dp01_dc2_catalogs.object "
        "GROUP BY band ORDER BY n",
        catalog,
    ) == ["n", "band"]


def test_uploads_and_every_table_aliased_once(catalog: TableCatalog) -> None:
    resolved = resolve(
        parse_adql(
            "SELECT o.objectId FROM dp01_dc2_catalogs.object o JOIN TAP_UPLOAD.mine m "
            "ON o.objectId = m.id UNION SELECT objectId FROM dp01_dc2_catalogs.object"
        ),
        catalog,
    )
    assert resolved.tables == ("dp01_dc2_catalogs.object", "TAP_UPLOAD.mine")
    sql = resolved.query.adql()
    assert 'AS "o"' in sql and 'AS "m"' in sql and 'AS "object"' in sql


def test_original_query_is_not_modified(catalog: TableCatalog) -> None:
    query = parse_adql("SELECT * FROM dp01_dc2_catalogs.position")
    before = query.adql()
    resolve(query, catalog)
    assert query.adql() == before


def test_join_columns_of_using_and_natural_joins_are_not_ambiguous() -> None:
    catalog = TableCatalog.from_columns({"s.a": ["x", "y"], "s.b": ["x", "z"]})
    for join in ("JOIN s.b USING (x)", "NATURAL JOIN s.b"):
        resolved = resolve(parse_adql(f"SELECT x, y, z FROM s.a {join}"), catalog)
        assert [c.name for c in resolved.columns] == ["x", "y", "z"]
    with pytest.raises(AdqlNameError, match="ambiguous"):
        resolve(parse_adql("SELECT x FROM s.a JOIN s.b ON a.y = b.z"), catalog)
