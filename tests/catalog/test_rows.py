"""Row-major partition copies give back exactly the Parquet rows (values, nulls, types)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dpzero.catalog import ingest_catalogs, open_store
from dpzero.catalog._pruning import rows_in_ranges
from dpzero.catalog._rows import ROWS_DIR, RowCopy, SkyColumns, write_rows, write_sky

from .conftest import TINY_OPTIONS

DB = "dp01_dc2_catalogs"


def test_round_trip_of_every_kind_of_column(tmp_path: Path) -> None:
    stamp = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    table = pa.table(
        {
            "objectId": pa.array([1, 2, 3, 4], type=pa.int64()),
            "parent": pa.array([None, 7, None, 9], type=pa.int64()),
            "flux": pa.array([1.5, float("nan"), None, -2.0], type=pa.float32()),
            "ra": pa.array([0.0, 359.999999999, 12.25, 90.0], type=pa.float64()),
            "flag": pa.array([True, None, False, True]),
            "small": pa.array([1, -2, None, 4], type=pa.int16()),
            "patch": pa.array(["1,2", "", None, "é,<&>\x00"]),
            "blob": pa.array([b"\x00a", b"", None, b"xy\x00"], type=pa.binary()),
            "when": pa.array([stamp, None, stamp, stamp], type=pa.timestamp("us", tz="UTC")),
        }
    )
    source = tmp_path / "part.parquet"
    pq.write_table(table, source)
    write_rows(source, tmp_path / "part.npy")
    copy = RowCopy(tmp_path / "part.npy", table.schema)
    rows = np.array([3, 0, 2])
    got = pa.table(copy.columns([copy.pick(rows)], table.column_names))
    assert got.equals(table.take(pa.array(rows)))
    flux = copy.columns([copy.pick(np.array([1]))], ["flux"])["flux"]
    assert np.isnan(flux[0].as_py())
    # As query results give them: NaN as NULL, the other values untouched.
    flux = copy.columns([copy.pick(np.arange(4))], ["flux", "small"], {"flux", "small"})
    assert flux["flux"].to_pylist() == [1.5, None, None, -2.0]
    assert flux["small"].to_pylist() == [1, -2, None, 4]


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 63, 64, 65, 1000])
def test_batches_of_any_length_equal_pyarrow_arrays(tmp_path: Path, count: int) -> None:
    rng = np.random.default_rng(count)
    n = 1000

    def holes(values: np.ndarray) -> pa.Array:
        return pa.array(values, mask=rng.random(n) < 0.2)

    words = np.array(["", "a", "1,2", "é\x00", "longer text"], dtype=object)
    table = pa.table(
        {
            "i8": holes(rng.integers(-100, 100, n).astype(np.int8)),
            "u64": holes(rng.integers(0, 2**63, n, dtype=np.uint64)),
            "i32": holes(rng.integers(-(2**31), 2**31, n).astype(np.int32)),
            "f16": holes(rng.random(n).astype(np.float16)),
            "f32": holes(np.where(rng.random(n) < 0.1, np.nan, rng.random(n)).astype(np.float32)),
            "f64": holes(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))),
            "flag": holes(rng.random(n) < 0.5),
            "text": pa.array(words[rng.integers(0, 5, n)], mask=rng.random(n) < 0.2),
            "big": pa.array(words[rng.integers(0, 5, n)], type=pa.large_string()),
        }
    )
    pq.write_table(table, tmp_path / "part.parquet")
    write_rows(tmp_path / "part.parquet", tmp_path / "part.npy")
    copy = RowCopy(tmp_path / "part.npy", table.schema)
    rows = np.sort(rng.choice(n, count, replace=False))
    names = ["f64", "text", "i8", "flag", "u64", "big", "f16", "i32", "f32"]  # not in file order
    schema = pa.schema([table.schema.field(name).with_name(f"out_{name}") for name in names])
    batch = copy.batch([copy.pick(rows)], tuple(names), schema, frozenset({"f64", "f32", "i8"}))
    batch.validate(full=True)
    assert batch.schema == schema
    want = table.take(pa.array(rows, type=pa.int64()))
    for name in names:
        column = want.column(name).combine_chunks()
        if name in ("f64", "f32"):  # NaN as NULL
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        got = batch.column(f"out_{name}")
        assert got.equals(column), name
        assert got.null_count == column.null_count, name


def test_rows_of_partitions_with_different_text_widths_convert_together(tmp_path: Path) -> None:
    first = pa.table({"id": pa.array([1, 2], pa.int64()), "name": pa.array(["a", None])})
    second = pa.table({"id": pa.array([3, 4], pa.int64()), "name": pa.array(["longer\x00", ""])})
    copies = []
    for i, table in enumerate((first, second)):
        pq.write_table(table, tmp_path / f"{i}.parquet")
        write_rows(tmp_path / f"{i}.parquet", tmp_path / f"{i}.npy")
        copies.append(RowCopy(tmp_path / f"{i}.npy", table.schema))
    picked = [copies[0].pick(np.array([1, 0])), copies[1].pick(np.array([0, 1]))]
    got = pa.table(copies[0].columns(picked, ["id", "name"]))
    assert got.column("id").to_pylist() == [2, 1, 3, 4]
    assert got.column("name").to_pylist() == [None, "a", "longer\x00", ""]


def test_queries_read_the_same_rows_with_and_without_copies(tmp_path: Path, tiny_inputs) -> None:
    source, full = tiny_inputs
    with_rows, without = tmp_path / "with", tmp_path / "without"
    ingest_catalogs(source, with_rows, options=TINY_OPTIONS)
    no_copies = dataclasses.replace(TINY_OPTIONS, row_copies=False)
    ingest_catalogs(source, without, options=no_copies)
    assert any((with_rows / DB).glob(f"object@*/{ROWS_DIR}"))
    assert not any((without / DB).glob(f"object@*/{ROWS_DIR}"))
    ids = full["object"].column("objectId").to_pylist()[::97]
    queries = [
        f"SELECT * FROM {DB}.object WHERE objectId IN ({', '.join(map(str, ids))})",
        f"SELECT * FROM {DB}.object WHERE CONTAINS(POINT('ICRS', ra, dec), "
        "CIRCLE('ICRS', 56.0, -36.0, 0.3)) = 1",
        f"SELECT TOP 5 match_objectId, ra FROM {DB}.truth_match "
        f"WHERE match_objectId IN ({', '.join(map(str, ids[:4]))})",
        # Ids with other conditions: the rows the index gives still pass every test.
        f"SELECT objectId, mag_i_cModel, tract, patch FROM {DB}.object "
        f"WHERE objectId IN ({', '.join(map(str, [*ids, 12345]))}) AND mag_i_cModel < 25 "
        "AND CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.0, -36.0, 1.0)) = 1",
    ]
    a, b = open_store(with_rows), open_store(without)
    for query in queries:
        left = a.query_adql(query)
        right = b.query_adql(query)
        key = left.column_names[0]
        assert left.num_rows > 0, query
        assert left.sort_by(key).equals(right.sort_by(key)), query
    # Against the input: every id found once, whatever partition holds it.
    got = a.query_adql(queries[0]).column("objectId").to_pylist()
    assert sorted(got) == sorted(ids)
    shutil.rmtree(tmp_path)


def test_open_all_maps_every_partition_before_any_query(tiny_store) -> None:
    from dpzero.catalog import _kernels

    store = open_store(tiny_store)
    store.open_all()
    # The compiled loops are ready for the argument types a lookup gives them.
    kernels = (_kernels.find_rows, _kernels.ipc_message, _kernels.cone_decide)
    versions = [len(kernel.signatures) for kernel in kernels]
    assert all(versions)
    ids = pq.read_table(next((tiny_store / DB).glob("object@*/object/dataset/*/*/*.parquet")))
    listed = ", ".join(str(i) for i in ids.column("objectId").to_pylist()[:12])
    got = store.query_adql(f"SELECT * FROM {DB}.object WHERE objectId IN ({listed})")
    assert got.num_rows == 12
    for ra in (55.5, 56.5):  # read from the sky columns, then from Parquet
        for radius in (0.05, 1.0):
            circle = f"CIRCLE('ICRS', {ra}, -36, {radius})"
            cone = f"CONTAINS(POINT('ICRS', ra, dec), {circle}) = 1"
            assert store.query_adql(f"SELECT objectId FROM {DB}.object WHERE {cone}").num_rows
    assert [len(kernel.signatures) for kernel in kernels] == versions
    for table in store._tables.values():
        assert table.partitions
        assert all(part.meta is not None for part in table.partitions)
        if table.entry.key_column is not None:
            assert len(table._rows) == len(table.partitions)
            assert table._index is not None
            # The index's entries are this process's own memory, not the page cache's.
            assert table._index.held
            for entries in table._index._entries:
                owner = entries if entries.base is None else entries.base
                assert owner.base is None and not isinstance(owner, np.memmap)


def test_an_index_held_in_memory_finds_what_the_mapped_one_finds(tiny_store: Path) -> None:
    held, mapped = open_store(tiny_store), open_store(tiny_store)
    held.open_all()
    mapped.open_all(index_memory_bytes=0)
    object_table = f"{DB}.object"
    held_index, mapped_index = (s._table(object_table).index() for s in (held, mapped))
    assert held_index is not None and mapped_index is not None
    assert held_index.held and not mapped_index.held
    ids = pq.read_table(next((tiny_store / DB).glob("object@*/object/dataset/*/*/*.parquet")))
    wanted = [*ids.column("objectId").to_pylist()[::7], -1, 2**62]
    for got, expected in zip(held_index.find(wanted), mapped_index.find(wanted), strict=True):
        assert np.array_equal(got, expected)
    assert held_index.find(wanted)[0].size == len(wanted) - 2


def test_read_ahead_finds_rows_after_a_header_longer_than_a_page(tmp_path: Path) -> None:
    """A wide table's row copy has a header of several pages, so numpy's mapping starts
    at a page boundary inside it: read-ahead places rows from where the array starts in
    the mapping, up to the file's last row."""
    import mmap

    from dpzero.catalog._rows import ReadAhead, load_mapped

    names = [f"column_with_a_long_name_{i:03d}" for i in range(300)]
    table = pa.table(
        {name: pa.array(np.arange(50, dtype=np.float64) + i) for i, name in enumerate(names)}
    )
    pq.write_table(table, tmp_path / "wide.parquet")
    write_rows(tmp_path / "wide.parquet", tmp_path / "wide.npy")
    array = load_mapped(tmp_path / "wide.npy")
    header = (tmp_path / "wide.npy").stat().st_size - array.nbytes
    assert header > mmap.ALLOCATIONGRANULARITY  # the case this test is about
    ahead = ReadAhead(array)
    assert ahead._start == header % mmap.ALLOCATIONGRANULARITY
    ahead.rows([0, 48], [1, 49])  # the last rows: within the mapping
    copy = RowCopy(tmp_path / "wide.npy", table.schema)
    rows = np.arange(20, 50)  # more than a few rows: read ahead by runs
    got = pa.table(copy.columns([copy.pick(rows)], names[:3] + names[-2:]))
    assert got.equals(table.select(names[:3] + names[-2:]).take(pa.array(rows)))


