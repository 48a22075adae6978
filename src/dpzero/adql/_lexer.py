"""ADQL 2.1 tokens with their line and column, and the reserved words.

The lexer is strict where the standard is: regular identifiers start with a letter,
string literals use single quotes, ``"..."`` is a delimited identifier, comments run
from ``--`` to the end of the line, and there is no statement terminator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dpzero.adql._errors import AdqlSyntaxError

__all__ = ["ADQL_RESERVED", "RESERVED", "SQL_RESERVED", "Token", "tokenize"]


def _words(text: str) -> list[str]:
    return text.split()


#: Reserved words of ADQL itself (ADQL 2.1, section 2.1.2).
ADQL_RESERVED = frozenset(
    _words(
        """ABS ACOS AREA ASIN ATAN ATAN2 BIT_AND BIT_NOT BIT_OR BIT_XOR BOX CEILING CENTROID
    CIRCLE CONTAINS COORD1 COORD2 COORDSYS COS COT DEGREES DISTANCE EXP FLOOR ILIKE
    INTERSECTS IN_UNIT LOG LOG10 MOD OFFSET PI POINT POLYGON POWER RADIANS REGION RAND
    ROUND SIN SQRT TOP TAN TRUNCATE"""
    )
)

#: SQL-92 reserved words, which ADQL reserves too (``DEC`` excepted, as the IVOA
#: validation queries and every sky-survey service treat it as a column name).
SQL_RESERVED = frozenset(
    _words(
        """ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT
    AUTHORIZATION AVG BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST
    CATALOG CHAR CHARACTER CHAR_LENGTH CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE
    COLLATION COLUMN COMMIT CONNECT CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT
    CORRESPONDING COUNT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER CURSOR DATE DAY DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED
    DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP
    ELSE END ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH
    FIRST FLOAT FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR
    IDENTITY IMMEDIATE IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER
    INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE
    LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO
    NOT NULL NULLIF NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT
    OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES
    PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS
    SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME
    SPACE SQL SQLCODE SQLERROR SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN
    TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO TRAILING TRANSACTION TRANSLATE
    TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER USING VALUE
    VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE"""
    )
)

RESERVED = ADQL_RESERVED | SQL_RESERVED

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\f]+)
  | (?P<comment>--[^\r\n]*)
  | (?P<hex>0[xX][0-9A-Fa-f]+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z][A-Za-z0-9_]*)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<op><>|!=|<=|>=|\|\||[<>=+\-*/(),.&|^~])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One token of a query.

    ``kind`` is ``word`` (keyword or regular identifier), ``qident`` (delimited
    identifier, ``value`` unquoted), ``string`` (``value`` unquoted), ``number``,
    ``hex``, ``op`` or ``eof``.
    """

    kind: str
    text: str
    value: str
    line: int
    column: int
    offset: int

    @property
    def upper(self) -> str:
        """The token's text in upper case (keywords compare this way)."""
        return self.text.upper()

    def is_word(self, *words: str) -> bool:
        """Whether the token is one of the given keywords (case-insensitive)."""
        return self.kind == "word" and self.upper in words

    def is_op(self, *ops: str) -> bool:
        """Whether the token is one of the given operators or punctuation."""
        return self.kind == "op" and self.text in ops

    def shown(self) -> str:
        """How the token is named in an error message."""
        return "end of query" if self.kind == "eof" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens, dropping white space and comments.

    Parameters
    ----------
    text
        The ADQL query.

    Returns
    -------
    list of Token
        The tokens, ending with one of kind ``eof``.

    Raises
    ------
    AdqlSyntaxError
        For a character no ADQL token starts with, or an unterminated literal.
    """
    tokens: list[Token] = []
    pos = 0
    newline_since = -1
    line, line_start = 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise AdqlSyntaxError(_bad_character(text, pos), line, pos - line_start + 1)
        kind = match.lastgroup or ""
        raw = match.group()
        column = pos - line_start + 1
        if kind == "space" and "\n" in raw:
            newline_since = len(tokens)
        merge = tokens and tokens[-1].kind == "string" and newline_since == len(tokens)
        if kind == "string" and merge:
            # SQL-92: string literals separated by a line break are one literal.
            last = tokens[-1]
            value = last.value + raw[1:-1].replace("''", "'")
            merged = "'" + value.replace("'", "''") + "'"
            tokens[-1] = Token("string", merged, value, last.line, last.column, last.offset)
        elif kind not in ("space", "comment"):
            value = raw
            if kind == "string":
                value = raw[1:-1].replace("''", "'")
            elif kind == "qident":
                value = raw[1:-1].replace('""', '"')
                if not value:
                    raise AdqlSyntaxError("a delimited identifier cannot be empty", line, column)
            tokens.append(Token(kind, raw, value, line, column, pos))
        newlines = raw.count("\n")
        if newlines:
            line += newlines
            line_start = pos + raw.rfind("\n") + 1
        pos = match.end()
    tokens.append(Token("eof", "", "", line, len(text) - line_start + 1, len(text)))
    return tokens


def _bad_character(text: str, pos: int) -> str:
    char = text[pos]
    if char == "'":
        return "unterminated string literal (a quote is missing)"
    if char == '"':
        return "unterminated delimited identifier (a double quote is missing)"
    if char == "_":
        return "an identifier must start with a letter; write it in double quotes"
    if char == ";":
        return "ADQL has no statement terminator: remove the ';'"
    return f"unexpected character {char!r}"
