"""``dpzero catalog ingest`` and ``dpzero catalog query`` as a user runs them."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dpzero.cli import main

from .conftest import write_inputs

CONE = (
    "SELECT objectId, ra, dec FROM dp01_dc2_catalogs.object "
    "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.0, -36.0, 0.2)) = 1 "
    "ORDER BY objectId"
)


def _want(tiny_inputs) -> list[int]:
    obj = tiny_inputs[1]["object"]
    ra, dec = np.radians(np.asarray(obj.column("ra"))), np.radians(np.asarray(obj.column("dec")))
    d0, a0 = np.radians(-36.0), np.radians(56.0)
    h = np.sin((dec - d0) / 2) ** 2 + np.cos(dec) * np.cos(d0) * np.sin((ra - a0) / 2) ** 2
    inside = h <= np.sin(np.radians(0.2) / 2) ** 2
    return sorted(np.asarray(obj.column("objectId"))[inside].tolist())


def test_query_formats(tiny_store, tiny_inputs, tmp_path):
    runner = CliRunner()
    want = _want(tiny_inputs)
    text = runner.invoke(
        main, ["catalog", "query", "--store", str(tiny_store), "--format", "text", CONE]
    )
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].split("|")[0].strip() == "objectId"
    assert lines[-1] == f"({len(want)} rows)"
    assert [int(x.split("|")[0]) for x in lines[2:-1]] == want

    csv = runner.invoke(
        main, ["catalog", "query", "--store", str(tiny_store), "--format", "csv", CONE]
    )
    assert csv.exit_code == 0
    rows = csv.output.strip().splitlines()
    assert rows[0].replace('"', "") == "objectId,ra,dec"
    assert [int(r.split(",")[0]) for r in rows[1:]] == want

    out = tmp_path / "r.parquet"
    pqr = runner.invoke(
        main,
        [
            "catalog",
            "query",
            "--store",
            str(tiny_store),
            "--format",
            "parquet",
            "--output",
            str(out),
            CONE,
        ],
    )
    assert pqr.exit_code == 0
    assert pq.read_table(out).column("objectId").to_pylist() == want

    vot = runner.invoke(
        main, ["catalog", "query", "--store", str(tiny_store), "--format", "votable", CONE]
    )
    assert vot.exit_code == 0
    from astropy.io.votable import parse_single_table

    table = parse_single_table(io.BytesIO(vot.stdout_bytes)).to_table()
    assert table["objectId"].tolist() == want
    assert str(table["ra"].unit) == "deg"


def test_query_errors_are_one_line(tiny_store):
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "catalog",
            "query",
            "--store",
            str(tiny_store),
            "SELECT nope FROM dp01_dc2_catalogs.object",
        ],
    )
    assert res.exit_code == 2
    assert "nope" in res.output
    res = runner.invoke(main, ["catalog", "query", "--store", "/nonexistent/store", "SELECT 1"])
    assert res.exit_code == 2
    assert "not a dpzero catalog store" in res.output


def test_ingest_of_broken_input_fails_cleanly(tmp_path):
    src = tmp_path / "in"
    write_inputs(src, n=200, tables=("object",))
    t = pq.read_table(src / "object/object_part0.parquet").drop_columns(["good"])
    pq.write_table(t, src / "object/object_part0.parquet")
    res = CliRunner().invoke(
        main, ["catalog", "ingest", str(src), "--store", str(tmp_path / "s"), "--quiet"]
    )
    assert res.exit_code == 2
    assert "object/object_part0.parquet, column 'good': missing column" in res.output
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_simulated_tiny_survey_end_to_end(tmp_path):
    runner = CliRunner()
    sim = runner.invoke(
        main,
        [
            "sim",
            "catalogs",
            "--size",
            "tiny",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "c"),
            "--quiet",
        ],
    )
    assert sim.exit_code == 0, sim.output
    res = runner.invoke(
        main, ["catalog", "ingest", str(tmp_path / "c"), "--store", str(tmp_path / "s"), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert "dp01_dc2_catalogs.forced_photometry" in res.output
    n = runner.invoke(
        main,
        [
            "catalog",
            "query",
            "--store",
            str(tmp_path / "s"),
            "--format",
            "csv",
            "SELECT COUNT(*) AS n FROM dp01_dc2_catalogs.object",
        ],
    )
    rows = pq.read_table(tmp_path / "c" / "object").num_rows
    assert n.output.strip().splitlines()[1] == str(rows)


@pytest.mark.slow
def test_ingest_tuning_options_shape_the_store_and_lsdb_reads_it(tmp_path):
    import lsdb

    from dpzero.catalog import read_manifest

    inputs = tmp_path / "in"
    full = write_inputs(inputs, n=1200, tables=("object",))["object"]

    def ingest(name: str, *options: str) -> list:
        store = tmp_path / name
        args = ["catalog", "ingest", str(inputs), "--store", str(store), "--quiet", *options]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        (entry,) = read_manifest(store).tables.values()
        return sorted(entry.catalog_dir(store).glob("dataset/Norder=*/Dir=*/Npix=*.parquet"))

    coarse = ingest("coarse", "--partition-rows", "5000", "--highest-order", "3")
    fine = ingest(
        "fine", "--partition-rows", "400", "--highest-order", "6", "--compression-level", "19"
    )
    orders = {int(p.parent.parent.name.split("=")[1]) for p in fine}
    assert max(orders) == 6 and len(fine) > len(coarse) >= 1
    assert {int(p.parent.parent.name.split("=")[1]) for p in coarse} <= {0, 1, 2, 3}
    # --compression-level writes zstd at that level: the same rows in fewer bytes than
    # the default lz4.
    default = ingest("default", "--partition-rows", "400", "--highest-order", "6")
    assert [p.name for p in default] == [p.name for p in fine]
    assert sum(p.stat().st_size for p in fine) < sum(p.stat().st_size for p in default)
    # The codec is the floats'; 64-bit integers (ids, the HEALPix index) are delta-packed
    # without one.
    for files, codec in ((fine, "ZSTD"), (default, "LZ4")):
        group = pq.read_metadata(files[0]).row_group(0)
        chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        assert chunks["ra"].compression == codec
        assert "BYTE_STREAM_SPLIT" in chunks["ra"].encodings
        for name in ("objectId", "_healpix_29"):
            assert chunks[name].compression == "UNCOMPRESSED"
            assert chunks[name].encodings == ("RLE", "DELTA_BINARY_PACKED")
    catalog = lsdb.read_hats(tmp_path / "fine" / "dp01_dc2_catalogs" / "object")
    frame = catalog.compute()
    assert sorted(frame["objectId"].tolist()) == sorted(full.column("objectId").to_pylist())
    assert catalog.margin is not None and len(catalog.margin.compute()) > 0
    bad = CliRunner().invoke(
        main, ["catalog", "ingest", str(inputs), "--store", str(tmp_path / "x"),
               "--compression-level", "30"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "30 is not in the range 1<=x<=22" in bad.output
    assert not (tmp_path / "x").exists()
