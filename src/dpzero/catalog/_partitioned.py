"""Qserv-style plans: an ADQL query split into per-partition queries plus a merge.

A query that would otherwise read a whole table at once runs partition by partition
when it can be answered exactly that way:

- neighbour pairs (a self-join within a distance no larger than the store's margin
  radius): one side reads a partition, the other that partition plus its margin;
- joins on objectId: the driving table reads a partition, each joined table the rows
  whose key holds one of that partition's values, found through the objectId index;
- aggregates (COUNT, SUM, MIN, MAX, AVG, with or without GROUP BY): each partition
  gives partial aggregates, merged by one more query over them.

The per-partition SQL keeps the query's ORDER BY and TOP (a top-n of the union is the
top-n of the partitions' top-ns); the merge orders and limits once more. Queries the
split cannot answer exactly (COUNT DISTINCT, DISTINCT, OFFSET without aggregates,
subqueries, set operators, uploads) stay single plans. The same plan runs on the local
store and, one task per partition, on Dask.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from dpzero.catalog._store import PartitionedPlan, QueryPlan, TableScan

__all__ = ["PairTerm", "PartitionInputs", "split_by_partition"]

DRIVER = "__part"
PARTIALS = "partials"


@dataclass(frozen=True)
class PairTerm:
    """Every result row has ``other`` within ``radius`` degrees of ``alias``."""

    alias: str
    other: str
    radius: float


@dataclass(frozen=True)
class PartitionInputs:
    """What `adql_plan` found out about a query that reads its tables unpruned.

    Attributes
    ----------
    sql
        The query in DuckDB SQL, tables under their ADQL names, aliases kept.
    aliases
        Alias → qualified table name, in FROM order.
    pairs
        Neighbour terms between aliases.
    key_joins
        ``(alias, column, alias, key column)`` equalities every result row satisfies
        where the second column is the second table's objectId index key.
    margin_degrees
        Alias → the margin radius of its table, in degrees.
    dec_columns
        Alias → the declination column of its table.
    columns
        Columns the query reads, or None for all.
    """

    sql: str
    aliases: dict[str, str]
    pairs: list[PairTerm]
    key_joins: list[tuple[str, str, str, str]]
    margin_degrees: dict[str, float]
    dec_columns: dict[str, str]
    columns: tuple[str, ...] | None


def split_by_partition(inputs: PartitionInputs) -> PartitionedPlan | None:
    """A partitioned plan answering the query exactly, or None when none pays or fits."""
    try:
        tree = sqlglot.parse_one(inputs.sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or len(list(tree.find_all(exp.Select))) != 1:
        return None
    if tree.args.get("distinct") or any(tree.find_all(exp.Window)):
        return None
    aggregated = bool(tree.args.get("group")) or any(
        isinstance(node, exp.AggFunc) for p in tree.expressions for node in p.walk()
    )
    scans = _scans(inputs, aggregated)
    if scans is None:
        return None
    driver_alias, by_alias = scans
    tree = _rename_tables(tree, {a: b for a, (b, _) in by_alias.items()})
    band = _pair_band(inputs, by_alias)
    if band is not None:
        tree = tree.where(band, copy=False)
    split = _split_aggregate(tree) if aggregated else _split_rows(tree)
    if split is None:
        return None
    partition_sql, merge_sql = split
    plan = QueryPlan(partition_sql, {binding: scan for binding, scan in by_alias.values()})
    return PartitionedPlan(plan, by_alias[driver_alias][0], merge_sql)


def _scans(
    inputs: PartitionInputs, aggregated: bool
) -> tuple[str, dict[str, tuple[str, TableScan]]] | None:
    """The driving alias and every alias's (binding, scan), or None if no split fits."""
    aliases = inputs.aliases
    columns = inputs.columns
    names = list(aliases)
    if len(names) == 1:
        if not aggregated:
            return None  # a plain scan streams from DuckDB already
        (alias,) = names
        return alias, {alias: (DRIVER, TableScan(aliases[alias], columns=columns))}
    if len(names) == 2 and aliases[names[0]] == aliases[names[1]]:
        for term in inputs.pairs:
            if {term.alias, term.other} != set(names):
                continue
            if term.radius > inputs.margin_degrees.get(term.alias, 0.0):
                continue
            driver, other = term.alias, term.other
            return driver, {
                driver: (DRIVER, TableScan(aliases[driver], columns=columns)),
                other: (
                    "__margin",
                    TableScan(aliases[other], columns=columns, with_margin=True),
                ),
            }
        return None
    if len(set(aliases.values())) != len(names):
        return None
    for driver in names:
        joined: dict[str, tuple[str, TableScan]] = {
            driver: (DRIVER, TableScan(aliases[driver], columns=columns))
        }
        for a, a_col, b, _ in inputs.key_joins:
            if a == driver and b != driver and b not in joined:
                scan = TableScan(aliases[b], columns=columns, ids_from=(DRIVER, a_col))
                joined[b] = (f"__join_{len(joined)}", scan)
        if len(joined) == len(names):
            return driver, joined
    return None