def test_sky_columns_find_the_rows_in_cells_as_a_mask_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    healpix = np.sort(rng.integers(0, 1 << 20, 5_000)).astype(np.int64)
    ra, dec = rng.uniform(0, 360, healpix.size), rng.uniform(-90, 90, healpix.size)
    table = pa.table({"_healpix_29": healpix, "ra": ra, "dec": dec})
    write_sky(table, "ra", "dec", tmp_path / "p.sky.npy")
    sky = SkyColumns(tmp_path / "p.sky.npy", "ra", "dec")
    assert np.array_equal(sky.columns["ra"], ra) and np.array_equal(sky.columns["dec"], dec)
    cases = [
        np.empty((0, 2), dtype=np.int64),
        np.array([[-5, 0]]),  # before every row
        np.array([[1 << 21, 1 << 22]]),  # after every row
        np.array([[healpix[10], healpix[10] + 1]]),  # one cell
        np.array([[0, 1 << 22]]),  # all
    ]
    for _ in range(20):
        edges = np.sort(rng.choice(1 << 20, 2 * int(rng.integers(1, 40)), replace=False))
        cases.append(edges.reshape(-1, 2))
    for ranges in cases:
        ranges = np.asarray(ranges, dtype=np.int64)
        expected = np.flatnonzero(rows_in_ranges(ranges, healpix))
        assert np.array_equal(sky.rows_in(ranges), expected)
        assert np.array_equal(sky.rows_in(ranges, expected.size), expected)
        if expected.size:
            assert sky.rows_in(ranges, expected.size - 1) is None


