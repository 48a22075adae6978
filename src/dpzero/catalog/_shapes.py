"""Selections kept by query shape: id lookups, cones and polygons seen before skip the
ADQL front end.

Checking a query against the ADQL grammar, parsing it with sqlglot, resolving its names
and recognising a plain selection cost 1–6 ms (a polygon's geometry the most), more
than an id lookup reads (q3c's PostgreSQL answers 12 ids in 0.4 ms). Clients send the
same query again and again with other ids or positions, as a prepared statement would.
So the query's *shape*, its text with every number replaced by a marker, keys the
selection it gave, and a query of a known shape gets that selection with its own
numbers put in the places the first one's were.

Only shapes whose numbers can be put back without the front end are kept: selections
whose WHERE clause is an id list alone (``objectId IN (...)`` or ``objectId = n``; the
numbers are the TOP, if any, and the ids) or one region alone (``CONTAINS(POINT(ra,
dec), CIRCLE(...) or POLYGON(...)) = 1``; the TOP, the region's numbers and the 1). A
shape fixes the token sequence of a query (see `query_shape`), so the grammar and name
resolution decide it exactly as the first time; the region is built by the same
functions as on the usual path, and where the values decide (an id beyond 64 bits, a
declination beyond the pole, a radius of 180° or more, a polygon not convex) the query
goes the usual way. Before a recipe is kept it must give back the very selection it was
learnt from. The cache belongs to a store and is dropped when the store's tables change.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NoReturn

from dpzero.catalog._pruning import Cone, Polygon
from dpzero.catalog._selection import (
    ConeTest,
    ConvexPolygonTest,
    InTest,
    RowTest,
    Selection,
    cone_test,
    polygon_test,
)
from dpzero.errors import InvalidInputError

if TYPE_CHECKING:
    from dpzero.adql import TableCatalog
    from dpzero.catalog._store import CatalogStore

__all__ = ["query_shape", "remember_selection", "remembered_selection"]

# The tokens in which a digit is not a number (strings, delimited identifiers, comments,
# hex literals, regular identifiers), then numbers, as `dpzero.adql._lexer` splits
# them. Spaces and operators are left between matches: they stay in the shape as written.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\r\n]*|0[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9_]*"""
    r"""|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)""",
    re.ASCII,  # other scripts' digits are not ADQL digits: they stay in the shape as text
)
# A marker no query holds outside a literal or comment (the lexer refuses NUL there).
_INTEGER_MARK = "\0i"
_REAL_MARK = "\0r"
_MARK_BEFORE = re.compile(r"(-?)\s*\0[ir]")
# ``IN (`` and a list of integers, each maybe negative: one shape for lists of any
# length (a marker follows ``(`` directly, so the IN is never a string's or a name's).
_INTEGER_LIST = re.compile(r"\bIN\s*\(\s*-?\s*\0i(?:\s*,\s*-?\s*\0i)*\s*\)", re.I | re.ASCII)
_LIST_MARK = "IN (\0L)"
# Shapes kept per store (a server sees few; a script looping over query texts with
# different column lists might see more).
MAX_SHAPES = 256
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class QueryShape:
    """A query's text with its numbers taken out.

    Attributes
    ----------
    text
        The query with each number replaced by a marker of its kind (integer or not),
        and each ``IN`` list of integers by one marker (a list of any length).
    numbers
        The numbers' texts, in order.
    negated
        For each number, whether a minus sign stands before it.
    """

    text: str
    numbers: tuple[str, ...]
    negated: tuple[bool, ...]

    def values(self) -> list[float]:
        """The numbers, signed, as floats."""
        return [
            -float(text) if minus else float(text)
            for text, minus in zip(self.numbers, self.negated, strict=True)
        ]


def query_shape(text: str) -> QueryShape:
    """The shape of an ADQL query.

    Two queries of the same shape have the same tokens but for the values of their
    numbers and the length of their ``IN`` lists of integers (an integer's place holds
    an integer in both): the regular expression splits strings, identifiers, comments
    and numbers where the ADQL lexer does, and everything else is kept as written.
    """
    numbers: list[str] = []

    def mark(match: re.Match[str]) -> str:
        number = match.group("number")
        if number is None:
            return match.group()
        numbers.append(number)
        return _INTEGER_MARK if number.isdigit() else _REAL_MARK

    marked = _TOKENS.sub(mark, text)
    negated = tuple(sign == "-" for sign in _MARK_BEFORE.findall(marked))
    return QueryShape(_INTEGER_LIST.sub(_LIST_MARK, marked), tuple(numbers), negated)


