"""Name resolution: tables and columns of a query against the service's catalog.

ADQL regular identifiers are case-insensitive; delimited ones (``"objectId"``) must
match exactly. `resolve` checks every table and column, names the closest existing
ones when something is unknown, and returns a copy of the query in which every
catalog table has an alias, every column is qualified by it and spelled as in the
catalog, and ``*`` is expanded, so that the engine and the output metadata need no
further lookups.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from dpzero.adql._errors import AdqlNameError
from dpzero.adql._lexer import tokenize
from dpzero.adql._parse import AdqlQuery

if TYPE_CHECKING:
    from dpzero.schema import SchemaSpec

__all__ = ["ColumnInfo", "OutputColumn", "ResolvedQuery", "TableCatalog", "resolve"]

#: Key of the `ColumnInfo` stored in a resolved column node's ``meta``.
COLUMN_META = "dpzero_column"
#: Key of the qualified catalog table name stored next to it.
TABLE_META = "dpzero_table"


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a catalog table.

    Attributes
    ----------
    name
        The column's name, as the catalog spells it.
    datatype
        Its ADQL/Felis datatype (``double``, ``float``, ``long``, ``char`` ...), or
        None when unknown. Floating-point columns get NaN-as-NULL treatment.
    unit
        Its unit (``deg``, ``nJy`` ...), or None.
    """

    name: str
    datatype: str | None = None
    unit: str | None = None

    def __deepcopy__(self, memo: dict) -> ColumnInfo:
        # Immutable: trees holding it in node metadata copy fast.
        return self


