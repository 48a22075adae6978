"""Ingest: HATS layout readable by LSDB, objectId index, metadata, validation, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dpzero.catalog import (
    CatalogInputError,
    StoreBusyError,
    ingest_catalogs,
    open_store,
    read_manifest,
)
from dpzero.catalog._index import ObjectIndex
from dpzero.catalog._layout import collect_garbage, store_lock
from dpzero.errors import InvalidInputError
from dpzero.schema import load_schema

from .conftest import TINY_OPTIONS, write_inputs

DB = "dp01_dc2_catalogs"


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its bytes' hash or its symlink target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def _partition_files(store: Path, table: str) -> list[Path]:
    return sorted((store / DB / table / table / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"))


def test_store_holds_every_row_and_lsdb_reads_it(tiny_store, tiny_inputs):
    import lsdb

    _, full = tiny_inputs
    manifest = read_manifest(tiny_store)
    assert manifest.schemas == {DB: "dp01_dc2"}
    assert {t for _, t in manifest.tables} == set(full)
    cat = lsdb.open_catalog(tiny_store / DB / "object")
    assert cat.margin is not None
    margin = cat.margin.compute()
    assert 0 < len(margin) < len(full["object"])
    assert set(margin["objectId"]) <= set(full["object"].column("objectId").to_pylist())
    df = cat.compute()
    assert len(df) == full["object"].num_rows
    # LSDB's own cone search agrees with dpzero's store on the same files.
    cone = cat.cone_search(56.0, -36.0, 0.2 * 3600).compute()
    ours = open_store(tiny_store).query_adql(
        "SELECT objectId FROM dp01_dc2_catalogs.object "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.0, -36.0, 0.2)) = 1"
    )
    assert sorted(cone["objectId"].tolist()) == sorted(ours.column(0).to_pylist())
    assert len(cone) > 10
    assert sorted(df["objectId"].tolist()) == sorted(full["object"].column("objectId").to_pylist())
    # Column values survive: compare one float column by objectId.
    got = dict(zip(df["objectId"], df["psFlux_i"], strict=True))
    want = dict(
        zip(
            full["object"].column("objectId").to_pylist(),
            full["object"].column("psFlux_i").to_pylist(),
            strict=True,
        )
    )
    for k in list(want)[:200]:
        assert (np.isnan(got[k]) and np.isnan(want[k])) or got[k] == pytest.approx(want[k])


def test_partitions_are_adaptive_sorted_with_small_row_groups(tiny_store):
    files = _partition_files(tiny_store, "object")
    assert len(files) > 3
    total = 0
    orders = set()
    for f in files:
        pf = pq.ParquetFile(f)
        total += pf.metadata.num_rows
        orders.add(int(f.parent.parent.name.split("=")[1]))
        assert pf.metadata.num_rows <= TINY_OPTIONS.partition_rows
        assert all(
            pf.metadata.row_group(i).num_rows <= TINY_OPTIONS.row_group_rows
            for i in range(pf.metadata.num_row_groups)
        )
        hp = pf.read(columns=["_healpix_29"]).column(0).to_numpy()
        assert (np.diff(hp) >= 0).all()
    assert total == 2000
    # Dense and sparse sky areas end up at different orders.
    assert len(orders) > 1


def test_margin_holds_neighbours_across_partition_edges(tiny_store):
    from hats.pixel_math.healpix_pixel import HealpixPixel
    from hats.pixel_math.spatial_index import spatial_index_to_healpix

    store = open_store(tiny_store)
    table = store._table(f"{DB}.object")
    margin_rows = 0
    for part in table.partitions:
        if part.margin_path is None:
            continue
        m = pq.read_table(part.margin_path, columns=["_healpix_29"]).column(0).to_numpy()
        margin_rows += m.size
        # Margin rows lie outside their partition.
        pix = spatial_index_to_healpix(m, target_order=part.order)
        assert not (pix == part.pixel).any()
        assert HealpixPixel(part.order, part.pixel) is not None
    assert margin_rows > 0


def test_objectid_index_points_at_the_partition_and_row(tiny_store):
    for table, key in (("object", "objectId"), ("truth_match", "match_objectId")):
        where = {}
        for f in _partition_files(tiny_store, table):
            norder = int(f.parent.parent.name.split("=")[1])
            npix = int(f.stem.split("=")[1])
            keys = pq.read_table(f, columns=[key]).column(0).to_pylist()
            for row, k in enumerate(keys):
                where.setdefault(k, set()).add((norder, npix, row))
        index = ObjectIndex(tiny_store / DB / table / "dpzero-index" / key)
        sample = [k for k in where if k != -1][:300]
        for k in sample[:50]:
            locs = index.locate([k])
            got = {(loc.norder, loc.npix, int(r)) for loc in locs for r in loc.rows}
            assert got == where[k]
        many = index.locate(sample)
        got = {(loc.norder, loc.npix, int(r)) for loc in many for r in loc.rows}
        assert got == set().union(*(where[k] for k in sample))
        # Unknown ids and the "unmatched" -1 of truth_match are not in the index.
        assert index.locate([-1, 12345]) == []


def test_metadata_comes_from_the_felis_schema(tiny_store):
    store = open_store(tiny_store)
    spec = load_schema("dp01_dc2").table("object")
    meta = store.table_metadata(DB, "object")
    assert meta.description == spec.description
    assert meta.column_names == spec.column_names
    assert meta.rows == 2000
    assert (meta.ra_column, meta.dec_column, meta.key_column) == ("ra", "dec", "objectId")
    for got, want in zip(meta.columns, spec.columns, strict=True):
        assert (got.unit, got.ucd, got.description) == (want.unit, want.ucd, want.description)
    assert store.table_metadata(DB, "truth_match").key_column == "match_objectId"


# --- validation: a broken input changes nothing --------------------------------------


def _break(root: Path, table: str, change) -> str:
    """Rewrite the second file of ``table`` with ``change`` applied; return its name."""
    name = f"{table}/{table}_part1.parquet"
    t = pq.read_table(root / name)
    pq.write_table(change(t), root / name)
    return name


def _set(t: pa.Table, col: str, row: int, value) -> pa.Table:
    values = t.column(col).to_pylist()
    values[row] = value
    i = t.schema.get_field_index(col)
    field = t.schema.field(i)
    if value is None:
        field = field.with_nullable(True)
    return t.set_column(i, field, pa.array(values, type=field.type))


CASES = {
    "missing column": (lambda t: t.drop_columns(["psFlux_g"]), "psFlux_g", None, "missing column"),
    "extra column": (
        lambda t: t.append_column("bogus", pa.array(np.zeros(t.num_rows))),
        "bogus",
        None,
        "not in the schema",
    ),
    "wrong type": (
        lambda t: t.set_column(
            t.schema.get_field_index("x"), "x", pc.cast(t.column("x"), pa.float32())
        ),
        "x",
        None,
        "type float",
    ),
    "ra out of range": (lambda t: _set(t, "ra", 17, 361.0), "ra", 17, "outside [0, 360]"),
    "dec out of range": (lambda t: _set(t, "dec", 3, -90.5), "dec", 3, "outside [-90, 90]"),
    "nan dec": (lambda t: _set(t, "dec", 4, float("nan")), "dec", 4, "outside"),
    "null key": (lambda t: _set(t, "objectId", 9, None), "objectId", 9, "null"),
    "duplicate objectId": (
        lambda t: _set(t, "objectId", 5, t.column("objectId")[0].as_py()),
        "objectId",
        5,
        "duplicate objectId",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_input_names_file_column_row_and_changes_nothing(case, tmp_path, tiny_store):
    change, column, row, words = CASES[case]
    src = tmp_path / "in"
    write_inputs(src, n=300, seed=11, tables=("object",))
    bad = _break(src, "object", change)
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    before = snapshot(store)
    with pytest.raises(CatalogInputError) as err:
        ingest_catalogs(src, store, options=TINY_OPTIONS)
    assert err.value.file == bad
    assert err.value.column == column
    assert err.value.row == row
    assert words in err.value.message
    assert bad in err.value.message
    assert snapshot(store) == before
    # A new store is not even created.
    with pytest.raises(CatalogInputError):
        ingest_catalogs(src, tmp_path / "new-store", options=TINY_OPTIONS)
    assert not (tmp_path / "new-store").exists()


def test_duplicate_ids_across_files_are_found_by_the_index(tmp_path, tiny_store):
    src = tmp_path / "in"
    full = write_inputs(src, n=300, seed=11, tables=("object",))
    # Row 5 of the second file repeats row 2 of the first: each file alone is fine.
    dup = full["object"].column("objectId")[2].as_py()
    bad = _break(src, "object", lambda t: _set(t, "objectId", 5, dup))
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    before = snapshot(store)
    with pytest.raises(CatalogInputError) as err:
        ingest_catalogs(src, store, options=TINY_OPTIONS)
    assert (err.value.file, err.value.column, err.value.row) == (bad, "objectId", 5)
    assert f"duplicate objectId {dup}, also in object/object_part0.parquet row 2" in str(err.value)
    assert snapshot(store) == before


def test_manifest_problems_are_user_errors(tmp_path):
    src = tmp_path / "in"
    write_inputs(src, n=100, tables=("object",))
    m = json.loads((src / "manifest.json").read_text())
    m["tables"]["object"]["rows"] = 99
    (src / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CatalogInputError, match="lists 99 rows"):
        ingest_catalogs(src, tmp_path / "s", options=TINY_OPTIONS)
    m["tables"]["object"]["files"].append("object/nope.parquet")
    (src / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InvalidInputError, match="does not exist"):
        ingest_catalogs(src, tmp_path / "s", options=TINY_OPTIONS)
    with pytest.raises(InvalidInputError, match=r"no manifest\.json"):
        ingest_catalogs(tmp_path, tmp_path / "s", options=TINY_OPTIONS)
    assert not (tmp_path / "s").exists()


def test_a_second_ingest_waits_for_the_lock(tmp_path, tiny_inputs):
    store = tmp_path / "store"
    with store_lock(store), pytest.raises(StoreBusyError):
        ingest_catalogs(tiny_inputs[0], store, options=TINY_OPTIONS)


# --- slow: whole ingests --------------------------------------------------------------


@pytest.mark.slow
def test_reingest_replaces_a_table_atomically(tmp_path, tiny_store):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    old = read_manifest(store)
    src = tmp_path / "in"
    new = write_inputs(src, n=500, seed=99, tables=("object",))
    reader = open_store(store)
    report = ingest_catalogs(src, store, options=TINY_OPTIONS)
    assert [t.table for t in report.tables] == ["object"]
    now = read_manifest(store)
    assert now.entry(DB, "object").version != old.entry(DB, "object").version
    assert now.entry(DB, "truth_match") == old.entry(DB, "truth_match")
    # The symlink points at the new version; the old one stays, retired, for the queries
    # planned on it, until the grace period ends.
    assert os.readlink(store / DB / "object") == f"object@{now.entry(DB, 'object').version}"
    old_dir = store / old.entry(DB, "object").relative_dir
    assert (old_dir / ".retired").is_file()
    with store_lock(store):
        assert collect_garbage(store, now) == []
        assert collect_garbage(store, now, grace_seconds=0) == [old_dir]
    versions = sorted(p.name for p in (store / DB).iterdir() if p.name.startswith("object@"))
    assert versions == [f"object@{now.entry(DB, 'object').version}"]
    # An open reader sees the new table at its next query.
    got = reader.query(f"SELECT objectId FROM {DB}.object").column(0).to_pylist()
    assert sorted(got) == sorted(new["object"].column("objectId").to_pylist())


_KILL_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import TINY_OPTIONS
from dpzero.catalog import ingest_catalogs
ingest_catalogs(Path({src!r}), Path({store!r}), options=TINY_OPTIONS)
"""


