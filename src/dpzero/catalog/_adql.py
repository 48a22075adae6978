"""ADQL on a catalog store: parse and resolve with `dpzero.adql`, prune, run on DuckDB."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import pyarrow as pa

from dpzero.catalog._pruning import Cone, Polygon, Region, Zone
from dpzero.catalog._store import QueryPlan, TableScan

if TYPE_CHECKING:
    from dpzero.adql import IdConstraint, TableCatalog, TableRegions
    from dpzero.catalog._store import CatalogStore

__all__ = ["adql_plan", "run_adql", "store_catalog"]


def store_catalog(store: CatalogStore) -> TableCatalog:
    """The tables of ``store`` as ADQL name resolution sees them."""
    from dpzero.adql import ColumnInfo, TableCatalog

    tables = {}
    for db in store.databases():
        for table in store.tables(db):
            meta = store.table_metadata(db, table)
            tables[f"{db}.{table}"] = tuple(
                ColumnInfo(c.name, c.datatype, c.unit or None) for c in meta.columns
            )
    return TableCatalog(tables)


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


def _scan_for(
    table: str,
    aliases: list[str],
    regions: dict[str, TableRegions],
    ids: dict[str, IdConstraint],
    key_column: str | None,
) -> TableScan | None:
    """The pruned scan of ``table`` if every alias reading it is constrained alike."""
    scans = []
    for alias in aliases:
        region = None
        if alias in regions:
            # A row must lie in every region: any one of them prunes safely; take the
            # last, usually the tightest (a query's own cone rather than a survey box).
            for r in regions[alias].regions:
                region = _region(r) or region
        id_values = None
        c = ids.get(alias)
        if c is not None and key_column is not None and c.column.lower() == key_column.lower():
            id_values = tuple(sorted(c.values))
        if region is None and id_values is None:
            return None
        scans.append(TableScan(table, region=region, ids=id_values))
    if len(set(scans)) != 1:
        return None
    return scans[0]


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
) -> QueryPlan:
    """Translate ADQL into a `QueryPlan` with pruning for ``store``.

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
    from dpzero.adql import (
        ColumnInfo,
        TableCatalog,
        id_constraints,
        parse_adql,
        resolve,
        search_regions,
        to_duckdb,
    )

    inline = dict(tables or {})
    extra = TableCatalog(
        {
            name: tuple(ColumnInfo(f.name, _adql_datatype(f.type)) for f in table.schema)
            for name, table in inline.items()
        }
    )
    resolved = resolve(parse_adql(text), store_catalog(store).merged(extra))
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
    scans: dict[str, TableScan] = {}
    names: dict[str, str] = {}
    for i, name in enumerate(resolved.tables):
        if name in inline_names:
            continue
        scan = _scan_for(name, aliases.get(name.lower(), []), regions, ids, keys[name])
        if scan is not None:
            binding = f"__scan_{i}"
            scans[binding] = scan
            names[name] = binding
    names.update(inline_names)
    columns = _query_columns(resolved)
    if columns is not None:
        # Read only the columns the query mentions (the ADQL tree is already parsed;
        # re-parsing the translated SQL would cost more than the read).
        scans = {k: replace(v, columns=columns) for k, v in scans.items()}
    return QueryPlan(to_duckdb(resolved, table_names=names), scans, inline_bindings)


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


def run_adql(
    store: CatalogStore,
    text: str,
    tables: Mapping[str, pa.Table] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Answer an ADQL query on ``store`` (see `CatalogStore.query_adql`)."""
    plan = adql_plan(store, text, tables)
    if limit is not None:
        # The query's own ORDER BY survives: DuckDB keeps a subquery's order for LIMIT.
        plan = QueryPlan(
            f"SELECT * FROM ({plan.sql}) AS __limited LIMIT {int(limit)}", plan.scans, plan.tables
        )
    return store.query(plan)