def _top(shape: QueryShape, selection: Selection) -> int | None:
    """The TOP a query of the shape gives (its first number), or -1 if it cannot."""
    if selection.top is None:
        return None
    if not shape.numbers or not shape.numbers[0].isdigit():
        return -1
    top = int(shape.numbers[0])
    return top if top in _INT64 else -1


def _only_test(selection: Selection) -> RowTest | None:
    """The selection's one numpy test when that test is its whole WHERE clause."""
    if selection.residual or len(selection.tests) != 1:
        return None
    return selection.tests[0]


def _plain(shape: QueryShape) -> bool:
    # A comment's text could pass for a minus sign before a number.
    return "--" not in shape.text


@dataclass(frozen=True)
class _IdListShape:
    """How a shape's numbers make an id-list selection: the first is the TOP when the
    selection has one, the others are the ids."""

    selection: Selection

    @classmethod
    def learn(cls, shape: QueryShape, selection: Selection) -> _IdListShape | None:
        """The recipe of ``selection``, made from a query of ``shape``, or None."""
        scan = selection.scan
        if (
            not isinstance(_only_test(selection), InTest)
            or scan.region is not None
            or scan.ids is None
            or not _plain(shape)
            or _REAL_MARK in shape.text
        ):
            return None
        return cls(selection)

    def selection_for(self, shape: QueryShape, full: Callable[[], Selection]) -> Selection | None:
        """The selection of a query of this shape, with its numbers, or None."""
        top = _top(shape, self.selection)
        has_top = self.selection.top is not None
        if top == -1 or len(shape.numbers) < 1 + has_top:
            return None
        ids = set()
        for text, minus in zip(shape.numbers[has_top:], shape.negated[has_top:], strict=True):
            value = -int(text) if minus else int(text)
            if value not in _INT64:
                return None  # the usual path decides what such a value means
            ids.add(value)
        key = tuple(sorted(ids))
        test = self.selection.tests[0]
        assert isinstance(test, InTest)
        return _rebuilt(self.selection, full, top, ids=key, tests=(InTest(test.column, key),))


def _region_places(
    shape: QueryShape, selection: Selection, region: tuple[float, ...]
) -> tuple[int, int] | None:
    """Where a region's numbers stand among a query's numbers, and where the 1 of
    ``CONTAINS(...) = 1`` (or ``1 = CONTAINS(...)``) stands; None if the numbers are not
    just those (and the TOP), or if they could stand in two places (one by chance)."""
    has_top = selection.top is not None
    if not _plain(shape) or len(shape.numbers) != len(region) + 1 + has_top:
        return None
    values = shape.values()[has_top:]
    found = [
        (at + has_top, (len(region) if at == 0 else 0) + has_top)
        for at in (0, 1)
        if tuple(values[at : at + len(region)]) == region
        and values[len(region) if at == 0 else 0] == 1.0
    ]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class _RegionShape:
    """How a shape's numbers make a selection of one cone or one convex polygon: the
    TOP first when the selection has one, the region's numbers (centre and radius, or
    vertices) from ``region_at`` on, the 1 of ``= 1`` at ``one_at``."""

    selection: Selection
    size: int
    region_at: int
    one_at: int

    @classmethod
    def learn(cls, shape: QueryShape, selection: Selection) -> _RegionShape | None:
        """The recipe of ``selection``, made from a query of ``shape``, or None."""
        scan, test = selection.scan, _only_test(selection)
        if scan.ids is not None or scan.dilate_arcsec:
            return None
        if isinstance(scan.region, Cone) and isinstance(test, ConeTest):
            numbers = (scan.region.ra, scan.region.dec, scan.region.radius)
        elif isinstance(scan.region, Polygon) and isinstance(test, ConvexPolygonTest):
            numbers = tuple(x for vertex in scan.region.vertices for x in vertex)
        else:
            return None
        places = _region_places(shape, selection, numbers)
        return None if places is None else cls(selection, len(numbers), *places)

    def selection_for(self, shape: QueryShape, full: Callable[[], Selection]) -> Selection | None:
        """The selection of a query of this shape, with its numbers, or None."""
        from dpzero.adql import AdqlError, Circle
        from dpzero.adql import Polygon as AdqlPolygon
        from dpzero.catalog._adql import _region

        top = _top(shape, self.selection)
        values = shape.values()
        numbers = values[self.region_at : self.region_at + self.size]
        if top == -1 or values[self.one_at] != 1.0 or not all(map(math.isfinite, numbers)):
            return None
        test = self.selection.tests[0]
        try:
            if isinstance(test, ConeTest):
                shape_of: Circle | AdqlPolygon = Circle(*numbers)
                new = cone_test(test.ra_column, test.dec_column, shape_of)
            else:
                shape_of = AdqlPolygon(tuple(zip(numbers[::2], numbers[1::2], strict=True)))
                new = polygon_test(test.ra_column, test.dec_column, shape_of)
            region = _region(shape_of)  # as the usual path makes the scan's region
        except (AdqlError, InvalidInputError):
            return None  # the usual path says what is wrong, with its place in the text
        if new is None or not isinstance(region, Cone | Polygon):
            return None
        return _rebuilt(self.selection, full, top, region=region, tests=(new,))