@pytest.mark.slow
def test_killed_ingest_leaves_the_store_as_it_was(tmp_path, tiny_store):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    src = tmp_path / "in"
    write_inputs(src, n=500, seed=5, tables=("object", "truth_match"))
    before = read_manifest(store)
    reader = open_store(store)
    count = reader.query(f"SELECT count(*) FROM {DB}.object").column(0)[0].as_py()
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), src=str(src), store=str(store))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    # Kill it once the partitioner has written partitions into the staging folder.
    while time.time() < deadline and proc.poll() is None:
        if list(store.glob(".staging-*/object/object/dataset/Norder=*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_manifest(store) == before
    assert reader.query(f"SELECT count(*) FROM {DB}.object").column(0)[0].as_py() == count
    assert lsdb_rows(store / DB / "object") == count
    # The next ingest cleans the leftovers and succeeds.
    ingest_catalogs(src, store, options=TINY_OPTIONS)
    assert not list(store.glob(".staging-*"))
    assert read_manifest(store).entry(DB, "object").rows == 500


def lsdb_rows(path: Path) -> int:
    import lsdb

    return len(lsdb.open_catalog(path).compute())


def test_partition_paths_follow_hats(tiny_store):
    from hats.catalog import PartitionInfo
    from hats.io import paths
    from hats.pixel_math.healpix_pixel import HealpixPixel

    from dpzero.catalog._layout import partition_file, read_partitions

    catalog = tiny_store / DB / "object" / "object"
    info = PartitionInfo.read_from_dir(catalog)
    assert read_partitions(catalog) == [(p.order, p.pixel) for p in info.get_healpix_pixels()]
    for order, pixel in [*read_partitions(catalog), (6, 34511), (11, 123456789), (0, 3)]:
        want = Path(str(paths.pixel_catalog_file(catalog, HealpixPixel(order, pixel))))
        assert partition_file(catalog, order, pixel) == want


def test_a_database_keeps_its_schema(tmp_path, tiny_store):
    src = tmp_path / "in"
    write_inputs(src, n=50, tables=("object",))
    (src / "manifest.json").write_text(
        json.dumps(
            {"schema": "dp02_dc2", "tables": {"Object": {"files": ["object/object_part0.parquet"]}}}
        )
    )
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="holds schema dp01_dc2"):
        ingest_catalogs(src, store, database=DB, options=TINY_OPTIONS)
    assert snapshot(store) == before


@pytest.mark.slow
def test_a_store_holds_several_databases(tmp_path, tiny_store):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    src = tmp_path / "in"
    new = write_inputs(src, n=300, seed=21, tables=("object",))
    ingest_catalogs(src, store, database="dp01_copy", options=TINY_OPTIONS)
    s = open_store(store)
    assert s.databases() == ["dp01_copy", DB]
    assert s.tables("dp01_copy") == ["object"]
    n = s.query_adql("SELECT COUNT(*) AS n FROM dp01_copy.object").column(0)[0].as_py()
    assert n == new["object"].num_rows
    n = s.query_adql(f"SELECT COUNT(*) AS n FROM {DB}.object").column(0)[0].as_py()
    assert n == 2000


def test_an_index_of_an_older_format_asks_for_a_re_ingest(tmp_path):
    (tmp_path / "index.json").write_text('{"key": "objectId", "buckets": 1, "rows": 0}')
    with pytest.raises(InvalidInputError, match="re-ingest"):
        ObjectIndex(tmp_path)


@pytest.mark.parametrize("held", [False, True])
@pytest.mark.parametrize("buckets", [1, 3])
def test_index_lookups_cross_fences_and_find_every_copy_of_a_key(tmp_path, held, buckets):
    """Keys repeated across the in-memory fences of a bucket (truth_match's
    match_objectId repeats) are all found, in every partition holding them, ordered by
    partition and row: mapped or held in memory (a few keys then take one compiled
    call), in one bucket or several."""
    from dpzero.catalog._index import BUCKET_ROWS, FENCE_STRIDE, build_index

    rng = np.random.default_rng(2)
    keys = np.repeat(np.arange(0, 6 * FENCE_STRIDE, 3, dtype=np.int64), 3)  # runs of 3
    keys = np.concatenate([keys, np.full(FENCE_STRIDE + 7, 999_999, dtype=np.int64)])
    rng.shuffle(keys)
    files = []
    for i, part in enumerate(np.array_split(keys, 3)):
        path = tmp_path / f"{i}.parquet"
        pq.write_table(pa.table({"k": part}), path, row_group_size=700)
        files.append((5, 100 + i, path))
    # ``rows`` only sets the number of buckets.
    rows = keys.size if buckets == 1 else (buckets - 1) * BUCKET_ROWS + 1
    assert build_index(files, "k", tmp_path / "index", rows=rows) == keys.size
    index = ObjectIndex(tmp_path / "index")
    assert len(index._entries) == buckets
    if held:
        index.hold_in_memory()
    where: dict[int, set[tuple[int, int]]] = {}
    for _, npix, path in files:
        for row, k in enumerate(pq.read_table(path).column("k").to_pylist()):
            where.setdefault(k, set()).add((npix, row))
    # A few keys go through the fences one by one, many in one vectorised search.
    for asked in ([0, 3, 999_999, -5, 10**12], [0, 3, 999_999, *rng.choice(keys, 200), -5]):
        got = {(loc.npix, int(r)) for loc in index.locate(asked) for r in loc.rows}
        assert got == set().union(*(where.get(int(k), set()) for k in asked))
    # Every key, a few at a time (the windows of keys equal to, just before and just
    # after each fence, and of the bucket's last keys).
    distinct = sorted(where)
    for start in range(0, len(distinct), 7):
        asked = distinct[start : start + 7]
        got = {(loc.npix, int(r)) for loc in index.locate(asked) for r in loc.rows}
        assert got == set().union(*(where[k] for k in asked))
        # In order, unsorted and repeated keys asked for alike.
        parts, found = index.find([*reversed(asked), asked[0]])
        expected = sorted((npix - 100, row) for npix, row in got)
        assert list(zip(parts.tolist(), found.tolist(), strict=True)) == expected
    assert len(where[999_999]) == FENCE_STRIDE + 7
