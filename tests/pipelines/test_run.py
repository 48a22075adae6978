"""``dpzero pipeline run`` end to end on the tiny repository, and resuming a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from lsst.daf.butler import Butler

from dpzero.cli import main
from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.pipelines import pipeline_path, run_pipeline

from .conftest import DETECTORS, NJY_PER_E, VISITS, TinyRelease


def test_pipeline_yaml_has_rubin_shape() -> None:
    from lsst.pipe.base import Pipeline

    pipeline = Pipeline.from_uri(str(pipeline_path()))
    step3 = {
        "makeWarp", "assembleCoadd", "detection", "mergeDetections", "deblend", "measure",
        "mergeMeasurements", "forcedPhotCoadd", "writeObjectTable",
    }  # fmt: skip
    step2 = {"writeSourceTable", "makeVisitTable"}
    step4, step5 = {"forcedPhotCcd"}, {"writeForcedSourceTable"}
    assert set(pipeline.task_labels) == {"isr", "calibrate", *step2, *step3, *step4, *step5}
    graph = pipeline.to_graph()
    assert set(graph.task_subsets["step1"]) == {"isr", "calibrate"}
    assert set(graph.task_subsets["step2"]) == step2
    assert set(graph.task_subsets["step3"]) == step3
    assert set(graph.task_subsets["step4"]) == step4
    assert set(graph.task_subsets["step5"]) == step5


def test_run_then_resume_only_missing(tiny_repo: Path) -> None:
    report = run_pipeline(
        str(tiny_repo), "u/test/drp", subset="step1", jobs=1, where="detector = 94"
    )
    n = len(VISITS)
    assert (report.succeeded, report.failed, report.total) == (2 * n, 0, 2 * n)
    with Butler.from_config(str(tiny_repo), collections="u/test/drp", writeable=True) as butler:
        calexps = butler.query_datasets("calexp")
        assert len(calexps) == n
        for ref in calexps:
            calexp = butler.get(ref)
            band = ref.dataId["band"]
            assert calexp.photo_calib.njy_per_count == pytest.approx(NJY_PER_E[band], rel=0.02)
            src = butler.get("src", dataId=ref.dataId)
            assert len(src) > 5 and np.isfinite(src["coord_ra"]).all()
            assert butler.get("calexpBackground", dataId=ref.dataId).width == calexp.image.shape[1]
        assert len(butler.query_datasets("postISRCCD")) == n
        # One calibrate quantum lost its outputs (as if its job died before finishing).
        victim = calexps[0].dataId
        lost = [
            ref
            for name in ("calexp", "src", "calexpBackground", "calibrate_metadata", "calibrate_log")
            for ref in butler.query_datasets(name, data_id=victim)
        ]
        butler.pruneDatasets(lost, disassociate=True, unstore=True, purge=True)
    again = run_pipeline(
        str(tiny_repo), "u/test/drp", subset="step1", resume=True, where="detector = 94"
    )
    assert (again.succeeded, again.failed, again.total) == (1, 0, 1)
    with Butler.from_config(str(tiny_repo), collections="u/test/drp") as butler:
        assert len(butler.query_datasets("calexp")) == n
        runs = butler.collections.query("u/test/drp/*")
        assert len(runs) == 1  # extended, not a second run
    with pytest.raises(OutputExistsError, match="--resume"):
        run_pipeline(str(tiny_repo), "u/test/drp")


def test_a_detector_without_reference_stars_is_left_out_and_reported(tiny_repo: Path) -> None:
    # A reference catalog whose stars all lie 1° north: none falls on the detector.
    with Butler.from_config(str(tiny_repo), writeable=True) as butler:
        butler.collections.register("refcats/far")
        for ref in butler.query_datasets("cal_ref_cat", collections="refcats/DP0.1"):
            table = butler.get(ref)
            table["coord_dec"] = table["coord_dec"] + np.radians(1.0)
            butler.put(table, ref.datasetType, dataId=ref.dataId, run="refcats/far")
    report = run_pipeline(
        str(tiny_repo),
        "u/test/noref",
        subset="isr,calibrate",
        where="detector = 94 AND exposure = 1001",
        inputs=("2.2i/raw/all", "2.2i/calib", "refcats/far", "skymaps"),
    )
    # Not a failure (it would block the visit's coadds), but said.
    assert (report.succeeded, report.failed, report.total) == (2, 0, 2)
    (line,) = report.unprocessable
    assert line.startswith("calibrate {") and "'detector': 94" in line
    assert "none of the" in line and "reference stars" in line
    assert "left their data out" in report.summary()
    with Butler.from_config(str(tiny_repo), collections="u/test/noref") as butler:
        assert not butler.query_datasets("calexp", explain=False)


PIPELINE_OUTPUTS: tuple[str, ...] = (
    "postISRCCD", "calexp", "calexpBackground", "src", "sourceTable_visit", "visitTable",
    "ccdVisitTable", "deepCoadd_directWarp", "deepCoadd", "deepCoadd_nImage", "deepCoadd_det",
    "deepCoadd_mergeDet", "deepCoadd_deblendedCatalog", "deepCoadd_deblendedFootprints",
    "deepCoadd_meas", "deepCoadd_ref", "deepCoadd_forced_src", "objectTable_tract",
    "forced_src", "forcedSourceTable_tract",
)  # fmt: skip
"""The datasets the DRP pipeline's tasks write (besides their metadata and logs)."""


