"""Selections kept by query shape: an id lookup seen before skips the ADQL front end.

Checking a query against the ADQL grammar, parsing it with sqlglot, resolving its names
and recognising a plain selection cost ~1 ms, more than an id lookup reads (q3c's
PostgreSQL answers 12 ids in 0.4 ms). Clients send the same query again and again with
other ids, as a prepared statement would. So the query's *shape*, its text with every
number replaced by a marker, keys the selection it gave, and a query of a known shape
gets that selection with its own numbers put in the places the first one's were.

Only a shape whose numbers can be put back without the front end is kept: a selection
whose WHERE clause is an id list alone (``objectId IN (...)`` or ``objectId = n``), its
numbers the TOP (if any) and the ids. A shape fixes the token sequence of a query (see
`query_shape`), so the grammar and name resolution would decide it exactly as the first
time; what the values decide (an id beyond 64 bits, a TOP too large) sends the query
down the usual path. The cache belongs to a store and is dropped when the store's
tables change.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dpzero.catalog._selection import InTest, Selection

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
_LIST_MARK = "\0L"
# Two or more integers, each maybe negative, separated by commas. (Only an id list's
# shape is ever kept, where such a run is the list inside ``IN (...)``.)
_INTEGER_LIST = re.compile(r"-?\s*\0i(?:\s*,\s*-?\s*\0i)+")
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
        and each list of two or more integers by one marker (an id list of any length).
    numbers
        The numbers' texts, in order.
    negated
        For each number, whether a minus sign stands before it.
    """

    text: str
    numbers: tuple[str, ...]
    negated: tuple[bool, ...]


def query_shape(text: str) -> QueryShape:
    """The shape of an ADQL query.

    Two queries of the same shape have the same tokens but for the values of their
    numbers and the length of their integer lists (an integer's place holds an integer
    in both): the regular expression splits strings, identifiers, comments and numbers
    where the ADQL lexer does, and everything else is kept as written.
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


@dataclass(frozen=True)
class _IdListShape:
    """How a shape's numbers make an id-list selection: the first is the TOP when
    ``has_top``, the others are the ids."""

    selection: Selection
    has_top: bool

    @classmethod
    def learn(cls, shape: QueryShape, selection: Selection) -> _IdListShape | None:
        """The recipe of ``selection``, made from a query of ``shape``, or None when its
        numbers are not just its TOP and its ids."""
        scan = selection.scan
        tests = selection.tests
        if (
            selection.residual
            or scan.region is not None
            or scan.ids is None
            or len(tests) != 1
            or not isinstance(tests[0], InTest)
            or "--" in shape.text  # a comment's text could pass for a minus sign
            or _REAL_MARK in shape.text
        ):
            return None
        recipe = cls(selection, selection.top is not None)
        values = recipe._values(shape)
        # The recipe must give back the very selection it was learnt from.
        if values is None or recipe._selection(values, lambda: selection) != selection:
            return None
        return recipe

    def _values(self, shape: QueryShape) -> list[int] | None:
        if len(shape.numbers) < 1 + self.has_top:
            return None
        values = []
        for text, negated in zip(shape.numbers, shape.negated, strict=True):
            value = -int(text) if negated else int(text)
            if value not in _INT64:
                return None  # the usual path decides what such a value means
            values.append(value)
        return values

    def _selection(self, values: list[int], full: Callable[[], Selection]) -> Selection:
        top = values[0] if self.has_top else None
        ids = tuple(sorted(set(values[1:] if self.has_top else values)))
        test = self.selection.tests[0]
        assert isinstance(test, InTest)
        return replace(
            self.selection,
            scan=replace(self.selection.scan, ids=ids),
            tests=(InTest(test.column, ids),),
            top=top,
            # Built by the usual path if ever asked for (other backends, DuckDB).
            where_sql=lambda: full().where_sql(),
            general_plan=lambda: full().general_plan(),
        )

    def selection_for(self, shape: QueryShape, full: Callable[[], Selection]) -> Selection | None:
        """The selection of a query of this shape, with its numbers, or None."""
        values = self._values(shape)
        return None if values is None else self._selection(values, full)


class _Shapes:
    """One store's recipes by shape, for one version of its tables."""

    def __init__(self, catalog: TableCatalog) -> None:
        self.catalog = catalog
        self.recipes: OrderedDict[tuple[str, tuple[str, ...]], _IdListShape] = OrderedDict()
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
    recipe = _IdListShape.learn(shape, selection)
    if recipe is None:
        return
    shapes = _shapes(store)
    with shapes.lock:
        shapes.recipes[_key(shape, inline)] = recipe
        shapes.recipes.move_to_end(_key(shape, inline))
        while len(shapes.recipes) > MAX_SHAPES:
            shapes.recipes.popitem(last=False)
