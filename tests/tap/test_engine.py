"""The TAP engine's column descriptions, kept per result schema."""

from __future__ import annotations

from dpzero.catalog import open_store
from dpzero.tap.engine import TapEngine


def test_catalog_columns_are_described_alike_query_after_query(tiny_store):
    engine = TapEngine(open_store(tiny_store))
    query = "SELECT TOP 3 objectId, ra FROM dp01_dc2_catalogs.object"
    first = engine.execute(query, {}, maxrec=10).columns
    again = engine.execute(query, {}, maxrec=10).columns
    assert first == again
    assert [c.unit for c in first] == ["", "deg"]
    first.append(first[0])  # a caller's list of its own: the kept one is unchanged
    assert len(engine.execute(query, {}, maxrec=10).columns) == 2
