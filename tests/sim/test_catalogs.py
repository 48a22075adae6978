"""The simulated DP0.1 catalogs: schema, ids, determinism and what an astronomer checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dpzero.cli import main
from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.schema import load_schema
from dpzero.sim import CATALOG_TABLES, CatalogManifest, simulate_catalogs, survey_region
from dpzero.sim.skymap import DC2_SKYMAP
from dpzero.sim.survey import BAND_FACTS


def read(folder: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(folder / table, columns=columns)


def test_every_table_has_exactly_the_felis_schema(tiny_survey: Path) -> None:
    schema = load_schema("dp01_dc2")
    for name in CATALOG_TABLES:
        expected = schema.table(name).arrow_schema()
        for path in sorted((tiny_survey / name).glob("*.parquet")):
            actual = pq.read_schema(path)
            assert actual.names == expected.names, path
            assert actual.types == expected.types, path
            assert actual.field("objectId" if name != "truth_match" else "id").metadata


def test_manifest_counts_the_rows_on_disk(
    tiny_survey: Path, tiny_manifest: CatalogManifest
) -> None:
    assert tiny_manifest.size == "tiny"
    assert tiny_manifest.database == "dp01_dc2_catalogs"
    for name in CATALOG_TABLES:
        entry = tiny_manifest.tables[name]
        rows = sum(pq.read_metadata(tiny_survey / f).num_rows for f in entry.files)
        assert rows == entry.rows > 0
    # tiny promises ≈ 10 k objects
    assert 6_000 < tiny_manifest.tables["object"].rows < 14_000


def test_positions_inside_the_survey_region(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["ra", "dec"])
    region = survey_region("tiny")
    inside = region.contains(obj["ra"].to_numpy(), obj["dec"].to_numpy())
    assert inside.mean() > 0.999  # measured positions may scatter by milliarcseconds


def test_ids_unique_and_joinable(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["objectId", "parentObjectId"])
    ids = obj["objectId"].to_numpy()
    assert np.unique(ids).size == ids.size
    position = read(tiny_survey, "position", ["objectId", "detect_isPrimary", "deblend_nChild"])
    pos_ids = position["objectId"].to_numpy()
    assert np.unique(pos_ids).size == pos_ids.size
    for table in ("reference", "forced_photometry"):
        other = read(tiny_survey, table, ["objectId"])["objectId"].to_numpy()
        np.testing.assert_array_equal(np.sort(other), np.sort(pos_ids))
    primary = pos_ids[position["detect_isPrimary"].to_numpy()]
    np.testing.assert_array_equal(np.sort(primary), np.sort(ids))
    # Every deblended child names a parent that exists (as a non-primary row) with children.
    parents = obj["parentObjectId"].to_numpy()
    children_parents = np.unique(parents[parents != 0])
    n_child = dict(zip(pos_ids, position["deblend_nChild"].to_numpy(), strict=True))
    assert all(n_child[p] >= 2 for p in children_parents)
    assert not np.isin(children_parents, ids).any()
    # DC2: 30–50 % of objects have a deblend parent
    assert 0.25 < (parents != 0).mean() < 0.55


def test_truth_match_links_every_object_once(tiny_survey: Path) -> None:
    tm = read(tiny_survey, "truth_match")
    ids = read(tiny_survey, "object", ["objectId"])["objectId"].to_numpy()
    match = tm["match_objectId"].to_numpy()
    matched = match[match != -1]
    np.testing.assert_array_equal(np.sort(matched), np.sort(ids))
    unmatched = match == -1
    assert (tm["match_sep"].to_numpy()[unmatched] == -1).all()
    assert not tm["is_good_match"].to_numpy()[unmatched].any()
    # each truth source appears once as a unique entry
    unique = tm["is_unique_truth_entry"].to_numpy()
    truth_ids = tm["id"].to_numpy(zero_copy_only=False)
    assert np.unique(truth_ids[unique]).size == unique.sum() == np.unique(truth_ids).size
    # good matches are within 1″; most objects have one (DC2: the large majority)
    good = tm["is_good_match"].to_numpy()
    assert (tm["match_sep"].to_numpy()[good] < 1.0).all()
    assert good[~unmatched].mean() > 0.85
    truth = read(tiny_survey, "truth", ["id"])
    assert np.unique(truth_ids).size == truth.num_rows


def test_objectid_encodes_tract_and_patch_of_the_position(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["objectId", "ra", "dec", "tract", "patch", "x", "y"])
    ids = obj["objectId"].to_numpy()
    loc = DC2_SKYMAP.locate(obj["ra"].to_numpy(), obj["dec"].to_numpy())
    np.testing.assert_array_equal(loc.tract, obj["tract"].to_numpy())
    patches = np.array([f"{x},{y}" for x, y in zip(loc.patch_x, loc.patch_y, strict=True)])
    np.testing.assert_array_equal(patches, obj["patch"].to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(loc.x, obj["x"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(loc.y, obj["y"].to_numpy(), atol=1e-6)
    prefix = ids >> 32
    np.testing.assert_array_equal(prefix >> 10, loc.tract)
    np.testing.assert_array_equal((prefix >> 5) & 31, loc.patch_x)
    np.testing.assert_array_equal(prefix & 31, loc.patch_y)


def test_magnitudes_errors_and_snr_follow_the_fluxes(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object")
    for b in "ugrizy":
        flux = obj[f"psFlux_{b}"].to_numpy()
        err = obj[f"psFluxErr_{b}"].to_numpy()
        mag = obj[f"mag_{b}"].to_numpy()
        pos = flux > 0
        np.testing.assert_allclose(mag[pos], 31.4 - 2.5 * np.log10(flux[pos]), rtol=1e-12)
        assert np.isnan(mag[flux <= 0]).all()
        np.testing.assert_allclose(
            obj[f"magerr_{b}"].to_numpy()[pos], 1.0857362 * err[pos] / flux[pos], rtol=1e-6
        )
        cm = obj[f"cModelFlux_{b}"].to_numpy()
        cm_err = obj[f"cModelFluxErr_{b}"].to_numpy()
        ok = np.isfinite(cm) & (cm_err > 0)
        np.testing.assert_allclose(obj[f"snr_{b}_cModel"].to_numpy()[ok], cm[ok] / cm_err[ok])
        fwhm = obj[f"psf_fwhm_{b}"].to_numpy()
        assert np.median(fwhm) == pytest.approx(BAND_FACTS[b].psf_fwhm, rel=0.1)


def test_reference_and_forced_fluxes_are_coadd_counts(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["objectId", "psFlux_g"])
    forced = read(tiny_survey, "forced_photometry", ["objectId", "g_base_PsfFlux_instFlux"])
    joined = obj.join(forced, "objectId")
    ratio = joined["psFlux_g"].to_numpy() / joined["g_base_PsfFlux_instFlux"].to_numpy()
    ok = np.isfinite(ratio)
    # instFlux carries float32 precision, as the measurement framework computed it
    np.testing.assert_allclose(ratio[ok], 57.543993733715695, rtol=2e-7)


def test_number_counts_rise_like_a_deep_survey(tiny_survey: Path) -> None:
    truth = read(tiny_survey, "truth", ["truth_type", "flux_i"])
    galaxy = truth["truth_type"].to_numpy() == 1
    mag_i = 31.4 - 2.5 * np.log10(truth["flux_i"].to_numpy()[galaxy])
    area = survey_region("tiny").area_deg2
    counts, edges = np.histogram(mag_i, bins=np.arange(21.0, 27.01, 1.0))
    log_n = np.log10(counts / area)
    slope = np.polyfit(edges[:-1] + 0.5, log_n, 1)[0]
    assert 0.22 < slope < 0.45  # deep-survey galaxy counts: ≈ 0.3 dex/mag
    assert log_n[-1] == pytest.approx(5.2, abs=0.25)  # i ≈ 26


def test_magnitude_error_grows_as_ivezic_predicts(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["mag_i", "magerr_i", "extendedness"])
    mag = obj["mag_i"].to_numpy()
    err = obj["magerr_i"].to_numpy()
    star = obj["extendedness"].to_numpy() == 0
    medians = []
    for m, expected in ((22.0, 0.008), (24.0, 0.029), (25.0, 0.068)):
        sel = star & (np.abs(mag - m) < 0.3)
        medians.append(np.median(err[sel]))
        assert medians[-1] == pytest.approx(expected, rel=0.5), m
    assert medians == sorted(medians)


def test_completeness_falls_near_the_depth(tiny_survey: Path) -> None:
    tm = read(tiny_survey, "truth_match", ["truth_type", "flux_i", "match_objectId"])
    mag = 31.4 - 2.5 * np.log10(tm["flux_i"].to_numpy())
    found = tm["match_objectId"].to_numpy() != -1
    bins = np.arange(23.0, 28.01, 0.25)
    total = np.histogram(mag, bins)[0]
    hit = np.histogram(mag[found], bins)[0]
    completeness = hit / np.maximum(total, 1)
    assert completeness[:4].min() > 0.9  # i < 24: essentially complete
    half = bins[np.argmax(completeness < 0.5)]
    assert abs(half - BAND_FACTS["i"].coadd_m5) < 0.6
    assert completeness[-2:].max() < 0.1


def test_extendedness_separates_stars_from_galaxies(tiny_survey: Path) -> None:
    obj = read(tiny_survey, "object", ["objectId", "extendedness", "mag_i"])
    tm = read(tiny_survey, "truth_match", ["match_objectId", "truth_type", "is_good_match"])
    tm = tm.filter(tm["is_good_match"])
    joined = obj.join(tm, keys="objectId", right_keys="match_objectId")
    ext = joined["extendedness"].to_numpy()
    kind = joined["truth_type"].to_numpy()
    bright = joined["mag_i"].to_numpy() < 23.0
    assert (ext[bright & (kind == 2)] == 0).mean() > 0.9
    assert (ext[bright & (kind == 1)] == 1).mean() > 0.85
    assert 0.6 < np.nanmean(ext) < 0.9  # DC2: 76 % extended


def test_flags_are_consistent(tiny_survey: Path) -> None:
    ref = read(tiny_survey, "reference")
    good = ref["good"].to_numpy()
    spoilers = [
        "edge",
        "interpolatedCenter",
        "saturatedCenter",
        "crCenter",
        "bad",
        "suspectCenter",
        "clippedCenter",
    ]
    any_spoiler = np.zeros(ref.num_rows, dtype=bool)
    for name in spoilers:
        any_spoiler |= ref[f"base_PixelFlags_flag_{name}"].to_numpy()
    np.testing.assert_array_equal(good, ~any_spoiler)
    assert 0.9 < good.mean() < 1.0
    obj = read(tiny_survey, "object", ["good", "clean"])
    assert not (obj["clean"].to_numpy() & ~obj["good"].to_numpy()).any()
    cm_flag = ref["modelfit_CModel_flag"].to_numpy()
    assert np.isnan(ref["modelfit_CModel_instFlux"].to_numpy()[cm_flag]).all()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path, tiny_survey: Path) -> None:
    again = tmp_path / "again"
    simulate_catalogs(size="tiny", seed=1, out=again, progress=False)

    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    assert digest(again) == digest(tiny_survey)
    other = tmp_path / "other"
    simulate_catalogs(size="tiny", seed=2, out=other, progress=False)
    assert read(other, "object", ["ra"]) != read(tiny_survey, "object", ["ra"])


def test_chosen_tables_are_the_same_bytes_as_in_the_full_survey(
    tmp_path: Path, tiny_survey: Path
) -> None:
    part = tmp_path / "part"
    manifest = simulate_catalogs(
        size="tiny", seed=1, out=part, progress=False, tables=["position", "object"]
    )
    assert list(manifest.tables) == ["object", "position"]
    written = sorted(str(p.relative_to(part)) for p in part.rglob("*.parquet"))
    expected = sorted(
        str(p.relative_to(tiny_survey))
        for table in ("object", "position", "truth")
        for p in (tiny_survey / table).glob("*.parquet")
    )
    assert written == expected
    for rel in written:
        assert (part / rel).read_bytes() == (tiny_survey / rel).read_bytes()
    full = CatalogManifest.read(tiny_survey)
    assert manifest.tables["object"].rows == full.tables["object"].rows
    with pytest.raises(InvalidInputError, match=r"unknown table\(s\) objects"):
        simulate_catalogs(
            size="tiny", seed=1, out=tmp_path / "bad", progress=False, tables=["objects"]
        )
    assert not (tmp_path / "bad").exists()


def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown size 'huge'"):
        simulate_catalogs(size="huge", seed=1, out=tmp_path / "x", progress=False)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        simulate_catalogs(size="tiny", seed=1, out=taken, progress=False)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InvalidInputError, match="cannot create"):
        simulate_catalogs(size="tiny", seed=1, out=blocker / "sub" / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]


def test_a_failure_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dpzero.sim.catalogs as catalogs

    calls = {"n": 0}
    real = catalogs.build_tables

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(catalogs, "build_tables", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        simulate_catalogs(size="tiny", seed=1, out=tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["sim", "catalogs", "--size", "tiny", "--seed", "-3", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "seed must be a non-negative integer" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["sim", "catalogs", "--size", "huge", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'huge' is not one of" in result.output
