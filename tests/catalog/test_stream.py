"""Streamed results: the same rows and bytes as the materialised path, MAXREC exact,
errors after the first rows reported in the document, memory bounded on a full scan."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse as parse_votable

from dpzero.catalog import _local, open_store
from dpzero.errors import InvalidInputError
from dpzero.tap.engine import QueryOutcome, TapEngine
from dpzero.tap.formats import ResultColumn, columns_for_schema, parse_format, write_result

# A full scan with every kind of value (the VOTable writer packs strings row by row,
# so all 137 columns would only make the test slow).
FULL_SCAN = (
    "SELECT objectId, parentObjectId, tract, patch, ra, dec, psFlux_i, mag_i, good "
    "FROM dp01_dc2_catalogs.object"
)


@pytest.fixture(scope="module")
def store(tiny_store):
    return open_store(tiny_store)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of ~30 rows, so the tiny object table streams as many of them."""
    monkeypatch.setattr(_local, "BATCH_BYTES", 30 * 90)
    monkeypatch.setattr(_local, "MIN_BATCH_ROWS", 16)


def encode(fmt: str, batches, schema: pa.Schema, overflow: bool = False) -> bytes:
    ra = ResultColumn("ra", "double", unit="deg", ucd="pos.eq.ra", description="Right ascension")
    columns = columns_for_schema(schema, {"ra": ra})
    chunks = write_result(
        parse_format(fmt), batches, schema, columns, [("QUERY", "q")], lambda: overflow
    )
    return b"".join(chunks)


@pytest.mark.parametrize("fmt", ["votable", "votable/td", "csv", "tsv"])
def test_full_scan_streams_the_same_bytes_as_the_whole_table(store, small_batches, fmt):
    whole = store.query_adql(FULL_SCAN)
    reader = store.stream_adql(FULL_SCAN)
    batches = list(reader)
    assert len(batches) > 20  # the result really came in many pieces
    assert sum(b.num_rows for b in batches) == whole.num_rows == 2000
    streamed = encode(fmt, iter(batches), reader.schema)
    materialised = encode(fmt, whole.to_batches(max_chunksize=777), whole.schema)
    assert streamed == materialised


def test_full_scan_streams_the_same_parquet_rows(store, small_batches):
    whole = store.query_adql(FULL_SCAN)
    reader = store.stream_adql(FULL_SCAN)
    data = encode("parquet", reader, reader.schema)
    back = pq.read_table(io.BytesIO(data))
    assert back.column_names == whole.column_names
    assert back.num_rows == whole.num_rows
    for name in whole.column_names:
        assert back.column(name).equals(whole.column(name))


@pytest.mark.parametrize("maxrec", [0, 1, 29, 30, 31, 1999, 2000, 2001])
def test_maxrec_is_exact_across_batch_edges(tiny_store, small_batches, maxrec):
    engine = TapEngine.open(tiny_store)
    outcome = engine.execute("SELECT objectId FROM dp01_dc2_catalogs.object", {}, maxrec)
    rows = outcome.read_all()
    assert rows.num_rows == outcome.rows == min(maxrec, 2000)
    assert outcome.overflow == (maxrec < 2000)
    assert len(set(rows.column(0).to_pylist())) == rows.num_rows


def failing_after(table: pa.Table, good_batches: int):
    """The table's batches, then the error a bad value in a later row raises."""
    batches = table.combine_chunks().to_batches(max_chunksize=100)
    yield from batches[:good_batches]
    raise InvalidInputError("query failed: Conversion Error: Could not convert 'x'")


def test_an_error_after_the_first_rows_ends_the_votable_with_an_error_info(store):
    table = store.query_adql("SELECT objectId, ra, dec FROM dp01_dc2_catalogs.object")
    reader = pa.RecordBatchReader.from_batches(table.schema, failing_after(table, 3))
    outcome = QueryOutcome(reader, columns_for_schema(table.schema, {}), 10_000)
    data = encode("votable", outcome.batches(), outcome.schema)
    assert isinstance(outcome.error, InvalidInputError)
    assert outcome.rows == 300
    resource = parse_votable(io.BytesIO(data)).resources[0]
    statuses = [(i.value, i.content) for i in resource.infos if i.name == "QUERY_STATUS"]
    assert statuses[0] == ("OK", None)
    assert statuses[-1][0] == "ERROR" and "Could not convert" in statuses[-1][1]
    got = resource.tables[0].array  # rows before the error stay whole
    assert list(got["objectId"]) == table.column("objectId").to_pylist()[:300]


def test_a_text_format_error_after_the_first_rows_is_raised(store):
    table = store.query_adql("SELECT objectId, ra FROM dp01_dc2_catalogs.object")
    reader = pa.RecordBatchReader.from_batches(table.schema, failing_after(table, 2))
    outcome = QueryOutcome(reader, columns_for_schema(table.schema, {}), 10_000)
    with pytest.raises(InvalidInputError, match="Could not convert"):
        encode("csv", outcome.batches(), outcome.schema)
    assert isinstance(outcome.error, InvalidInputError)


def test_an_error_before_the_first_batch_is_raised_by_execute(tiny_store):
    engine = TapEngine.open(tiny_store)
    with pytest.raises(InvalidInputError, match="Could not convert"):
        engine.execute(
            "SELECT CAST('x' || objectId AS INTEGER) FROM dp01_dc2_catalogs.object", {}, 10
        )


def test_outcome_reads_no_further_than_maxrec_plus_one():
    seen: list[int] = []

    def batches():
        for i in range(100):
            seen.append(i)
            yield pa.record_batch({"x": pa.array(range(i * 10, i * 10 + 10))})

    schema = pa.schema([("x", pa.int64())])
    outcome = QueryOutcome(pa.RecordBatchReader.from_batches(schema, batches()), [], 25)
    assert outcome.read_all().column(0).to_pylist() == list(range(25))
    assert outcome.overflow and seen == [0, 1, 2]


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys
    from dpzero.catalog import open_store

    def status_mb(key):
        # VmHWM: this process's peak resident memory (getrusage's ru_maxrss would
        # count the parent's memory at fork time too).
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024

    store = open_store(sys.argv[1])
    store.query_adql("SELECT TOP 10 * FROM dp01_dc2_catalogs.object")  # warm caches
    before = status_mb("VmHWM")
    size = rows = 0
    for batch in store.stream_adql("SELECT * FROM dp01_dc2_catalogs.object"):
        size += batch.nbytes
        rows += batch.num_rows
    print(json.dumps({"before": before, "peak": status_mb("VmHWM"),
                      "result_mb": size / 2**20, "rows": rows}))
    """
)


@pytest.mark.slow
def test_full_scan_memory_stays_bounded(tmp_path: Path):
    """Peak memory while streaming a full scan stays far below the result's size."""
    from catalog.conftest import write_inputs
    from dpzero.catalog import IngestOptions, ingest_catalogs

    write_inputs(tmp_path / "in", n=300_000, tables=("object",))
    ingest_catalogs(
        tmp_path / "in", tmp_path / "store", options=IngestOptions(partition_rows=40_000)
    )
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout)
    assert figures["rows"] == 300_000
    assert figures["result_mb"] > 250
    assert figures["peak"] - figures["before"] < 0.4 * figures["result_mb"], figures
