"""Observing the truth: what a deep coadd's detection and measurement would report.

This is a catalog-level model of DC2's coadd processing, applied one patch at a time:

1. sources closer than ~0.4 PSF FWHM are unresolved and merge into one detection;
2. noise per band follows the coadd 5σ depth (Ivezić et al. 2019 §3.2.1), with
   extended sources paying for their larger footprint;
3. detection on the PSF-matched significance summed over g, r, i and z, with a
   threshold of 5σ, so completeness falls smoothly near the depth;
4. deblending: detections whose footprints touch form families; each family gets a
   parent (not primary) and children that carry the parent's id;
5. measured PSF and cModel fluxes, centroids, adaptive moments and pixel flags,
   consistent with one another (extendedness from psFlux/cModelFlux, magnitudes and
   errors from fluxes).

`ObservedPatch` holds one row per measured source, parents included, as plain
arrays; `dpzero.sim.tables` turns it into the DP0.1 tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from dpzero.sim.skymap import DC2_SKYMAP, RingsSkyMap
from dpzero.sim.survey import BAND_FACTS, BANDS, WFD_REGION, SurveyRegion, mag_to_flux
from dpzero.sim.universe import PatchCell

__all__ = ["ObservedPatch", "observe_patch", "unit_vectors"]

GAMMA = 0.039
"""Ivezić's γ for the random photometric error."""
SYSTEMATIC_MAG = 0.005
DETECTION_THRESHOLD = 5.0
DETECTION_BANDS = ("g", "r", "i", "z")
REFERENCE_BAND = "i"
UNRESOLVED_FRACTION_OF_FWHM = 0.45
BLEND_LINK_ARCSEC = 1.8
BLEND_LINK_SIZE_FACTOR = 1.8
MAX_CHILDREN = 12
SPURIOUS_FRACTION = 0.004
MATCH_RADIUS_ARCSEC = 1.0
PIXEL_SCALE = 0.2
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_HLR_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))