@dataclass(frozen=True)
class TableCatalog:
    """The tables a query may use: qualified name → columns.

    Attributes
    ----------
    tables
        Qualified table names as the service publishes them
        (``dp01_dc2_catalogs.object``, ``tap_schema.tables``, ``TAP_UPLOAD.mine``)
        mapped to their columns.
    """

    tables: Mapping[str, tuple[ColumnInfo, ...]]
    # Each table's columns by lower-case name, built on first use and kept with the
    # catalog (a store's catalog lives across queries; its wide tables are looked up in
    # every one of them).
    _by_lower: dict[str, dict[str, list[ColumnInfo]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def columns_by_lower(self, name: str) -> dict[str, list[ColumnInfo]]:
        """The columns of table ``name`` by lower-case name."""
        found = self._by_lower.get(name)
        if found is None:
            found = self._by_lower[name] = _by_lower(self.tables[name])
        return found

    @classmethod
    def from_columns(cls, tables: Mapping[str, Iterable[str | ColumnInfo]]) -> TableCatalog:
        """Build a catalog from table names and column names (or `ColumnInfo`)."""
        return cls(
            {
                name: tuple(c if isinstance(c, ColumnInfo) else ColumnInfo(c) for c in columns)
                for name, columns in tables.items()
            }
        )

    @classmethod
    def from_schema(cls, schema: SchemaSpec, schema_name: str | None = None) -> TableCatalog:
        """Build a catalog from a `dpzero.schema.SchemaSpec`.

        Parameters
        ----------
        schema
            The schema spec (tables with column specs carrying datatype and unit).
        schema_name
            The ADQL schema name (``dp01_dc2_catalogs``); the spec's name by default.
        """
        prefix = schema_name or schema.name
        return cls(
            {
                f"{prefix}.{table.name}": tuple(
                    ColumnInfo(c.name, c.datatype, c.unit or None) for c in table.columns
                )
                for table in schema.tables
            }
        )

    def merged(self, other: TableCatalog) -> TableCatalog:
        """This catalog with the tables of ``other`` added (e.g. uploads)."""
        kept = {name: v for name, v in self._by_lower.items() if name not in other.tables}
        return TableCatalog({**self.tables, **other.tables}, {**kept, **other._by_lower})


@dataclass(frozen=True)
class OutputColumn:
    """One column of a query's result.

    Attributes
    ----------
    name
        Its name in the result.
    source
        What is known of the catalog column it shows unchanged (datatype, unit;
        through subqueries too, under the subquery's name), else None.
    table
        The qualified catalog table of ``source`` when it is read from one directly.
    """

    name: str
    source: ColumnInfo | None = None
    table: str | None = None


@dataclass(frozen=True)
class ResolvedQuery:
    """A query whose names all exist, rewritten with canonical, qualified names.

    Attributes
    ----------
    query
        The rewritten query.
    tables
        Qualified catalog names of the tables it reads.
    columns
        The result's columns, in order.
    """

    query: AdqlQuery
    tables: tuple[str, ...]
    columns: tuple[OutputColumn, ...]


@dataclass
class _Source:
    alias: str  # name used to qualify columns after rewriting
    match_names: list[tuple[str, bool]]  # (name, quoted) forms a qualifier may take
    columns: tuple[ColumnInfo, ...]
    table: str | None = None  # qualified catalog name, for catalog tables
    _by_lower: dict[str, list[ColumnInfo]] | None = None

    def find(self, ident: exp.Identifier) -> ColumnInfo | None:
        """The column an identifier names (exact if delimited, else any case)."""
        if self._by_lower is None:
            self._by_lower = _by_lower(self.columns)
        for info in self._by_lower.get(ident.this.lower(), []):
            if _same(ident, info.name):
                return info
        return None


def _by_lower(columns: Iterable[ColumnInfo]) -> dict[str, list[ColumnInfo]]:
    """Columns by lower-case name."""
    found: dict[str, list[ColumnInfo]] = {}
    for info in columns:
        found.setdefault(info.name.lower(), []).append(info)
    return found


@dataclass
class _Scope:
    sources: list[_Source] = field(default_factory=list)
    using: set[str] = field(default_factory=set)  # columns of USING joins
    natural: bool = False  # a NATURAL join: its common columns are one column


def _column(name: str, table: str) -> exp.Column:
    """A quoted, qualified column node (built directly: sqlglot's helpers copy)."""
    return exp.Column(
        this=exp.Identifier(this=name, quoted=True),
        table=exp.Identifier(this=table, quoted=True),
    )


def _is_named(item: exp.Expression) -> bool:
    return isinstance(item, exp.Alias) or (
        isinstance(item, exp.Column) and isinstance(item.this, exp.Identifier)
    )


def _renamed(column: OutputColumn) -> ColumnInfo:
    """A derived table's column: its output name, with what is known of its source."""
    source = column.source
    if source is None:
        return ColumnInfo(column.name)
    return ColumnInfo(column.name, source.datatype, source.unit)


def _same(written: exp.Identifier, name: str) -> bool:
    return written.this == name if written.quoted else written.this.lower() == name.lower()


def _closest(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return tuple(by_lower[c] for c in close)


def _suggest(close: Sequence[str]) -> str:
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class _Resolver:
    def __init__(self, catalog: TableCatalog) -> None:
        self.catalog = catalog
        self.tables_used: list[str] = []
        self.aliases: set[str] = set()

    def fresh_alias(self, base: str) -> str:
        alias, n = base, 1
        while alias.lower() in self.aliases:
            n += 1
            alias = f"{base}_{n}"
        self.aliases.add(alias.lower())
        return alias

    # ---------------------------------------------------------------- queries
    def query(
        self, node: exp.Expression, outer: list[_Scope], ctes: dict[str, list[OutputColumn]]
    ) -> list[OutputColumn]:
        with_ = node.args.get("with_")
        if with_ is not None:
            ctes = dict(ctes)
            for cte in with_.expressions:
                columns = self.query(cte.this, outer, ctes)
                names = [c.name for c in cte.args["alias"].columns]
                if names:
                    if len(names) != len(columns):
                        raise AdqlNameError(
                            f"WITH {cte.alias} names {len(names)} columns but its query "
                            f"returns {len(columns)}",
                            cte.alias,
                        )
                    columns = [
                        OutputColumn(n, c.source) for n, c in zip(names, columns, strict=True)
                    ]
                ctes[cte.alias.lower()] = columns
        if isinstance(node, exp.Subquery):
            return self.query(node.this, outer, ctes)
        if isinstance(node, exp.SetOperation):
            left = self.query(node.this, outer, ctes)
            self.query(node.expression, outer, ctes)
            return left
        if not isinstance(node, exp.Select):
            raise AssertionError(f"unexpected query node {type(node).__name__}")
        return self.select(node, outer, ctes)

    def select(
        self, node: exp.Select, outer: list[_Scope], ctes: dict[str, list[OutputColumn]]
    ) -> list[OutputColumn]:
        scope = _Scope()
        from_ = node.args.get("from_")
        items = [from_.this] if from_ is not None else []
        for join in node.args.get("joins") or []:
            items.append(join.this)
            for ident in join.args.get("using") or []:
                scope.using.add(ident.this.lower())
            scope.natural |= str(join.args.get("method", "")).upper() == "NATURAL"
        for item in items:
            self.source(item, scope, outer, ctes)
        self.expand_stars(node, scope)
        aliases = {
            e.alias.lower() for e in node.expressions if isinstance(e, exp.Alias) and e.alias
        }
        for key, child in list(node.args.items()):
            if key in ("from_", "joins", "with_"):
                continue
            for part in child if isinstance(child, list) else [child]:
                if isinstance(part, exp.Expression):
                    in_clause = key in ("order", "group", "having")
                    self.walk(part, [scope, *outer], ctes, aliases if in_clause else set())
        for join in node.args.get("joins") or []:
            if join.args.get("on") is not None:
                self.walk(join.args["on"], [scope, *outer], ctes, set())
        self.name_expressions(node)
        return [self.output(e) for e in node.expressions]

    def name_expressions(self, node: exp.Select) -> None:
        """Give every unnamed select item a name: its function's, or ``colN``."""
        taken = {e.alias_or_name.lower() for e in node.expressions if _is_named(e)}
        named = []
        for position, item in enumerate(node.expressions, start=1):
            if _is_named(item):
                named.append(item)
                continue
            if isinstance(item, exp.Anonymous):
                base = item.name.lower()
            elif isinstance(item, exp.Func):
                base = item.key.lower()
            else:
                base = f"col{position}"
            name, n = base, 1
            while name.lower() in taken:
                n += 1
                name = f"{base}_{n}"
            taken.add(name.lower())
            named.append(exp.Alias(this=item, alias=exp.Identifier(this=name, quoted=True)))
        node.set("expressions", named)

    def output(self, expression: exp.Expression) -> OutputColumn:
        name = expression.alias if isinstance(expression, exp.Alias) else expression.name
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        if not isinstance(inner, exp.Column):
            return OutputColumn(name)
        return OutputColumn(name, inner.meta.get(COLUMN_META), inner.meta.get(TABLE_META))

    # ---------------------------------------------------------------- FROM
    def source(
        self,
        item: exp.Expression,
        scope: _Scope,
        outer: list[_Scope],
        ctes: dict[str, list[OutputColumn]],
    ) -> None:
        if isinstance(item, exp.Subquery):
            inner = item.this
            if not isinstance(inner, exp.Select | exp.SetOperation | exp.Subquery):
                self.source(inner, scope, outer, ctes)  # a parenthesised join
                return
            columns = self.query(inner, outer, ctes)
            ident = item.args["alias"].this
            alias = self.fresh_alias(ident.this)
            columns_info = tuple(_renamed(c) for c in columns)
            scope.sources.append(_Source(alias, [(ident.this, ident.quoted)], columns_info))
            item.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
            return
        if isinstance(item, exp.Table):
            self.table(item, scope, ctes)
            for join in item.args.get("joins") or []:
                for ident in join.args.get("using") or []:
                    scope.using.add(ident.this.lower())
                scope.natural |= str(join.args.get("method", "")).upper() == "NATURAL"
                self.source(join.this, scope, outer, ctes)
                if join.args.get("on") is not None:
                    self.walk(join.args["on"], [scope, *outer], ctes, set())
            return
        raise AssertionError(f"unexpected FROM item {type(item).__name__}")

    def table(self, item: exp.Table, scope: _Scope, ctes: dict[str, list[OutputColumn]]) -> None:
        parts = [p for p in (item.args.get("catalog"), item.args.get("db"), item.this) if p]
        written = ".".join(p.this for p in parts)
        alias_node = item.args.get("alias")
        if len(parts) == 1 and parts[0].this.lower() in ctes and not parts[0].quoted:
            columns = tuple(_renamed(c) for c in ctes[parts[0].this.lower()])
            name = parts[0].this
            alias = alias_node.this.this if alias_node else name
            scope.sources.append(_Source(self.fresh_alias(alias), [(alias, False)], columns))
            item.set("alias", exp.TableAlias(this=exp.to_identifier(scope.sources[-1].alias)))
            return
        matches = [
            name
            for name in self.catalog.tables
            if len(name.split(".")) == len(parts)
            and all(_same(p, n) for p, n in zip(parts, name.split("."), strict=True))
        ]
        if not matches:
            close = _closest(written, self.catalog.tables)
            if not close:
                ends = [n for n in self.catalog.tables if n.lower().endswith("." + written.lower())]
                close = tuple(ends)
            raise AdqlNameError(f"table {written} not found{_suggest(close)}", written, close)
        name = matches[0]
        if name not in self.tables_used:
            self.tables_used.append(name)
        if alias_node is not None:
            ident = alias_node.this
            forms = [(ident.this, ident.quoted)]
            alias = self.fresh_alias(ident.this)
        else:
            canon = name.split(".")
            forms = [(".".join(p.this for p in parts[-k:]), False) for k in (1, 2, 3)]
            forms = [(".".join(canon[-k:]), True) for k in range(1, len(canon) + 1)] + [
                (f, q) for f, q in forms if f
            ]
            alias = self.fresh_alias(canon[-1])
        scope.sources.append(
            _Source(
                alias, forms, self.catalog.tables[name], name, self.catalog.columns_by_lower(name)
            )
        )
        item.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))

    # ---------------------------------------------------------------- columns
    def walk(
        self,
        node: exp.Expression,
        scopes: list[_Scope],
        ctes: dict[str, list[OutputColumn]],
        aliases: set[str],
    ) -> None:
        if isinstance(node, exp.Select | exp.SetOperation) or (
            isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select | exp.SetOperation)
        ):
            self.query(node, scopes, ctes)
            return
        if isinstance(node, exp.Column):
            self.column(node, scopes, aliases)
            return
        for child in list(node.iter_expressions()):
            self.walk(child, scopes, ctes, aliases)

    def column(self, node: exp.Column, scopes: list[_Scope], aliases: set[str]) -> None:
        ident = node.this
        if not isinstance(ident, exp.Identifier) or COLUMN_META in node.meta:
            return
        qualifier = [p for p in (node.args.get("catalog"), node.args.get("db")) if p]
        table = node.args.get("table")
        if table is not None:
            qualifier.append(table)
        if not qualifier and not ident.quoted and ident.this.lower() in aliases:
            return
        for scope in scopes:
            found = []
            for source in scope.sources:
                if qualifier and not self.qualifies(qualifier, source):
                    continue
                info = source.find(ident)
                if info is not None:
                    found.append((source, info))
            joined = scope.natural or ident.this.lower() in scope.using
            if len(found) > 1 and not qualifier and not joined:
                names = ", ".join(s.table or s.alias for s, _ in found)
                raise AdqlNameError(
                    f"column {ident.this} is ambiguous: it is in {names}; qualify it",
                    ident.this,
                )
            if found:
                source, info = found[0]
                new = _column(info.name, source.alias)
                new.meta[COLUMN_META] = info
                new.meta[TABLE_META] = source.table
                node.replace(new)
                return
        self.unknown_column(node, ident, qualifier, scopes, aliases)

    def qualifies(self, qualifier: list[exp.Identifier], source: _Source) -> bool:
        written = ".".join(p.this for p in qualifier)
        quoted = any(p.quoted for p in qualifier)
        for form, _ in source.match_names:
            if written == form or (not quoted and written.lower() == form.lower()):
                return True
        return False

    def unknown_column(
        self,
        node: exp.Column,
        ident: exp.Identifier,
        qualifier: list[exp.Identifier],
        scopes: list[_Scope],
        aliases: set[str],
    ) -> None:
        written = ".".join(p.this for p in qualifier)
        sources = [s for scope in scopes for s in scope.sources]
        if qualifier:
            matching = [s for s in sources if self.qualifies(qualifier, s)]
            if not matching:
                close = _closest(written, [f for s in sources for f, _ in s.match_names])
                raise AdqlNameError(
                    f"table or alias {written} (in {written}.{ident.this}) is not in the "
                    f"FROM clause{_suggest(close)}",
                    written,
                    close,
                )
            sources = matching
        candidates = [c.name for s in sources for c in s.columns] + sorted(aliases)
        close = _closest(ident.this, candidates)
        where = ", ".join(s.table or s.alias for s in sources) or "the FROM clause"
        hint = _suggest(close)
        exact = [c for c in candidates if c.lower() == ident.this.lower()]
        if ident.quoted and exact:
            hint = f' (delimited identifiers are case-sensitive: write "{exact[0]}")'
        elif ident.quoted and not close:
            hint = " (a string literal takes single quotes: 'text')"
        raise AdqlNameError(f"column {ident.this} not found in {where}{hint}", ident.this, close)

    def expand_stars(self, node: exp.Select, scope: _Scope) -> None:
        expanded: list[exp.Expression] = []
        for item in node.expressions:
            if isinstance(item, exp.Star):
                chosen = scope.sources
            elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                qualifier = [p for p in (item.args.get("db"), item.args.get("table")) if p]
                chosen = [s for s in scope.sources if self.qualifies(qualifier, s)]
                if not chosen:
                    written = ".".join(p.this for p in qualifier)
                    forms = [f for s in scope.sources for f, _ in s.match_names]
                    close = _closest(written, forms)
                    raise AdqlNameError(
                        f"table or alias {written} is not in the FROM clause{_suggest(close)}",
                        written,
                        close,
                    )
            else:
                expanded.append(item)
                continue
            for source in chosen:
                for info in source.columns:
                    column = _column(info.name, source.alias)
                    column.meta[COLUMN_META] = info
                    column.meta[TABLE_META] = source.table
                    expanded.append(column)
        node.set("expressions", expanded)