@pytest.mark.parametrize("held", [False, True], ids=["mapped", "held"])
def test_small_regions_read_positions_from_sky_columns_and_no_row_group(
    tmp_path: Path, tiny_store: Path, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    from dpzero.catalog._local import _HANDLES

    bare = tmp_path / "bare"
    shutil.copytree(tiny_store, bare, symlinks=True)
    removed = [path.unlink() for path in bare.glob(f"{DB}/*@*/{ROWS_DIR}/*/*.sky.npy")]
    assert removed  # ingest wrote them
    cone = "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 359.9, -30.0, 0.4)) = 1"
    triangle = "POLYGON('ICRS', 55.5, -36.5, 56.5, -36.5, 56, -35.6)"
    polygon = f"CONTAINS(POINT('ICRS', ra, dec), {triangle}) = 1"
    pole = "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, -90, 0.3)) = 1"
    without_parquet = [
        f"SELECT * FROM {DB}.object WHERE {cone}",
        f"SELECT * FROM {DB}.object WHERE {polygon}",
        f"SELECT * FROM {DB}.object WHERE {pole}",
        f"SELECT TOP 3 * FROM {DB}.object WHERE {cone}",
        f"SELECT ra, dec FROM {DB}.object WHERE {polygon}",
    ]
    wide_cone = "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56, -36, 2)) = 1"
    few_columns = f"SELECT objectId, dec, mag_i_cModel FROM {DB}.object WHERE {wide_cone}"
    # Other WHERE columns than positions: decoded from Parquet, the same rows.
    with_parquet = [
        f"SELECT objectId, ra FROM {DB}.object WHERE {cone} AND mag_i_cModel < 21",
        f"SELECT * FROM {DB}.object WHERE {polygon} AND tract > 10",
    ]
    reads: list[tuple] = []
    read = _HANDLES.read
    monkeypatch.setattr(_HANDLES, "read", lambda *a, **k: reads.append(a) or read(*a, **k))
    sky, parquet = open_store(tiny_store), open_store(bare)
    if held:  # the sky columns copied into this process's memory, as a server has them
        sky.open_all()
        copies = [c for t in sky._tables.values() for c in t._rows.values() if c is not None]
        assert copies and all(c.sky is None or c.sky.held for c in copies)
        assert any(c.sky is not None for c in copies)
    for query in without_parquet + with_parquet:
        reads.clear()
        got = sky.query_adql(query)
        assert bool(reads) == (query in with_parquet), query
        expected = parquet.query_adql(query)
        assert got.num_rows > 0, query
        if "TOP" not in query:
            key = got.column_names[0]
            got, expected = got.sort_by(key), expected.sort_by(key)
        assert got.equals(expected), query
    # Many rows of a few columns (here: any rows, the row copy priced out) take the
    # positions from the sky columns and decode only the others.
    from dpzero.catalog import _direct

    monkeypatch.setattr(_direct, "CHUNK_COST_BYTES", 0)
    reads.clear()
    got = sky.query_adql(few_columns)
    assert reads and all(set(read[2]) == {"objectId", "mag_i_cModel"} for read in reads)
    expected = parquet.query_adql(few_columns)
    assert got.num_rows > 100
    assert got.sort_by("objectId").equals(expected.sort_by("objectId"))