def _no_plan() -> NoReturn:
    raise RuntimeError("a kept selection's template builds no plan")


def _rebuilt(
    selection: Selection,
    full: Callable[[], Selection],
    top: int | None,
    *,
    tests: tuple,
    ids: tuple[int, ...] | None = None,
    region: Cone | Polygon | None = None,
) -> Selection:
    """``selection`` with another TOP, tests and scan ids or region."""
    scan = selection.scan
    return replace(
        selection,
        scan=replace(scan, ids=ids, region=region),
        tests=tests,
        top=top,
        # Built by the usual path if ever asked for (other backends, DuckDB).
        where_sql=lambda: full().where_sql(),
        general_plan=lambda: full().general_plan(),
    )


_RECIPES = (_IdListShape, _RegionShape)


class _Shapes:
    """One store's recipes by shape, for one version of its tables."""

    def __init__(self, catalog: TableCatalog) -> None:
        self.catalog = catalog
        self.recipes: OrderedDict[tuple[str, tuple[str, ...]], _IdListShape | _RegionShape] = (
            OrderedDict()
        )
        self.lock = threading.Lock()


_BY_STORE: weakref.WeakKeyDictionary[CatalogStore, _Shapes] = weakref.WeakKeyDictionary()
_BY_STORE_LOCK = threading.Lock()


def _shapes(store: CatalogStore) -> _Shapes:
    """The store's recipes, dropped when its tables changed (a new catalog)."""
    from dpzero.catalog._adql import store_catalog

    catalog = store_catalog(store)
    with _BY_STORE_LOCK:
        shapes = _BY_STORE.get(store)
        if shapes is None or shapes.catalog is not catalog:
            shapes = _BY_STORE[store] = _Shapes(catalog)
        return shapes


def _key(shape: QueryShape, inline: Collection[str]) -> tuple[str, tuple[str, ...]]:
    # In-memory tables' names take part in name resolution (an unqualified table name
    # may be ambiguous): a shape counts with the same names only.
    return shape.text, tuple(sorted(name.lower() for name in inline))


def remembered_selection(
    store: CatalogStore, text: str, inline: Collection[str], full: Callable[[], Selection]
) -> Selection | None:
    """The selection of ``text`` from a query of the same shape seen before, or None.

    ``inline`` names the in-memory tables the query may read; ``full`` builds the
    selection the usual way (for what the recipe leaves to it).
    """
    shape = query_shape(text)
    if not shape.numbers:
        return None
    shapes = _shapes(store)
    with shapes.lock:
        recipe = shapes.recipes.get(_key(shape, inline))
    return None if recipe is None else recipe.selection_for(shape, full)


def remember_selection(
    store: CatalogStore, text: str, inline: Collection[str], selection: Selection
) -> None:
    """Keep how ``selection``, made from ``text``, comes from its numbers (if it can)."""
    shape = query_shape(text)

    def source() -> Selection:
        return selection

    # The kept template holds no plan builders: they hold the parsed query and every
    # in-memory table it was given (a TAP upload), and a recipe rebuilds them anyway.
    template = replace(selection, where_sql=_no_plan, general_plan=_no_plan)
    for kind in _RECIPES:
        recipe = kind.learn(shape, template)
        # The recipe must give back the very selection it was learnt from.
        if recipe is not None and recipe.selection_for(shape, source) == selection:
            break
    else:
        return
    shapes = _shapes(store)
    key = _key(shape, inline)
    with shapes.lock:
        shapes.recipes[key] = recipe
        shapes.recipes.move_to_end(key)
        while len(shapes.recipes) > MAX_SHAPES:
            shapes.recipes.popitem(last=False)
