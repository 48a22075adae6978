"""Plain selections: one table, a sky region and/or an id list, answered without DuckDB.

Most catalog queries are ``SELECT [TOP n] * | columns FROM one table WHERE <cone or
polygon> [AND objectId IN (...)] [AND other conditions]``. Translating them to DuckDB
SQL, binding that SQL (137 columns for ``SELECT *``) and running it cost more than
reading the few rows they return. `plain_selection` recognises them after the usual
parse and name resolution (so validation and error messages are unchanged) and
describes them as a `Selection`: which rows to read (the same pruning as the DuckDB
path), which exact tests decide them, which columns to return under which names.

The tests are the translated SQL's own arithmetic, done in numpy in the same order of
operations; the only operation numpy does not round like DuckDB is ``pow(x, 2)``, so
rows within a few units in the last place of a limit are "undecided" and go, with
every other condition of the WHERE clause, to DuckDB on a narrow table of just the
columns the conditions read. Rows are therefore exactly those of the DuckDB path.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from dpzero.catalog._store import TableScan

if TYPE_CHECKING:
    from sqlglot import exp

    from dpzero.adql import AdqlQuery, Circle, TableCatalog
    from dpzero.adql import Polygon as AdqlPolygon
    from dpzero.catalog._store import CatalogStore, QueryPlan

__all__ = [
    "ConeTest",
    "ConvexPolygonTest",
    "InTest",
    "RowTest",
    "Selection",
    "cone_test",
    "plain_selection",
    "polygon_test",
]

#: Column of the narrow table that carries each row's position in its chunk.
ROW_COLUMN = "__dpzero_row"
_FLOAT_TYPES = {"float", "double"}
_INTEGER_TYPES = {"long", "int", "short", "byte"}
# Query parts a plain selection may have (sqlglot's argument names of a Select).
_PLAIN_ARGS = {"expressions", "from_", "where", "limit"}
# Relative width of the band around a limit inside which numpy's rounding may differ
# from DuckDB's (pow(x, 2) against x * x: one unit in the last place of a term).
_BAND = 1e-12
_INTEGER_TEXT = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ConeTest:
    """The SQL ``dec BETWEEN low AND high AND adql_hav(ra, dec, ra0, dec0) <= limit``."""

    ra_column: str
    dec_column: str
    ra0: float
    dec0: float
    low: float
    high: float
    limit: float

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the test reads."""
        return (self.ra_column, self.dec_column)

    @functools.cached_property
    def _constants(self) -> np.ndarray:
        """The constants of the test's row by row decision (`cone_decide`).

        A row outside the Dec band is out. Then, without trigonometry: sin(x)^2 <= x^2
        and cos(dec) <= cos(smallest |dec| of the band) bound the haversine from above,
        so rows whose bound lies well under the limit are inside (most rows of a wide
        cone); from below, x^2 (1 - x^2/3) <= sin(x)^2 for every x and the band's
        farthest |dec| bounds cos(dec), so most rows a wide cone reads outside it never
        reach the trigonometry. The rest get the haversine, ``adql_hav(ra1, dec1,
        ra2, dec2)`` with the row first as the translation calls it; rows within
        `_BAND` of the limit are undecided. Bounds in degrees squared.
        """
        scale = (math.pi / 360.0) ** 2
        straddles = self.low <= 0.0 <= self.high
        nearest = 0.0 if straddles else min(abs(self.low), abs(self.high))
        cos0 = math.cos(math.radians(self.dec0))
        far = math.cos(math.radians(max(abs(self.low), abs(self.high)))) * cos0
        return np.array(
            [
                self.ra0,
                self.dec0,
                self.low,
                self.high,
                self.limit,
                _BAND * self.limit + 1e-300,
                math.cos(math.radians(nearest)) * cos0,
                self.limit * (1.0 - 1e-9) / scale,
                far,
                self.limit * (1.0 + 1e-9),
                cos0,
            ]
        )

    def decide(self, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(surely true, undecided) masks of the rows (one compiled pass over them)."""
        from dpzero.catalog._kernels import cone_decide

        ra, dec = (_float_view(values[c]) for c in (self.ra_column, self.dec_column))
        sure = np.empty(dec.shape, dtype=bool)
        undecided = np.empty(dec.shape, dtype=bool)
        cone_decide(ra, dec, self._constants, sure, undecided)
        return sure, undecided


@dataclass(frozen=True)
class ConvexPolygonTest:
    """The SQL ``dec BETWEEN low AND high AND n . (x, y, z) >= 0`` for every edge normal."""

    ra_column: str
    dec_column: str
    low: float
    high: float
    normals: tuple[tuple[float, float, float], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the test reads."""
        return (self.ra_column, self.dec_column)

    def decide(self, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(surely true, undecided) masks of the rows."""
        ra, dec = values[self.ra_column], values[self.dec_column]
        cos_dec = np.cos(np.radians(dec))
        x = cos_dec * np.cos(np.radians(ra))
        y = cos_dec * np.sin(np.radians(ra))
        z = np.sin(np.radians(dec))
        sure = (dec >= self.low) & (dec <= self.high)
        undecided = np.zeros(sure.shape, dtype=bool)
        for n0, n1, n2 in self.normals:
            side = n0 * x + n1 * y + n2 * z
            close = np.abs(side) <= _BAND
            undecided |= close
            sure &= side >= 0
        undecided &= (dec >= self.low) & (dec <= self.high)
        return sure & ~undecided, undecided


@dataclass(frozen=True)
class InTest:
    """``column IN (values)`` on an integer column (exact)."""

    column: str
    values: tuple[int, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the test reads."""
        return (self.column,)

    def decide(self, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(surely true, undecided) masks of the rows."""
        column = values[self.column]
        sure = np.isin(column, np.asarray(self.values, dtype=np.int64))
        return sure, np.zeros(sure.shape, dtype=bool)


RowTest = ConeTest | ConvexPolygonTest | InTest


def _float_view(values: np.ndarray) -> np.ndarray:
    """``values`` as contiguous float64, read-only (a view where they are already so):
    the compiled tests then have one machine-code version whatever the column's source."""
    view = np.ascontiguousarray(values, dtype=np.float64).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Selection:
    """A plain selection on one table, answerable by reading and filtering rows.

    Attributes
    ----------
    scan
        The table and the pruning of its rows (region, ids), as the DuckDB path has it.
    outputs
        ``(result name, stored column, NaN reads as NULL)`` in result order.
    tests
        Conditions of the WHERE clause decided in numpy; a row must pass all.
    residual
        Whether the WHERE clause has other conditions (decided by `where_sql`).
    where_columns
        Stored columns the WHERE clause reads.
    top
        The query's TOP, or None.
    where_sql
        Builds the DuckDB query returning the `ROW_COLUMN` of the rows of table
        ``__narrow`` that satisfy the whole WHERE clause (built once, when needed).
    general_plan
        Builds the same query as a DuckDB plan (for stores that cannot read rows).
    """

    scan: TableScan
    outputs: tuple[tuple[str, str, bool], ...]
    tests: tuple[RowTest, ...]
    residual: bool
    where_columns: tuple[str, ...]
    top: int | None
    where_sql: Callable[[], str] = field(compare=False, repr=False)
    general_plan: Callable[[], QueryPlan] = field(compare=False, repr=False)

    def limit(self, limit: int | None) -> int | None:
        """The most rows to return, given the caller's ``limit`` as well."""
        limits = [v for v in (self.top, limit) if v is not None]
        return min(limits) if limits else None


def _integer(node: exp.Expression) -> int | None:
    from sqlglot import exp

    if isinstance(node, exp.Neg):
        inner = _integer(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string and _INTEGER_TEXT.match(node.this):
        value = int(node.this)
        return value if -(2**63) <= value < 2**63 else None
    return None


def _column_info(node: exp.Expression, alias: str) -> object | None:
    """The catalog column a resolved column node of ``alias`` names, else None."""
    from sqlglot import exp

    from dpzero.adql._names import COLUMN_META

    if not isinstance(node, exp.Column) or node.table != alias:
        return None
    return node.meta.get(COLUMN_META)


def _region_test(
    term: exp.Expression, alias: str, ra_column: str, dec_column: str
) -> RowTest | None:
    """The numpy test of ``CONTAINS(POINT(ra, dec), <constant circle or polygon>) = 1``."""
    from sqlglot import exp

    from dpzero.adql._translate import _constant, _Translator

    if not isinstance(term, exp.EQ):
        return None
    for call, one in ((term.this, term.expression), (term.expression, term.this)):
        if (
            isinstance(call, exp.Anonymous)
            and call.name.upper() == "CONTAINS"
            and len(call.expressions) == 2
            and _constant(one) == 1.0
        ):
            break
    else:
        return None
    translator = _Translator(nan_as_null=True, resolved=True)
    point, shape = (translator.geometry(a) for a in call.expressions)
    if point.kind != "point" or len(point.params) != 2:
        return None
    ra, dec = (_column_info(p, alias) for p in point.params)
    if ra is None or dec is None or (ra.name, dec.name) != (ra_column, dec_column):  # type: ignore[attr-defined]
        return None
    if shape.kind == "circle":
        circle = shape.circle()
        return None if circle is None else cone_test(ra_column, dec_column, circle)
    if shape.kind == "polygon" and shape.polygon is not None:
        return polygon_test(ra_column, dec_column, shape.polygon)
    return None


def polygon_test(ra_column: str, dec_column: str, polygon: AdqlPolygon) -> ConvexPolygonTest | None:
    """The numpy test of a point in a constant polygon (None unless it is convex)."""
    if not polygon.is_convex:
        return None
    low, high = polygon.dec_range()
    normals = tuple((float(n[0]), float(n[1]), float(n[2])) for n in polygon.edge_normals)
    return ConvexPolygonTest(ra_column, dec_column, low, high, normals)


def cone_test(ra_column: str, dec_column: str, circle: Circle) -> ConeTest | None:
    """The numpy test of a point in a constant circle (None for a radius of 180° or
    more: the translation then only asks for a position)."""
    if circle.radius >= 180:
        return None
    low, high = circle.dec_range()
    # The translation's own constants (see `_Translator.point_in_circle`).
    limit = math.sin(math.radians(circle.radius) / 2) ** 2
    return ConeTest(ra_column, dec_column, circle.ra, circle.dec, low, high, limit)


def _in_test(term: exp.Expression, alias: str) -> InTest | None:
    """The test of ``column IN (integers)`` or ``column = integer`` on an integer column."""
    from sqlglot import exp

    pairs: list[tuple[exp.Expression, list[exp.Expression]]] = []
    if isinstance(term, exp.In) and not term.args.get("query") and not term.args.get("unnest"):
        pairs = [(term.this, list(term.expressions))]
    elif isinstance(term, exp.EQ):
        pairs = [(term.this, [term.expression]), (term.expression, [term.this])]
    for column, constants in pairs:
        info = _column_info(column, alias)
        if info is None or info.datatype not in _INTEGER_TYPES:  # type: ignore[attr-defined]
            continue
        values = [_integer(c) for c in constants]
        if values and all(v is not None for v in values):
            return InTest(info.name, tuple(sorted(set(values))))  # type: ignore[attr-defined,arg-type]
    return None


def _has_subquery(node: exp.Expression | None) -> bool:
    from sqlglot import exp

    return node is not None and next(node.find_all(exp.Select, exp.Subquery), None) is not None


def plain_selection(
    store: CatalogStore,
    query: AdqlQuery,
    catalog: TableCatalog,
    inline: Mapping[str, pa.Table],
    general_plan: Callable[[], QueryPlan],
) -> Selection | None:
    """``query`` as a `Selection`, or None when it is not a plain selection.

    Parameters
    ----------
    store
        The store the query reads.
    query
        The parsed query.
    catalog
        Its name resolution catalog (the store's tables and the in-memory ones).
    inline
        In-memory tables by qualified name (a query reading one is not plain).
    general_plan
        Builds the query's DuckDB plan (kept in the selection for other backends).

    Raises
    ------
    dpzero.adql.AdqlError
        If the query names unknown tables or columns (as `resolve` does).
    """
    from sqlglot import exp

    from dpzero.adql import (
        AdqlQuery,
        ResolvedQuery,
        conjuncts,
        id_constraints,
        resolve,
        search_regions,
    )
    from dpzero.catalog._adql import _alias_scan

    tree = query.tree
    if not isinstance(tree, exp.Select):
        return None
    if any(value for key, value in tree.args.items() if key not in _PLAIN_ARGS):
        return None
    source = tree.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    if any(source.this.args.get(k) for k in ("joins", "laterals", "pivots")):
        return None
    where = tree.args.get("where")
    if _has_subquery(where):
        return None
    items = tree.expressions
    star = len(items) == 1 and isinstance(items[0], exp.Star)
    if not star and not all(
        (isinstance(e, exp.Column) and isinstance(e.this, exp.Identifier))
        or (isinstance(e, exp.Alias) and isinstance(e.this, exp.Column)
        and isinstance(e.this.this, exp.Identifier))
        for e in items
    ):  # fmt: skip
        return None
    top = None
    limit = tree.args.get("limit")
    if limit is not None:
        top = _integer(limit.expression) if isinstance(limit, exp.Limit) else None
        if top is None or top < 0:
            return None
    if star:
        # Resolve the FROM and WHERE only: `*` of one table cannot fail to resolve, and
        # expanding it into 137 column nodes costs more than the rest of the query.
        # (resolve works on a copy: the parsed tree gets its select list back.)
        items, limit = tree.args["expressions"], tree.args.get("limit")
        tree.set("expressions", [])
        tree.set("limit", None)
        try:
            resolved = resolve(query, catalog)
        finally:
            tree.set("expressions", items)
            tree.set("limit", limit)
    else:
        resolved = resolve(query, catalog)
    if len(resolved.tables) != 1:
        return None
    name = resolved.tables[0]
    if name.lower() in {k.lower() for k in inline}:
        return None
    db, _, table = name.partition(".")
    meta = store.table_metadata(db, table)
    rtree = resolved.query.tree
    alias = rtree.args["from_"].this.alias_or_name
    if star:
        outputs = tuple((c.name, c.name, c.datatype in _FLOAT_TYPES) for c in meta.columns)
    else:
        found = []
        for item in rtree.expressions:
            column = item.this if isinstance(item, exp.Alias) else item
            info = _column_info(column, alias)
            if info is None:
                return None
            out = item.alias if isinstance(item, exp.Alias) else info.name  # type: ignore[attr-defined]
            found.append((out, info.name, info.datatype in _FLOAT_TYPES))  # type: ignore[attr-defined]
        outputs = tuple(found)
    if len({o[0].lower() for o in outputs}) != len(outputs):
        return None  # DuckDB would rename repeated names: leave those to it
    tests: list[RowTest] = []
    residual = False
    rwhere = rtree.args.get("where")
    for term in conjuncts(rwhere):
        test = _region_test(term, alias, meta.ra_column, meta.dec_column) or _in_test(term, alias)
        if test is None:
            residual = True
        else:
            tests.append(test)
    where_columns = tuple(
        sorted({info.name for c in (rwhere.find_all(exp.Column) if rwhere else ())
                if (info := _column_info(c, alias)) is not None})  # type: ignore[attr-defined]
    )  # fmt: skip
    positions = {name: (meta.ra_column, meta.dec_column)}
    regions = search_regions(resolved.query, positions)
    ids = {c.alias: c for c in id_constraints(resolved.query)}
    scan = _alias_scan(name, alias, regions, ids, meta.key_column)
    if scan is None:
        return None  # a scan of the whole table: DuckDB reads it in parallel

    def where_sql() -> str:
        from dpzero.adql import to_duckdb

        narrow = exp.Select(
            expressions=[exp.column(ROW_COLUMN, table=alias, quoted=True)],
        )
        narrow.set("from_", rtree.args["from_"].copy())
        if rwhere is not None:
            narrow.set("where", rwhere.copy())
        small = ResolvedQuery(AdqlQuery(query.text, narrow), resolved.tables, ())
        return to_duckdb(small, table_names={name: "__narrow"})

    if residual:
        # Translate now: a condition DuckDB cannot run fails here, as on the DuckDB path.
        sql = where_sql()

        def where_sql() -> str:
            return sql

    return Selection(
        scan=replace_columns(scan, outputs, where_columns),
        outputs=outputs,
        tests=tuple(tests),
        residual=residual,
        where_columns=where_columns,
        top=top,
        where_sql=where_sql,
        general_plan=general_plan,
    )


def replace_columns(
    scan: TableScan, outputs: tuple[tuple[str, str, bool], ...], where: tuple[str, ...]
) -> TableScan:
    """The scan reading only the columns the selection returns or tests."""
    from dataclasses import replace

    return replace(scan, columns=tuple(sorted({o[1] for o in outputs} | set(where))))