def _locate(text: str, name: str) -> tuple[int, int] | None:
    """Line and column of the first place the query writes a (dotted) name."""
    parts = name.split(".")
    tokens = tokenize(text)
    for i, tok in enumerate(tokens):
        j, matched = i, True
        for k, part in enumerate(parts):
            if k and not tokens[j].is_op("."):
                matched = False
                break
            j += 1 if k else 0
            word = tokens[j]
            if not (
                (word.kind == "word" and word.text.lower() == part.lower())
                or (word.kind == "qident" and word.value == part)
            ):
                matched = False
                break
            j += 1
        if matched:
            return tok.line, tok.column
    return None


def resolve(query: AdqlQuery, catalog: TableCatalog) -> ResolvedQuery:
    """Check the query's tables and columns against ``catalog`` and qualify them.

    Parameters
    ----------
    query
        A parsed query (`parse_adql`).
    catalog
        The tables it may read.

    Returns
    -------
    ResolvedQuery
        A rewritten copy of the query, the tables it reads and its output columns.

    Raises
    ------
    AdqlNameError
        For an unknown table, column or alias, or an ambiguous column; the message
        names it and the closest existing names.
    """
    tree = query.tree.copy()
    resolver = _Resolver(catalog)
    try:
        columns = resolver.query(tree, [], {})
    except AdqlNameError as exc:
        position = _locate(query.text, exc.name)
        if position is None:
            raise
        raise exc.located(*position) from None
    return ResolvedQuery(
        query=AdqlQuery(text=query.text, tree=tree),
        tables=tuple(resolver.tables_used),
        columns=tuple(columns),
    )