def test_whole_pipeline_on_one_detector_then_published(
    tiny_repo: Path, tiny_release: TinyRelease, tmp_path: Path
) -> None:
    """Steps 1–5 on one detector of both visits (i and r) and the one patch holding its
    centre, published, read back by ADQL.

    The CI-sized end-to-end run; the slow test below runs every detector and patch.
    """
    from astropy.coordinates import SkyCoord

    from dpzero.catalog import open_store
    from dpzero.pipelines.publish import DP02_DATABASE, TABLE_DATASETS, publish_catalogs
    from dpzero.schema import load_schema
    from dpzero.sim.skymap import DC2_SKYMAP

    from .test_calibrate import on_detector
    from .test_publish import _assert_same_rows

    repo = str(tiny_repo)
    tract, patch = 3831, 10  # detector 94's centre, in both visits
    where = f"detector = 94 AND skymap = 'DC2' AND tract = {tract} AND patch = {patch}"
    report = run_pipeline(repo, "u/test/ci", jobs=1, where=where)
    assert report.failed == 0 and report.remaining == 0
    assert report.succeeded == report.total
    with Butler.from_config(repo, collections="u/test/ci") as butler:
        for name in PIPELINE_OUTPUTS:
            assert butler.query_datasets(name, explain=False), f"no {name}"
        assert {r.dataId["band"] for r in butler.query_datasets("deepCoadd")} == {"i", "r"}
        objects = pa.concat_tables(
            [butler.get(r) for r in butler.query_datasets("objectTable_tract")]
        )
    # The detector's bright, unsaturated true stars, each found once with its flux.
    primary = objects.filter(objects.column("detect_isPrimary"))
    # On the detector in both visits, away from its edges; not the saturated one.
    both = set.intersection(*(set(on_detector(tiny_release, v, 94).tolist()) for v in VISITS))
    stars = [
        i
        for i in sorted(both)
        if i != 44 and tiny_release.stars[i].electrons["i"] * NJY_PER_E["i"] > 1e4
    ]
    where_is = DC2_SKYMAP.locate(
        [tiny_release.stars[i].ra for i in stars], [tiny_release.stars[i].dec for i in stars]
    )
    in_patch = (where_is.tract == tract) & (where_is.patch_x + 7 * where_is.patch_y == patch)
    stars = sorted({i for i, inside in zip(stars, in_patch, strict=True) if inside})
    assert len(stars) >= 5
    truth = SkyCoord(
        [tiny_release.stars[i].ra for i in stars],
        [tiny_release.stars[i].dec for i in stars],
        unit="deg",
    )
    found = SkyCoord(
        primary.column("coord_ra").to_numpy(), primary.column("coord_dec").to_numpy(), unit="deg"
    )
    idx, sep, _ = truth.match_to_catalog_sky(found)
    assert (sep.arcsec < 0.5).all() and np.median(sep.arcsec) < 0.02
    assert len(set(idx)) == len(stars)
    flux = primary.column("i_psfFlux").to_numpy(zero_copy_only=False)[idx]
    clean = ~primary.column("i_calibFlux_flag").to_numpy(zero_copy_only=False)[idx]
    expected = np.array([tiny_release.stars[i].electrons["i"] * NJY_PER_E["i"] for i in stars])
    assert clean.sum() >= 4
    assert np.median(np.abs(flux[clean] / expected[clean] - 1)) < 0.02

    # Published, the tables read back through ADQL equal the Butler's, row for row.
    store = tmp_path / "store"
    publish_catalogs(repo, "u/test/ci", store)
    catalogs = open_store(store)
    spec = load_schema("dp02_dc2")
    with Butler.from_config(repo, collections="u/test/ci") as butler:
        known = {t.name for t in butler.registry.queryDatasetTypes()}
        for table, names in TABLE_DATASETS.items():
            refs = [r for n in names if n in known for r in butler.query_datasets(n)]
            want = pa.concat_tables([butler.get(r, storageClass="ArrowTable") for r in refs])
            key = spec.table(table).primary_key[0]
            columns = ", ".join(want.column_names)
            got = catalogs.query_adql(f"SELECT {columns} FROM {DP02_DATABASE}.{table}")
            assert got.num_rows == want.num_rows > 0, table
            _assert_same_rows(got.sort_by(key), want.sort_by(key), table)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2 min on a quiet machine; more on a loaded one
