"""Queries in flight while a table is re-ingested read the versions they planned on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from dpzero.catalog import _local, ingest_catalogs, open_store
from dpzero.catalog._layout import RETIRED_FILE, collect_garbage, read_manifest, store_lock
from dpzero.errors import InvalidInputError

from .conftest import TINY_OPTIONS, write_inputs

DB = "dp01_dc2_catalogs"
# Partitioned plans: each partition is read when the stream reaches it.
JOIN = (
    f"SELECT o.objectId, t.ra FROM {DB}.object AS o "
    f"JOIN {DB}.truth_match AS t ON o.objectId = t.match_objectId"
)
PAIRS = (
    f"SELECT a.objectId, b.objectId AS other FROM {DB}.object AS a JOIN {DB}.object AS b "
    "ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < 0.001 "
    "WHERE a.objectId <> b.objectId"
)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local, "BATCH_BYTES", 30 * 90)
    monkeypatch.setattr(_local, "MIN_BATCH_ROWS", 16)


def _sorted_rows(table: pa.Table) -> list[tuple]:
    return sorted(zip(*(c.to_pylist() for c in table.columns), strict=True))


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("query", [JOIN, PAIRS], ids=["join", "pairs"])
def test_a_stream_reads_the_versions_it_planned_on(
    tmp_path: Path, tiny_store: Path, query: str
) -> None:
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    reader = open_store(store)
    expected = _sorted_rows(reader.query_adql(query))
    assert len(expected) > 20
    stream = reader.stream_adql(query)
    first = stream.read_next_batch()
    assert first.num_rows < len(expected)  # the rest is still to be read
    write_inputs(tmp_path / "in", n=300, seed=11, tables=("object",))
    ingest_catalogs(tmp_path / "in", store, options=TINY_OPTIONS)
    rest = pa.Table.from_batches([first, *stream], schema=stream.schema)
    assert _sorted_rows(rest) == expected
    # A query started now sees the new table.
    assert reader.query_adql(f"SELECT COUNT(*) AS n FROM {DB}.object").column(0)[0].as_py() == 300


@pytest.mark.usefixtures("small_batches")
def test_a_version_removed_under_a_query_is_a_clear_error(tmp_path: Path, tiny_store: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    reader = open_store(store)
    stream = reader.stream_adql(JOIN)
    stream.read_next_batch()
    old = read_manifest(store).entry(DB, "object")
    write_inputs(tmp_path / "in", n=300, seed=11, tables=("object",))
    ingest_catalogs(tmp_path / "in", store, options=TINY_OPTIONS)
    assert (store / old.relative_dir / RETIRED_FILE).is_file()
    with store_lock(store):
        collect_garbage(store, read_manifest(store), grace_seconds=0)
    with pytest.raises(InvalidInputError, match=r"was replaced.*run the query again"):
        pa.Table.from_batches(list(stream), schema=stream.schema)
