"""A strict recogniser of the ADQL 2.1 grammar, giving line and column on error.

sqlglot builds dpzero's query tree but accepts much that ADQL rejects, so every query
first goes through this recursive-descent recogniser of the ADQL 2.1 grammar
(IVOA Recommendation, 2023). It builds nothing: it walks the tokens, tracks the
furthest point any alternative reached, and reports that point with what was
expected there. It also checks what the grammar fixes beyond token order: function
names and their number of arguments, the forms of the geometry constructors, CAST
target types, TOP and OFFSET values, and that geometry values are not used with
arithmetic or string operators.

Deliberate choices where the standard leaves room:

- ``DEC`` is not reserved (every sky survey has a ``dec`` column).
- A reserved word is accepted as a part of a dotted name (``dp01_dc2_catalogs.position``,
  ``position.coord_ra``), where no keyword can stand; a bare reserved word as a name
  is an error.
- Joins other than NATURAL need ON or USING (as in the IVOA validation queries).
- CASE (simple and searched) is accepted, as most TAP services do.
- ``*`` may stand next to other select items (``SELECT 'tag', * FROM ...``), as the
  DP0.1 service and the IVOA validation set's ObsCore samples allow.
- User-defined functions are the ``scisql_*`` functions dpzero implements.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dpzero.adql._errors import AdqlSyntaxError
from dpzero.adql._lexer import RESERVED, Token, _words, tokenize

__all__ = ["FUNCTION_ARITY", "UDF_ARITY", "check_grammar"]

NUM, STR, GEOM, ANY = "numeric", "string", "geometry", "any"

#: Standard ADQL functions (not aggregates or geometry): name → (min, max) arguments.
FUNCTION_ARITY: dict[str, tuple[int, int]] = {
    **dict.fromkeys(
        _words("ABS CEILING DEGREES EXP FLOOR LOG LOG10 RADIANS SQRT ACOS ASIN ATAN COS COT")
        + _words("SIN TAN LOWER UPPER"),
        (1, 1),
    ),
    "ATAN2": (2, 2),
    "MOD": (2, 2),
    "POWER": (2, 2),
    "PI": (0, 0),
    "RAND": (0, 1),
    "ROUND": (1, 2),
    "TRUNCATE": (1, 2),
    "IN_UNIT": (2, 2),
}

#: User-defined functions dpzero implements (lower case) → (min, max) arguments.
UDF_ARITY: dict[str, tuple[int, int]] = {
    "scisql_nanojanskytoabmag": (1, 1),
    "scisql_nanojanskytoabmagsigma": (2, 2),
    "scisql_angsep": (4, 4),
    "scisql_s2ptincircle": (5, 5),
    "scisql_s2ptinbox": (6, 6),
}

_GEOMETRY = {
    "POINT",
    "CIRCLE",
    "BOX",
    "POLYGON",
    "REGION",
    "CENTROID",
    "AREA",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "DISTANCE",
    "CONTAINS",
    "INTERSECTS",
}
_AGGREGATES = {"AVG", "MAX", "MIN", "SUM"}
_CAST_TYPES = (
    "SMALLINT INTEGER BIGINT REAL DOUBLE PRECISION CHAR VARCHAR TIMESTAMP POINT CIRCLE POLYGON"
)
_STRING_FUNCTIONS = {"LOWER", "UPPER", "COORDSYS"}
_COMPARISONS = ("=", "<>", "!=", "<", ">", "<=", ">=")
_KEYWORD_HINTS = ("FROM", "WHERE", "ORDER", "GROUP", "HAVING", "JOIN", "UNION", "OFFSET")


class _MismatchError(Exception):
    """An alternative did not match; the caller may try another."""


@dataclass(frozen=True)
class _Value:
    """What the recogniser knows of a value expression."""

    type: str
    first: Token
    literal: str | None = None  # "string", "null", "number" for a bare literal


class _Recogniser:
    def __init__(self, text: str, udfs: dict[str, tuple[int, int]]) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.udfs = udfs
        self.furthest = -1
        self.expected: list[str] = []
        self.implicit_aliases: set[int] = set()

    # ---------------------------------------------------------------- basics
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def fail(self, expected: str) -> _MismatchError:
        if self.i > self.furthest:
            self.furthest, self.expected = self.i, [expected]
        elif self.i == self.furthest and expected not in self.expected:
            self.expected.append(expected)
        return _MismatchError()

    def hard(self, message: str, tok: Token | None = None) -> AdqlSyntaxError:
        tok = tok or self.tok
        return AdqlSyntaxError(message, tok.line, tok.column)

    def accept_word(self, *words: str) -> Token | None:
        if self.tok.is_word(*words):
            self.i += 1
            return self.tokens[self.i - 1]
        for word in words:
            self.fail(word)
        return None

    def expect_word(self, word: str) -> Token:
        tok = self.accept_word(word)
        if tok is None:
            raise _MismatchError()
        return tok

    def accept_op(self, op: str) -> bool:
        if self.tok.is_op(op):
            self.i += 1
            return True
        self.fail(repr(op))
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise _MismatchError()

    def attempt[T](self, rule: Callable[[], T]) -> T | None:
        """Run ``rule``; on a mismatch put the position back and return None."""
        start = self.i
        try:
            return rule()
        except _MismatchError:
            self.i = start
            return None

    # ---------------------------------------------------------------- queries
    def query(self) -> None:
        if self.accept_word("WITH"):
            self.with_query()
            while self.accept_op(","):
                self.with_query()
        self.query_expression()
        self.order_and_offset()
        if self.tok.kind != "eof":
            raise self.fail("end of query")

    def with_query(self) -> None:
        self.identifier()
        if self.accept_op("("):
            self.identifier()
            while self.accept_op(","):
                self.identifier()
            self.expect_op(")")
        self.expect_word("AS")
        self.subquery()

    def subquery(self) -> None:
        self.expect_op("(")
        if self.tok.is_word("WITH"):
            raise self.hard("WITH is only allowed at the start of the whole query")
        self.query_expression()
        self.order_and_offset()
        self.expect_op(")")

    def query_expression(self) -> None:
        self.query_term()
        while self.accept_word("UNION", "EXCEPT"):
            self.accept_word("ALL")
            self.query_term()

    def query_term(self) -> None:
        self.query_primary()
        while self.accept_word("INTERSECT"):
            self.accept_word("ALL")
            self.query_primary()

    def query_primary(self) -> None:
        if self.tok.is_op("("):
            self.subquery()
        else:
            self.select_query()

    def order_and_offset(self) -> None:
        if self.accept_word("ORDER"):
            self.expect_word("BY")
            self.sort_key()
            while self.accept_op(","):
                self.sort_key()
        if self.accept_word("OFFSET"):
            self.unsigned_integer("OFFSET")
        if self.tok.is_word("LIMIT"):
            raise self.hard("ADQL has no LIMIT: write SELECT TOP n instead")

    def sort_key(self) -> None:
        self.value_expression()
        self.accept_word("ASC", "DESC")

    def unsigned_integer(self, what: str) -> None:
        tok = self.tok
        if tok.kind == "number" and tok.text.isdigit():
            self.i += 1
            return
        if tok.kind == "number" or tok.is_op("-", "+"):
            raise self.hard(f"{what} takes a non-negative integer, not {self.rest_of_number()}")
        raise self.fail(f"an integer after {what}")

    def rest_of_number(self) -> str:
        tok = self.tok
        if tok.is_op("-", "+") and self.peek().kind == "number":
            return tok.text + self.peek().text
        return tok.text

    def select_query(self) -> None:
        self.expect_word("SELECT")
        self.accept_word("ALL", "DISTINCT")
        if self.accept_word("TOP"):
            self.unsigned_integer("TOP")
        if self.tok.is_word("TOP"):
            raise self.hard("TOP must come right after SELECT (and ALL or DISTINCT)")
        if self.tok.is_word("ALL", "DISTINCT"):
            raise self.hard(f"{self.tok.text} must come before TOP")
        self.select_list()
        if self.tok.is_word("LIMIT"):
            raise self.hard("ADQL has no LIMIT: write SELECT TOP n instead")
        self.expect_word("FROM")
        self.table_reference()
        while self.accept_op(","):
            self.table_reference()
        if self.accept_word("WHERE"):
            self.search_condition()
        if self.accept_word("GROUP"):
            self.expect_word("BY")
            self.value_expression()
            while self.accept_op(","):
                self.value_expression()
        if self.accept_word("HAVING"):
            self.search_condition()

    def select_list(self) -> None:
        self.select_item()
        while self.accept_op(","):
            self.select_item()

    def select_item(self) -> None:
        if self.accept_op("*"):
            return
        if self.attempt(self.qualified_star) is not None:
            return
        self.value_expression()
        self.alias()

    def qualified_star(self) -> bool:
        start = self.tok
        parts = self.dotted_name(4, "column reference")
        self.expect_op(".")
        self.expect_op("*")
        if len(parts) > 3:
            raise self.hard("a table name has at most 3 parts", start)
        return True

    def alias(self, required: bool = False) -> None:
        if self.accept_word("AS"):
            self.identifier()
            return
        if self.tok.is_word("LIMIT") and self.peek().kind == "number":
            raise self.hard("ADQL has no LIMIT: write SELECT TOP n instead")
        if self.is_identifier(self.tok):
            self.implicit_aliases.add(self.i)
            self.i += 1
        elif required:
            raise self.fail("an alias (AS name)")

    # ---------------------------------------------------------------- FROM
    def table_reference(self) -> None:
        self.table_primary()
        while self.join():
            pass

    def table_primary(self) -> None:
        if self.tok.is_op("("):
            subquery = self.peek().is_word("SELECT", "WITH") or self.peek().is_op("(")
            if subquery and self.attempt(self.derived_table) is not None:
                return
            self.expect_op("(")
            self.table_primary()
            if not self.join():
                raise self.fail("JOIN")
            while self.join():
                pass
            self.expect_op(")")
            return
        self.table_name()
        self.alias()

    def derived_table(self) -> bool:
        self.subquery()
        self.alias(required=True)
        return True

    def join(self) -> bool:
        start = self.i
        natural = self.accept_word("NATURAL") is not None
        if self.accept_word("INNER") is None and self.accept_word("LEFT", "RIGHT", "FULL"):
            self.accept_word("OUTER")
        if self.accept_word("JOIN") is None:
            self.i = start
            return False
        self.table_primary()
        if natural:
            return True
        if self.tok.is_word("ON"):
            self.i += 1
            self.search_condition()
        elif self.tok.is_word("USING"):
            self.i += 1
            self.expect_op("(")
            self.identifier()
            while self.accept_op(","):
                self.identifier()
            self.expect_op(")")
        else:
            raise self.fail(_JOIN_CONDITION)
        return True

    # ---------------------------------------------------------------- names
    def is_identifier(self, tok: Token, after_dot: bool = False) -> bool:
        if tok.kind == "qident":
            return True
        return tok.kind == "word" and (after_dot or tok.upper not in RESERVED)

    def identifier(self, after_dot: bool = False) -> Token:
        tok = self.tok
        if self.is_identifier(tok, after_dot):
            self.i += 1
            return tok
        raise self.fail("an identifier")

    def qualifier_ahead(self) -> bool:
        """A reserved word used as a qualifier: ``position.coord_ra``."""
        return (
            self.tok.kind == "word"
            and self.peek().is_op(".")
            and (self.is_identifier(self.peek(2), after_dot=True) or self.peek(2).is_op("*"))
        )

    def dotted_name(self, max_parts: int, what: str) -> list[Token]:
        parts = [self.identifier(after_dot=self.qualifier_ahead())]
        while self.tok.is_op(".") and self.is_identifier(self.peek(), after_dot=True):
            self.i += 1
            parts.append(self.identifier(after_dot=True))
        if len(parts) > max_parts:
            raise self.hard(f"a {what} has at most {max_parts} parts", parts[0])
        return parts

    def table_name(self) -> list[Token]:
        return self.dotted_name(3, "table name")

    # ---------------------------------------------------------------- conditions
    def search_condition(self) -> None:
        self.boolean_term()
        while self.accept_word("OR"):
            self.boolean_term()

    def boolean_term(self) -> None:
        self.boolean_factor()
        while self.accept_word("AND"):
            self.boolean_factor()

    def boolean_factor(self) -> None:
        self.accept_word("NOT")
        if self.attempt(self.predicate) is not None:
            return
        self.expect_op("(")
        self.search_condition()
        self.expect_op(")")

    def predicate(self) -> bool:
        if self.accept_word("EXISTS"):
            self.subquery()
            return True
        left = self.value_expression()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARISONS:
            self.i += 1
            self.value_expression()
            return True
        self.fail("a comparison operator")
        if self.accept_word("IS"):
            self.accept_word("NOT")
            self.expect_word("NULL")
            return True
        negated = self.accept_word("NOT") is not None
        if self.accept_word("BETWEEN"):
            self.value_expression()
            self.expect_word("AND")
            self.value_expression()
        elif self.accept_word("IN"):
            self.in_values()
        elif like := self.accept_word("LIKE", "ILIKE"):
            right = self.value_expression()
            for value in (left, right):
                if value.type == GEOM:
                    raise self.hard(f"{like.upper} cannot compare geometry values", value.first)
        else:
            if not negated:
                self.fail("BETWEEN")
                self.fail("IN")
                self.fail("LIKE")
            raise _MismatchError()
        return True

    def in_values(self) -> None:
        if self.tok.is_op("(") and self.peek().is_word("SELECT", "WITH"):
            self.subquery()
            return
        self.expect_op("(")
        self.value_expression()
        while self.accept_op(","):
            self.value_expression()
        self.expect_op(")")

    # ---------------------------------------------------------------- values
    def value_expression(self) -> _Value:
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-", "||", "&", "|", "^"):
            op = self.tok
            self.i += 1
            right = self.term()
            left = self.combine(op, left, right, STR if op.text == "||" else NUM)
        return left

    def combine(self, op: Token, left: _Value, right: _Value, result: str) -> _Value:
        for value in (left, right):
            if value.type == GEOM:
                raise self.hard(
                    f"operator {op.text} cannot be applied to a geometry value", value.first
                )
        return _Value(result, left.first)

    def term(self) -> _Value:
        left = self.factor()
        while self.tok.is_op("*", "/"):
            op = self.tok
            self.i += 1
            left = self.combine(op, left, self.factor(), NUM)
        return left

    def factor(self) -> _Value:
        first = self.tok
        if self.tok.is_op("+", "-", "~"):
            self.i += 1
            value = self.primary()
            if value.type == GEOM:
                raise self.hard(f"operator {first.text} cannot be applied to a geometry value")
            literal = "number" if value.literal == "number" else None
            return _Value(NUM, first, literal)
        return self.primary()

    def primary(self) -> _Value:
        tok = self.tok
        if tok.kind in ("number", "hex"):
            self.i += 1
            return _Value(NUM, tok, "number")
        if tok.kind == "string":
            self.i += 1
            return _Value(STR, tok, "string")
        if tok.is_word("NULL"):
            self.i += 1
            return _Value(ANY, tok, "null")
        if tok.is_op("("):
            if self.peek().is_word("SELECT", "WITH"):
                raise self.hard("ADQL allows a subquery here only after IN or EXISTS, or in FROM")
            self.i += 1
            value = self.value_expression()
            self.expect_op(")")
            return _Value(value.type, tok)
        if tok.kind == "word" and self.peek().is_op("("):
            return self.function_call()
        if tok.is_word("CASE"):
            return self.case_expression()
        if self.is_identifier(tok) or self.qualifier_ahead():
            self.dotted_name(4, "column reference")
            return _Value(ANY, tok)
        raise self.fail("an expression")

    def case_expression(self) -> _Value:
        first = self.tok
        self.i += 1
        simple = not self.tok.is_word("WHEN")
        if simple:
            self.value_expression()
        if not self.tok.is_word("WHEN"):
            raise self.fail("WHEN")
        result = ANY
        while self.accept_word("WHEN"):
            if simple:
                self.value_expression()
            else:
                self.search_condition()
            self.expect_word("THEN")
            result = self.value_expression().type
        if self.accept_word("ELSE"):
            self.value_expression()
        self.expect_word("END")
        return _Value(result, first)

    # ---------------------------------------------------------------- functions
    def arguments(self) -> list[_Value]:
        self.expect_op("(")
        args: list[_Value] = []
        if not self.tok.is_op(")"):
            args.append(self.value_expression())
            while self.accept_op(","):
                args.append(self.value_expression())
        self.expect_op(")")
        return args

    def function_call(self) -> _Value:
        name = self.tok
        upper = name.upper
        if upper == "COUNT" or upper in _AGGREGATES:
            self.i += 2
            if upper == "COUNT" and self.accept_op("*"):
                self.expect_op(")")
                return _Value(NUM, name)
            self.accept_word("DISTINCT", "ALL")
            self.value_expression()
            self.expect_op(")")
            return _Value(NUM, name)
        if upper == "CAST":
            return self.cast()
        if upper in _GEOMETRY:
            self.i += 1
            return self.geometry(name, self.arguments())
        if upper == "COALESCE":
            self.i += 1
            args = self.arguments()
            if not args:
                raise self.hard("COALESCE needs at least one argument", name)
            return _Value(args[0].type, name)
        if upper in FUNCTION_ARITY:
            arity = FUNCTION_ARITY[upper]
        elif name.text.lower() in self.udfs and upper not in RESERVED:
            arity = self.udfs[name.text.lower()]
        elif upper in RESERVED:
            raise self.fail("an expression")
        else:
            raise self.hard(self.unknown_function(name.text), name)
        self.i += 1
        args = self.arguments()
        low, high = arity
        if not low <= len(args) <= high:
            count = str(low) if low == high else f"{low} to {high}"
            raise self.hard(
                f"{name.text} takes {count} argument{'s' if high != 1 else ''}, not {len(args)}",
                name,
            )
        for arg in args:
            if arg.type == GEOM:
                raise self.hard(f"{name.text} cannot take a geometry value", arg.first)
        if upper == "IN_UNIT" and args[1].literal != "string":
            raise self.hard("the unit given to IN_UNIT must be a string literal", args[1].first)
        return _Value(STR if upper in _STRING_FUNCTIONS else NUM, name)

    def unknown_function(self, name: str) -> str:
        known = [*FUNCTION_ARITY, *_GEOMETRY, *_AGGREGATES, "COUNT", "CAST", "COALESCE"]
        known += list(self.udfs)
        close = difflib.get_close_matches(name.upper(), [k.upper() for k in known], n=3)
        names = {k.upper(): k for k in known}
        hint = f" (did you mean {' or '.join(names[c] for c in close)}?)" if close else ""
        return f"unknown function {name}{hint}"

    def cast(self) -> _Value:
        name = self.tok
        self.i += 1
        self.expect_op("(")
        self.value_expression()
        self.expect_word("AS")
        type_tok = self.tok
        allowed = _CAST_TYPES.split()
        if not type_tok.is_word(*allowed) or type_tok.is_word("PRECISION"):
            raise self.hard(
                f"CAST cannot convert to {type_tok.text or 'nothing'}; ADQL types are "
                "SMALLINT, INTEGER, BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), "
                "TIMESTAMP, POINT, CIRCLE and POLYGON",
                type_tok,
            )
        self.i += 1
        if type_tok.is_word("DOUBLE"):
            self.expect_word("PRECISION")
        if type_tok.is_word("CHAR", "VARCHAR") and self.accept_op("("):
            self.unsigned_integer("a character length")
            self.expect_op(")")
        self.expect_op(")")
        kind = type_tok.upper
        result = STR if kind in ("CHAR", "VARCHAR", "TIMESTAMP") else NUM
        return _Value(GEOM if kind in ("POINT", "CIRCLE", "POLYGON") else result, name)

    def geometry(self, name: Token, args: list[_Value]) -> _Value:
        kind = name.upper
        n = len(args)

        def bad(message: str) -> AdqlSyntaxError:
            return self.hard(f"{kind}: {message}", name)

        def coordinates(values: Iterable[_Value]) -> None:
            for value in values:
                if value.type in (GEOM, STR) or value.literal == "string":
                    raise self.hard(f"{kind}: a coordinate must be a number", value.first)

        def geometries(values: Iterable[_Value]) -> None:
            for value in values:
                if value.type in (NUM, STR) or value.literal is not None:
                    raise self.hard(f"{kind}: a geometry value is needed here", value.first)

        def system(value: _Value) -> bool:
            return value.literal in ("string", "null") or value.type == STR

        if kind in ("POINT", "CIRCLE", "BOX", "POLYGON"):
            rest = args[1:] if args and system(args[0]) else args
            if kind == "POINT":
                if len(rest) != 2:
                    raise bad("takes [a coordinate system,] two coordinates")
                coordinates(rest)
            elif kind == "CIRCLE":
                if len(rest) == 3:
                    coordinates(rest)
                elif len(rest) == 2 and (rest[0].type in (NUM, STR) or rest[0].literal):
                    raise bad("takes [a coordinate system,] a centre and a radius")
                elif len(rest) == 2:
                    geometries(rest[:1])
                    coordinates(rest[1:])
                else:
                    raise bad("takes [a coordinate system,] a centre and a radius")
            elif kind == "BOX":
                if len(rest) == 4:
                    coordinates(rest)
                elif len(rest) == 3 and (rest[0].type in (NUM, STR) or rest[0].literal):
                    raise bad("takes [a coordinate system,] a centre, a width and a height")
                elif len(rest) == 3:
                    geometries(rest[:1])
                    coordinates(rest[1:])
                else:
                    raise bad("takes [a coordinate system,] a centre, a width and a height")
            elif all(a.type == ANY and a.literal is None for a in rest) and len(rest) >= 3:
                pass
            elif any(a.type == GEOM for a in rest):
                if len(rest) < 3:
                    raise bad("needs at least three vertices")
                geometries(rest)
            else:
                if len(rest) < 6 or len(rest) % 2:
                    raise bad("needs at least three vertices, each as two coordinates")
                coordinates(rest)
            return _Value(GEOM, name)
        if kind == "REGION":
            if n != 1 or args[0].type == GEOM or args[0].type == NUM:
                raise bad("takes one string")
            return _Value(GEOM, name)
        if kind in ("CENTROID", "AREA", "COORD1", "COORD2", "COORDSYS"):
            if n != 1:
                raise bad("takes one geometry value")
            geometries(args)
            result = {"CENTROID": GEOM, "COORDSYS": STR}.get(kind, NUM)
            return _Value(result, name)
        if kind == "DISTANCE":
            if n == 4:
                coordinates(args)
            elif n == 2:
                geometries(args)
            else:
                raise bad("takes two points or four coordinates")
            return _Value(NUM, name)
        if n != 2:
            raise bad("takes two geometry values")
        geometries(args)
        return _Value(NUM, name)

    # ---------------------------------------------------------------- errors
    def error(self) -> AdqlSyntaxError:
        tok = self.tokens[max(self.furthest, 0)]
        expected = self.expected or ["a query"]
        previous = self.furthest - 1
        if previous in self.implicit_aliases:
            alias = self.tokens[previous]
            wanted = [e for e in expected if e in _KEYWORD_HINTS]
            close = difflib.get_close_matches(alias.upper, wanted or _KEYWORD_HINTS, n=1)
            if close:
                return AdqlSyntaxError(
                    f"expected {close[0]} near {alias.shown()}", alias.line, alias.column
                )
        alternatives = _join_alternatives(expected)
        where = "at the end of the query" if tok.kind == "eof" else f"near {tok.shown()}"
        message = f"expected {alternatives} {where}"
        if tok.kind == "word" and tok.upper in RESERVED and "an identifier" in expected:
            message += (
                f"; {tok.text} is a reserved word: write it in double quotes to use it as a name"
            )
        elif (
            tok.kind == "word"
            and tok.upper in RESERVED
            and "an expression" in expected
            and not self.tokens[self.furthest + 1].is_op("(")
        ):
            message += (
                f"; {tok.text} is a reserved word: write it in double quotes "
                "to use it as a column name"
            )
        return AdqlSyntaxError(message, tok.line, tok.column)


_NOISE = {"NATURAL", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "ALL", "DISTINCT", "ASC", "DESC"}
_JOIN_CONDITION = "ON or USING (a join needs a condition unless NATURAL)"
_ORDER = [
    _JOIN_CONDITION,
    "a comparison operator",
    "an identifier",
    "an expression",
    "FROM",
    "JOIN",
    "WHERE",
    "AND",
    "OR",
]


def _join_alternatives(expected: list[str]) -> str:
    shown = [e for e in expected if e not in _NOISE] or expected
    shown.sort(key=lambda e: (e == "end of query", _ORDER.index(e) if e in _ORDER else 99))
    shown = shown[:6]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def check_grammar(text: str, udfs: dict[str, tuple[int, int]] | None = None) -> None:
    """Check that ``text`` is one query of the ADQL 2.1 grammar.

    Parameters
    ----------
    text
        The query.
    udfs
        User-defined functions allowed, lower-case name → (min, max) arguments;
        dpzero's own (`UDF_ARITY`) when omitted.

    Raises
    ------
    AdqlSyntaxError
        With the line and column of the first token that does not fit.
    """
    recogniser = _Recogniser(text, UDF_ARITY if udfs is None else udfs)
    if recogniser.tok.kind == "eof":
        raise AdqlSyntaxError("the query is empty", 1, 1)
    try:
        recogniser.query()
    except _MismatchError:
        raise recogniser.error() from None
