"""The streaming partitioner: exactly the input rows, in the right cells, sorted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dpzero.catalog import IngestOptions, ingest_catalogs
from dpzero.catalog._partition import (
    HEALPIX_COLUMN,
    PartitionTooDenseError,
    chunk_rows_for,
    partition_table,
    plan_partitions,
)
from dpzero.errors import InvalidInputError

from .conftest import make_table, sky_positions, write_inputs

DB = "dp01_dc2_catalogs"


def _hp29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    from hats.pixel_math.spatial_index import compute_spatial_index

    return np.asarray(compute_spatial_index(ra, dec), dtype=np.int64)


def _read_partitions(catalog_dir: Path) -> tuple[pa.Table, list[tuple[int, int, np.ndarray]]]:
    files = sorted((catalog_dir / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))
    tables, cells = [], []
    for f in files:
        order = int(f.parent.parent.name.split("=")[1])
        pixel = int(f.stem.split("=")[1])
        with pq.ParquetFile(f) as pf:
            t = pf.read()
        tables.append(t)
        cells.append((order, pixel, t.column(HEALPIX_COLUMN).to_numpy()))
    return pa.concat_tables(tables), cells


def _assert_same_bits(got: pa.Table, want: pa.Table) -> None:
    """Equal tables, NaN equal to NaN: floats compared by their bit patterns."""
    assert got.schema == want.schema
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(a.type):
            assert a.null_count == b.null_count == 0
            bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.type.byte_width]
            assert (a.to_numpy().view(bits) == b.to_numpy().view(bits)).all(), name
        else:
            assert a.equals(b), name


@pytest.mark.parametrize("table", ["object", "truth_match"])
def test_partitions_hold_exactly_the_input_rows(tiny_store, tiny_inputs, table):
    _, full = tiny_inputs
    want = full[table]
    got, cells = _read_partitions(tiny_store / DB / table / table)
    assert got.column_names == [HEALPIX_COLUMN, *want.column_names]
    # Each row's _healpix_29 is that of its position, and lies in its partition's cell.
    hp = _hp29(got.column("ra").to_numpy(), got.column("dec").to_numpy())
    assert (got.column(HEALPIX_COLUMN).to_numpy() == hp).all()
    for order, pixel, values in cells:
        assert (values >> (2 * (29 - order)) == pixel).all()
    # The same multiset of rows, every column bit for bit (NaNs included).
    body = got.drop_columns([HEALPIX_COLUMN]).cast(want.schema)
    key = "objectId" if table == "object" else "match_objectId"
    keys = [(c, "ascending") for c in (key, "ra", "dec")]
    _assert_same_bits(body.sort_by(keys), want.sort_by(keys))


def test_small_chunks_and_one_thread_write_the_same_partitions(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    ra, dec = sky_positions(n, rng)
    ids = np.arange(n, dtype=np.int64) + 1
    tab = make_table("object", n, rng, ids, ra, dec)
    files = []
    for i, (s, e) in enumerate(((0, 1000), (1000, 1000), (1000, 3000))):  # one file empty
        files.append(tmp_path / f"in{i}.parquet")
        pq.write_table(tab.slice(s, e - s), files[-1])
    out = {}
    for label, chunk, threads in (("big", 100_000, 2), ("small", 137, 1)):
        parts = partition_table(
            files,
            tmp_path / label / "object",
            ra_column="ra",
            dec_column="dec",
            highest_order=7,
            partition_rows=500,
            row_group_rows=64,
            chunk_rows=chunk,
            threads=threads,
        )
        out[label] = {(o, p): pq.read_table(f) for o, p, f in parts}
        for _, _, f in parts:
            md = pq.ParquetFile(f).metadata
            assert md.num_rows <= 500
            assert all(md.row_group(i).num_rows <= 64 for i in range(md.num_row_groups))
    assert out["big"].keys() == out["small"].keys()
    for key, t in out["big"].items():
        _assert_same_bits(t, out["small"][key])
    total = sum(t.num_rows for t in out["big"].values())
    assert total == n
    props = (tmp_path / "big" / "object" / "hats.properties").read_text()
    assert "hats_nrows=3000" in props
    assert "hats_col_healpix=_healpix_29" in props
    assert (tmp_path / "big" / "object" / "dataset" / "_metadata").is_file()
    assert (tmp_path / "big" / "object" / "partition_info.csv").is_file()


def test_plan_raises_the_order_when_one_cell_is_too_dense():
    rng = np.random.default_rng(1)
    # 400 rows spread over one order-6 cell: too many for it, not for its children.
    cell = int(_hp29(np.array([56.0]), np.array([-36.0]))[0] >> (2 * 23))
    hp = (np.int64(cell) << 46) + rng.integers(0, 4**23, 400)
    plan = plan_partitions(hp, highest_order=6, partition_rows=399)
    assert plan.order == 7
    assert sum(n for _, _, n in plan.pixels) == 400
    assert all(n <= 399 for _, _, n in plan.pixels)


def test_plan_says_what_to_do_when_rows_share_one_position():
    hp = _hp29(np.full(50, 56.0), np.full(50, -36.0))
    with pytest.raises(PartitionTooDenseError, match="raise --partition-rows to at least 50"):
        plan_partitions(hp, highest_order=7, partition_rows=10)
    assert issubclass(PartitionTooDenseError, InvalidInputError)


def test_ingest_of_a_too_dense_table_is_a_user_error(tmp_path):
    full = write_inputs(tmp_path / "in", n=40, tables=("object",))
    t = full["object"]
    i, j = t.schema.get_field_index("ra"), t.schema.get_field_index("dec")
    t = t.set_column(i, t.schema.field(i), pa.array(np.full(t.num_rows, 56.0)))
    t = t.set_column(j, t.schema.field(j), pa.array(np.full(t.num_rows, -36.0)))
    pq.write_table(t.slice(0, 20), tmp_path / "in/object/object_part0.parquet")
    pq.write_table(t.slice(20), tmp_path / "in/object/object_part1.parquet")
    with pytest.raises(PartitionTooDenseError) as err:
        ingest_catalogs(
            tmp_path / "in", tmp_path / "store", options=IngestOptions(partition_rows=10)
        )
    assert err.value.code == "partition_too_dense"
    assert not (tmp_path / "store").exists()


def test_wide_tables_read_fewer_rows_at_once():
    narrow = pa.schema([("a", pa.float64())] * 5)
    wide = pa.schema([(f"c{i}", pa.float64()) for i in range(800)])
    assert chunk_rows_for(narrow, 200_000) == 200_000
    assert chunk_rows_for(wide, 200_000) < 50_000
    assert chunk_rows_for(pa.schema([("s", pa.string())]), 10) == 1_000


@pytest.mark.parametrize("threshold", [250, 5000])
def test_plan_matches_hats_generate_alignment(threshold):
    from hats.pixel_math.partition_stats import generate_alignment

    rng = np.random.default_rng(threshold)
    ra, dec = sky_positions(4000, rng)
    hp = _hp29(ra, dec)
    order = 7
    plan = plan_partitions(hp, highest_order=order, partition_rows=threshold)
    assert plan.order == order
    histogram = np.bincount(hp >> (2 * (29 - order)), minlength=12 * 4**order)
    alignment = generate_alignment(
        histogram, highest_order=order, threshold=threshold, drop_empty_siblings=True
    )
    want = {(int(a[0]), int(a[1]), int(a[2])) for a in alignment if a is not None}
    assert set(plan.pixels) == want
    # Every row lands in the partition whose cell contains it.
    where = plan.locate(hp)
    for i, (o, p, n) in enumerate(plan.pixels):
        mine = hp[where == i]
        assert mine.size == n
        assert (mine >> (2 * (29 - o)) == p).all()
