"""Translation of a checked ADQL query into DuckDB SQL.

ADQL functions become DuckDB functions or the macros `register_adql_functions`
defines; TOP becomes LIMIT; geometry becomes exact spherical tests on the
coordinates (haversine for circles, half-spaces of great circles for convex polygons,
a gnomonic crossing-number test for other polygons), each behind a declination
prefilter the engine can use.

NaN: catalogs mark missing floating-point values with NaN, while ADQL users (and
VOTable, where a float NULL *is* NaN) expect SQL NULL semantics: ``mag > 25`` must
not return rows without a magnitude, and AVG must skip them. DuckDB orders NaN above
every number instead (and with the optimizer on, 2.0.1 even mis-compares NaN against
constants above a column's maximum statistic). So by default every floating-point
catalog column is read as ``NULLIF(col, 'NaN')``: NaN behaves exactly like NULL
everywhere in the query. One exception keeps scans fast (DuckDB pushes a plain
``col < 24`` into its Parquet reader, not a NULLIF): a column compared with a finite
number in a condition WHERE requires to be true (`_false_for_nan`), where NaN, above
every number, fails the test as NULL would.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from dpzero.adql._errors import AdqlUnsupportedError
from dpzero.adql._geometry import (
    AdqlGeometryError,
    Circle,
    Polygon,
    Region,
    angular_separation,
    box_polygon,
    parse_stcs,
    region_contains,
    regions_intersect,
    relate,
)
from dpzero.adql._names import COLUMN_META, ColumnInfo, ResolvedQuery
from dpzero.adql._parse import AdqlQuery

__all__ = ["register_adql_functions", "to_duckdb"]

_FLOAT_TYPES = {"float", "double"}
_CONSTRUCTORS = {"POINT", "CIRCLE", "BOX", "POLYGON", "CENTROID"}
_TAKES_GEOMETRY = {
    "CONTAINS",
    "INTERSECTS",
    "DISTANCE",
    "AREA",
    "COORD1",
    "COORD2",
    "CENTROID",
    "COORDSYS",
    "CIRCLE",
    "BOX",
    "POLYGON",
}
_ICRS_NAMES = {"", "ICRS", "J2000"}

#: DuckDB macros the translated SQL calls. Angles in degrees.
MACROS: dict[str, str] = {
    "adql_hav(ra1, dec1, ra2, dec2)": (
        "pow(sin(radians(dec2 - dec1) / 2), 2)"
        " + cos(radians(dec1)) * cos(radians(dec2)) * pow(sin(radians(ra2 - ra1) / 2), 2)"
    ),
    "adql_angdist(ra1, dec1, ra2, dec2)": (
        "degrees(2 * atan2(sqrt(adql_hav(ra1, dec1, ra2, dec2)),"
        " sqrt(greatest(0.0, 1 - adql_hav(ra1, dec1, ra2, dec2)))))"
    ),
    "adql_x(ra, dec)": "cos(radians(dec)) * cos(radians(ra))",
    "adql_y(ra, dec)": "cos(radians(dec)) * sin(radians(ra))",
    "adql_z(ra, dec)": "sin(radians(dec))",
    "adql_circle_area(r)": "degrees(degrees(2 * pi() * (1 - cos(radians(least(r, 180.0))))))",
    "adql_truncate(x, n)": "trunc(x * pow(10, n)) / pow(10, n)",
    "scisql_nanojanskytoabmag(f)": (
        "CASE WHEN f > 0 AND NOT isnan(f) THEN -2.5 * log10(f) + 31.4 ELSE NULL END"
    ),
    "scisql_nanojanskytoabmagsigma(f, ferr)": (
        "CASE WHEN f > 0 AND NOT isnan(f) THEN 2.5 / ln(10) * ferr / f ELSE NULL END"
    ),
    "scisql_angsep(ra1, dec1, ra2, dec2)": "adql_angdist(ra1, dec1, ra2, dec2)",
    "scisql_s2ptincircle(ra, dec, ra0, dec0, r)": (
        "CAST(adql_hav(ra, dec, ra0, dec0) <= pow(sin(radians(least(r, 180.0)) / 2), 2)"
        " OR r >= 180 AS INTEGER)"
    ),
    "scisql_s2ptinbox(ra, dec, ramin, decmin, ramax, decmax)": (
        "CAST(dec BETWEEN decmin AND decmax AND CASE WHEN ramin <= ramax"
        " THEN ra BETWEEN ramin AND ramax ELSE ra >= ramin OR ra <= ramax END AS INTEGER)"
    ),
}

_SIMPLE_FUNCTIONS = {
    "ABS": "abs",
    "CEILING": "ceil",
    "FLOOR": "floor",
    "DEGREES": "degrees",
    "RADIANS": "radians",
    "EXP": "exp",
    "SQRT": "sqrt",
    "LOG": "ln",
    "LOG10": "log10",
    "ACOS": "acos",
    "ASIN": "asin",
    "ATAN": "atan",
    "COS": "cos",
    "COT": "cot",
    "SIN": "sin",
    "TAN": "tan",
    "ATAN2": "atan2",
    "POWER": "pow",
    "PI": "pi",
}


#: Degrees added to the declination range implied by a distance limit (rounding).
_DEC_RANGE_MARGIN = 1e-9

#: Name of the DuckDB function deciding CONTAINS/INTERSECTS on region-valued columns.
REGION_RELATION = "adql_region_relation"
_STRING_TYPES = {"char", "string", "unicode", "text", "varchar"}
_CONSTRUCTED = {"point", "circle", "polygon"}


def register_adql_functions(con: object) -> None:
    """Define the macros and functions translated queries call on a DuckDB connection.

    Parameters
    ----------
    con
        A ``duckdb.DuckDBPyConnection``; safe to call more than once.
    """
    import duckdb
    from duckdb.sqltypes import BOOLEAN, DOUBLE, VARCHAR

    for signature, body in MACROS.items():
        con.execute(f"CREATE OR REPLACE MACRO {signature} AS {body}")  # type: ignore[attr-defined]
    with contextlib.suppress(duckdb.InvalidInputException):  # not defined yet
        con.remove_function(REGION_RELATION)  # type: ignore[attr-defined]
    con.create_function(  # type: ignore[attr-defined]
        REGION_RELATION,
        _region_relation,
        [VARCHAR, VARCHAR, duckdb.list_type(DOUBLE), VARCHAR, duckdb.list_type(DOUBLE)],
        BOOLEAN,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


@lru_cache(maxsize=65_536)
def _parsed_region(text: str) -> Region | None:
    try:
        return parse_stcs(text)
    except AdqlGeometryError:
        return None  # a malformed stored region matches nothing, like SQL NULL


def _region_value(text: str | None, params: tuple[float | None, ...]) -> Region | None:
    """A geometry from one side of `REGION_RELATION`: an STC-S region (no params)
    or a POINT/CIRCLE/POLYGON built in the query from row values."""
    if text is None:
        return None
    if not params:
        return _parsed_region(text)
    if any(p is None or not math.isfinite(p) for p in params) or text not in _CONSTRUCTED:
        return None
    try:
        if text == "point" and len(params) == 2:
            if abs(params[1]) > 90:  # type: ignore[operator]
                return None
            return (params[0], params[1])  # type: ignore[return-value]
        if text == "circle" and len(params) == 3:
            return Circle(*params)  # type: ignore[arg-type]
        if text == "polygon":
            return Polygon(tuple(zip(params[::2], params[1::2], strict=True)))  # type: ignore[arg-type]
    except (AdqlGeometryError, ValueError):
        return None
    return None


_Cap = tuple[float, float, float, float]  # unit vector of the centre, radius in radians
_CAPS: dict[tuple[str, tuple[float | None, ...]], _Cap | None] = {}
_CAP_MARGIN = 1e-9  # radians: rounding can only let a few more rows through to `relate`


def _vector(ra: float, dec: float) -> tuple[float, float, float]:
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _numbers(text: str) -> tuple[str, list[float]]:
    words = text.split()
    numbers = []
    for word in words[1:]:
        try:
            numbers.append(float(word))
        except ValueError:
            if numbers:
                raise
    return (words[0].upper() if words else ""), numbers


def _bounding_cap(text: str | None, params: tuple[float | None, ...]) -> _Cap | None:
    """A cap holding the whole geometry, cheaply (no validation), or None if unknown.

    Polygons are held by the cap around their vertices' mean direction through the
    farthest vertex: a cap narrower than a hemisphere is convex, so it holds the arcs
    between the vertices and the smaller region they bound.
    """
    key = (text or "", params)
    if key in _CAPS:
        return _CAPS[key]
    cap = None
    try:
        if text is not None and not params:
            kind, values = _numbers(text)
        else:
            kind, values = (text or "").upper(), [float(v) for v in params]  # type: ignore[arg-type]
        if not all(math.isfinite(v) for v in values) or any(abs(d) > 90 for d in values[1::2]):
            cap = None  # not a valid geometry: `relate` never sees it, the row is NULL
        elif kind in ("POINT", "POSITION") and len(values) == 2:
            cap = (*_vector(*values), 0.0)
        elif kind == "CIRCLE" and len(values) == 3 and values[2] < 90:
            cap = (*_vector(values[0], values[1]), math.radians(values[2]))
        elif kind == "POLYGON" and len(values) >= 6 and len(values) % 2 == 0:
            vertices = [_vector(a, d) for a, d in zip(values[::2], values[1::2], strict=True)]
            sx, sy, sz = (sum(v[i] for v in vertices) for i in range(3))
            norm = math.sqrt(sx * sx + sy * sy + sz * sz)
            if norm > 1e-9:
                c = (sx / norm, sy / norm, sz / norm)
                cosines = [c[0] * v[0] + c[1] * v[1] + c[2] * v[2] for v in vertices]
                radius = math.acos(max(-1.0, min(1.0, min(cosines))))
                if radius < math.pi / 2 - 1e-6:
                    cap = (*c, radius)
    except (TypeError, ValueError):
        cap = None
    if len(_CAPS) > 1_000_000:
        _CAPS.clear()
    _CAPS[key] = cap
    return cap


def _side_geometries(
    text: pa.Array, params: pa.Array
) -> tuple[np.ndarray, list[tuple[str | None, tuple[float | None, ...]]]]:
    """One side of `REGION_RELATION` as an index per row into its distinct geometries
    (``(text, params)``; a stored region column has few or many, a query constant one)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    codes = pc.dictionary_encode(text)
    text_ids = codes.indices.to_numpy(zero_copy_only=False)
    text_ids = np.where(np.asarray(codes.indices.is_null()), -1, text_ids).astype(np.int64)
    texts = [*codes.dictionary.to_pylist(), None]
    lengths = np.asarray(pc.fill_null(pc.list_value_length(params), 0), dtype=np.int64)
    if not lengths.any():
        param_list: list[tuple[float | None, ...]] = [()]
        param_ids = np.zeros(len(lengths), dtype=np.int64)
    elif np.all(lengths == lengths[0]) and params.null_count == 0:
        width = int(lengths[0])
        flat = pc.list_flatten(params)
        values = np.asarray(pc.fill_null(flat, np.nan), dtype=np.float64).reshape(-1, width)
        distinct, param_ids = np.unique(values, axis=0, return_inverse=True)
        param_list = [tuple(None if math.isnan(v) else float(v) for v in row) for row in distinct]
    else:
        param_list = [tuple(p or ()) for p in params.to_pylist()]
        param_ids = np.arange(len(param_list))
    if len(param_list) == 1:  # a stored region column, or a constant query geometry
        return np.where(text_ids < 0, len(texts) - 1, text_ids), [(t, param_list[0]) for t in texts]
    pairs = text_ids * (len(param_list) + 1) + np.asarray(param_ids, dtype=np.int64).ravel()
    keys, ids = np.unique(pairs, return_inverse=True)
    geometries = [
        (texts[int(k // (len(param_list) + 1))], param_list[int(k % (len(param_list) + 1))])
        for k in keys
    ]
    return ids.ravel(), geometries


def _caps(geometries: list[tuple[str | None, tuple[float | None, ...]]]) -> np.ndarray:
    """(n, 4) bounding caps; NaN where unknown (such rows are decided exactly)."""
    out = np.full((len(geometries), 4), np.nan)
    for i, (text, params) in enumerate(geometries):
        cap = _bounding_cap(text, params)
        if cap is not None:
            out[i] = cap
    return out


def _is_circle(geometries: list[tuple[str | None, tuple[float | None, ...]]]) -> np.ndarray:
    """Whether each geometry is a circle (its bounding cap is the geometry itself)."""
    return np.array(
        [t is not None and t[:6].upper() == "CIRCLE" for t, _ in geometries], dtype=bool
    )


def _region_relation(
    names: pa.Array, a_text: pa.Array, a_params: pa.Array, b_text: pa.Array, b_params: pa.Array
) -> pa.Array:
    """CONTAINS/INTERSECTS row by row, exactly (`relate`); NULL where a side is no region.

    Both relations need the two geometries to meet, so rows whose bounding caps are
    apart are false at once, with numpy (a far-away stored polygon is not checked for
    validity); the rest are decided exactly. Rows repeat the same few regions (one
    s_region against one query circle, or many points against a few footprints): each
    distinct pair is decided once, and the points that fall near one region are tested
    together.
    """
    n = len(names)
    if n == 0:
        return pa.array([], type=pa.bool_())
    a_ids, a_geometries = _side_geometries(a_text, a_params)
    b_ids, b_geometries = _side_geometries(b_text, b_params)
    cap_a, cap_b = _caps(a_geometries)[a_ids], _caps(b_geometries)[b_ids]
    cosines = np.clip(np.einsum("ij,ij->i", cap_a[:, :3], cap_b[:, :3]), -1.0, 1.0)
    distance = np.arccos(cosines)
    with np.errstate(invalid="ignore"):
        apart = distance > cap_a[:, 3] + cap_b[:, 3] + _CAP_MARGIN
        # A geometry whose cap lies inside a circle lies inside it: true at once.
        a_in_b = _is_circle(b_geometries)[b_ids] & (
            distance + cap_a[:, 3] < cap_b[:, 3] - _CAP_MARGIN
        )
        b_in_a = _is_circle(a_geometries)[a_ids] & (
            distance + cap_b[:, 3] < cap_a[:, 3] - _CAP_MARGIN
        )
    distinct_names = pc.unique(names).to_pylist()
    name_list = distinct_names * n if len(distinct_names) == 1 else names.to_pylist()
    intersects = np.array([x == "INTERSECTS" for x in name_list], dtype=bool)
    null_a = np.array([t is None and not p for t, p in a_geometries], dtype=bool)[a_ids]
    null_b = np.array([t is None and not p for t, p in b_geometries], dtype=bool)[b_ids]
    valid = ~(null_a | null_b | np.asarray(names.is_null(), dtype=bool))
    values = a_in_b | (intersects & b_in_a)
    apart |= values
    answers: dict[tuple[object, ...], bool | None] = {}
    # region side -> row numbers and their points
    point_groups: dict[tuple[object, ...], tuple[list[int], list[float], list[float]]] = {}
    for row in np.nonzero(valid & ~apart)[0].tolist():
        name = name_list[row]
        sides = [a_geometries[a_ids[row]], b_geometries[b_ids[row]]]
        point_side = [t == "point" and len(p) == 2 for t, p in sides]
        if point_side[0] != point_side[1] and name in ("CONTAINS", "INTERSECTS"):
            k = 0 if point_side[0] else 1
            if name == "INTERSECTS" or k == 0:  # a point in a region
                ra, dec = sides[k][1]
                valid[row] = False  # until its group is decided
                if ra is not None and dec is not None and math.isfinite(ra) and abs(dec) <= 90:
                    group = point_groups.setdefault((sides[1 - k],), ([], [], []))
                    group[0].append(row)
                    group[1].append(ra)
                    group[2].append(dec)
                continue
        key = (name, *sides)
        if key not in answers:
            a, b = _region_value(*sides[0]), _region_value(*sides[1])
            answers[key] = None if a is None or b is None else relate(name, a, b)
        answer = answers[key]
        valid[row] = answer is not None
        values[row] = bool(answer)
    for (region_side,), (rows, ras, decs) in point_groups.items():
        region = _region_value(*region_side)  # type: ignore[arg-type]
        if region is None:
            continue
        if isinstance(region, tuple):
            inside = [relate("CONTAINS", (a, d), region) for a, d in zip(ras, decs, strict=True)]
        else:
            inside = region.contains(np.asarray(ras), np.asarray(decs)).tolist()
        values[rows] = np.asarray(inside, dtype=bool)
        valid[rows] = True
    return pa.array(values, type=pa.bool_(), mask=~valid)


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb", copy=False)


def _double() -> exp.DataType:
    return exp.DataType(this=exp.DataType.Type.DOUBLE)


def _finite_number(node: exp.Expression | None) -> bool:
    """Whether ``node`` is a constant of literals with a finite value (`_constant`)."""
    value = None if node is None else _constant(node)
    return value is not None and math.isfinite(value)


def _false_for_nan(column: exp.Column) -> bool:
    """Whether NaN in ``column`` fails its condition exactly where NULL would.

    True for ``col < n``, ``col <= n``, ``col = n`` (``n > col`` … too) and ``col
    BETWEEN n1 AND n2`` with finite numbers, when the comparison is one of the
    conditions that WHERE requires to be true (joined by AND only): DuckDB orders NaN
    above every number, so each of them is false for NaN, and a false condition drops
    the row as a NULL one does. (``>``, ``<>``, NOT, OR and select lists keep NULLIF.)
    """
    test = column.parent
    if isinstance(test, exp.LT | exp.LTE):
        ok = test.this is column and _finite_number(test.expression)
    elif isinstance(test, exp.GT | exp.GTE):
        ok = test.expression is column and _finite_number(test.this)
    elif isinstance(test, exp.EQ):
        other = test.expression if test.this is column else test.this
        ok = _finite_number(other)
    elif isinstance(test, exp.Between):
        ok = (
            test.this is column
            and _finite_number(test.args.get("low"))
            and _finite_number(test.args.get("high"))
        )
    else:
        return False
    if not ok:
        return False
    up = test.parent
    while isinstance(up, exp.And | exp.Paren):
        up = up.parent
    return isinstance(up, exp.Where)


def _as_double(node: exp.Expression) -> exp.Cast:
    return exp.Cast(this=node, to=_double())


def _number(value: float) -> str:
    """A DOUBLE literal for DuckDB (``1.5`` alone would be a DECIMAL)."""
    text = repr(float(value))
    return text if "e" in text else f"{text}e0"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_geometry_cast(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.USERDEFINED


def _dali(node: exp.Cast) -> _Geometry:
    """``CAST('12.3 45.6' AS POINT)``: a DALI string (degrees, blank-separated)."""
    kind = str(node.to.args.get("kind", "")).lower()
    text = node.this
    if not (isinstance(text, exp.Literal) and text.is_string):
        raise AdqlUnsupportedError(f"CAST to {kind.upper()} needs a constant string")
    try:
        values = [float(v) for v in text.this.replace(",", " ").split()]
    except ValueError as exc:
        raise AdqlGeometryError(f"{text.this!r} is not a list of numbers") from exc
    if kind == "point" and len(values) == 2:
        return _Geometry("point", [exp.Literal.number(v) for v in values])
    if kind == "circle" and len(values) == 3:
        return _Geometry("circle", [exp.Literal.number(v) for v in values])
    if kind == "polygon" and len(values) >= 6 and len(values) % 2 == 0:
        vertices = tuple(zip(values[::2], values[1::2], strict=True))
        return _Geometry("polygon", [], Polygon(vertices))
    raise AdqlGeometryError(f"{text.this!r} does not describe a {kind}")


def _dot(v: np.ndarray) -> str:
    """A template of ``v . p`` for `per_row`, p being the unit vector {x}, {y}, {z}."""
    return f"({_number(v[0])} * {{x}} + {_number(v[1])} * {{y}} + {_number(v[2])} * {{z}})"


def _constant(node: exp.Expression) -> float | None:
    """The value of a numeric expression made of literals, or None."""
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Paren):
        return _constant(node.this)
    if isinstance(node, exp.Neg):
        inner = _constant(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Cast) and node.to.is_type("double"):
        return _constant(node.this)
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
        a, b = _constant(node.this), _constant(node.expression)
        if a is None or b is None:
            return None
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            return a * b
        return a / b if b != 0 else None
    return None


def _dec_range(dec: str, centre_dec: str, r: str) -> str:
    """``dec`` within ``r`` of ``centre_dec``, as two comparisons rather than BETWEEN:
    DuckDB plans a join on them as a range join (IEJoin), but a nested loop for a
    BETWEEN of expressions (such as NULLIF of the columns)."""
    return f"{dec} >= ({centre_dec}) - ({r}) AND {dec} <= ({centre_dec}) + ({r})"


@dataclass
class _Geometry:
    """A geometry value: ``point`` (ra, dec), ``circle`` (ra, dec, r) or ``polygon``."""

    kind: str
    params: list[exp.Expression]
    polygon: Polygon | None = None

    def constants(self) -> list[float] | None:
        values = [_constant(p) for p in self.params]
        return None if any(v is None for v in values) else values  # type: ignore[return-value]

    def circle(self) -> Circle | None:
        values = self.constants()
        return None if values is None else Circle(*values)

    def sql(self, i: int) -> str:
        return _sql(self.params[i])

    def as_list(self) -> str:
        """The value as DuckDB SQL: a DALI-style DOUBLE[] (point, circle or polygon)."""
        if self.polygon is not None:
            numbers = [_number(x) for v in self.polygon.vertices for x in v]
        else:
            numbers = [self.sql(i) for i in range(len(self.params))]
        return f"CAST([{', '.join(numbers)}] AS DOUBLE[])"


# A translator's placeholders: its marker's 16 hex digits, then the raw SQL's number.
_PLACEHOLDER = re.compile(r"__dpzero_([0-9a-f]{16})_(\d+)__")


class _Translator:
    def __init__(self, nan_as_null: bool, resolved: bool) -> None:
        self.nan_as_null = nan_as_null
        self.raws: list[str] = []
        # Placeholders a query's own text cannot guess (it could hold them in a string).
        self.marker = f"__dpzero_{secrets.token_hex(8)}_"
        self.fast = False  # generating a condition used only where it must be true
        # alias → {SQL: column name} of values computed once per row (`per_row`);
        # None when the query was not resolved (its aliases may not be unique).
        self.computed: dict[str, dict[str, str]] | None = {} if resolved else None
        # id(Select) → (table, column) that its WHERE requires to be finite (`note_finite`).
        self.finite: dict[int, set[tuple[str, str]]] = {}

    def note_finite(self, tree: exp.Expression) -> None:
        """Record, per SELECT, the columns its WHERE compares as `_false_for_nan` does.

        Every row that SELECT keeps has a number in them, so NULLIF is needless wherever
        else that SELECT reads them (an aggregate, GROUP BY, ORDER BY; an ON condition
        too: a row it let through on a NaN is dropped by the WHERE all the same).
        """
        for select in tree.find_all(exp.Select):
            where = select.args.get("where")
            if where is None:
                continue
            for column in where.find_all(exp.Column):
                if column.table and _false_for_nan(column):
                    self.finite.setdefault(id(select), set()).add((column.table, column.name))

    def raw(self, sql: str) -> exp.Expression:
        """A placeholder for DuckDB SQL text, put in after generation (no re-parsing)."""
        self.raws.append(sql)
        return exp.Var(this=f"{self.marker}{len(self.raws) - 1}__")

    def finish(self, tree: exp.Expression) -> str:
        """The tree as DuckDB SQL with every placeholder replaced."""
        sql = _sql(tree)
        # One pattern for every translator (compiling one per marker cost ~0.15 ms a
        # query); only this translator's marker is replaced.
        mine = self.marker[len("__dpzero_") : -1]

        def put_in(match: re.Match[str]) -> str:
            return self.raws[int(match.group(2))] if match.group(1) == mine else match.group(0)

        while True:
            replaced = _PLACEHOLDER.sub(put_in, sql)
            if replaced == sql:
                return sql
            sql = replaced

    # ---------------------------------------------------------------- walk
    def rewrite(self, node: exp.Expression, geometry_arg: bool = False) -> exp.Expression:
        """Rewrite bottom-up; geometry constructors stay as they are when they are the
        argument of a geometry function, which interprets them."""
        name = node.name.upper() if isinstance(node, exp.Anonymous) else ""
        inner = name in _TAKES_GEOMETRY or (geometry_arg and isinstance(node, exp.Paren))
        for key, child in list(node.args.items()):
            if isinstance(child, exp.Expression):
                node.set(key, self.rewrite(child, inner))
            elif isinstance(child, list):
                node.set(
                    key,
                    [self.rewrite(c, inner) if isinstance(c, exp.Expression) else c for c in child],
                )
        if geometry_arg and (
            name in _CONSTRUCTORS or isinstance(node, exp.Paren) or _is_geometry_cast(node)
        ):
            return node
        return self.node(node)

    def node(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Select):
            self.keep_select_names(node)
            return node
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Literal) and not node.is_string:
            if any(c in node.this for c in ".eE"):
                return _as_double(node)
            return node
        if isinstance(node, exp.EQ):
            return self.comparison(node)
        if isinstance(node, exp.LT | exp.LTE | exp.GT | exp.GTE):
            return self.distance_limit(node)
        if isinstance(node, exp.Cast):
            return self.cast(node)
        if isinstance(node, exp.Anonymous):
            return self.function(node)
        return node

    def plain_select_items(self, tree: exp.Expression) -> None:
        """Write resolved catalog columns of select lists as SQL text now.

        ``SELECT *`` of a 137-column table resolves into 137 column nodes; rewriting
        each into ``NULLIF(...) AS name`` nodes and generating them took most of the
        translation (13 of 15 ms). The text is the same as the nodes would give.
        """
        for select in list(tree.find_all(exp.Select)):
            items = select.expressions
            if not any(COLUMN_META in item.meta for item in items):
                continue
            select.set(
                "expressions",
                [
                    self.raw(self.column_sql(item))
                    if isinstance(item, exp.Column) and COLUMN_META in item.meta and item.table
                    else item
                    for item in items
                ],
            )

    def column_sql(self, node: exp.Column) -> str:
        """A resolved select-list column as `column` and `keep_select_names` write it."""
        info: ColumnInfo = node.meta[COLUMN_META]
        text = f"{_quoted(node.table)}.{_quoted(node.name)}"
        if self.nan_as_null and info.datatype in _FLOAT_TYPES:
            return f"NULLIF({text}, CAST('NaN' AS DOUBLE)) AS {_quoted(info.name)}"
        return text

    def keep_select_names(self, select: exp.Select) -> None:
        """Give wrapped plain columns of a select list their own name back."""
        names = []
        for item in select.expressions:
            name = item.meta.get("dpzero_name")
            alias = exp.Identifier(this=name, quoted=True)
            names.append(exp.Alias(this=item, alias=alias) if name else item)
        select.set("expressions", names)

    def column(self, node: exp.Column) -> exp.Expression:
        info: ColumnInfo | None = node.meta.get(COLUMN_META)
        if not self.nan_as_null or info is None or info.datatype not in _FLOAT_TYPES:
            return node
        if _false_for_nan(node):
            return node
        select = node.find_ancestor(exp.Select)
        if select is not None and (node.table, node.name) in self.finite.get(id(select), ()):
            in_list = isinstance(node.parent, exp.Select) and node.arg_key == "expressions"
            if not in_list:  # a select-list column keeps its name from the NULLIF form
                return node
        in_select_list = isinstance(node.parent, exp.Select) and node.arg_key == "expressions"
        wrapped = exp.Nullif(this=node, expression=_as_double(exp.Literal.string("NaN")))
        if in_select_list:
            wrapped.meta["dpzero_name"] = info.name
        return wrapped

    def cast(self, node: exp.Cast) -> exp.Expression:
        to = node.to
        if to.this == exp.DataType.Type.USERDEFINED:
            return self.raw(self.geometry(node).as_list())
        if to.this in (exp.DataType.Type.CHAR, exp.DataType.Type.VARCHAR):
            text = f"CAST({_sql(node.this)} AS VARCHAR)"
            length = to.expressions[0].this.this if to.expressions else None
            if length is None:
                return self.raw(text)
            if to.this == exp.DataType.Type.CHAR:
                return self.raw(f"left(rpad({text}, {length}, ' '), {length})")
            return self.raw(f"left({text}, {length})")
        return node

    # ---------------------------------------------------------------- functions
    def function(self, node: exp.Anonymous) -> exp.Expression:
        name = node.name.upper()
        args = node.expressions
        if name in _SIMPLE_FUNCTIONS:
            return exp.Anonymous(this=_SIMPLE_FUNCTIONS[name], expressions=args)
        if name == "MOD":
            return exp.Mod(this=exp.paren(args[0]), expression=exp.paren(args[1]))
        if name == "RAND":
            return self.raw("random()")
        if name == "ROUND":
            return exp.Anonymous(this="round", expressions=args)
        if name == "TRUNCATE":
            if len(args) == 1:
                return exp.Anonymous(this="trunc", expressions=args)
            return exp.Anonymous(this="adql_truncate", expressions=args)
        if name == "IN_UNIT":
            return self.in_unit(args)
        if name.lower().startswith("scisql_"):
            return exp.Anonymous(this=name.lower(), expressions=args)
        return self.geometry_function(name, args)

    def in_unit(self, args: list[exp.Expression]) -> exp.Expression:
        from astropy import units

        value, unit = args
        inner = value.this if isinstance(value, exp.Nullif) else value
        info = inner.meta.get(COLUMN_META) if isinstance(inner, exp.Column) else None
        if info is None or not info.unit:
            raise AdqlUnsupportedError("IN_UNIT needs a catalog column with a known unit")
        try:
            factor = units.Unit(info.unit).to(units.Unit(unit.name))
        except (ValueError, units.UnitConversionError) as exc:
            raise AdqlUnsupportedError(
                f"IN_UNIT cannot convert {info.name} from {info.unit} to {unit.name}: {exc}"
            ) from exc
        return self.raw(f"({_sql(value)}) * {_number(float(factor))}")

    # ---------------------------------------------------------------- geometry
    def geometry(self, node: exp.Expression) -> _Geometry:
        """The geometry value of a POINT/CIRCLE/BOX/POLYGON/CENTROID expression."""
        if isinstance(node, exp.Paren):
            return self.geometry(node.this)
        if _is_geometry_cast(node):
            return _dali(node)  # type: ignore[arg-type]
        if isinstance(node, exp.Column):
            return self.region_column(node)
        if isinstance(node, exp.Nullif) and isinstance(node.this, exp.Column):
            return self.region_column(node.this)  # a floating-point column: not a region
        if not isinstance(node, exp.Anonymous):
            raise AdqlUnsupportedError(
                f"geometry values must be written with POINT, CIRCLE, BOX or POLYGON; "
                f"{node.sql()} cannot be used as one"
            )
        kind = node.name.upper()
        args = list(node.expressions)
        if kind in ("POINT", "CIRCLE", "BOX", "POLYGON") and args and self.is_system(args[0]):
            args = args[1:]
        try:
            return self.geometry_value(kind, args)
        except AdqlGeometryError:
            raise
        except (TypeError, ValueError) as exc:
            raise AdqlGeometryError(f"invalid {kind}: {exc}") from exc

    def region_column(self, node: exp.Column) -> _Geometry:
        """A region-valued column (ObsCore's ``s_region``): STC-S text in each row."""
        info: ColumnInfo | None = node.meta.get(COLUMN_META)
        if info is not None and info.datatype is not None and info.datatype not in _STRING_TYPES:
            raise AdqlUnsupportedError(
                f"column {info.name} ({info.datatype}) is not region-valued; write positions "
                "as POINT(ra, dec)"
            )
        return _Geometry("region", [node])

    def region_argument(self, g: _Geometry) -> tuple[str, str]:
        """One side of a `REGION_RELATION` call: (text, DOUBLE[] params) as SQL."""
        if g.kind == "region":
            return self.sql_of(g.params[0]), "CAST([] AS DOUBLE[])"
        if g.kind == "circle" and g.constants() is not None:
            g.circle()  # a constant circle is checked here, with a message to the user
        return f"'{g.kind}'", g.as_list()

    def sql_of(self, node: exp.Expression) -> str:
        return _sql(node)

    def geometry_value(self, kind: str, args: list[exp.Expression]) -> _Geometry:
        if kind == "POINT":
            return _Geometry("point", args)
        if kind == "CIRCLE":
            if len(args) == 2:
                centre = self.point(args[0])
                return _Geometry("circle", [*centre.params, args[1]])
            return _Geometry("circle", args)
        if kind == "BOX":
            if len(args) == 3:
                args = [*self.point(args[0]).params, *args[1:]]
            values = [_constant(a) for a in args]
            if any(v is None for v in values):
                raise AdqlUnsupportedError("BOX needs constant centre and size")
            polygon = box_polygon(*values)  # type: ignore[arg-type]
            return _Geometry("polygon", [], polygon)
        if kind == "POLYGON":
            if all(isinstance(a, exp.Anonymous | exp.Paren) for a in args):
                args = [p for a in args for p in self.point(a).params]
            values = [_constant(a) for a in args]
            if any(v is None for v in values):
                raise AdqlUnsupportedError("POLYGON needs constant vertices")
            pairs = tuple(zip(values[::2], values[1::2], strict=True))
            return _Geometry("polygon", [], Polygon(pairs))  # type: ignore[arg-type]
        if kind == "CENTROID":
            inner = self.geometry(args[0])
            if inner.kind == "region":
                raise AdqlUnsupportedError(
                    "CENTROID of a region-valued column is not supported: ObsCore's s_ra and "
                    "s_dec hold the centre"
                )
            if inner.polygon is not None:
                ra, dec = inner.polygon.centroid
                return _Geometry("point", [exp.Literal.number(ra), exp.Literal.number(dec)])
            return _Geometry("point", inner.params[:2])
        raise AdqlUnsupportedError(f"{kind} cannot be used as a geometry value here")

    def point(self, node: exp.Expression) -> _Geometry:
        geometry = self.geometry(node)
        if geometry.kind != "point":
            raise AdqlGeometryError("a POINT is needed here")
        return geometry

    def is_system(self, node: exp.Expression) -> bool:
        if isinstance(node, exp.Null):
            return True
        if isinstance(node, exp.Literal) and node.is_string:
            if node.this.strip().split(" ")[0].upper() not in _ICRS_NAMES:
                raise AdqlUnsupportedError(
                    f"coordinate system {node.this!r}: dpzero's catalogs are in ICRS"
                )
            return True
        return False

    def geometry_function(self, name: str, args: list[exp.Expression]) -> exp.Expression:
        if name in ("POINT", "CIRCLE", "BOX", "POLYGON", "CENTROID"):
            return self.raw(self.geometry(exp.Anonymous(this=name, expressions=args)).as_list())
        if name == "REGION":
            raise AdqlUnsupportedError("REGION is not supported: use CIRCLE, BOX or POLYGON")
        if name in ("CONTAINS", "INTERSECTS"):
            exact, when_true = self.predicate(name, args)
            cast = exp.Cast(this=exact, to=exp.DataType(this=exp.DataType.Type.INT))
            cast.meta["dpzero_predicate"] = when_true
            return cast
        if name == "DISTANCE":
            if len(args) == 2:
                a, b = self.point(args[0]), self.point(args[1])
                args = [*a.params, *b.params]
            values = [_constant(a) for a in args]
            if all(v is not None for v in values):
                separation = float(angular_separation(*values))  # type: ignore[arg-type]
                return self.raw(_number(separation))
            distance = self.raw(f"adql_angdist({', '.join(_sql(a) for a in args)})")
            distance.meta["dpzero_distance_decs"] = (_sql(args[1]), _sql(args[3]))
            return distance
        if name == "AREA":
            geometry = self.geometry(args[0])
            if geometry.kind == "region":
                raise AdqlUnsupportedError("AREA of a region-valued column is not supported")
            if geometry.polygon is not None:
                return self.raw(_number(geometry.polygon.area))
            if geometry.kind == "point":
                return self.raw("0.0e0")
            return self.raw(f"adql_circle_area({geometry.sql(2)})")
        if name in ("COORD1", "COORD2"):
            geometry = self.point(args[0])
            return geometry.params[0 if name == "COORD1" else 1]
        if name == "COORDSYS":
            return exp.Literal.string("ICRS")
        raise AdqlUnsupportedError(f"function {name} is not supported")

    def comparison(self, node: exp.EQ) -> exp.Expression:
        """``CONTAINS(...) = 1`` (either side, 1 or 0) becomes a plain condition."""
        for func, other in ((node.this, node.expression), (node.expression, node.this)):
            inner = func.this if isinstance(func, exp.Cast) else None
            if (
                isinstance(func, exp.Cast)
                and isinstance(inner, exp.Paren)
                and func.meta.get("dpzero_predicate") is not None
                and _constant(other) in (0.0, 1.0)
            ):
                if _constant(other) == 0.0:
                    return exp.Not(this=inner)
                negations, parent = 0, node.parent
                while parent is not None:
                    negations += isinstance(parent, exp.Not)
                    parent = parent.parent
                return inner if negations % 2 else func.meta["dpzero_predicate"]
        return node

    def distance_limit(self, node: exp.LT | exp.LTE | exp.GT | exp.GTE) -> exp.Expression:
        """``DISTANCE(a, b) < r`` (or ``r > DISTANCE(a, b)``) gains the declination range
        it implies, ``|dec_a - dec_b| <= r``, so that DuckDB joins two tables by range
        (IEJoin) instead of testing every pair. The angular distance is never below the
        difference in declination; the margin covers rounding, so rows do not change."""
        if isinstance(node, exp.LT | exp.LTE):
            distance, limit = node.this, node.expression
        else:
            distance, limit = node.expression, node.this
        decs = distance.meta.get("dpzero_distance_decs")
        if decs is None:
            return node
        a_dec, b_dec = decs
        r = _sql(limit)
        margin = _number(_DEC_RANGE_MARGIN)
        return exp.Paren(
            this=self.raw(
                f"{_dec_range(b_dec, a_dec, f'({r}) + {margin}')} AND {self.finish(node)}"
            )
        )

    def predicate(
        self, name: str, args: list[exp.Expression]
    ) -> tuple[exp.Expression, exp.Expression]:
        """The relation as a condition with SQL's NULL semantics, and a faster one
        good only where the relation must be true (``CONTAINS(...) = 1``)."""
        a, b = self.geometry(args[0]), self.geometry(args[1])
        if "region" in (a.kind, b.kind):
            (at, ap), (bt, bp) = self.region_argument(a), self.region_argument(b)
            call = f"{REGION_RELATION}('{name}', {at}, {ap}, {bt}, {bp})"
            return exp.Paren(this=self.raw(call)), exp.Paren(this=self.raw(call))
        if name == "INTERSECTS" and b.kind == "point" and a.kind != "point":
            a, b = b, a
        relation = self.contains if name == "CONTAINS" else self.intersects
        conditions = []
        for fast in (False, True):
            self.fast = fast
            conditions.append(exp.Paren(this=self.raw(relation(a, b))))
        self.fast = False
        return conditions[0], conditions[1]

    def contains(self, a: _Geometry, b: _Geometry) -> str:
        if a.kind == "point" and b.kind == "circle":
            return self.point_in_circle(a, b)
        if a.kind == "point" and b.kind == "polygon":
            return self.point_in_polygon(a, b.polygon)  # type: ignore[arg-type]
        if a.kind == "point" and b.kind == "point":
            return f"adql_hav({a.sql(0)}, {a.sql(1)}, {b.sql(0)}, {b.sql(1)}) = 0"
        if a.kind == "circle" and b.kind == "circle":
            return (
                f"adql_angdist({a.sql(0)}, {a.sql(1)}, {b.sql(0)}, {b.sql(1)})"
                f" + ({a.sql(2)}) <= ({b.sql(2)})"
            )
        if a.kind == "circle" and b.kind == "point":  # only a circle of radius 0
            return f"({a.sql(2)}) = 0 AND " + self.contains(_Geometry("point", a.params[:2]), b)
        if a.kind == "polygon" and b.kind == "point":  # a polygon has an area
            return "FALSE"
        return self.constant_relation("CONTAINS", a, b)

    def intersects(self, a: _Geometry, b: _Geometry) -> str:
        if a.kind == "point":
            return self.contains(a, b)
        if a.kind == "circle" and b.kind == "circle":
            return (
                f"adql_angdist({a.sql(0)}, {a.sql(1)}, {b.sql(0)}, {b.sql(1)})"
                f" <= ({a.sql(2)}) + ({b.sql(2)})"
            )
        if {a.kind, b.kind} == {"circle", "polygon"}:
            circle, polygon = (a, b) if a.kind == "circle" else (b, a)
            if circle.constants() is None:
                return self.circle_meets_polygon(circle, polygon.polygon)  # type: ignore[arg-type]
        return self.constant_relation("INTERSECTS", a, b)

    def circle_meets_polygon(self, c: _Geometry, polygon: Polygon) -> str:
        """A circle given by columns meets a constant polygon if its centre is inside,
        or an edge or a vertex lies within the radius of its centre."""
        centre = _Geometry("point", c.params[:2])
        r = c.sql(2)
        v = polygon.oriented
        expressions = []
        for i in range(len(v)):
            a, b = v[i], v[(i + 1) % len(v)]
            n = np.cross(a, b)
            n /= np.linalg.norm(n)
            expressions += [_dot(n), _dot(np.cross(n, a)), _dot(np.cross(b, n)), _dot(a)]
        values = self.per_row(centre, expressions)
        terms = [f"({self.point_in_polygon(centre, polygon)})"]
        for i in range(len(v)):
            normal, after_a, before_b, vertex = values[4 * i : 4 * i + 4]
            terms.append(
                f"(abs({normal}) <= sin(radians(least({r}, 90.0))) AND {after_a} >= 0"
                f" AND {before_b} >= 0)"
            )
            terms.append(f"{vertex} >= cos(radians(least({r}, 180.0)))")
        return f"({r}) >= 0 AND ({' OR '.join(terms)})"

    def constant_relation(self, name: str, a: _Geometry, b: _Geometry) -> str:
        """Relations between two constant regions, decided here."""
        regions = []
        for g in (a, b):
            if g.polygon is not None:
                regions.append(g.polygon)
            elif g.kind == "circle" and g.constants() is not None:
                regions.append(g.circle())
            else:
                raise AdqlUnsupportedError(
                    f"{name} of a {a.kind} and a {b.kind} needs constant regions"
                )
        first, second = regions
        if name == "CONTAINS":
            result = region_contains(first, second)
        else:
            result = regions_intersect(first, second)
        return "TRUE" if result else "FALSE"

    def point_in_circle(self, p: _Geometry, c: _Geometry) -> str:
        circle = c.circle()
        if circle is not None:
            if circle.radius >= 180:
                return f"{p.sql(1)} IS NOT NULL AND {p.sql(0)} IS NOT NULL"
            ra, dec = p.sql(0), p.sql(1)
            if self.fast:
                # Read without NaN-as-NULL, which is faster and safe where the condition
                # must be true: NaN in the haversine term makes it false, whatever the
                # declination prefilter (and DuckDB's statistics) said.
                ra, dec = (_sql(q.this if isinstance(q, exp.Nullif) else q) for q in p.params)
            low, high = circle.dec_range()
            limit = math.sin(math.radians(circle.radius) / 2) ** 2
            return (
                f"{dec} BETWEEN {_number(low)} AND {_number(high)} AND "
                f"adql_hav({ra}, {dec}, {_number(circle.ra)}, {_number(circle.dec)})"
                f" <= {_number(limit)}"
            )
        ra, dec = p.sql(0), p.sql(1)
        ra0, dec0, r = c.sql(0), c.sql(1), c.sql(2)
        return (
            f"{_dec_range(dec, dec0, r)} AND "
            f"adql_hav({ra}, {dec}, {ra0}, {dec0})"
            f" <= pow(sin(radians(least({r}, 180.0)) / 2), 2)"
        )

    def point_alias(self, p: _Geometry) -> str | None:
        """The alias of the table whose two columns the point is, in a resolved query."""
        if self.computed is None:
            return None
        tables = set()
        for param in p.params:
            column = param.this if isinstance(param, exp.Nullif) else param
            if not isinstance(column, exp.Column) or not column.table:
                return None
            tables.add(column.table)
        return tables.pop() if len(tables) == 1 else None

    def per_row(self, p: _Geometry, expressions: list[str]) -> list[str]:
        """SQL for expressions of the point's unit vector (``{x}``, ``{y}``, ``{z}``),
        as columns computed once per row when possible (DuckDB evaluates a filter's
        repeated terms again), else inline."""
        ra, dec = p.sql(0), p.sql(1)
        alias = self.point_alias(p)
        if alias is None or self.computed is None:
            xyz = {c: f"adql_{c}({ra}, {dec})" for c in "xyz"}
            return [e.format(**xyz) for e in expressions]
        prefix = _quoted(alias) + "."
        xyz = {c: f"adql_{c}({ra.replace(prefix, '')}, {dec.replace(prefix, '')})" for c in "xyz"}
        columns = self.computed.setdefault(alias, {})
        out = []
        for expression in expressions:
            sql = expression.format(**xyz)
            name = columns.setdefault(sql, f"__dpzero_{len(columns)}")
            out.append(f'{prefix}"{name}"')
        return out

    def add_computed_columns(self, tree: exp.Expression) -> None:
        """Read the tables `per_row` needs through a projection adding its columns."""
        if not self.computed:
            return  # most queries: no walk of a (wide, expanded) tree
        for table in list(tree.find_all(exp.Table)):
            alias = table.alias
            if not self.computed or alias not in self.computed:
                continue
            source = table.copy()
            source.set("alias", None)
            columns = ", ".join(f"{sql} AS {name}" for sql, name in self.computed[alias].items())
            derived = f"(SELECT *, {columns} FROM {_sql(source)}) AS {_quoted(alias)}"
            table.replace(self.raw(derived))

    def point_in_polygon(self, p: _Geometry, polygon: Polygon) -> str:
        dec = p.sql(1)
        low, high = polygon.dec_range()
        terms = [f"{dec} BETWEEN {_number(low)} AND {_number(high)}"]

        if polygon.is_convex:
            x, y, z = self.per_row(p, ["{x}", "{y}", "{z}"])
            for n in polygon.edge_normals:
                terms.append(
                    f"{_number(n[0])} * {x} + {_number(n[1])} * {y} + {_number(n[2])} * {z} >= 0"
                )
            return " AND ".join(terms)
        centre, e1, e2, xy = polygon.gnomonic
        w, px, py = self.per_row(
            p, [_dot(centre), f"{_dot(e1)} / {_dot(centre)}", f"{_dot(e2)} / {_dot(centre)}"]
        )
        crossings = []
        for i in range(len(xy)):
            (x1, y1), (x2, y2) = xy[i], xy[(i + 1) % len(xy)]
            if y1 == y2:
                continue
            crossings.append(
                f"CASE WHEN (({_number(y1)} > {py}) <> ({_number(y2)} > {py})) AND "
                f"{px} < {_number((x2 - x1) / (y2 - y1))} * ({py} - {_number(y1)})"
                f" + {_number(x1)} THEN 1 ELSE 0 END"
            )
        terms.append(f"{w} > 0")
        terms.append(f"({' + '.join(crossings)}) % 2 = 1")
        return " AND ".join(terms)


def to_duckdb(
    query: AdqlQuery | ResolvedQuery,
    table_names: Mapping[str, str] | None = None,
    nan_as_null: bool = True,
) -> str:
    """Translate a query into DuckDB SQL.

    Parameters
    ----------
    query
        A parsed query, or better a resolved one (`resolve`): only then are NaN values
        of floating-point columns read as NULL and IN_UNIT possible.
    table_names
        Qualified ADQL table name (``dp01_dc2_catalogs.object``, any case) → the
        DuckDB relation to read instead (a view or registered Arrow table name).
        Tables not listed keep their ADQL name.
    nan_as_null
        Read NaN in floating-point columns as NULL (see the module notes).

    Returns
    -------
    str
        One DuckDB statement; the connection needs `register_adql_functions`.

    Raises
    ------
    AdqlUnsupportedError
        For valid ADQL the engine cannot run (geometry-valued columns, REGION, ...).
    AdqlGeometryError
        For a region that is not valid on the sphere.
    """
    adql = query.query if isinstance(query, ResolvedQuery) else query
    tree = adql.tree.copy()
    renames = {k.lower(): v for k, v in (table_names or {}).items()}
    for table in list(tree.find_all(exp.Table)):
        parts = [p.name for p in (table.args.get("catalog"), table.args.get("db")) if p]
        name = ".".join([*parts, table.name]).lower()
        if name in renames:
            new = exp.to_table(renames[name], dialect="duckdb")
            if table.args.get("alias") is not None:
                new.set("alias", table.args["alias"])
            else:
                new.set("alias", exp.TableAlias(this=exp.to_identifier(table.name, quoted=True)))
            table.replace(new)
    translator = _Translator(nan_as_null, resolved=isinstance(query, ResolvedQuery))
    if nan_as_null:
        translator.note_finite(tree)
    translator.plain_select_items(tree)
    tree = translator.rewrite(tree)
    translator.add_computed_columns(tree)
    return translator.finish(tree)