def test_whole_pipeline_two_processes_and_nothing_left_to_do(
    tiny_repo: Path, tiny_release: TinyRelease, tmp_path: Path
) -> None:
    report = run_pipeline(str(tiny_repo), "u/test/j2", jobs=2)
    assert report.failed == 0 and report.succeeded == report.total
    with Butler.from_config(str(tiny_repo), collections="u/test/j2") as butler:
        assert len(butler.query_datasets("calexp")) == len(VISITS) * len(DETECTORS)
        coadds = butler.query_datasets("deepCoadd")
        assert {ref.dataId["band"] for ref in coadds} == {"i", "r"}
        warps = butler.query_datasets("deepCoadd_directWarp")
        assert len(warps) >= len(coadds)
        coadd = butler.get(coadds[0])
        assert np.isfinite(coadd.image).all() and coadd.psf is not None
        assert len(butler.query_datasets("deepCoadd_meas")) >= 1
        _check_dp02_tables(butler, tiny_release)
    nothing = run_pipeline(str(tiny_repo), "u/test/j2", resume=True)
    assert (nothing.succeeded, nothing.total) == (0, 0)
    _check_validation(tiny_repo, "u/test/j2", tiny_release, tmp_path)


def _truth(release: TinyRelease) -> pa.Table:
    return pa.table(
        {
            "ra": [s.ra for s in release.stars],
            "dec": [s.dec for s in release.stars],
            "truth_type": np.full(len(release.stars), 2, np.int32),
            **{
                f"flux_{band}": [s.electrons[band] * njy for s in release.stars]
                for band, njy in NJY_PER_E.items()
            },
        }
    )


