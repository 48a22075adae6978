"""The strict ADQL 2.1 check: what it accepts, what it rejects and where it says so."""

from __future__ import annotations

import pytest

from dpzero.adql import AdqlSyntaxError, parse_adql
from dpzero.errors import DpzeroUserError

VALID = [
    # DP0.1-style queries
    "SELECT TOP 10 objectId, ra, dec, mag_i_cModel FROM dp01_dc2_catalogs.object "
    "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62, -37, 0.1)) = 1 "
    "AND extendedness = 0",
    "SELECT COUNT(*) FROM dp01_dc2_catalogs.object WHERE tract = 3830",
    "SELECT obj.objectId, truth.redshift FROM dp01_dc2_catalogs.object AS obj "
    "JOIN dp01_dc2_catalogs.truth_match AS truth ON obj.objectId = truth.match_objectId "
    "WHERE truth.is_good_match = 1",
    "SELECT scisql_nanojanskyToAbMag(psFlux_g) - scisql_nanojanskyToAbMag(psFlux_r) AS gr, "
    "scisql_nanojanskyToAbMagSigma(psFlux_g, psFluxErr_g) FROM dp01_dc2_catalogs.object",
    "SELECT scisql_angSep(ra, dec, 62.0, -37.0) FROM dp01_dc2_catalogs.object",
    "SELECT * FROM dp01_dc2_catalogs.position WHERE coord_ra BETWEEN 60 AND 61",
    # clauses
    "SELECT DISTINCT TOP 5 a, b AS c FROM s.t WHERE a > 1 GROUP BY a, b "
    "HAVING COUNT(*) > 2 ORDER BY 1 DESC, c ASC OFFSET 10",
    "SELECT a FROM t1 UNION ALL SELECT a FROM t2 EXCEPT SELECT a FROM t3 "
    "INTERSECT SELECT a FROM t4 ORDER BY a",
    "(SELECT TOP 3 a FROM t ORDER BY a) UNION (SELECT TOP 3 a FROM t ORDER BY a DESC)",
    "WITH near AS (SELECT id FROM t WHERE d < 1), far AS (SELECT id FROM t) "
    "SELECT * FROM near JOIN far USING (id)",
    "SELECT x FROM t WHERE x IN (SELECT y FROM u) AND EXISTS (SELECT 1 FROM v WHERE v.z = t.x)",
    "SELECT q.n FROM (SELECT COUNT(*) AS n FROM t) AS q",
    "SELECT x FROM (a JOIN b ON a.i = b.i) LEFT OUTER JOIN c USING (i)",
    "SELECT x FROM a NATURAL JOIN b",
    "SELECT x FROM a RIGHT JOIN b ON a.i = b.i FULL OUTER JOIN c ON c.i = b.i",
    # expressions and functions
    "SELECT CASE WHEN m < 20 THEN 'bright' WHEN m < 24 THEN 'mid' ELSE 'faint' END FROM t",
    "SELECT CASE band WHEN 'g' THEN 1 ELSE 0 END FROM t",
    "SELECT CAST(a AS DOUBLE PRECISION), CAST(b AS VARCHAR(10)), CAST(c AS BIGINT) FROM t",
    "SELECT COALESCE(a, b, 0), LOWER(n) || UPPER(m) FROM t WHERE n ILIKE 'ngc%'",
    "SELECT ABS(a), CEILING(a), FLOOR(a), SQRT(a), EXP(a), LOG(a), LOG10(a), MOD(a, 3), "
    "POWER(a, 2), ROUND(a, 2), TRUNCATE(a, 1), PI(), RAND(), DEGREES(a), RADIANS(a), "
    "SIN(a), COS(a), TAN(a), COT(a), ASIN(a), ACOS(a), ATAN(a), ATAN2(a, b) FROM t",
    "SELECT a FROM t WHERE a <> 1 AND a != 2 AND NOT (a < 0 OR a >= 10) AND b IS NOT NULL",
    "SELECT a FROM t WHERE n NOT LIKE 'x%' AND a NOT BETWEEN 1 AND 2 AND a NOT IN (3, 4)",
    "SELECT 1.5e3, .5, 0x1F, -2, 'it''s' FROM t",
    # geometry
    "SELECT POINT('ICRS', ra, dec), CIRCLE(ra, dec, 1), BOX('', 1, 2, 3, 4) FROM t",
    "SELECT AREA(POLYGON('ICRS', 0, 0, 10, 0, 10, 10)), CENTROID(CIRCLE('ICRS', 1, 2, 3)) FROM t",
    "SELECT DISTANCE(POINT('ICRS', a, b), POINT('ICRS', 1, 2)), DISTANCE(a, b, 1, 2) FROM t",
    "SELECT COORD1(POINT(a, b)), COORD2(p), COORDSYS(p) FROM t",
    "SELECT * FROM t WHERE 1 = INTERSECTS(CIRCLE(POINT(1, 2), 3), POLYGON(POINT(0, 0), "
    "POINT(1, 0), POINT(1, 1)))",
    "SELECT * FROM t WHERE CONTAINS(POINT(NULL, ra, dec), CIRCLE(NULL, 1, 2, 3)) = 0",
    # lexical forms
    'SELECT "select", "Mixed Case", "with ""quote""" FROM "my table"',
    "select x -- a comment\nfrom t -- another\n",
    "SELECT a FROM t WHERE s = 'abc'\n  'def'",
    "SELECT * FROM dp01_dc2_catalogs.position",
    "SELECT TAP_UPLOAD.mine.ra FROM TAP_UPLOAD.mine",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_queries_parse(text: str) -> None:
    query = parse_adql(text)
    assert query.text == text
    assert query.tree is not None


# (query, line, column, part of the message)
INVALID = [
    ("SELECT ra,\n dec FORM dp01_dc2_catalogs.object", 2, 6, "expected FROM near 'FORM'"),
    ("SELECT TOP 10 * FROM t LIMIT 10", 1, 24, "no LIMIT"),
    ("SELECT * FROM t ORDER BY a LIMIT 5", 1, 28, "no LIMIT"),
    ("SELECT distance FROM stars", 1, 8, "reserved word"),
    ("SELECT ra FROM t WHERE x == 3", 1, 27, "expected an expression"),
    ("SELECT ra FROM t WHERE name = 'M31' garbage", 1, 37, "near 'garbage'"),
    ("SELECT ra FROM t;", 1, 17, "statement terminator"),
    ("SELECT ra", 1, 10, "at the end of the query"),
    ("SELECT FROM t", 1, 8, "expected"),
    ("SELECT x, FROM y", 1, 11, "expected"),
    ("SELECT _x FROM t", 1, 8, "must start with a letter"),
    ("SELECT x FROM t TOP 10", 1, 17, "near 'TOP'"),
    ("SELECT TOP 10 DISTINCT x FROM t", 1, 15, "DISTINCT must come before TOP"),
    ("SELECT TOP -1 x FROM t", 1, 12, "non-negative integer"),
    ("SELECT TOP 1.5 x FROM t", 1, 12, "non-negative integer"),
    ("SELECT x FROM t OFFSET -10", 1, 24, "non-negative integer"),
    ("SELECT x FROM t WHERE flag", 1, 27, "comparison operator"),
    ("SELECT x FROM t WHERE CONTAINS(POINT(ra, dec), CIRCLE(1, 2, 3))", 1, 64, "comparison"),
    ("SELECT x FROM t WHERE CONTAINS(POINT(ra), CIRCLE(1, 2, 3)) = 1", 1, 32, "POINT"),
    ("SELECT x FROM t WHERE CIRCLE('ICRS', 2, 3) = x", 1, 23, "CIRCLE"),
    ("SELECT POLYGON('ICRS', 1, 2, 3, 4, 5, 6, 7) FROM t", 1, 8, "three vertices"),
    ("SELECT POLYGON(1, 2, 3, 4) FROM t", 1, 8, "three vertices"),
    ("SELECT DISTANCE(1, 2, 3) FROM t", 1, 8, "DISTANCE"),
    ("SELECT AREA(3) FROM t", 1, 13, "geometry value"),
    ("SELECT POINT(1, 2) || 'a' FROM t", 1, 8, "geometry"),
    ("SELECT POINT(1, 2) + 1 FROM t", 1, 8, "geometry"),
    ("SELECT SQRT(a, b) FROM t", 1, 8, "takes 1 argument"),
    ("SELECT ABS() FROM t", 1, 8, "takes 1 argument"),
    ("SELECT COALESCE() FROM t", 1, 8, "at least one"),
    ("SELECT my_function(a) FROM t", 1, 8, "unknown function my_function"),
    ("SELECT ATN2(a, b) FROM t", 1, 8, "did you mean ATAN2"),
    ("SELECT scisql_nanojanskyToAbMag(a, b) FROM t", 1, 8, "takes 1 argument"),
    ("SELECT CAST(a AS FLOAT) FROM t", 1, 18, "CAST cannot convert to FLOAT"),
    ("SELECT CAST(a AS NULL) FROM t", 1, 18, "CAST cannot convert"),
    ("SELECT * FROM (SELECT * FROM t)", 1, 32, "alias"),
    ("SELECT * FROM t1 JOIN t2", 1, 25, "ON or USING"),
    ("SELECT * FROM t1 INNER JOIN t2 WHERE a = 1", 1, 32, "ON or USING"),
    ("SELECT * FROM t WHERE a IN (1, 2,)", 1, 34, "expected an expression"),
    ("SELECT * FROM t WHERE a IN 5", 1, 28, "'('"),
    ("SELECT * FROM t WHERE a IS 3", 1, 28, "NULL"),
    ("SELECT * FROM t WHERE (a > 2", 1, 29, "')'"),
    ("SELECT * FROM t WHERE m < (SELECT AVG(m) FROM t)", 1, 27, "subquery"),
    ("SELECT * FROM (WITH w AS (SELECT 1 FROM t) SELECT * FROM w) AS q", 1, 16, "WITH"),
    ("SELECT * FROM a.b.c.d", 1, 15, "at most 3 parts"),
    ("SELECT a.b.c.d.e FROM t", 1, 8, "at most 4 parts"),
    ("SELECT 'abc FROM t", 1, 8, "unterminated string"),
    ('SELECT "abc FROM t', 1, 8, "unterminated delimited"),
    ('SELECT "" FROM t', 1, 8, "cannot be empty"),
    ("SELECT x FROM t WHERE x % 2 = 0", 1, 25, "unexpected character '%'"),
    ("SELECT x FROM t ORDER BY x NULLS LAST", 1, 28, "near 'NULLS'"),
    ("", 1, 1, "empty"),
    ("-- only a comment", 1, 1, "empty"),
    ("DELETE FROM t", 1, 1, "expected"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), INVALID)
def test_invalid_queries_are_rejected_with_position(
    text: str, line: int, column: int, fragment: str
) -> None:
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql(text)
    error = info.value
    assert (error.line, error.column) == (line, column), error.message
    assert fragment in error.message
    assert error.message.startswith(f"line {line}, column {column}: ")
    assert isinstance(error, DpzeroUserError)
    assert error.code == "adql_syntax"
    assert error.status_code == 400


def test_positions_count_lines_and_columns_from_one() -> None:
    text = "SELECT a,\n       b\n  FROM t\n WHERE a >\n"
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql(text)
    assert (info.value.line, info.value.column) == (5, 1)


def test_reserved_word_after_a_dot_is_a_name() -> None:
    # dp01_dc2_catalogs.position: POSITION is SQL-reserved, but unambiguous there.
    parse_adql("SELECT p.coord_ra FROM dp01_dc2_catalogs.position AS p")
    parse_adql("SELECT position.coord_ra, position.* FROM dp01_dc2_catalogs.position")
    with pytest.raises(AdqlSyntaxError, match="reserved word"):
        parse_adql("SELECT position FROM t")


def test_keywords_are_case_insensitive() -> None:
    query = parse_adql("sElEcT tOp 3 a FrOm t wHeRe a BeTwEeN 1 aNd 2 OrDeR bY a")
    assert "LIMIT 3" in query.adql()


def test_string_literals_across_lines_merge() -> None:
    query = parse_adql("SELECT a FROM t WHERE s = 'ab' -- note\n  'cd' AND b = 'x'")
    assert "'abcd'" in query.adql() and "b = 'x'" in query.adql()
    with pytest.raises(AdqlSyntaxError) as info:
        parse_adql("SELECT 'multi\nline' FROM t WHERE x ==\n 3")
    assert (info.value.line, info.value.column) == (2, 23)


def test_long_and_deep_queries() -> None:
    ids = ", ".join(str(10**15 + i) for i in range(5000))
    parse_adql(f"SELECT objectId FROM t WHERE objectId IN ({ids})")
    parse_adql("SELECT a FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(500)))
    parse_adql("SELECT a FROM t WHERE " + "(" * 30 + "a > 1" + ")" * 30)
    deep = "SELECT a FROM t WHERE " + "(" * 2000 + "a > 1" + ")" * 2000
    with pytest.raises(AdqlSyntaxError, match="nested too deeply"):
        parse_adql(deep)


def test_declared_features_are_accepted() -> None:
    from dpzero.adql import ADQL_FEATURES
    from dpzero.adql._grammar import UDF_ARITY

    udfs = {f.form.split("(")[0].lower() for f in ADQL_FEATURES if f.type.endswith("udf")}
    assert udfs == set(UDF_ARITY)
    geometry = [f.form for f in ADQL_FEATURES if f.type.endswith("adqlgeo")]
    assert len(geometry) == 12
    for form in geometry:
        arguments = {
            "POINT": "1, 2",
            "CIRCLE": "1, 2, 3",
            "BOX": "1, 2, 3, 4",
            "POLYGON": "1, 2, 3, 4, 5, 6",
            "DISTANCE": "POINT(1, 2), POINT(3, 4)",
            "CONTAINS": "POINT(1, 2), CIRCLE(1, 2, 3)",
            "INTERSECTS": "POINT(1, 2), CIRCLE(1, 2, 3)",
        }.get(form, "POINT(1, 2)")
        parse_adql(f"SELECT {form}({arguments}) FROM t")