def _pair_band(
    inputs: PartitionInputs, by_alias: dict[str, tuple[str, TableScan]]
) -> exp.Expression | None:
    """``b.dec BETWEEN a.dec - r AND a.dec + r`` for a pair query: implied by the
    distance term, it lets DuckDB join each partition by ranges instead of comparing
    every row with every other."""
    if len(by_alias) != 2 or not any(scan.with_margin for _, scan in by_alias.values()):
        return None
    names = set(by_alias)
    radius = min(t.radius for t in inputs.pairs if {t.alias, t.other} == names)
    a, b = sorted(names)
    dec_a = exp.column(inputs.dec_columns[a], table=a, quoted=True)
    dec_b = exp.column(inputs.dec_columns[b], table=b, quoted=True)
    r = exp.Literal.number(repr(float(radius)))
    return exp.Between(
        this=dec_b,
        low=exp.Sub(this=dec_a.copy(), expression=r),
        high=exp.Add(this=dec_a, expression=r.copy()),
    )


def _rename_tables(tree: exp.Select, bindings: dict[str, str]) -> exp.Select:
    """The query reading each alias's rows from its binding."""
    tree = tree.copy()
    for table in list(tree.find_all(exp.Table)):
        binding = bindings.get(table.alias_or_name)
        if binding is None:
            continue
        new = exp.to_table(binding)
        new.set("alias", exp.TableAlias(this=exp.to_identifier(table.alias_or_name)))
        table.replace(new)
    return tree


def _output_names(tree: exp.Select) -> list[str] | None:
    names = [p.alias_or_name for p in tree.expressions]
    if any(not n or n == "*" for n in names) or len({n.lower() for n in names}) != len(names):
        return None
    return names


def _split_rows(tree: exp.Select) -> tuple[str, str | None] | None:
    """Row queries: each partition runs the query; ORDER BY/TOP are applied again."""
    order = tree.args.get("order")
    limit = tree.args.get("limit")
    if tree.args.get("offset") is not None:
        return None
    if order is None and limit is None:
        return tree.sql(dialect="duckdb"), None
    names = _output_names(tree)
    if names is None:
        return None
    merge = exp.select("*").from_(PARTIALS)
    if order is not None:
        keys = []
        for ordered in order.expressions:
            key = _output_key(ordered.this, tree, names)
            if key is None:
                return None
            new = ordered.copy()
            new.set("this", exp.column(key, quoted=True))
            keys.append(new)
        merge = merge.order_by(*keys)
    if limit is not None:
        merge.set("limit", limit.copy())
    return tree.sql(dialect="duckdb"), merge.sql(dialect="duckdb")


def _output_key(node: exp.Expression, tree: exp.Select, names: list[str]) -> str | None:
    """The output column an ORDER BY term sorts by, if it is one."""
    for name, projection in zip(names, tree.expressions, strict=True):
        if projection == node or projection.unalias() == node:
            return name
    if isinstance(node, exp.Column) and not node.table:
        lowered = {n.lower(): n for n in names}
        return lowered.get(node.name.lower())
    return None


