"""The IVOA ADQL validation queries (ivoa/lyonetia), when a copy is on disk.

Point ``DPZERO_ADQL_COLLECTION`` at the collection's ``src/adql`` folder (XML files
of queries labelled valid or invalid). The files are not part of dpzero.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dpzero.adql import AdqlSyntaxError
from dpzero.adql._grammar import UDF_ARITY, check_grammar

# Where dpzero deliberately differs from a label, and why.
DISAGREEMENTS = {
    # a join without ON/USING: the IVOA set itself rejects "t1 INNER JOIN t2"
    "select x from t1 JOIN t2",
    "select x from t1 LEFT OUTER JOIN t2",
    "select x from t1 RIGHT OUTER JOIN t2",
    "select x from t1 FULL OUTER JOIN t2",
    "select x from t1 INNER JOIN (t2 JOIN t3)",
    "select x from (t1 JOIN t4) FULL OUTER JOIN (t2 JOIN t3)",
    'select "abc-g".* from "abc-g" JOIN "select"',
    "SELECT * FROM spatial JOIN spatial2 WHERE dist<2",
    "select * from (select * from a,b, (select * from c,d) as q) as r "
    "join (select * from x,y) as p",
    "select * from (select * from urks.a,b, (select * from c,monk.d) as q) as r "
    "join (select * from x,y) as p",
    "select x from ( t1 JOIN t4 ) FULL OUTER JOIN ( t2 JOIN t3 )",
    "select * from ( select * from urks.a, b, ( select * from c, monk.d ) as q ) as r "
    "join ( select * from x, y ) as p",
    # "warts": literals where the grammar wants a geometry or a coordinate
    "select x from y where CENTROID(3)=x",
    "select x from y where CENTROID(COUNT(*))=x",
    "SELECT * FROM y WHERE 1=CONTAINS(POINT('ICRS',x,'sy') ,CIRCLE('ICRS',x,y,z))",
}
# User-defined functions the collection's services declare.
UDFS = {
    **UDF_ARITY,
    **{
        name: (0, 10)
        for name in (
            "ivo_foo",
            "ivo_getstring",
            "ivo_healpix_index",
            "eso_dateadd_sec",
            "eso_intersection",
        )
    },
}


def load(folder: Path) -> list[tuple[str, str, bool]]:
    queries = []
    for path in sorted(folder.glob("*/*.xml")):
        for query in ET.parse(path).getroot().iter("query"):
            for adql in query.iter("adql"):
                text = adql.text or ""
                queries.append((path.name, text, adql.get("valid") == "true"))
    return queries


@pytest.mark.slow
def test_ivoa_validation_collection() -> None:
    folder = os.environ.get("DPZERO_ADQL_COLLECTION")
    if not folder or not Path(folder).is_dir():
        pytest.skip("DPZERO_ADQL_COLLECTION does not name the collection's src/adql folder")
    wrong = []
    queries = load(Path(folder))
    for name, text, valid in queries:
        try:
            check_grammar(text, UDFS)
            accepted = True
        except AdqlSyntaxError:
            accepted = False
        if accepted != valid and " ".join(text.split()) not in DISAGREEMENTS:
            wrong.append((name, " ".join(text.split())[:120], valid))
    assert len(queries) > 400
    assert wrong == []
