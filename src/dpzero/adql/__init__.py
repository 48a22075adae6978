"""ADQL 2.1 for dpzero: strict parsing, name resolution, DuckDB translation, geometry.

The catalog engine's path for one query::

    query = parse_adql(text)                      # AdqlSyntaxError with line/column
    resolved = resolve(query, catalog)            # AdqlNameError naming the closest names
    regions = search_regions(resolved)            # sky regions per table, for pruning
    ids = id_constraints(resolved)                # objectId constants, for the index
    sql = to_duckdb(resolved, table_names={...})  # run on a connection that had
    register_adql_functions(con)                  # the ADQL macros registered

NaN in floating-point columns reads as NULL (see ``to_duckdb``); geometry is exact on
the sphere; ``ADQL_FEATURES`` lists the optional features for TAP capabilities.
"""

from dpzero.adql._errors import (
    AdqlError,
    AdqlNameError,
    AdqlSyntaxError,
    AdqlUnsupportedError,
)
from dpzero.adql._features import ADQL_FEATURES, LanguageFeature
from dpzero.adql._geometry import (
    AdqlGeometryError,
    Circle,
    Polygon,
    RaDecRange,
    box_polygon,
    parse_stcs,
)
from dpzero.adql._names import ColumnInfo, OutputColumn, ResolvedQuery, TableCatalog, resolve
from dpzero.adql._parse import AdqlQuery, check_query_file, parse_adql
from dpzero.adql._regions import (
    IdConstraint,
    TableRegions,
    conjuncts,
    id_constraints,
    search_regions,
)
from dpzero.adql._translate import register_adql_functions, to_duckdb

__all__ = [
    "ADQL_FEATURES",
    "AdqlError",
    "AdqlGeometryError",
    "AdqlNameError",
    "AdqlQuery",
    "AdqlSyntaxError",
    "AdqlUnsupportedError",
    "Circle",
    "ColumnInfo",
    "IdConstraint",
    "LanguageFeature",
    "OutputColumn",
    "Polygon",
    "RaDecRange",
    "ResolvedQuery",
    "TableCatalog",
    "TableRegions",
    "box_polygon",
    "check_query_file",
    "conjuncts",
    "id_constraints",
    "parse_adql",
    "parse_stcs",
    "register_adql_functions",
    "resolve",
    "search_regions",
    "to_duckdb",
]
