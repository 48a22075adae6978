"""``dpzero catalog publish``: the pipeline's tables as dp02_dc2_catalogs in the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler, DatasetType

from dpzero.catalog import open_store
from dpzero.cli import main
from dpzero.errors import InvalidInputError
from dpzero.pipelines.publish import DP02_DATABASE, publish_catalogs
from dpzero.schema import load_schema
from dpzero.tap.engine import TapEngine

from .conftest import DEC, RA, VISITS

COLLECTION = "u/test/tables"
TRACT = 3831  # the tract of the tiny release


def _schema_table(name: str, columns: dict[str, object]) -> pa.Table:
    """Some columns of a dp02 table, in schema order and types (as the pipeline writes)."""
    spec = load_schema("dp02_dc2").table(name)
    fields = [f for f in spec.arrow_schema() if f.name in columns]
    return pa.table({f.name: pa.array(columns[f.name], f.type) for f in fields})


def _tables(rng: np.random.Generator) -> dict[str, list[tuple[dict[str, object], pa.Table]]]:
    n_obj = 40
    object_ids = (TRACT << 43) + np.arange(n_obj)
    ra = RA + rng.uniform(-0.02, 0.02, n_obj)
    dec = DEC + rng.uniform(-0.02, 0.02, n_obj)
    obj = _schema_table(
        "Object",
        {
            "objectId": object_ids,
            "coord_ra": ra,
            "coord_dec": dec,
            "detect_isPrimary": rng.uniform(size=n_obj) < 0.8,
            "tract": np.full(n_obj, TRACT),
            "patch": np.full(n_obj, 24),
            "r_psfFlux": rng.lognormal(8, 1, n_obj),
            "i_psfFlux": rng.lognormal(8, 1, n_obj),
        },
    )
    out: dict[str, list[tuple[dict[str, object], pa.Table]]] = {
        "objectTable_tract": [({"skymap": "DC2", "tract": TRACT}, obj)]
    }
    sources, forced, ccds, visits = [], [], [], []
    for visit, (band, _) in VISITS.items():
        ccd = visit * 200 + 94
        n = 15
        sources.append(
            (
                {"instrument": "LSSTCam-imSim", "visit": visit},
                _schema_table(
                    "Source",
                    {
                        "sourceId": (ccd << 20) + np.arange(n),
                        "coord_ra": ra[:n] + 1e-6,
                        "coord_dec": dec[:n],
                        "ccdVisitId": np.full(n, ccd),
                        "band": [band] * n,
                        "psfFlux": rng.lognormal(8, 1, n),
                    },
                ),
            )
        )
        forced.append((ccd, object_ids, ra, dec, band))
        ccds.append((ccd, visit, band))
        visits.append((visit, band))
    forced_rows = _schema_table(
        "ForcedSource",
        {
            "forcedSourceId": np.concatenate([(c << 24) + np.arange(n_obj) for c, *_ in forced]),
            "objectId": np.concatenate([o for _, o, *_ in forced]),
            "coord_ra": np.concatenate([r for _, _, r, *_ in forced]),
            "coord_dec": np.concatenate([d for *_, d, _ in forced]),
            "band": [b for *_, b in forced for _ in range(n_obj)],
            "ccdVisitId": np.repeat([c for c, *_ in forced], n_obj),
            "psfFlux": rng.normal(1000, 30, n_obj * len(forced)),
        },
    )
    out["sourceTable_visit"] = sources
    out["forcedSourceTable_tract"] = [({"skymap": "DC2", "tract": TRACT}, forced_rows)]
    out["visitTable"] = [
        (
            {"instrument": "LSSTCam-imSim"},
            _schema_table(
                "Visit",
                {
                    "visit": [v for v, _ in visits],
                    "band": [b for _, b in visits],
                    "ra": [RA] * len(visits),
                    "decl": [DEC] * len(visits),
                    "expTime": [30.0] * len(visits),
                },
            ),
        )
    ]
    out["ccdVisitTable"] = [
        (
            {"instrument": "LSSTCam-imSim"},
            _schema_table(
                "CcdVisit",
                {
                    "ccdVisitId": [c for c, *_ in ccds],
                    "visitId": [v for _, v, _ in ccds],
                    "band": [b for *_, b in ccds],
                    "ra": [RA] * len(ccds),
                    "decl": [DEC] * len(ccds),
                    "detector": [94] * len(ccds),
                    "zeroPoint": [31.4] * len(ccds),
                },
            ),
        )
    ]
    return out


@pytest.fixture
def tables_repo(
    tiny_repo: Path,
) -> tuple[Path, dict[str, list[tuple[dict[str, object], pa.Table]]]]:
    """The tiny repository with DP0.2 table datasets put in one run."""
    tables = _tables(np.random.default_rng(3))
    dims = {
        "objectTable_tract": ("skymap", "tract"),
        "forcedSourceTable_tract": ("skymap", "tract"),
        "sourceTable_visit": ("instrument", "visit"),
        "visitTable": ("instrument",),
        "ccdVisitTable": ("instrument",),
    }
    with Butler.from_config(str(tiny_repo), writeable=True, run=COLLECTION) as butler:
        for name, items in tables.items():
            butler.registry.registerDatasetType(
                DatasetType(name, dims[name], "ArrowTable", universe=butler.dimensions)
            )
            for data_id, table in items:
                butler.put(table, name, dataId=data_id)
    return tiny_repo, tables


def _sorted(table: pa.Table, key: str) -> pa.Table:
    return table.sort_by(key)


def test_publish_matches_butler_row_for_row_next_to_other_databases(
    tables_repo: tuple[Path, dict[str, list[tuple[dict[str, object], pa.Table]]]],
    tmp_path: Path,
) -> None:
    repo, tables = tables_repo
    store = tmp_path / "store"
    # Something published already, under another name: it must stay.
    first = publish_catalogs(str(repo), COLLECTION, store, database="dp02_previous")
    assert first.ingest.database == "dp02_previous"
    engine = TapEngine.open(store)
    before = engine.tap_schema().tables["tables"].to_pylist()
    assert {r["schema_name"] for r in before} >= {"dp02_previous"}

    # A query in flight when the new database is published finishes with all its rows.
    in_flight = engine.execute(
        "SELECT forcedSourceId FROM dp02_previous.ForcedSource", {}, maxrec=10_000
    )
    report = publish_catalogs(str(repo), COLLECTION, store)
    assert sum(b.num_rows for b in in_flight.batches()) == 80 and in_flight.error is None
    assert report.datasets == {
        "Object": 1,
        "Source": 2,
        "ForcedSource": 1,
        "Visit": 1,
        "CcdVisit": 1,
    }
    catalogs = open_store(store)
    assert set(catalogs.databases()) >= {DP02_DATABASE, "dp02_previous"}
    keys = {
        ("Object", "objectTable_tract"): "objectId",
        ("Source", "sourceTable_visit"): "sourceId",
        ("ForcedSource", "forcedSourceTable_tract"): "forcedSourceId",
        ("Visit", "visitTable"): "visit",
        ("CcdVisit", "ccdVisitTable"): "ccdVisitId",
    }
    for (table, dataset), key in keys.items():
        expected = _sorted(pa.concat_tables([t for _, t in tables[dataset]]), key)
        columns = ", ".join(expected.column_names)
        got = catalogs.query_adql(f"SELECT {columns} FROM {DP02_DATABASE}.{table}")
        got = _sorted(got, key)
        assert got.num_rows == expected.num_rows
        for name in expected.column_names:
            assert got.column(name).to_pylist() == expected.column(name).to_pylist(), (table, name)
    # A column the pipeline does not measure is there, and null.
    nulls = catalogs.query_adql(
        f"SELECT COUNT(*) AS n FROM {DP02_DATABASE}.Object WHERE g_psfFlux IS NULL"
    )
    assert nulls.column("n").to_pylist() == [40]
    # A cone on Object uses the positions, as for DP0.1's tables.
    cone = catalogs.query_adql(
        f"SELECT objectId FROM {DP02_DATABASE}.Object "
        f"WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', {RA}, {DEC}, 0.01)) = 1"
    )
    obj = tables["objectTable_tract"][0][1]
    ra, dec = (
        np.radians(obj.column("coord_ra").to_numpy()),
        np.radians(obj.column("coord_dec").to_numpy()),
    )
    ra0, dec0 = np.radians(RA), np.radians(DEC)
    cos_d = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0)
    inside = np.degrees(np.arccos(np.clip(cos_d, -1, 1))) <= 0.01
    assert sorted(cone.column("objectId").to_pylist()) == sorted(
        obj.column("objectId").to_numpy()[inside].tolist()
    )
    # The running TAP engine sees the new database on its next query.
    after = engine.tap_schema().tables["tables"].to_pylist()
    names = {(r["schema_name"], r["table_name"]) for r in after}
    for table in ("Object", "Source", "ForcedSource", "Visit", "CcdVisit"):
        assert (DP02_DATABASE, f"{DP02_DATABASE}.{table}") in names
    assert {r["schema_name"] for r in after} >= {"dp02_previous", DP02_DATABASE}


def test_publish_refuses_bad_input_and_changes_nothing(
    tables_repo: tuple[Path, dict[str, list[tuple[dict[str, object], pa.Table]]]],
    tmp_path: Path,
) -> None:
    repo, _ = tables_repo
    out = tmp_path / "out"
    store = out / "store"
    with pytest.raises(InvalidInputError, match="no collection"):
        publish_catalogs(str(repo), "u/test/nothing", store)
    with pytest.raises(InvalidInputError, match="none of the table datasets"):
        publish_catalogs(str(repo), "2.2i/raw/all", store)
    with pytest.raises(InvalidInputError, match="not a Butler repository"):
        publish_catalogs(str(tmp_path), COLLECTION, store)
    assert not store.exists()
    assert list(out.iterdir()) == []  # no staging folder left behind
    # A table with a column the schema does not know is refused whole.
    with Butler.from_config(str(repo), writeable=True, run="u/test/bad") as butler:
        bad = pa.table({"visit": pa.array([1], pa.int64()), "ra": [1.0], "decl": [2.0], "x": [1]})
        butler.put(bad, "visitTable", dataId={"instrument": "LSSTCam-imSim"})
    result = CliRunner().invoke(
        main,
        ["catalog", "publish", str(repo), "--collection", "u/test/bad", "--store", str(store)],
    )
    assert result.exit_code == 2, result.output
    assert "columns not in the schema's Visit: x" in result.output
    assert not store.exists()


def _assert_same_rows(got: pa.Table, expected: pa.Table, where: str) -> None:
    """Column by column equality; NaN equals NaN, nulls equal nulls."""
    assert got.num_rows == expected.num_rows, where
    for name in expected.column_names:
        want, have = expected.column(name), got.column(name)
        if pa.types.is_floating(want.type):
            np.testing.assert_array_equal(
                have.to_numpy(zero_copy_only=False),
                want.to_numpy(zero_copy_only=False),
                err_msg=f"{where}.{name}",
            )
        else:
            assert have.to_pylist() == want.to_pylist(), f"{where}.{name}"


@pytest.mark.slow
def test_pipeline_tables_published_and_queryable_row_for_row(
    tiny_repo: Path, tmp_path: Path
) -> None:
    from dpzero.pipelines import run_pipeline
    from dpzero.pipelines.publish import TABLE_DATASETS

    repo = str(tiny_repo)
    report = run_pipeline(repo, "u/test/e2e", jobs=2)
    assert report.failed == 0 and report.succeeded == report.total
    store = tmp_path / "store"
    published = publish_catalogs(repo, "u/test/e2e", store)
    assert set(published.datasets) == set(TABLE_DATASETS)
    catalogs = open_store(store)
    spec = load_schema("dp02_dc2")
    with Butler.from_config(repo, collections="u/test/e2e") as butler:
        known = {t.name for t in butler.registry.queryDatasetTypes()}
        for table, names in TABLE_DATASETS.items():
            refs = [r for n in names if n in known for r in butler.query_datasets(n)]
            expected = pa.concat_tables([butler.get(r, storageClass="ArrowTable") for r in refs])
            assert expected.num_rows > 0, table
            key = spec.table(table).primary_key[0]
            columns = ", ".join(expected.column_names)
            got = catalogs.query_adql(f"SELECT {columns} FROM {DP02_DATABASE}.{table}")
            _assert_same_rows(got.sort_by(key), expected.sort_by(key), table)
