"""Merge, deblend and measurement of coadds; the DP0.2 tables against the Felis schema."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy.special import erf

from dpzero.repo.exposure import Box, Exposure, PhotoCalib, Psf
from dpzero.schema import load_schema
from dpzero.sim.skymap import DC2_SKYMAP

from .test_coadd import CoaddChain, coadd_chain, warp  # noqa: F401  (the module's fixtures)

FWHM = 3.5
NOISE = 4.0  # nJy per pixel
SIZE = 128


def _stars_image(stars: list[tuple[float, float, float]], rng: np.random.Generator) -> np.ndarray:
    """Pixel-integrated Gaussian stars (x, y, nJy) with white noise."""
    sigma = FWHM / 2.3548
    edges = np.arange(SIZE + 1) - 0.5
    image = np.zeros((SIZE, SIZE))
    for x, y, flux in stars:
        px = np.diff(0.5 * (1 + erf((edges - x) / (math.sqrt(2) * sigma))))
        py = np.diff(0.5 * (1 + erf((edges - y) / (math.sqrt(2) * sigma))))
        image += flux * np.outer(py, px)
    return image + rng.normal(0.0, NOISE, image.shape)


@pytest.fixture(scope="module")
def blend() -> dict:
    """Two bands of a patch corner: a blended pair of stars and an isolated star."""
    from dpzero.pipelines.tasks.coadd import tract_wcs
    from dpzero.pipelines.tasks.measure_coadd import (
        DeblendCoaddTask,
        DetectCoaddTask,
        MeasureCoaddTask,
        MergeDetectionsTask,
    )

    loc = DC2_SKYMAP.locate([62.0], [-37.0])
    tract, patch = int(loc.tract[0]), int(loc.patch_x[0]) + 7 * int(loc.patch_y[0])
    x0 = int(loc.patch_x[0]) * DC2_SKYMAP.patch_inner + 1000
    y0 = int(loc.patch_y[0]) * DC2_SKYMAP.patch_inner + 1000
    box = Box(x0, y0, SIZE, SIZE)
    truth = {"A": (40.0, 44.0, 30_000.0), "B": (46.5, 46.0, 15_000.0), "C": (70.0, 20.0, 20_000.0)}
    # More lone stars, for the aperture correction.
    for name, x, y in (("D", 25.0, 100.0), ("E", 100.0, 100.0), ("F", 100.0, 60.0)):
        truth[name] = (x, y, 25_000.0)
    rng = np.random.default_rng(2)
    coadds, n_images = {}, {}
    for band, scale in (("i", 1.0), ("r", 0.8)):
        stars = [(x, y, f * scale) for x, y, f in truth.values()]
        coadds[band] = Exposure(
            image=_stars_image(stars, rng),
            mask=np.zeros((SIZE, SIZE), np.int32),
            variance=np.full((SIZE, SIZE), NOISE**2),
            wcs=tract_wcs(DC2_SKYMAP, tract, box),
            psf=Psf.gaussian(FWHM),
            photo_calib=PhotoCalib(1.0),
            bbox=box,
        )
        n_images[band] = np.full((SIZE, SIZE), 3, np.int32)
    dets = {b: DetectCoaddTask().run(c, DC2_SKYMAP, tract).detections for b, c in coadds.items()}
    merged = MergeDetectionsTask().run(dets).merged
    deblended = DeblendCoaddTask().run(coadds, merged, DC2_SKYMAP, tract, patch)
    meas = {
        b: MeasureCoaddTask()
        .run(c, n_images[b], deblended.catalog, deblended.footprints, DC2_SKYMAP, tract)
        .measurements
        for b, c in coadds.items()
    }
    return {
        "truth": truth,
        "box": box,
        "dets": dets,
        "merged": merged,
        "catalog": deblended.catalog,
        "footprints": deblended.footprints,
        "meas": meas,
        "tract": tract,
        "patch": patch,
    }


def _nearest(catalog, box: Box, x: float, y: float) -> int:
    d = np.hypot(np.asarray(catalog["x"]) - box.x0 - x, np.asarray(catalog["y"]) - box.y0 - y)
    return int(np.argmin(d))


def test_merge_keeps_one_peak_per_star_seen_in_both_bands(blend: dict) -> None:
    merged = blend["merged"]
    assert len(blend["dets"]["i"]) == 6 and len(blend["dets"]["r"]) == 6
    assert len(merged) == 6
    assert merged["merge_peak_i"].all() and merged["merge_peak_r"].all()


def test_deblend_gives_parent_and_children_with_rubin_ids(blend: dict) -> None:
    cat, box, truth = blend["catalog"], blend["box"], blend["truth"]
    assert len(cat) == 7  # the blend's parent, its two children, four lone stars
    parent = cat[cat["deblend_nChild"] > 0]
    assert len(parent) == 1 and parent["deblend_nChild"][0] == 2
    assert parent["parentObjectId"][0] == 0 and not parent["detect_isPrimary"][0]
    children = cat[cat["parentObjectId"] == parent["id"][0]]
    assert len(children) == 2
    for name in ("A", "B"):
        row = cat[_nearest(cat, box, *truth[name][:2])]
        assert row["parentObjectId"] == parent["id"][0]
        assert (
            math.hypot(row["x"] - box.x0 - truth[name][0], row["y"] - box.y0 - truth[name][1]) < 1
        )
    isolated = cat[_nearest(cat, box, *truth["C"][:2])]
    assert isolated["parentObjectId"] == 0 and isolated["deblend_nChild"] == 0
    assert isolated["detect_isPrimary"]
    # Its second moments are the pixelised PSF's (σ² + 1/12), not the smoothed image's.
    psf_moment = (FWHM / 2.3548) ** 2 + 1 / 12
    assert isolated["shape_xx"] == pytest.approx(psf_moment, rel=0.1)
    assert isolated["shape_yy"] == pytest.approx(psf_moment, rel=0.1)
    assert abs(isolated["shape_xy"]) < 0.1
    tract, patch = blend["tract"], blend["patch"]
    assert (np.asarray(cat["id"]) >> 43 == tract * 49 + patch).all()
    assert len(set(cat["id"])) == len(cat)
    # Children's footprints partition their parent's.
    parents, leaves = blend["footprints"]
    p_label = parent["parent_footprint"][0]
    child_pixels = np.isin(leaves, np.asarray(children["footprint"]))
    assert np.array_equal(child_pixels, parents == p_label)


def test_children_fluxes_sum_to_the_parent_and_match_truth(blend: dict) -> None:
    cat, box, truth = blend["catalog"], blend["box"], blend["truth"]
    for band, scale in (("i", 1.0), ("r", 0.8)):
        meas = blend["meas"][band]
        parent = int(np.nonzero(np.asarray(cat["deblend_nChild"]) > 0)[0][0])
        kids = np.nonzero(np.asarray(cat["parentObjectId"]) == cat["id"][parent])[0]
        # The children's shares of the parent's light add up to it (a wide aperture
        # holds all of it), and so do their PSF fluxes, within the errors.
        share_sum = float(np.sum(meas["ap25Flux"][kids]))
        parent_flux = float(meas["ap25Flux"][parent])
        parent_err = float(meas["ap25FluxErr"][parent])
        assert abs(share_sum - parent_flux) < 3 * parent_err
        total = float(np.sum(meas["psfFlux"][kids]))
        total_err = float(np.sqrt(np.sum(np.asarray(meas["psfFluxErr"][kids]) ** 2)))
        assert (
            abs(total - parent_flux) < 3 * math.hypot(total_err, parent_err) + 0.005 * parent_flux
        )
        for name in ("A", "B", "C"):
            i = _nearest(cat, box, *truth[name][:2])
            expected = truth[name][2] * scale
            assert meas["psfFlux"][i] == pytest.approx(expected, rel=0.01), (band, name)
        # The pair's members are blended, the lone star is not.
        a = _nearest(cat, box, *truth["A"][:2])
        c = _nearest(cat, box, *truth["C"][:2])
        b = _nearest(cat, box, *truth["B"][:2])
        assert meas["blendedness"][a] > 0.05 and meas["blendedness"][b] > 0.2
        assert meas["blendedness"][c] == pytest.approx(0.0, abs=1e-6)


def test_a_star_seen_in_one_band_only_keeps_its_footprint() -> None:
    # A red star at PSF S/N 7 in i and nothing in r (as deep): in an inverse-variance
    # mean of the bands its S/N would be 7/√2 < 5 and its footprint would vanish; a
    # footprint is the union of the bands' own footprints, so it stays.
    from dpzero.pipelines.tasks.coadd import tract_wcs
    from dpzero.pipelines.tasks.measure_coadd import (
        DeblendCoaddTask,
        DetectCoaddTask,
        MergeDetectionsTask,
    )

    loc = DC2_SKYMAP.locate([62.0], [-37.0])
    tract, patch = int(loc.tract[0]), int(loc.patch_x[0]) + 7 * int(loc.patch_y[0])
    box = Box(int(loc.patch_x[0]) * DC2_SKYMAP.patch_inner + 1000,
              int(loc.patch_y[0]) * DC2_SKYMAP.patch_inner + 1000, SIZE, SIZE)  # fmt: skip
    sigma = FWHM / 2.3548
    flux = 7.0 * NOISE * math.sqrt(4 * math.pi * sigma**2)  # PSF S/N 7
    rng = np.random.default_rng(11)
    coadds = {}
    for band, stars in (("i", [(64.0, 64.0, flux)]), ("r", [])):
        coadds[band] = Exposure(
            image=_stars_image(stars, rng),
            mask=np.zeros((SIZE, SIZE), np.int32),
            variance=np.full((SIZE, SIZE), NOISE**2),
            wcs=tract_wcs(DC2_SKYMAP, tract, box),
            psf=Psf.gaussian(FWHM),
            photo_calib=PhotoCalib(1.0),
            bbox=box,
        )
    dets = {b: DetectCoaddTask().run(c, DC2_SKYMAP, tract).detections for b, c in (
        ("i", coadds["i"]),)}  # fmt: skip
    merged = MergeDetectionsTask().run(dets).merged
    catalog = DeblendCoaddTask().run(coadds, merged, DC2_SKYMAP, tract, patch).catalog
    star = _nearest(catalog, box, 64.0, 64.0)
    assert math.hypot(catalog["x"][star] - box.x0 - 64, catalog["y"][star] - box.y0 - 64) < 1
    assert catalog["detect_isPrimary"][star]


def _check_against_schema(table: pa.Table, schema_table: str) -> None:
    spec = load_schema("dp02_dc2").table(schema_table)
    order = [c for c in spec.column_names if c in table.column_names]
    assert table.column_names == order  # known columns only, in schema order
    for name in table.column_names:
        column = spec.column(name)
        field = table.schema.field(name)
        assert field.type == column.arrow_type, name
        assert field.metadata[b"unit"].decode() == column.unit, name


def test_object_table_matches_the_felis_schema(coadd_chain: CoaddChain) -> None:  # noqa: F811
    from dpzero.pipelines.tasks.tables import WriteObjectTableTask

    tract, patch = coadd_chain.tract, coadd_chain.patch
    ref, meas, forced = coadd_chain.reference, coadd_chain.measurements, coadd_chain.forced
    table = (
        WriteObjectTableTask()
        .run(tract, {patch: ref}, {(patch, "i"): meas}, {(patch, "i"): forced})
        .table
    )
    _check_against_schema(table, "Object")
    assert table.num_rows == len(ref)
    assert table.column("objectId").to_pylist() == list(ref["id"])
    assert table.column("i_psfFlux").to_pylist() == pytest.approx(
        list(forced["psfFlux"]), nan_ok=True
    )
    assert table.column("r_psfFlux").null_count == table.num_rows  # band not processed
    assert set(table.column("skymap").to_pylist()) == {"DC2"}


def test_schema_table_refuses_unknown_columns_and_float_ids() -> None:
    from dpzero.pipelines.tasks.tables import schema_table

    with pytest.raises(KeyError, match="psfFlux_typo"):
        schema_table("Object", {"objectId": [1], "psfFlux_typo": [1.0]}, 1)
    with pytest.raises(TypeError, match="objectId"):
        schema_table("Object", {"objectId": np.array([1.5])}, 1)