def _split_aggregate(tree: exp.Select) -> tuple[str, str] | None:
    """Aggregates: partial aggregates per partition, merged over ``partials``."""
    group = tree.args.get("group")
    group_exprs = list(group.expressions) if group is not None else []
    # GROUP BY an output name (the translator qualifies every table column): group by
    # the expression it names.
    named = {p.alias.lower(): p.unalias() for p in tree.expressions if isinstance(p, exp.Alias)}
    group_exprs = [
        named.get(g.name.lower(), g) if isinstance(g, exp.Column) and not g.table else g
        for g in group_exprs
    ]
    if any(isinstance(g, exp.Literal) for g in group_exprs):
        return None  # GROUP BY <ordinal>
    partial_columns: list[exp.Expression] = [
        g.copy().as_(f"__g{i}", quoted=True) for i, g in enumerate(group_exprs)
    ]
    merged_aggs: dict[exp.Expression, exp.Expression] = {}

    def partial(sql: exp.Expression) -> exp.Expression:
        name = f"__a{len(partial_columns)}"
        partial_columns.append(sql.as_(name, quoted=True))
        return exp.column(name, quoted=True)

    def merge_of(agg: exp.AggFunc) -> exp.Expression | None:
        if agg in merged_aggs:
            return merged_aggs[agg].copy()
        arg = agg.this
        if isinstance(arg, exp.Distinct) or agg.args.get("distinct"):
            return None  # COUNT(DISTINCT ...) stays a single plan
        if isinstance(agg, exp.Count):
            out = exp.cast(exp.Sum(this=partial(agg.copy())), "BIGINT")
        elif isinstance(agg, exp.Sum):
            out = exp.Sum(this=partial(agg.copy()))
        elif isinstance(agg, exp.Min):
            out = exp.Min(this=partial(agg.copy()))
        elif isinstance(agg, exp.Max):
            out = exp.Max(this=partial(agg.copy()))
        elif isinstance(agg, exp.Avg):
            total = exp.Sum(this=partial(exp.Sum(this=arg.copy())))
            count = exp.Sum(this=partial(exp.Count(this=arg.copy())))
            out = exp.Div(
                this=total, expression=exp.Nullif(this=count, expression=exp.Literal.number(0))
            )
        else:
            return None
        merged_aggs[agg] = out
        return out.copy()

    failed = False

    def rewrite(node: exp.Expression) -> exp.Expression:
        nonlocal failed
        for i, g in enumerate(group_exprs):
            if node == g:
                return exp.column(f"__g{i}", quoted=True)
        if isinstance(node, exp.AggFunc):
            out = merge_of(node)
            if out is None:
                failed = True
                return node
            return out
        return node

    merge = exp.Select()
    for projection in tree.expressions:
        name = projection.alias_or_name
        body = projection.unalias() if isinstance(projection, exp.Alias) else projection
        new = body.copy().transform(rewrite)
        merge = merge.select(new.as_(name, quoted=True) if name else new)
    merge = merge.from_(PARTIALS)
    if group_exprs:
        merge = merge.group_by(
            *[exp.column(f"__g{i}", quoted=True) for i in range(len(group_exprs))]
        )
    having = tree.args.get("having")
    if having is not None:
        merge.set("having", having.copy().transform(rewrite))
    order = tree.args.get("order")
    if order is not None:
        merge.set("order", order.copy().transform(rewrite))
    for clause in ("limit", "offset"):
        if tree.args.get(clause) is not None:
            merge.set(clause, tree.args[clause].copy())
    if failed or _reads_source_columns(merge):
        return None
    partition = tree.copy()
    for clause in ("having", "order", "limit", "offset"):
        partition.set(clause, None)
    partition.set("expressions", partial_columns)
    if group_exprs:
        partition.set("group", exp.Group(expressions=[g.copy() for g in group_exprs]))
    return partition.sql(dialect="duckdb"), merge.sql(dialect="duckdb")


def _reads_source_columns(merge: exp.Select) -> bool:
    """Whether the merge still names a table's column (not a partial or an output)."""
    return any(c.table for c in merge.find_all(exp.Column))
