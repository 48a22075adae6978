"""ADQL on a catalog store: parse and resolve with `dpzero.adql`, prune, run on DuckDB."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import pyarrow as pa

from dpzero.catalog._partitioned import PairTerm, PartitionInputs, split_by_partition
from dpzero.catalog._pruning import Cone, Polygon, Region, Zone
from dpzero.catalog._store import PartitionedPlan, QueryPlan, TableScan

if TYPE_CHECKING:
    from dpzero.adql import AdqlQuery, IdConstraint, TableCatalog, TableRegions
    from dpzero.catalog._selection import Selection
    from dpzero.catalog._store import CatalogStore, TableMetadata

__all__ = ["adql_plan", "run_adql", "store_catalog", "stream_adql"]


# The last catalog built per store, with the metadata objects it was built from.
_CATALOGS: weakref.WeakKeyDictionary[CatalogStore, tuple[list[TableMetadata], TableCatalog]] = (
    weakref.WeakKeyDictionary()
)


def store_catalog(store: CatalogStore) -> TableCatalog:
    """The tables of ``store`` as ADQL name resolution sees them (rebuilt only when the
    store's table metadata changed: it is asked for by every query)."""
    from dpzero.adql import ColumnInfo, TableCatalog

    metas = store.all_table_metadata()
    cached = _CATALOGS.get(store)
    if cached is not None and [id(m) for m in cached[0]] == [id(m) for m in metas]:
        return cached[1]
    catalog = TableCatalog(
        {
            f"{meta.database}.{meta.table}": tuple(
                ColumnInfo(c.name, c.datatype, c.unit or None) for c in meta.columns
            )
            for meta in metas
        }
    )
    _CATALOGS[store] = (metas, catalog)
    return catalog


def _region(region: object) -> Region | None:
    from dpzero.adql import Circle, RaDecRange
    from dpzero.adql import Polygon as AdqlPolygon

    if isinstance(region, Circle):
        return Cone(region.ra, region.dec, region.radius)
    if isinstance(region, AdqlPolygon):
        return Polygon(tuple((float(a), float(d)) for a, d in region.vertices))
    if isinstance(region, RaDecRange):
        return Zone(region.ra_min, region.ra_max, region.dec_min, region.dec_max)
    return None


def _alias_scan(
    table: str,
    alias: str,
    regions: dict[str, TableRegions],
    ids: dict[str, IdConstraint],
    key_column: str | None,
) -> TableScan | None:
    """What one alias's own WHERE terms allow pruning by, or None."""
    region = None
    if alias in regions:
        # A row must lie in every region: any one of them prunes safely; take the
        # last, usually the tightest (a query's own cone rather than a survey box).
        for r in regions[alias].regions:
            region = _region(r) or region
    id_values = None
    c = ids.get(alias)
    if c is not None and key_column is not None and c.column.lower() == key_column.lower():
        # A key is a 64-bit integer: a value beyond that range matches no row.
        id_values = tuple(sorted(v for v in c.values if -(2**63) <= v < 2**63))
    if region is None and id_values is None:
        return None
    return TableScan(table, region=region, ids=id_values)


def _scan_for(
    table: str,
    aliases: list[str],
    own: dict[str, TableScan | None],
    neighbours: list[tuple[str, str, float]],
) -> TableScan | None:
    """The pruned scan of ``table``: one scan whose rows cover what every alias needs.

    An alias without its own constraint may still be a neighbour (within a distance)
    of a pruned alias: it then needs that alias's region grown by the distance.
    """
    needs: list[TableScan] = []
    for alias in aliases:
        scan = own.get(alias)
        if scan is None:
            grown = [
                replace(own[x], ids=None, dilate_arcsec=r * 3600.0)
                for x, y, r in neighbours
                if y == alias and own.get(x) is not None and own[x].region is not None  # type: ignore[union-attr]
            ]
            if not grown:
                return None
            scan = min(grown, key=lambda s: s.dilate_arcsec)
        needs.append(replace(scan, table=table))
    if not needs:
        return None
    # Same pruning for every alias, or the same region grown by different amounts: the
    # most grown one covers all.
    base = {replace(s, dilate_arcsec=0.0, ids=None) for s in needs}
    if len(set(needs)) == 1:
        return needs[0]
    if len(base) == 1 and next(iter(base)).region is not None:
        return replace(next(iter(base)), dilate_arcsec=max(s.dilate_arcsec for s in needs))
    return None


def _neighbour_terms(resolved: object) -> list[tuple[str, str, float]]:
    """``(x, y, r)``: every result row has alias y within r degrees of alias x.

    From top-level terms ``DISTANCE(POINT(x), POINT(y)) < r`` (or ``<=``, either
    order) and ``CONTAINS(POINT(y), CIRCLE(x.ra, x.dec, r)) = 1`` of WHERE and of
    inner joins' ON. Both directions are returned for DISTANCE.
    """
    from sqlglot import exp

    tree = resolved.query.tree  # type: ignore[attr-defined]
    if len(list(tree.find_all(exp.Select))) != 1 or not isinstance(tree, exp.Select):
        return []

    def fn(node: exp.Expression, name: str) -> list[exp.Expression] | None:
        if isinstance(node, exp.Anonymous) and str(node.this).upper() == name:
            return list(node.expressions)
        return None

    def point_alias(node: exp.Expression) -> str | None:
        args = fn(node, "POINT")
        if args is None or len(args) < 2:
            return None
        cols = args[-2:]
        if all(isinstance(c, exp.Column) and c.table for c in cols) and (
            cols[0].table == cols[1].table
        ):
            return cols[0].table
        return None

    def number(node: exp.Expression) -> float | None:
        if isinstance(node, exp.Literal) and not node.is_string:
            return float(node.this)
        return None

    terms: list[exp.Expression] = []
    stack = [tree.args.get("where")]
    for join in tree.args.get("joins") or []:
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if not side and kind in ("", "INNER"):
            stack.append(join.args.get("on"))
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if isinstance(node, exp.Where | exp.Paren):
            stack.append(node.this)
        elif isinstance(node, exp.And):
            stack += [node.this, node.expression]
        else:
            terms.append(node)
    found = []
    for t in terms:
        dist = radius = None
        if isinstance(t, exp.LT | exp.LTE):
            dist, radius = t.this, number(t.expression)
        elif isinstance(t, exp.GT | exp.GTE):
            dist, radius = t.expression, number(t.this)
        if dist is not None and radius is not None:
            args = fn(dist, "DISTANCE")
            if args is not None and len(args) == 2:
                x, y = point_alias(args[0]), point_alias(args[1])
                if x and y and x != y:
                    found += [(x, y, radius), (y, x, radius)]
            continue
        if isinstance(t, exp.EQ):
            one, call = (t.this, t.expression) if number(t.this) == 1 else (t.expression, t.this)
            args = fn(call, "CONTAINS") if number(one) == 1 else None
            if args is None or len(args) != 2:
                continue
            y = point_alias(args[0])
            circle = fn(args[1], "CIRCLE")
            if y is None or circle is None or len(circle) < 3:
                continue
            x = point_alias(exp.Anonymous(this="POINT", expressions=circle[-3:-1]))
            r = number(circle[-1])
            if x and r is not None and x != y:
                found.append((x, y, r))
    return found


def _adql_datatype(arrow_type: pa.DataType) -> str | None:
    """The ADQL datatype of an in-memory table's column (for NaN handling and units)."""
    if pa.types.is_float64(arrow_type):
        return "double"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_int64(arrow_type):
        return "long"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "char"
    return None


def adql_plan(
    store: CatalogStore, text: str, tables: Mapping[str, pa.Table] | None = None
) -> QueryPlan | PartitionedPlan:
    """Translate ADQL into a plan with pruning for ``store``.

    A query whose tables would be read whole runs partition by partition (a
    `PartitionedPlan`) when that answers it exactly: neighbour pairs within the margin
    radius, joins on objectId, aggregates. Other queries get a `QueryPlan` whose scans
    are pruned by the query's regions and objectId constraints.

    Parameters
    ----------
    store
        The store holding the catalog tables.
    text
        The ADQL query.
    tables
        In-memory tables the query may also read, by qualified ADQL name.

    Raises
    ------
    dpzero.adql.AdqlError
        If the query is not valid ADQL or names unknown tables or columns.
    """
    from dpzero.adql import parse_adql

    query = parse_adql(text)
    inline = dict(tables or {})
    return _general_plan(store, query, _catalog(store, inline), inline)


def _catalog(store: CatalogStore, inline: Mapping[str, pa.Table]) -> TableCatalog:
    """Name resolution's catalog: the store's tables and the in-memory ones."""
    from dpzero.adql import ColumnInfo, TableCatalog

    extra = TableCatalog(
        {
            name: tuple(ColumnInfo(f.name, _adql_datatype(f.type)) for f in table.schema)
            for name, table in inline.items()
        }
    )
    return store_catalog(store).merged(extra)


def plan_or_selection(
    store: CatalogStore,
    text: str,
    tables: Mapping[str, pa.Table] | None = None,
    *,
    by_shape: bool = True,
) -> Selection | QueryPlan | PartitionedPlan:
    """Like `adql_plan`, but a plain selection comes back as a `Selection` (no SQL made).

    With ``by_shape``, an id lookup of a shape seen before is answered from that one's
    selection without the ADQL front end (see `dpzero.catalog._shapes`).

    Raises
    ------
    dpzero.adql.AdqlError
        If the query is not valid ADQL or names unknown tables or columns.
    """
    from dpzero.adql import parse_adql
    from dpzero.catalog._selection import plain_selection
    from dpzero.catalog._shapes import remember_selection, remembered_selection

    inline = dict(tables or {})

    def full() -> Selection:
        found = plan_or_selection(store, text, tables, by_shape=False)
        assert not isinstance(found, QueryPlan | PartitionedPlan)
        return found

    if by_shape and (known := remembered_selection(store, text, inline, full)) is not None:
        return known
    query = parse_adql(text)
    catalog = _catalog(store, inline)

    def general() -> QueryPlan:
        plan = _general_plan(store, query, catalog, inline)
        assert isinstance(plan, QueryPlan)
        return plan

    try:
        selection = plain_selection(store, query, catalog, inline, general)
    except Exception:
        selection = None
    if selection is not None:
        remember_selection(store, text, inline, selection)
        return selection
    return _general_plan(
        store, query, catalog, inline, split_whole=not store.runs_whole_tables_at_once
    )


def _general_plan(
    store: CatalogStore,
    query: AdqlQuery,
    catalog: TableCatalog,
    inline: dict[str, pa.Table],
    *,
    split_whole: bool = True,
) -> QueryPlan | PartitionedPlan:
    """`adql_plan` of a parsed query.

    Without ``split_whole``, a query reading one table whole is not split by partition
    (a `PartitionedPlan` would carry it as its one-statement form anyway, which a store
    running plans on one machine prefers; the split costs ~5 ms of sqlglot work).
    """
    from dpzero.adql import id_constraints, resolve, search_regions, to_duckdb

    resolved = resolve(query, catalog)
    inline_bindings = {}
    inline_names = {}
    inline_lower = {k.lower(): k for k in inline}
    for i, name in enumerate(resolved.tables):
        if name.lower() in inline_lower:
            binding = f"__table_{i}"
            inline_bindings[binding] = inline[inline_lower[name.lower()]]
            inline_names[name] = binding
    positions = {}
    keys = {}
    for name in resolved.tables:
        if name in inline_names:
            continue
        db, _, table = name.partition(".")
        meta = store.table_metadata(db, table)
        positions[name] = (meta.ra_column, meta.dec_column)
        keys[name] = meta.key_column
    regions = search_regions(resolved.query, positions)
    ids = {c.alias: c for c in id_constraints(resolved.query)}
    aliases: dict[str, list[str]] = {}
    for r in regions.values():
        aliases.setdefault(r.table.lower(), [])
    for alias, table in _aliases(resolved).items():
        aliases.setdefault(table.lower(), []).append(alias)
    by_alias = _aliases(resolved)
    own = {
        alias: _alias_scan(table, alias, regions, ids, keys.get(table))
        for alias, table in by_alias.items()
        if table not in inline_names
    }
    neighbours = _neighbour_terms(resolved)
    split = None
    one_statement = not split_whole and len(by_alias) == 1 and not neighbours
    if not inline_names and not any(own.values()) and not one_statement:
        # Every table would be read whole: run partition by partition if that fits.
        split = _partitioned(store, resolved, by_alias, neighbours, keys)
        if split is not None and (len(split.plan.scans) > 1 or neighbours):
            return split
    scans: dict[str, TableScan] = {}
    names: dict[str, str] = {}
    for i, name in enumerate(resolved.tables):
        if name in inline_names:
            continue
        table_aliases = aliases.get(name.lower(), [])
        scan = _scan_for(name, table_aliases, own, neighbours)
        if scan is not None:
            binding = f"__scan_{i}"
            scans[binding] = scan
            names[name] = binding
    _push_id_joins(resolved, store, scans, names, aliases, keys)
    names.update(inline_names)
    columns = _query_columns(resolved)
    if columns is not None:
        # Read only the columns the query mentions (the ADQL tree is already parsed;
        # re-parsing the translated SQL would cost more than the read).
        scans = {k: replace(v, columns=columns) for k, v in scans.items()}
    plan = QueryPlan(to_duckdb(resolved, table_names=names), scans, inline_bindings)
    if split is not None:
        # One table read whole: per partition for distributed backends, one statement
        # over all partition files on one machine.
        return replace(split, single=plan)
    return plan


def _partitioned(
    store: CatalogStore,
    resolved: object,
    by_alias: dict[str, str],
    neighbours: list[tuple[str, str, float]],
    keys: dict[str, str | None],
) -> PartitionedPlan | None:
    """The query as a per-partition plan plus merge, or None (see `split_by_partition`)."""
    from dpzero.adql import to_duckdb

    key_joins = [
        (a, a_col, b, b_col)
        for a, a_col, b, b_col in _equi_joins(resolved)
        if a in by_alias
        and b in by_alias
        and (keys.get(by_alias[b]) or "").lower() == b_col.lower()
    ]
    margins, decs = {}, {}
    for alias, table in by_alias.items():
        db, _, name = table.partition(".")
        meta = store.table_metadata(db, name)
        margins[alias] = meta.margin_arcsec / 3600.0
        decs[alias] = meta.dec_column
    inputs = PartitionInputs(
        sql=to_duckdb(resolved),
        aliases=by_alias,
        pairs=[PairTerm(x, y, r) for x, y, r in neighbours],
        key_joins=key_joins,
        margin_degrees=margins,
        dec_columns=decs,
        columns=_query_columns(resolved),
    )
    return split_by_partition(inputs)


def _equi_joins(resolved: object) -> list[tuple[str, str, str, str]]:
    """``(alias, column, alias, column)`` equalities every result row satisfies.

    Top-level terms of WHERE and of inner joins' ON count both ways round; a LEFT
    JOIN's ON restricts only its joined (right) table. Only single-SELECT queries.
    """
    from sqlglot import exp

    from dpzero.adql import conjuncts

    tree = resolved.query.tree  # type: ignore[attr-defined]
    if len(list(tree.find_all(exp.Select))) != 1 or not isinstance(tree, exp.Select):
        return []

    found: list[tuple[str, str, str, str]] = []

    def pairs(terms: Iterable[exp.Expression], only_right: str | None) -> None:
        for t in terms:
            if not (
                isinstance(t, exp.EQ)
                and isinstance(t.this, exp.Column)
                and isinstance(t.expression, exp.Column)
                and t.this.table
                and t.expression.table
            ):
                continue
            x, y = t.this, t.expression
            for a, b in ((x, y), (y, x)):
                if only_right is None or b.table == only_right:
                    found.append((a.table, a.name, b.table, b.name))

    pairs(conjuncts(tree.args.get("where")), None)
    for join in tree.args.get("joins") or []:
        side = (join.args.get("side") or "").upper()
        kind = (join.args.get("kind") or "").upper()
        if kind not in ("", "INNER") or side in ("RIGHT", "FULL"):
            continue
        right = join.this.alias_or_name if side == "LEFT" else None
        pairs(conjuncts(join.args.get("on")), right)
    return found


def _push_id_joins(
    resolved: object,
    store: CatalogStore,
    scans: dict[str, TableScan],
    names: dict[str, str],
    aliases: dict[str, list[str]],
    keys: dict[str, str | None],
) -> None:
    """Give unconstrained tables joined on their key to a pruned scan an ``ids_from``."""
    by_alias = _aliases(resolved)
    changed = True
    while changed:
        changed = False
        for a_alias, a_col, b_alias, b_col in _equi_joins(resolved):
            a_table, b_table = by_alias.get(a_alias), by_alias.get(b_alias)
            if a_table is None or b_table is None or b_table in names:
                continue
            if a_table not in names or names[a_table] not in scans:
                continue
            key = keys.get(b_table)
            if key is None or key.lower() != b_col.lower():
                continue
            if len(aliases.get(b_table.lower(), [])) != 1 or len(aliases[a_table.lower()]) != 1:
                continue
            binding = f"__scan_join_{len(scans)}"
            scans[binding] = TableScan(b_table, ids_from=(names[a_table], a_col))
            names[b_table] = binding
            changed = True


def _query_columns(resolved: object) -> tuple[str, ...] | None:
    """Every column name the resolved query mentions, or None if it selects ``*``."""
    from sqlglot import exp

    tree = resolved.query.tree  # type: ignore[attr-defined]
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return None
    return tuple(sorted({c.name for c in tree.find_all(exp.Column) if c.name}))


def _aliases(resolved: object) -> dict[str, str]:
    """Alias → qualified table name of every catalog table the query reads."""
    from sqlglot import exp

    out = {}
    tables = {t.lower(): t for t in resolved.tables}  # type: ignore[attr-defined]
    for node in resolved.query.tree.find_all(exp.Table):  # type: ignore[attr-defined]
        parts = [p.name for p in (node.args.get("catalog"), node.args.get("db")) if p]
        name = ".".join([*parts, node.name]).lower()
        if name in tables:
            out[node.alias_or_name] = tables[name]
    return out


def _limited(plan: QueryPlan | PartitionedPlan, limit: int | None) -> QueryPlan | PartitionedPlan:
    """The plan returning at most ``limit`` rows.

    The query's own ORDER BY survives: DuckDB keeps a subquery's order for LIMIT. A
    partitioned plan without merge also limits each partition; its total is cut by
    the caller (`run_adql` merges, `stream_adql` stops reading).
    """
    if limit is None:
        return plan

    def cut(sql: str) -> str:
        return f"SELECT * FROM ({sql}) AS __limited LIMIT {int(limit)}"

    if isinstance(plan, PartitionedPlan):
        if plan.single is not None:
            plan = replace(plan, single=QueryPlan(cut(plan.single.sql), plan.single.scans))
        if plan.merge_sql is not None:
            return replace(plan, merge_sql=cut(plan.merge_sql))
        inner = plan.plan
        return replace(plan, plan=QueryPlan(cut(inner.sql), inner.scans, inner.tables))
    return QueryPlan(cut(plan.sql), plan.scans, plan.tables)


def _first_rows(reader: pa.RecordBatchReader, limit: int) -> pa.RecordBatchReader:
    """The reader's first ``limit`` rows; reads no further."""

    def batches() -> Iterator[pa.RecordBatch]:
        left = limit
        try:
            for batch in reader:
                if left <= 0:
                    return
                yield batch.slice(0, left)
                left -= batch.num_rows
        finally:
            reader.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def run_adql(
    store: CatalogStore,
    text: str,
    tables: Mapping[str, pa.Table] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Answer an ADQL query on ``store`` (see `CatalogStore.query_adql`)."""
    found = plan_or_selection(store, text, tables)
    if not isinstance(found, QueryPlan | PartitionedPlan):
        return store.select(found, limit).read_all()
    plan = _limited(found, limit)
    if isinstance(plan, PartitionedPlan) and plan.merge_sql is None and limit is not None:
        plan = replace(plan, merge_sql=f"SELECT * FROM partials LIMIT {int(limit)}")
    return store.query(plan)


def stream_adql(
    store: CatalogStore,
    text: str,
    tables: Mapping[str, pa.Table] | None = None,
    limit: int | None = None,
) -> pa.RecordBatchReader:
    """Answer an ADQL query on ``store`` as record batches (see `CatalogStore.stream_adql`)."""
    found = plan_or_selection(store, text, tables)
    if not isinstance(found, QueryPlan | PartitionedPlan):
        return store.select(found, limit)
    reader = store.stream(_limited(found, limit))
    return reader if limit is None else _first_rows(reader, limit)
