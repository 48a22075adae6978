"""`parse_adql`: strict ADQL 2.1 check, then a sqlglot tree of the query."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import sqlglot
from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError
from sqlglot.tokens import TokenType

from dpzero.adql._errors import AdqlSyntaxError
from dpzero.adql._grammar import check_grammar
from dpzero.adql._lexer import tokenize

__all__ = ["AdqlDialect", "AdqlQuery", "check_query_file", "parse_adql"]

# sqlglot turns known function names into typed nodes (LOG into a base-10 log, ...).
# ADQL functions are mapped by dpzero's translator instead, so all but these stay
# anonymous calls carrying the name as written.
_TYPED_FUNCTIONS = {"COUNT", "AVG", "MIN", "MAX", "SUM", "COALESCE", "LOWER", "UPPER"}


class AdqlDialect(Dialect):
    """sqlglot dialect for ADQL: TOP is a keyword; NULLs sort last both ways.

    ADQL leaves the place of NULLs in ORDER BY open. Last in both directions means
    ``SELECT TOP 10 ... ORDER BY mag DESC`` gives the ten largest real values, never
    rows without a magnitude (NaN reads as NULL, see `to_duckdb`).
    """

    NULL_ORDERING = "nulls_are_last"

    class Tokenizer(tokens.Tokenizer):
        """ADQL tokens: the default ones plus TOP."""

        KEYWORDS: ClassVar = {**tokens.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}

    class Parser(parser.Parser):
        """Default parser with ADQL functions kept anonymous."""

        FUNCTIONS: ClassVar = {
            k: v for k, v in parser.Parser.FUNCTIONS.items() if k in _TYPED_FUNCTIONS
        }


@dataclass(frozen=True)
class AdqlQuery:
    """A query that passed the strict ADQL 2.1 check.

    Attributes
    ----------
    text
        The query as the user wrote it.
    tree
        sqlglot's tree of the query. Treat it as read-only: functions that rewrite
        it (`resolve`, `to_duckdb`) work on a copy.
    """

    text: str
    tree: exp.Expression

    def adql(self) -> str:
        """The query written back as ADQL (one line, comments dropped)."""
        return self.tree.sql(dialect=AdqlDialect)


def _normalised(text: str) -> str:
    """The query's tokens joined by spaces: no comments, merged strings, decimal hex."""
    parts = []
    for tok in tokenize(text)[:-1]:
        parts.append(str(int(tok.text, 16)) if tok.kind == "hex" else tok.text)
    return " ".join(parts)


def parse_adql(text: str) -> AdqlQuery:
    """Check an ADQL 2.1 query strictly and parse it.

    Parameters
    ----------
    text
        One ADQL query.

    Returns
    -------
    AdqlQuery
        The query and its sqlglot tree.

    Raises
    ------
    AdqlSyntaxError
        If the query is not valid ADQL; the message starts with the line and column.
    """
    try:
        check_grammar(text)
        tree = sqlglot.parse_one(_normalised(text), read=AdqlDialect)
        _nesting_depth(tree)
    except ParseError as exc:  # the grammar passed it: a gap between the two parsers
        raise AdqlSyntaxError(f"query not understood: {exc}", 1, 1) from exc
    except RecursionError:
        raise AdqlSyntaxError("the query is nested too deeply", 1, 1) from None
    return AdqlQuery(text=text, tree=tree)


_MAX_DEPTH = 800  # whole OR chains of ~900 terms were seen to pass every stage


def _nesting_depth(tree: exp.Expression) -> None:
    """Refuse trees deeper than later recursive passes can walk."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise RecursionError
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def check_query_file(path: Path) -> str | None:
    """Check the one ADQL query in a file.

    Parameters
    ----------
    path
        A UTF-8 text file.

    Returns
    -------
    str or None
        None if the query is valid, else the error (with line and column).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read the file: {exc}"
    try:
        parse_adql(text)
    except AdqlSyntaxError as exc:
        return exc.message
    return None