def _check_dp02_tables(butler: Butler, release: TinyRelease) -> None:
    """Every DP0.2 table: Felis columns and types, ids, and values against the stars."""
    from astropy.coordinates import SkyCoord

    from dpzero.pipelines.tasks.tables import ccd_visit_id

    from .test_deblend import _check_against_schema

    objects = pa.concat_tables([butler.get(r) for r in butler.query_datasets("objectTable_tract")])
    _check_against_schema(objects, "Object")
    ids = objects.column("objectId").to_numpy()
    assert len(np.unique(ids)) == len(ids)
    patch = objects.column("patch").to_numpy()
    tract = objects.column("tract").to_numpy()
    assert (ids >> 43 == tract * 49 + patch).all()
    primary = objects.filter(objects.column("detect_isPrimary"))
    stars = SkyCoord([s.ra for s in release.stars], [s.dec for s in release.stars], unit="deg")
    found = SkyCoord(
        primary.column("coord_ra").to_numpy(), primary.column("coord_dec").to_numpy(), unit="deg"
    )
    idx, sep, _ = found.match_to_catalog_sky(stars)
    # Every primary object is a star (there is nothing else in the scene), once.
    assert (sep.arcsec < 0.5).mean() > 0.95
    close = sep.arcsec < 0.5
    assert len(np.unique(idx[close])) == close.sum()
    flux = primary.column("i_psfFlux").to_numpy(zero_copy_only=False)
    err = primary.column("i_psfFluxErr").to_numpy(zero_copy_only=False)
    truth = np.array([release.stars[i].electrons["i"] * NJY_PER_E["i"] for i in idx])
    clean = ~primary.column("i_calibFlux_flag").to_numpy(zero_copy_only=False)
    bright = close & clean & (flux / err > 50) & (idx != 44)
    assert bright.sum() >= 10
    assert float(np.sqrt(np.mean(sep.arcsec[bright] ** 2))) < 0.03
    assert abs(float(np.median(flux[bright] / truth[bright])) - 1) < 0.02

    sources = [butler.get(r) for r in butler.query_datasets("sourceTable_visit")]
    assert len(sources) == len(VISITS)
    for table in sources:
        _check_against_schema(table, "Source")
        ccd = ccd_visit_id(table.column("visit").to_numpy(), table.column("detector").to_numpy())
        assert (table.column("ccdVisitId").to_numpy() == ccd).all()
        assert (table.column("sourceId").to_numpy() >> 20 == ccd).all()
    forced = pa.concat_tables(
        [butler.get(r) for r in butler.query_datasets("forcedSourceTable_tract")]
    )
    _check_against_schema(forced, "ForcedSource")
    assert set(forced.column("objectId").to_numpy()) <= set(ids)
    assert set(forced.column("band").to_pylist()) == {"i", "r"}
    # Forced PSF fluxes of the bright stars on each calexp agree with the truth.
    f_ra, f_dec = forced.column("coord_ra").to_numpy(), forced.column("coord_dec").to_numpy()
    f_idx, f_sep, _ = SkyCoord(f_ra, f_dec, unit="deg").match_to_catalog_sky(stars)
    f_flux = forced.column("psfFlux").to_numpy(zero_copy_only=False)
    f_err = forced.column("psfFluxErr").to_numpy(zero_copy_only=False)
    bands = forced.column("band").to_pylist()
    f_truth = np.array(
        [release.stars[i].electrons[b] * NJY_PER_E[b] for i, b in zip(f_idx, bands, strict=True)]
    )
    good = (f_sep.arcsec < 0.3) & (f_flux / f_err > 50) & (f_idx != 44)
    assert good.sum() >= 10
    assert abs(float(np.median(f_flux[good] / f_truth[good])) - 1) < 0.02

    (visits,) = [butler.get(r) for r in butler.query_datasets("visitTable")]
    _check_against_schema(visits, "Visit")
    assert visits.column("visit").to_pylist() == sorted(VISITS)
    assert visits.column("band").to_pylist() == [VISITS[v][0] for v in sorted(VISITS)]
    (ccds,) = [butler.get(r) for r in butler.query_datasets("ccdVisitTable")]
    _check_against_schema(ccds, "CcdVisit")
    assert ccds.num_rows == len(VISITS) * len(DETECTORS)
    zero_points = dict(
        zip(ccds.column("band").to_pylist(), ccds.column("zeroPoint").to_pylist(), strict=True)
    )
    for band, njy in NJY_PER_E.items():
        assert zero_points[band] == pytest.approx(31.4 - 2.5 * np.log10(njy), abs=0.03)


def _check_validation(repo: Path, collection: str, release: TinyRelease, tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.parquet"
    pq.write_table(_truth(release), truth_file)
    out = tmp_path / "validation"
    result = CliRunner().invoke(
        main,
        [
            "pipeline", "validate", "--repo", str(repo), "--collection", collection,
            "--truth", str(truth_file), "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "astrometry rms" in result.output
    report = json.loads((out / "validation.json").read_text())
    assert report["astrometry_rms_mas"] < 20
    bright = [b for b in report["bands"] if b["bright_stars"] >= 5]
    assert {b["band"] for b in bright} == {"i", "r"}
    for band in bright:
        assert abs(band["bright_offset_percent"]) < 2
    for name in ("astrometry", "photometry", "completeness", "extendedness"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a Butler repository"):
        run_pipeline(str(tmp_path), "u/test/x")
    with pytest.raises(InvalidInputError, match="jobs"):
        run_pipeline(str(tmp_path), "u/test/x", jobs=0)
    result = CliRunner().invoke(
        main, ["pipeline", "run", "--repo", str(tmp_path), "--output", "u/test/x"]
    )
    assert result.exit_code == 2
    assert "not a Butler repository" in result.output