def unit_vectors(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cartesian unit vectors of positions in degrees, shape (n, 3)."""
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _chord(arcsec: float) -> float:
    return 2.0 * math.sin(math.radians(arcsec / 3600.0) / 2.0)


def _smooth_field(ra: NDArray, dec: NDArray, k1: float, k2: float, phase: float) -> NDArray:
    """A deterministic smooth field in [−1, 1] over the sky (depth and seeing variations)."""
    r, d = np.radians(ra), np.radians(dec)
    return 0.5 * (np.sin(k1 * r + phase) * np.cos(k2 * d - phase) + np.sin(k2 * r - k1 * d + phase))


@dataclass
class ObservedPatch:
    """Measured sources of one patch (parents first within each family).

    Per-band arrays live in dicts keyed by band. Fluxes are calibrated nJy.
    """

    cell: PatchCell
    object_id: NDArray[np.int64]
    parent_id: NDArray[np.int64]
    n_child: NDArray[np.int32]
    is_primary: NDArray[np.bool_]
    deblend_skipped: NDArray[np.bool_]
    truth_index: NDArray[np.int64]  # brightest truth source behind the detection, −1 if none
    ra: NDArray[np.float64]
    dec: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    pos_err_arcsec: NDArray[np.float64]
    size_sigma_arcsec: NDArray[np.float64]  # intrinsic Gaussian-equivalent size
    frac_dev: NDArray[np.float64]
    e1: NDArray[np.float64]  # intrinsic distortion (Ixx−Iyy)/(Ixx+Iyy) on the sky
    e2: NDArray[np.float64]
    blendedness: NDArray[np.float64]
    extinction_bv: NDArray[np.float64]
    true_flux: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    psf_flux: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    psf_flux_err: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    cmodel_flux: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    cmodel_flux_err: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    psf_sigma_pix: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    psf_e1: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    psf_e2: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    moments: dict[str, tuple[NDArray, NDArray, NDArray]] = field(default_factory=dict)
    input_count: dict[str, NDArray[np.int32]] = field(default_factory=dict)
    pixel_flags: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    failures: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    detected_in: dict[str, NDArray[np.bool_]] = field(default_factory=dict)
    rng_seed: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        """Number of measured rows (parents included)."""
        return int(self.object_id.size)

    def extendedness(self) -> NDArray[np.float64]:
        """1 where psFlux/cModelFlux < 0.985 in the reference band, 0 if not, NaN if unmeasured."""
        psf = self.psf_flux[REFERENCE_BAND]
        cm = self.cmodel_flux[REFERENCE_BAND]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = psf / cm
        ext = np.where(ratio < 0.985, 1.0, 0.0)
        bad = ~np.isfinite(ratio) | (cm <= 0) | self.failures["cmodel_" + REFERENCE_BAND]
        return np.where(bad, np.nan, ext)


def _object_ids(cell: PatchCell, n: int) -> NDArray[np.int64]:
    """DP0.1 objectIds: ((tract << 10 | px << 5 | py) << 32) + counter."""
    prefix = (cell.tract << 10) | (cell.patch_x << 5) | cell.patch_y
    return (np.int64(prefix) << np.int64(32)) + np.arange(1, n + 1, dtype=np.int64)


def observe_patch(
    truth: pa.Table,
    cell: PatchCell,
    seed: int,
    region: SurveyRegion,
    skymap: RingsSkyMap = DC2_SKYMAP,
) -> ObservedPatch:
    """Detect and measure the truth sources of one patch."""
    rng = cell.rng(seed, stream=1)
    t_ra = truth["ra"].to_numpy()
    t_dec = truth["dec"].to_numpy()
    n_truth = t_ra.size
    t_flux = {b: truth[f"flux_{b}"].to_numpy().astype(np.float64) for b in BANDS}
    bt = truth["bulge_to_total_ratio_i"].to_numpy().astype(np.float64)
    hlr = bt * truth["size_bulge_true"].to_numpy() + (1 - bt) * truth["size_disk_true"].to_numpy()
    t_sigma = hlr.astype(np.float64) / _HLR_PER_SIGMA
    t_e1 = truth["ellipticity_1_disk_true"].to_numpy().astype(np.float64)
    t_e2 = truth["ellipticity_2_disk_true"].to_numpy().astype(np.float64)

    # 1. Unresolved blends merge into one source; the brightest in i leads.
    xyz = unit_vectors(t_ra, t_dec) if n_truth else np.zeros((0, 3))
    tree = cKDTree(xyz)
    close = _chord(UNRESOLVED_FRACTION_OF_FWHM * BAND_FACTS[REFERENCE_BAND].psf_fwhm)
    pairs = tree.query_pairs(close, output_type="ndarray")
    n_src, label = _components(n_truth, pairs)
    lead = _brightest(label, t_flux[REFERENCE_BAND], n_src)
    s_flux = {b: np.bincount(label, weights=t_flux[b], minlength=n_src) for b in BANDS}
    w = np.maximum(t_flux[REFERENCE_BAND], 1e-3)
    wsum = np.bincount(label, weights=w, minlength=n_src)
    s_xyz = np.column_stack(
        [np.bincount(label, weights=w * xyz[:, k], minlength=n_src) for k in range(3)]
    )
    s_xyz /= np.maximum(wsum, 1e-30)[:, None]
    s_ra = np.degrees(np.arctan2(s_xyz[:, 1], s_xyz[:, 0])) % 360.0 if n_src else np.zeros(0)
    s_dec = (
        np.degrees(np.arcsin(np.clip(s_xyz[:, 2] / np.linalg.norm(s_xyz, axis=1), -1, 1)))
        if n_src
        else np.zeros(0)
    )
    s_sigma = t_sigma[lead]
    s_fracdev = bt[lead]
    s_e1, s_e2 = t_e1[lead], t_e2[lead]
    s_truth = lead.astype(np.int64)

    # 2. Depth and PSF where each source lies.
    visits, depth_shift = _coverage(s_ra, s_dec)
    # Local sky and background errors scatter the noise of each source a little.
    sky_jitter = np.exp(rng.normal(0.0, 0.07, n_src))
    psf_fwhm = {
        b: BAND_FACTS[b].psf_fwhm * (1.0 + 0.06 * _smooth_field(s_ra, s_dec, 9.7, 6.1, 1.0 + k))
        for k, b in enumerate(BANDS)
    }

    # Spurious detections: noise peaks with no source behind them.
    n_spurious = int(rng.poisson(SPURIOUS_FRACTION * max(n_src, 1) * 0.5))
    box_ra, box_dec = _random_in_cell(rng, cell, region, skymap, n_spurious, t_ra, t_dec)
    n_spurious = box_ra.size

    # 3. Noise and detection.
    n_all = n_src + n_spurious
    ra = np.concatenate([s_ra, box_ra])
    dec = np.concatenate([s_dec, box_dec])
    sigma_g = np.concatenate([s_sigma, np.zeros(n_spurious)])
    depth_shift = {b: np.concatenate([depth_shift[b], np.zeros(n_spurious)]) for b in BANDS}
    visits = {
        b: np.concatenate([visits[b], np.full(n_spurious, 1.0 * BAND_FACTS[b].visits_5yr)])
        for b in BANDS
    }
    sky_jitter = np.concatenate([sky_jitter, np.ones(n_spurious)])
    psf_fwhm = {
        b: np.concatenate([psf_fwhm[b], np.full(n_spurious, BAND_FACTS[b].psf_fwhm)]) for b in BANDS
    }
    flux_true = {}
    for b in BANDS:
        f5 = mag_to_flux(BAND_FACTS[b].coadd_m5)
        spur = np.abs(rng.normal(0.0, 1.0, n_spurious)) * f5 / 5.0
        flux_true[b] = np.concatenate([s_flux[b], spur])
    sigma_p = {b: psf_fwhm[b] * _SIGMA_PER_FWHM for b in BANDS}
    psf_frac = {b: 2 * sigma_p[b] ** 2 / (2 * sigma_p[b] ** 2 + sigma_g**2) for b in BANDS}
    {b: (sigma_p[b] ** 2 + sigma_g**2) / sigma_p[b] ** 2 for b in BANDS}
    f5 = {b: mag_to_flux(BAND_FACTS[b].coadd_m5 + depth_shift[b]) * sky_jitter for b in BANDS}
    sig_psf = {b: _flux_sigma(flux_true[b] * psf_frac[b], f5[b], 1.0) for b in BANDS}
    nu2 = sum((flux_true[b] * psf_frac[b] / sig_psf[b]) ** 2 for b in DETECTION_BANDS)
    significance = np.sqrt(nu2)
    significance[n_src:] = DETECTION_THRESHOLD + np.abs(rng.normal(0.0, 0.7, n_spurious))
    detected = significance + rng.normal(0.0, 1.0, n_all) > DETECTION_THRESHOLD
    det = np.flatnonzero(detected)

    # 4. Deblending families among detections.
    d_xyz = unit_vectors(ra[det], dec[det]) if det.size else np.zeros((0, 3))
    d_tree = cKDTree(d_xyz)
    hlr_arcsec = sigma_g[det] * _HLR_PER_SIGMA
    link = BLEND_LINK_ARCSEC + BLEND_LINK_SIZE_FACTOR * np.max(hlr_arcsec, initial=0.0)
    cand = d_tree.query_pairs(_chord(min(link, 8.0)), output_type="ndarray")
    if cand.size:
        sep = (
            np.degrees(
                2 * np.arcsin(np.linalg.norm(d_xyz[cand[:, 0]] - d_xyz[cand[:, 1]], axis=1) / 2)
            )
            * 3600
        )
        limit = (
            BLEND_LINK_ARCSEC
            + BLEND_LINK_SIZE_FACTOR * (hlr_arcsec[cand[:, 0]] + hlr_arcsec[cand[:, 1]]) / 2
        )
        cand = cand[sep < limit]
    n_fam, fam = _components(det.size, cand)
    fam_size = np.bincount(fam, minlength=n_fam)

    # Row order: families in order of their first detection; parent first, then children.
    order = np.lexsort((np.arange(det.size), fam))
    rows_src: list[int] = []  # index into the "all" arrays, −1 for a parent row
    rows_family: list[int] = []
    rows_is_parent: list[bool] = []
    rows_skipped: list[bool] = []
    fam_sorted = fam[order]
    first_of = {}
    for k in range(order.size):
        f = int(fam_sorted[k])
        if f not in first_of:
            first_of[f] = k
    family_order = sorted(first_of, key=lambda f: order[first_of[f]])
    boundaries = np.searchsorted(fam_sorted, np.arange(n_fam + 1))
    for f in family_order:
        members = det[order[boundaries[f] : boundaries[f + 1]]]
        size = int(fam_size[f])
        if size == 1:
            rows_src.append(int(members[0]))
            rows_family.append(f)
            rows_is_parent.append(False)
            rows_skipped.append(False)
            continue
        rows_src.append(-1 - f)
        rows_family.append(f)
        rows_is_parent.append(True)
        rows_skipped.append(size > MAX_CHILDREN)
        if size <= MAX_CHILDREN:
            for m in members:
                rows_src.append(int(m))
                rows_family.append(f)
                rows_is_parent.append(False)
                rows_skipped.append(False)
    rows_src_a = np.asarray(rows_src, dtype=np.int64)
    is_parent = np.asarray(rows_is_parent, dtype=bool)
    skipped = np.asarray(rows_skipped, dtype=bool)
    row_family = np.asarray(rows_family, dtype=np.int64)
    n_rows = rows_src_a.size
    object_id = _object_ids(cell, n_rows)
    parent_row_of_family = np.full(n_fam, -1, dtype=np.int64)
    parent_row_of_family[row_family[is_parent]] = np.flatnonzero(is_parent)
    parent_id = np.zeros(n_rows, dtype=np.int64)
    child = ~is_parent & (parent_row_of_family[row_family] >= 0)
    parent_id[child] = object_id[parent_row_of_family[row_family[child]]]
    n_child = np.zeros(n_rows, dtype=np.int32)
    n_child[is_parent & ~skipped] = fam_size[row_family[is_parent & ~skipped]]
    is_primary = ~is_parent | skipped

    # Per-row true quantities; a parent is the flux sum of its family, at its lead's place.
    fam_of_src = np.full(n_all, -1, dtype=np.int64)
    fam_of_src[det] = fam
    lead_of_family = _brightest(fam, flux_true[REFERENCE_BAND][det], n_fam)
    lead_src = det[lead_of_family]
    src_of_row = np.where(rows_src_a >= 0, rows_src_a, lead_src[row_family])

    def per_row(values: NDArray) -> NDArray:
        return values[src_of_row]

    row_flux = {}
    for b in BANDS:
        fam_flux = np.bincount(fam, weights=flux_true[b][det], minlength=n_fam)
        row_flux[b] = np.where(is_parent, fam_flux[row_family], per_row(flux_true[b]))

    r_ra, r_dec = per_row(ra), per_row(dec)
    r_sigma = per_row(sigma_g)
    fam_extent = _family_extent_arcsec(fam, ra[det], dec[det], n_fam)
    r_sigma = np.where(is_parent, np.hypot(r_sigma, fam_extent[row_family]), r_sigma)
    truth_index = np.full(n_rows, -1, dtype=np.int64)
    real = src_of_row < n_src
    truth_index[real] = s_truth[src_of_row[real]]

    # Blendedness: share of light in a child's footprint that comes from its siblings.
    blendedness = _blendedness(
        row_family,
        is_parent,
        r_ra,
        r_dec,
        r_sigma,
        row_flux[REFERENCE_BAND],
        psf_fwhm[REFERENCE_BAND][src_of_row],
    )

    # 5. Measurements.
    out_psf, out_psf_err, out_cm, out_cm_err = {}, {}, {}, {}
    r_jitter = per_row(sky_jitter)
    for b in BANDS:
        sp = per_row(sigma_p[b])
        frac_psf = 2 * sp**2 / (2 * sp**2 + r_sigma**2)
        area_b = (sp**2 + r_sigma**2) / sp**2
        f5b = mag_to_flux(BAND_FACTS[b].coadd_m5 + per_row(depth_shift[b])) * r_jitter
        true_psf = row_flux[b] * frac_psf
        cm_frac = np.where(r_sigma > 0, 0.975 + 0.02 * rng.normal(0, 1, n_rows), 1.0)
        true_cm = row_flux[b] * cm_frac
        e_psf = _flux_sigma(true_psf, f5b, 1.0)
        e_cm = _flux_sigma(true_cm, f5b, area_b)
        deblend_err = 0.12 * blendedness
        sys_frac = SYSTEMATIC_MAG / 1.0857
        common = rng.normal(0.0, 1.0, n_rows)
        out_psf[b] = true_psf * (1 + deblend_err * common) + rng.normal(0, 1, n_rows) * np.hypot(
            e_psf, sys_frac * true_psf
        )
        # cModel and PSF noise are strongly correlated (same pixels): share part of the draw.
        corr = rng.normal(0, 1, n_rows)
        out_cm[b] = true_cm * (1 + deblend_err * common) + (
            0.8 * corr + 0.6 * rng.normal(0, 1, n_rows)
        ) * np.hypot(e_cm, sys_frac * true_cm)
        out_psf_err[b] = np.hypot(e_psf, sys_frac * np.abs(out_psf[b]))
        out_cm_err[b] = np.hypot(e_cm, sys_frac * np.abs(out_cm[b]))

    snr_ref = np.maximum(out_psf[REFERENCE_BAND] / out_psf_err[REFERENCE_BAND], 1.0)
    sp_ref = per_row(sigma_p[REFERENCE_BAND])
    pos_err = np.hypot(0.7 * np.sqrt((sp_ref**2 + r_sigma**2) / sp_ref**2) / snr_ref, 0.005)
    pos_err = np.minimum(pos_err, 1.0)
    m_ra, m_dec = _jitter(rng, r_ra, r_dec, pos_err)
    loc = skymap.locate(m_ra, m_dec)
    outside = (
        (loc.tract != cell.tract) | (loc.patch_x != cell.patch_x) | (loc.patch_y != cell.patch_y)
    )
    m_ra = np.where(outside, r_ra, m_ra)
    m_dec = np.where(outside, r_dec, m_dec)
    x, y = skymap.sky_to_pixel(cell.tract, m_ra, m_dec)

    psf_sigma_pix, psf_e1, psf_e2, moments = {}, {}, {}, {}
    r_e1 = np.where(rows_src_a >= 0, per_row(np.concatenate([s_e1, np.zeros(n_spurious)])), 0.0)
    r_e2 = np.where(rows_src_a >= 0, per_row(np.concatenate([s_e2, np.zeros(n_spurious)])), 0.0)
    chi1, chi2 = _distortion(r_e1, r_e2)
    for k, b in enumerate(BANDS):
        sp_pix = per_row(sigma_p[b]) / PIXEL_SCALE
        psf_sigma_pix[b] = sp_pix
        psf_e1[b] = 0.02 * _smooth_field(m_ra, m_dec, 11.0, 13.0, 2.0 + k)
        psf_e2[b] = 0.02 * _smooth_field(m_ra, m_dec, 13.0, 11.0, 3.0 + k)
        t_gal = 2 * (r_sigma / PIXEL_SCALE) ** 2
        t_psf = 2 * sp_pix**2
        snr_b = np.maximum(np.abs(out_cm[b]) / out_cm_err[b], 0.5)
        noise = (t_gal + t_psf) / snr_b * rng.normal(0, 1, (3, n_rows)) * 0.5
        ixx = 0.5 * t_gal * (1 + chi1) + 0.5 * t_psf * (1 + psf_e1[b]) + noise[0]
        iyy = 0.5 * t_gal * (1 - chi1) + 0.5 * t_psf * (1 - psf_e1[b]) + noise[1]
        # x grows toward lower RA: a shape elongated north-east has negative Ixy.
        ixy = -0.5 * t_gal * chi2 - 0.5 * t_psf * psf_e2[b] + noise[2] * 0.5
        moments[b] = (np.maximum(ixx, 0.05 * t_psf), np.maximum(iyy, 0.05 * t_psf), ixy)

    # Pixel flags, shared by all bands (a coadd pixel mask is the union of the inputs').
    true_psf_mag = {b: 31.4 - 2.5 * np.log10(np.maximum(row_flux[b], 1e-3)) for b in BANDS}
    saturated_center = np.zeros(n_rows, dtype=bool)
    near_saturation = np.zeros(n_rows, dtype=bool)
    for b in BANDS:
        point_like = r_sigma < 0.3
        sat_mag = BAND_FACTS[b].saturation_mag - np.where(point_like, 0.0, 1.0)
        saturated_center |= true_psf_mag[b] < sat_mag
        near_saturation |= true_psf_mag[b] < sat_mag + 0.8
    edge_dist = region.distance_to_edge(m_ra, m_dec)
    wfd_edge = WFD_REGION.distance_to_edge(m_ra, m_dec)
    edge = (np.minimum(edge_dist, wfd_edge) * 3600 < 2.0) | (wfd_edge < 0)
    interpolated_center = saturated_center | (rng.random(n_rows) < 0.008)
    cr_center = rng.random(n_rows) < 0.002
    bad = rng.random(n_rows) < 0.003
    suspect_center = near_saturation & ~saturated_center & (rng.random(n_rows) < 0.5)
    variable = np.zeros(n_rows, dtype=bool)
    has_truth = truth_index >= 0
    if has_truth.any():
        variable[has_truth] = truth["is_variable"].to_numpy()[truth_index[has_truth]] == 1
    clipped = (rng.random(n_rows) < 0.004) | (variable & (rng.random(n_rows) < 0.25))
    pixel_flags = {
        "edge": edge,
        "interpolatedCenter": interpolated_center,
        "interpolated": interpolated_center | (rng.random(n_rows) < 0.05),
        "saturatedCenter": saturated_center,
        "saturated": near_saturation & (saturated_center | (rng.random(n_rows) < 0.7)),
        "crCenter": cr_center,
        "cr": cr_center | (rng.random(n_rows) < 0.02),
        "bad": bad,
        "suspectCenter": suspect_center,
        "suspect": suspect_center | (near_saturation & (rng.random(n_rows) < 0.3)),
        "clippedCenter": clipped,
        "clipped": clipped | (rng.random(n_rows) < 0.01),
        "bright_objectCenter": near_saturation & (rng.random(n_rows) < 0.3),
        "sensor_edgeCenter": rng.random(n_rows) < 0.003,
        "inexact_psfCenter": rng.random(n_rows) < 0.002,
        "offimage": np.zeros(n_rows, dtype=bool),
        "rejectedCenter": clipped & (rng.random(n_rows) < 0.5),
    }
    for name in ("bright_object", "sensor_edge", "inexact_psf", "rejected"):
        pixel_flags[name] = pixel_flags[name + "Center"] | (rng.random(n_rows) < 0.01)

    failures = {}
    for b in BANDS:
        snr_b = out_psf[b] / out_psf_err[b]
        faint = snr_b < 3
        failures["psf_" + b] = edge | (rng.random(n_rows) < 0.002)
        failures["cmodel_" + b] = (
            failures["psf_" + b]
            | (faint & (rng.random(n_rows) < 0.08))
            | (rng.random(n_rows) < 0.005)
        )
        failures["shape_" + b] = edge | (faint & (rng.random(n_rows) < 0.3)) | saturated_center
        failures["centroid_" + b] = edge | (faint & (rng.random(n_rows) < 0.05))
    for b in BANDS:
        out_cm[b] = np.where(failures["cmodel_" + b], np.nan, out_cm[b])
        out_cm_err[b] = np.where(failures["cmodel_" + b], np.nan, out_cm_err[b])
        out_psf[b] = np.where(failures["psf_" + b] & edge, np.nan, out_psf[b])
        out_psf_err[b] = np.where(failures["psf_" + b] & edge, np.nan, out_psf_err[b])

    detected_in = {b: out_psf[b] / out_psf_err[b] > DETECTION_THRESHOLD for b in BANDS}
    input_count = {
        b: rng.poisson(np.maximum(per_row(visits[b]), 0.5)).astype(np.int32) for b in BANDS
    }

    return ObservedPatch(
        cell=cell,
        object_id=object_id,
        parent_id=parent_id,
        n_child=n_child,
        is_primary=is_primary,
        deblend_skipped=skipped,
        truth_index=truth_index.astype(np.int64),
        ra=m_ra,
        dec=m_dec,
        x=x,
        y=y,
        pos_err_arcsec=pos_err,
        size_sigma_arcsec=r_sigma,
        frac_dev=np.where(
            r_sigma > 0,
            np.clip(
                per_row(np.concatenate([s_fracdev, np.zeros(n_spurious)]))
                + rng.normal(0, 0.08, n_rows),
                0,
                1,
            ),
            0.0,
        ),
        e1=r_e1,
        e2=r_e2,
        blendedness=blendedness,
        extinction_bv=_ebv(m_ra, m_dec),
        true_flux=row_flux,
        psf_flux=out_psf,
        psf_flux_err=out_psf_err,
        cmodel_flux=out_cm,
        cmodel_flux_err=out_cm_err,
        psf_sigma_pix=psf_sigma_pix,
        psf_e1=psf_e1,
        psf_e2=psf_e2,
        moments=moments,
        input_count=input_count,
        pixel_flags=pixel_flags,
        failures=failures,
        detected_in=detected_in,
        rng_seed=(seed, cell.tract, cell.patch_id),
    )


def _ebv(ra: NDArray, dec: NDArray) -> NDArray:
    from dpzero.sim.universe import extinction_bv

    return extinction_bv(ra, dec)


def _components(n: int, pairs: NDArray) -> tuple[int, NDArray[np.int64]]:
    """Connected components of n nodes linked by index pairs."""
    if n == 0:
        return 0, np.zeros(0, dtype=np.int64)
    if pairs.size == 0:
        return n, np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    return int(count), label.astype(np.int64)


def _brightest(label: NDArray[np.int64], flux: NDArray, n_groups: int) -> NDArray[np.int64]:
    """Index of the brightest member of each group."""
    if label.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-flux, label))
    first = np.searchsorted(label[order], np.arange(n_groups))
    return order[first].astype(np.int64)


def _flux_sigma(flux: NDArray, f5: NDArray | float, area: NDArray | float) -> NDArray:
    """Random flux error from the 5σ depth flux f5 (Ivezić's σ² = (0.04−γ)x + γx²).

    The sky term scales with the footprint area of an extended source.
    """
    k = 1.0857
    sky = GAMMA * np.asarray(f5) ** 2 * np.asarray(area) / k**2
    source = (0.04 - GAMMA) * np.asarray(f5) * np.maximum(flux, 0.0) / k**2
    return np.sqrt(sky + source)


def _coverage(ra: NDArray, dec: NDArray) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
    """Expected number of visits and the coadd depth shift (mag) of each band at each position.

    Dithered visits overlap unevenly on arcminute scales and thin out toward the WFD
    edge; depth follows the visit count (m5 + 1.25 log10 N/N̄), plus a slow drift of sky
    brightness and seeing.
    """
    thin = np.power(10.0, -_edge_thinning(ra, dec) / 1.25)
    visits, shift = {}, {}
    for k, b in enumerate(BANDS):
        uneven = 1.0 + 0.12 * _smooth_field(ra, dec, 2100.0 + 97 * k, 1900.0 - 61 * k, 0.7 * k)
        visits[b] = BAND_FACTS[b].visits_5yr * thin * uneven
        drift = 0.06 * _smooth_field(ra, dec, 5.3, 7.1, 0.3 + k)
        shift[b] = 1.25 * np.log10(thin * uneven) + drift
    return visits, shift


def _edge_thinning(ra: NDArray, dec: NDArray) -> NDArray:
    """Depth lost near the WFD footprint's edge, where fewer dithered visits overlap (mag)."""
    d = WFD_REGION.distance_to_edge(ra, dec)
    return 0.75 * np.clip(1.0 - d / 0.6, 0.0, 1.0) ** 2


def _jitter(
    rng: np.random.Generator, ra: NDArray, dec: NDArray, sigma_arcsec: NDArray
) -> tuple[NDArray, NDArray]:
    """Positions moved by a 2-D Gaussian error of σ (per axis) on the sky."""
    n = ra.size
    d_dec = rng.normal(0.0, 1.0, n) * sigma_arcsec / 3600.0
    d_ra = rng.normal(0.0, 1.0, n) * sigma_arcsec / 3600.0 / np.cos(np.radians(dec))
    return (ra + d_ra) % 360.0, dec + d_dec


def _distortion(e1: NDArray, e2: NDArray) -> tuple[NDArray, NDArray]:
    """Moment distortion χ from ellipticity e = (1−q)/(1+q), same direction."""
    e = np.hypot(e1, e2)
    q = (1 - e) / (1 + e)
    chi = (1 - q**2) / (1 + q**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(e > 0, chi / e, 0.0)
    return e1 * scale, e2 * scale


def _family_extent_arcsec(fam: NDArray, ra: NDArray, dec: NDArray, n_fam: int) -> NDArray:
    """RMS spread of a family's members around their mean, arcsec."""
    if fam.size == 0:
        return np.zeros(n_fam)
    cnt = np.maximum(np.bincount(fam, minlength=n_fam), 1)
    cosd = np.cos(np.radians(dec))
    xs, ys = ra * cosd * 3600, dec * 3600
    mx = np.bincount(fam, weights=xs, minlength=n_fam) / cnt
    my = np.bincount(fam, weights=ys, minlength=n_fam) / cnt
    var = np.bincount(fam, weights=(xs - mx[fam]) ** 2 + (ys - my[fam]) ** 2, minlength=n_fam) / cnt
    return np.sqrt(var)


def _blendedness(
    family: NDArray,
    is_parent: NDArray,
    ra: NDArray,
    dec: NDArray,
    sigma: NDArray,
    flux: NDArray,
    fwhm: NDArray,
) -> NDArray:
    """1 − child/parent flux inside the child's footprint; 0 for isolated sources and parents."""
    n = ra.size
    out = np.zeros(n)
    children = np.flatnonzero(~is_parent)
    fam_children = family[children]
    counts = np.bincount(fam_children, minlength=int(family.max(initial=-1)) + 1)
    blended = children[counts[fam_children] > 1]
    if blended.size == 0:
        return out
    order = blended[np.argsort(family[blended], kind="stable")]
    fams = family[order]
    bounds = np.flatnonzero(np.diff(fams)) + 1
    s2 = (sigma**2 + (fwhm * _SIGMA_PER_FWHM) ** 2) / 3600.0**2
    for group in np.split(order, bounds):
        cosd = np.cos(np.radians(dec[group]))
        gx, gy = ra[group] * cosd, dec[group]
        dx = gx[:, None] - gx[None, :]
        dy = gy[:, None] - gy[None, :]
        ss = s2[group][:, None] + s2[group][None, :]
        weight = np.exp(-(dx**2 + dy**2) / (2 * ss)) * (2 * s2[group][:, None] / ss)
        np.fill_diagonal(weight, 0.0)
        f = np.maximum(flux[group], 1e-6)
        other = weight @ f
        out[group] = other / (f + other)
    return out


def _random_in_cell(
    rng: np.random.Generator,
    cell: PatchCell,
    region: SurveyRegion,
    skymap: RingsSkyMap,
    n: int,
    t_ra: NDArray,
    t_dec: NDArray,
) -> tuple[NDArray, NDArray]:
    """n random positions in the patch ∩ region (drawn around existing truth positions)."""
    if n == 0 or t_ra.size == 0:
        return np.zeros(0), np.zeros(0)
    base = rng.integers(0, t_ra.size, n)
    offset = rng.uniform(3.0, 10.0, n) / 3600.0
    angle = rng.uniform(0, 2 * math.pi, n)
    ra = (t_ra[base] + offset * np.cos(angle) / np.cos(np.radians(t_dec[base]))) % 360
    dec = t_dec[base] + offset * np.sin(angle)
    loc = skymap.locate(ra, dec)
    keep = (
        (loc.tract == cell.tract)
        & (loc.patch_x == cell.patch_x)
        & (loc.patch_y == cell.patch_y)
        & region.contains(ra, dec)
    )
    return ra[keep], dec[keep]
