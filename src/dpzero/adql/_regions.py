"""What a query's WHERE clauses promise about each table, for partition pruning.

Only conditions that every result row must satisfy count: the terms of the
top-level AND of a SELECT's WHERE clause. From those come the sky regions a table's
positions must lie in (`search_regions`) and the constant ids its rows must have
(`id_constraints`). Both are keyed by the table's alias in the query, which is
unique once the query went through `resolve`; a table read twice (a self-join, a
UNION) appears under each alias, and the engine must read the union of what they
need (all of it if one alias has no constraint).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sqlglot import exp

from dpzero.adql._errors import AdqlError
from dpzero.adql._geometry import Circle, Polygon, RaDecRange
from dpzero.adql._names import ResolvedQuery
from dpzero.adql._parse import AdqlQuery
from dpzero.adql._translate import _constant, _Geometry, _Translator

__all__ = ["IdConstraint", "TableRegions", "conjuncts", "id_constraints", "search_regions"]

_DEFAULT_POSITIONS = (("ra", "dec"), ("coord_ra", "coord_dec"))


@dataclass(frozen=True)
class TableRegions:
    """The sky regions a table's rows must lie in: every row is in all of them.

    Attributes
    ----------
    table
        The table's name in the query (qualified catalog name after `resolve`).
    alias
        Its alias in the query.
    ra_column, dec_column
        The columns the regions constrain.
    regions
        Circles, polygons and coordinate ranges; a row must lie in each.
    """

    table: str
    alias: str
    ra_column: str
    dec_column: str
    regions: tuple[Circle | Polygon | RaDecRange, ...]


@dataclass(frozen=True)
class IdConstraint:
    """Constant values a column of a table must take (``id = c`` or ``id IN (...)``)."""

    table: str
    alias: str
    column: str
    values: frozenset[int]


@dataclass
class _Table:
    name: str
    alias: str


def _selects(tree: exp.Expression) -> Iterator[exp.Select]:
    yield from tree.find_all(exp.Select)


def _tables(select: exp.Select) -> list[_Table]:
    found = []
    from_ = select.args.get("from_")
    items = [from_.this] if from_ is not None else []
    items += [j.this for j in select.args.get("joins") or []]
    while items:
        item = items.pop(0)
        if isinstance(item, exp.Subquery) and not isinstance(
            item.this, exp.Select | exp.SetOperation
        ):
            items.append(item.this)
        elif isinstance(item, exp.Table):
            parts = [p.name for p in (item.args.get("catalog"), item.args.get("db")) if p]
            name = ".".join([*parts, item.name])
            found.append(_Table(name, item.alias or item.name))
            items += [j.this for j in item.args.get("joins") or []]
    return found


def conjuncts(condition: exp.Expression | None) -> Iterator[exp.Expression]:
    """The terms a WHERE or ON condition joins with AND, in order (parentheses looked
    through); a condition without AND is its own only term."""
    if condition is None:
        return
    if isinstance(condition, exp.Where | exp.Paren):
        yield from conjuncts(condition.this)
    elif isinstance(condition, exp.And):
        yield from conjuncts(condition.this)
        yield from conjuncts(condition.expression)
    else:
        yield condition


def _column_owner(column: exp.Expression, tables: list[_Table]) -> tuple[_Table, str] | None:
    while isinstance(column, exp.Paren):
        column = column.this
    if not isinstance(column, exp.Column) or not isinstance(column.this, exp.Identifier):
        return None
    qualifier = column.table
    if qualifier:
        for table in tables:
            if qualifier.lower() in (table.alias.lower(), table.name.split(".")[-1].lower()):
                return table, column.name
        return None
    return (tables[0], column.name) if len(tables) == 1 else None


def _true_predicate(term: exp.Expression) -> exp.Anonymous | None:
    """The function of ``F(...) = 1`` / ``1 = F(...)``, for CONTAINS-like functions."""
    if not isinstance(term, exp.EQ):
        return None
    for func, other in ((term.this, term.expression), (term.expression, term.this)):
        if isinstance(func, exp.Anonymous) and _constant(other) == 1.0:
            return func
    return None


def _positions(
    table: _Table, position_columns: Mapping[str, tuple[str, str]] | None
) -> tuple[tuple[str, str], ...]:
    if position_columns is not None:
        for name, pair in position_columns.items():
            if name.lower() == table.name.lower():
                return (pair,)
        return ()
    return _DEFAULT_POSITIONS


def _sky_terms(
    select: exp.Select, tables: list[_Table]
) -> Iterator[tuple[_Table, str, str, Circle | Polygon | RaDecRange]]:
    translator = _Translator(nan_as_null=False, resolved=False)
    ranges: dict[tuple[str, str], list[float]] = {}
    for term in conjuncts(select.args.get("where")):
        func = _true_predicate(term)
        if func is not None:
            name = func.name.upper()
            try:
                if name in ("CONTAINS", "INTERSECTS"):
                    found = _region_term(translator, func, name, tables)
                elif name == "SCISQL_S2PTINCIRCLE":
                    found = _scisql_term(func, tables, "circle")
                elif name == "SCISQL_S2PTINBOX":
                    found = _scisql_term(func, tables, "box")
                else:
                    found = None
            except (AdqlError, ValueError, TypeError):
                found = None
            if found is not None:
                yield found
            continue
        cone = _distance_term(translator, term, tables)
        if cone is not None:
            yield cone
            continue
        for owner, column, low, high in _column_bounds(term, tables):
            key = (owner.alias, column.lower())
            bounds = ranges.setdefault(key, [-1e300, 1e300])
            bounds[0], bounds[1] = max(bounds[0], low), min(bounds[1], high)
    for table in tables:
        for ra_col, dec_col in _DEFAULT_POSITIONS:
            ra = ranges.get((table.alias, ra_col))
            dec = ranges.get((table.alias, dec_col))
            if ra is None and dec is None:
                continue
            ra_min, ra_max = ra if ra is not None else (0.0, 360.0)
            dec_min, dec_max = dec if dec is not None else (-90.0, 90.0)
            region = RaDecRange(
                max(ra_min, 0.0), min(ra_max, 360.0), max(dec_min, -90.0), min(dec_max, 90.0)
            )
            yield table, ra_col, dec_col, region


def _region_term(
    translator: _Translator, func: exp.Anonymous, name: str, tables: list[_Table]
) -> tuple[_Table, str, str, Circle | Polygon] | None:
    a, b = (translator.geometry(arg) for arg in func.expressions)
    if name == "INTERSECTS" and b.kind == "point":
        a, b = b, a
    if a.kind != "point":
        return None
    region = _constant_region(b)
    ra, dec = (_column_owner(p, tables) for p in a.params)
    if region is None or ra is None or dec is None or ra[0] is not dec[0]:
        return None
    return ra[0], ra[1], dec[1], region


def _distance_term(
    translator: _Translator, term: exp.Expression, tables: list[_Table]
) -> tuple[_Table, str, str, Circle] | None:
    """``DISTANCE(POINT(ra, dec), POINT(c1, c2)) < r`` (or ``<=``, either way round,
    or scisql_angSep) is a cone."""
    if isinstance(term, exp.LT | exp.LTE):
        func, limit = term.this, term.expression
    elif isinstance(term, exp.GT | exp.GTE):
        func, limit = term.expression, term.this
    else:
        return None
    radius = _constant(limit)
    if not isinstance(func, exp.Anonymous) or radius is None or radius < 0:
        return None
    name = func.name.upper()
    try:
        if name == "DISTANCE" and len(func.expressions) == 2:
            a, b = (translator.point(arg) for arg in func.expressions)
            params = [*a.params, *b.params]
        elif name in ("DISTANCE", "SCISQL_ANGSEP") and len(func.expressions) == 4:
            params = list(func.expressions)
        else:
            return None
    except AdqlError:
        return None
    for point, centre in ((params[:2], params[2:]), (params[2:], params[:2])):
        owners = [_column_owner(p, tables) for p in point]
        values = [_constant(c) for c in centre]
        if None in owners or None in values or owners[0][0] is not owners[1][0]:  # type: ignore[index]
            continue
        try:
            circle = Circle(values[0], values[1], radius)  # type: ignore[arg-type]
        except AdqlError:
            return None
        return owners[0][0], owners[0][1], owners[1][1], circle  # type: ignore[index]
    return None


def _constant_region(geometry: _Geometry) -> Circle | Polygon | None:
    if geometry.polygon is not None:
        return geometry.polygon
    if geometry.kind == "circle":
        return geometry.circle()
    return None


def _scisql_term(
    func: exp.Anonymous, tables: list[_Table], kind: str
) -> tuple[_Table, str, str, Circle | RaDecRange] | None:
    args = func.expressions
    ra, dec = _column_owner(args[0], tables), _column_owner(args[1], tables)
    values = [_constant(a) for a in args[2:]]
    if ra is None or dec is None or ra[0] is not dec[0] or any(v is None for v in values):
        return None
    if kind == "circle":
        region: Circle | RaDecRange = Circle(*values)  # type: ignore[arg-type]
    else:
        ra_min, dec_min, ra_max, dec_max = values
        region = RaDecRange(ra_min, ra_max, dec_min, dec_max)  # type: ignore[arg-type]
    return ra[0], ra[1], dec[1], region


def _column_bounds(
    term: exp.Expression, tables: list[_Table]
) -> Iterator[tuple[_Table, str, float, float]]:
    if isinstance(term, exp.Between):
        owner = _column_owner(term.this, tables)
        low, high = _constant(term.args["low"]), _constant(term.args["high"])
        if owner is not None and low is not None and high is not None:
            yield owner[0], owner[1], low, high
        return
    bounds = {exp.GT: "low", exp.GTE: "low", exp.LT: "high", exp.LTE: "high"}
    for kind, side in bounds.items():
        if isinstance(term, kind):
            for column, value, flipped in (
                (term.this, term.expression, False),
                (term.expression, term.this, True),
            ):
                owner, number = _column_owner(column, tables), _constant(value)
                if owner is None or number is None:
                    continue
                is_low = (side == "low") != flipped
                yield (
                    owner[0],
                    owner[1],
                    (number if is_low else -1e300),
                    (1e300 if is_low else number),
                )


def _integer(node: exp.Expression) -> int | None:
    """An integer literal's exact value (ids exceed a float's 53 bits)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Neg):
        inner = _integer(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def search_regions(
    query: AdqlQuery | ResolvedQuery, position_columns: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, TableRegions]:
    """The sky regions each table of the query is restricted to.

    Parameters
    ----------
    query
        A parsed query, best a `ResolvedQuery` (its aliases are unique).
    position_columns
        Table name → (ra column, dec column) of the positions its store is
        partitioned on. By default ``ra``/``dec`` and ``coord_ra``/``coord_dec``.

    Returns
    -------
    dict of str to TableRegions
        Keyed by table alias; tables without a sky constraint are absent.
    """
    if isinstance(query, ResolvedQuery):
        query = query.query
    result: dict[str, TableRegions] = {}
    for select in _selects(query.tree):
        tables = _tables(select)
        for table, ra_col, dec_col, region in _sky_terms(select, tables):
            allowed = _positions(table, position_columns)
            if not any(
                ra_col.lower() == r.lower() and dec_col.lower() == d.lower() for r, d in allowed
            ):
                continue
            previous = result.get(table.alias)
            regions = (previous.regions if previous else ()) + (region,)
            result[table.alias] = TableRegions(table.name, table.alias, ra_col, dec_col, regions)
    return result


def id_constraints(query: AdqlQuery | ResolvedQuery) -> list[IdConstraint]:
    """Integer constants columns must equal: ``col = 5``, ``col IN (1, 2, 3)``.

    Parameters
    ----------
    query
        A parsed query, best a `ResolvedQuery` (its aliases are unique).

    Returns
    -------
    list of IdConstraint
        One per (alias, column), the allowed values intersected over the terms.
    """
    if isinstance(query, ResolvedQuery):
        query = query.query
    found: dict[tuple[str, str], IdConstraint] = {}
    for select in _selects(query.tree):
        tables = _tables(select)
        for term in conjuncts(select.args.get("where")):
            pairs: list[tuple[exp.Expression, list[exp.Expression]]] = []
            if isinstance(term, exp.EQ):
                pairs = [(term.this, [term.expression]), (term.expression, [term.this])]
            elif isinstance(term, exp.In) and not term.args.get("query"):
                pairs = [(term.this, list(term.expressions))]
            for column, constants in pairs:
                owner = _column_owner(column, tables)
                values = [_integer(c) for c in constants]
                if owner is None or not values or any(v is None for v in values):
                    continue
                table, name = owner
                key = (table.alias, name)
                ints = frozenset(v for v in values if v is not None)
                if key in found:
                    ints &= found[key].values
                found[key] = IdConstraint(table.name, table.alias, name, ints)
    return list(found.values())
