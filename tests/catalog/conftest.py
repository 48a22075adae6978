"""Tiny input catalogs made from the schema's Arrow schemas, and a store built from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dpzero.catalog import IngestOptions, ingest_catalogs
from dpzero.schema import load_schema

# Small partitions so that a few thousand rows make several of them.
TINY_OPTIONS = IngestOptions(partition_rows=600, highest_order=7, row_group_rows=50, threads=1)


def _random_column(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    t = field.type
    if pa.types.is_floating(t):
        values = rng.normal(20.0, 3.0, n).astype(t.to_pandas_dtype())
        values[rng.random(n) < 0.05] = np.nan
        return pa.array(values, type=t)
    if pa.types.is_integer(t):
        return pa.array(rng.integers(0, 100, n).astype(t.to_pandas_dtype()), type=t)
    if pa.types.is_boolean(t):
        return pa.array(rng.random(n) < 0.5)
    if pa.types.is_string(t):
        return pa.array([f"{i % 7},{i % 5}" for i in range(n)], type=t)
    if pa.types.is_timestamp(t):
        return pa.array(np.zeros(n, dtype="datetime64[us]"), type=t)
    raise AssertionError(f"no generator for {t}")


def sky_positions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Most rows in a 2°×2° DC2-like field; some straddle RA 0/360; a few near the pole."""
    n_wrap = n // 10
    n_pole = n // 20
    n_pair = n // 8
    n_main = n - n_wrap - n_pole - n_pair
    ra = np.concatenate(
        [
            rng.uniform(55.0, 57.0, n_main),
            np.mod(rng.uniform(-0.5, 0.5, n_wrap), 360.0),
            rng.uniform(0.0, 360.0, n_pole),
        ]
    )
    dec = np.concatenate(
        [
            rng.uniform(-37.0, -35.0, n_main),
            rng.uniform(-30.5, -29.5, n_wrap),
            rng.uniform(-90.0, -89.5, n_pole),
        ]
    )
    # Close companions (1-8 arcsec) of main-field rows: pairs for margin tests.
    host = rng.integers(0, n_main, n_pair)
    sep = rng.uniform(1.0, 8.0, n_pair) / 3600.0
    angle = rng.uniform(0.0, 2 * np.pi, n_pair)
    cra = ra[host] + sep * np.sin(angle) / np.cos(np.radians(dec[host]))
    cdec = dec[host] + sep * np.cos(angle)
    return np.concatenate([ra, cra]), np.concatenate([dec, cdec])


def make_table(
    table: str, n: int, rng: np.random.Generator, ids: np.ndarray, ra: np.ndarray, dec: np.ndarray
) -> pa.Table:
    """A table of ``n`` rows with exactly the schema's Arrow schema."""
    schema = load_schema("dp01_dc2").table(table).arrow_schema()
    cols = {f.name: _random_column(f, n, rng) for f in schema}
    if table in ("object", "truth_match"):
        cols["ra"], cols["dec"] = pa.array(ra), pa.array(dec)
    else:
        cols["coord_ra"], cols["coord_dec"] = pa.array(ra), pa.array(dec)
    if table == "truth_match":
        cols["match_objectId"] = pa.array(ids, type=pa.int64())
    else:
        cols["objectId"] = pa.array(ids, type=pa.int64())
    return pa.table([cols[f.name] for f in schema], schema=schema)


def write_inputs(
    root: Path,
    n: int = 2000,
    seed: int = 7,
    tables: tuple[str, ...] = ("object", "position", "truth_match"),
) -> dict[str, pa.Table]:
    """Write ``root/manifest.json`` and two files per table; return the full tables."""
    rng = np.random.default_rng(seed)
    ra, dec = sky_positions(n, rng)
    ids = (np.int64(3828) << 42) + rng.permutation(n * 10)[:n].astype(np.int64)
    full: dict[str, pa.Table] = {}
    manifest: dict = {"schema": "dp01_dc2", "tables": {}}
    for table in tables:
        if table == "truth_match":
            # Every object matched once, plus unmatched truth rows (match_objectId -1).
            extra = n // 4
            t_ids = np.concatenate([ids, np.full(extra, -1, dtype=np.int64)])
            t_ra = np.concatenate([ra, rng.uniform(55.0, 57.0, extra)])
            t_dec = np.concatenate([dec, rng.uniform(-37.0, -35.0, extra)])
            tab = make_table(table, n + extra, rng, t_ids, t_ra, t_dec)
        else:
            tab = make_table(table, n, rng, ids, ra, dec)
        full[table] = tab
        (root / table).mkdir(parents=True, exist_ok=True)
        half = tab.num_rows // 2
        files = [f"{table}/{table}_part0.parquet", f"{table}/{table}_part1.parquet"]
        pq.write_table(tab.slice(0, half), root / files[0])
        pq.write_table(tab.slice(half), root / files[1])
        manifest["tables"][table] = {"files": files, "rows": tab.num_rows}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return full


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pa.Table]]:
    root = tmp_path_factory.mktemp("inputs")
    return root, write_inputs(root, tables=("object", "truth_match"))


@pytest.fixture(scope="session")
def tiny_store(
    tmp_path_factory: pytest.TempPathFactory, tiny_inputs: tuple[Path, dict[str, pa.Table]]
) -> Path:
    store = tmp_path_factory.mktemp("store") / "store"
    ingest_catalogs(tiny_inputs[0], store, options=TINY_OPTIONS)
    return store
