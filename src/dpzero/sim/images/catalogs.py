"""Source and object catalogs of the processed release, measured from the truth.

The earlier processing's catalogs are made the way a simulation's measurements are
usually made: each truth object in an image gets the measurement it would get, its
expected value (PSF flux from the PSF-weighted overlap of its profile, total flux,
moments) plus noise drawn from the image's noise level at its position. A source
is detected when its expected PSF signal-to-noise reaches 5.

Columns use the afw source-table names of the LSST pipelines (``coord_ra`` and
``coord_dec`` in radians, ``base_PsfFlux_instFlux`` in image counts, …). The
per-visit tables (``src``, ``icSrc``, ``srcMatch``) are in electrons; the coadd
tables (``deepCoadd_*``) in coadd counts, 57.54 nJy each (zero point 27).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from dpzero.repo import mask_bits
from dpzero.sim.images.camera import BANDS

__all__ = [
    "CoaddMeasurements",
    "ImageNoise",
    "coadd_catalogs",
    "match_table",
    "object_ids",
    "visit_catalogs",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_HLR_TO_SIGMA = 1.0 / math.sqrt(2.0 * math.log(2.0))
DETECTION_SNR = 5.0


@dataclass(frozen=True)
class ImageNoise:
    """What a measurement's noise depends on, for one image.

    Attributes
    ----------
    psf_fwhm
        PSF FWHM in pixels.
    sky_variance
        Variance per pixel away from sources (counts²).
    counts_per_njy
        Image counts from 1 nJy.
    gain
        Electrons per count for the sources' own Poisson noise.
    saturation
        Counts at which a pixel saturates (infinite for coadds).
    """

    psf_fwhm: float
    sky_variance: float
    counts_per_njy: float
    gain: float
    saturation: float = math.inf

    @property
    def psf_sigma(self) -> float:
        """Gaussian σ of the PSF, pixels."""
        return self.psf_fwhm * _FWHM_TO_SIGMA


@dataclass(frozen=True)
class _Measured:
    """Noisy measurements of objects on one image (arrays of one length)."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    x_err: NDArray[np.float64]
    y_err: NDArray[np.float64]
    psf_flux: NDArray[np.float64]
    psf_flux_err: NDArray[np.float64]
    model_flux: NDArray[np.float64]
    model_flux_err: NDArray[np.float64]
    ap_flux: NDArray[np.float64]
    ap_flux_err: NDArray[np.float64]
    xx: NDArray[np.float64]
    yy: NDArray[np.float64]
    xy: NDArray[np.float64]
    snr: NDArray[np.float64]
    extendedness: NDArray[np.float64]
    saturated: NDArray[np.bool_]


def _measure(
    truth: pa.Table,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    flux_njy: NDArray[np.float64],
    noise: ImageNoise,
    pixel_scale: float,
    rng: np.random.Generator,
) -> _Measured:
    """Expected measurements plus noise, Gaussian approximations of each profile."""
    flux = np.clip(flux_njy, 0.0, None) * noise.counts_per_njy
    point = (truth.column("is_pointsource").to_numpy(zero_copy_only=False) == 1) | (
        truth.column("truth_type").to_numpy(zero_copy_only=False) != 1
    )
    bt = np.clip(
        np.nan_to_num(truth.column("bulge_to_total_ratio_i").to_numpy(zero_copy_only=False)),
        0,
        1,
    )
    hb = np.nan_to_num(truth.column("size_bulge_true").to_numpy(zero_copy_only=False))
    hd = np.nan_to_num(truth.column("size_disk_true").to_numpy(zero_copy_only=False))
    size2 = (bt * hb**2 + (1 - bt) * hd**2) * (_HLR_TO_SIGMA / pixel_scale) ** 2
    size2 = np.where(point, 0.0, size2)
    e1 = np.nan_to_num(truth.column("ellipticity_1_disk_true").to_numpy(zero_copy_only=False))
    e2 = np.nan_to_num(truth.column("ellipticity_2_disk_true").to_numpy(zero_copy_only=False))
    sp2 = noise.psf_sigma**2
    total2 = sp2 + size2
    n = flux.size
    # PSF flux of a Gaussian source of σ_s² through a PSF of σ_p²: F · 2σ_p² / (σ_p² + σ_s²).
    psf_expected = flux * 2.0 * sp2 / (sp2 + total2)
    n_eff = 4.0 * math.pi * sp2
    psf_var = n_eff * noise.sky_variance + psf_expected / noise.gain
    psf_err = np.sqrt(psf_var)
    # A model (CModel-like) flux measures the total flux, with a noise growing with size.
    model_err = np.sqrt(4.0 * math.pi * total2 * noise.sky_variance + flux / noise.gain)
    radius = 12.0
    ap_expected = flux * (1.0 - np.exp(-(radius**2) / (2.0 * total2)))
    ap_err = np.sqrt(math.pi * radius**2 * noise.sky_variance + ap_expected / noise.gain)
    snr = psf_expected / psf_err
    pos_err = np.sqrt(total2) / np.maximum(snr, 1e-3) * math.sqrt(2.0) + 0.01 / pixel_scale
    pos_err = np.minimum(pos_err, 5.0)
    ellip_scale = size2 / np.maximum(total2, 1e-12)
    # Peak counts of the PSF-like core over the sky (whose variance is its level).
    peak = psf_expected / (2.0 * math.pi * sp2) + noise.sky_variance
    return _Measured(
        x=x + rng.normal(0, 1, n) * pos_err,
        y=y + rng.normal(0, 1, n) * pos_err,
        x_err=pos_err,
        y_err=pos_err,
        psf_flux=psf_expected + rng.normal(0, 1, n) * psf_err,
        psf_flux_err=psf_err,
        model_flux=flux + rng.normal(0, 1, n) * model_err,
        model_flux_err=model_err,
        ap_flux=ap_expected + rng.normal(0, 1, n) * ap_err,
        ap_flux_err=ap_err,
        xx=total2 * (1 + e1 * ellip_scale) * (1 + rng.normal(0, 1, n) / np.maximum(snr, 1)),
        yy=total2 * (1 - e1 * ellip_scale) * (1 + rng.normal(0, 1, n) / np.maximum(snr, 1)),
        xy=total2 * e2 * ellip_scale,
        snr=snr,
        extendedness=np.zeros(n),
        saturated=peak >= noise.saturation,
    )


def _extendedness(psf: NDArray, model: NDArray) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = psf / model
    return np.where(np.isfinite(ratio), (ratio < 0.985).astype(np.float64), np.nan)


def _table(columns: dict[str, NDArray]) -> pa.Table:
    return pa.table({k: np.asarray(v) for k, v in columns.items()})


def visit_catalogs(
    truth: pa.Table,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    flux_njy: NDArray[np.float64],
    ra: NDArray[np.float64],
    dec: NDArray[np.float64],
    shape: tuple[int, int],
    noise: ImageNoise,
    pixel_scale: float,
    id_base: int,
    reference_ids: set[int],
    rng: np.random.Generator,
    mask: NDArray[np.int32] | None = None,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """``src``, ``icSrc`` and ``srcMatch`` of one calexp.

    Parameters
    ----------
    truth
        Truth rows of the objects on the image.
    x, y
        Their 0-based pixel positions.
    flux_njy
        Their fluxes at the visit's date.
    ra, dec
        Their true positions (degrees).
    shape
        Image ``(rows, columns)``.
    noise
        The image's noise.
    pixel_scale
        Arcsec per pixel.
    id_base
        Source ids are ``id_base + 1, 2, …``.
    reference_ids
        Truth ids of the reference catalog's stars (for ``srcMatch``).
    rng
        Random generator.
    mask
        The calexp's mask: pixel flags at each source's centre come from it.
    """
    inside = (x > -0.5) & (x < shape[1] - 0.5) & (y > -0.5) & (y < shape[0] - 0.5)
    m = _measure(truth, x, y, flux_njy, noise, pixel_scale, rng)
    keep = inside & (m.snr >= DETECTION_SNR)
    idx = np.nonzero(keep)[0]
    n = idx.size
    ids = id_base + 1 + np.arange(n, dtype=np.int64)
    scale_rad = math.radians(pixel_scale / 3600.0)
    ext = _extendedness(m.psf_flux[idx], m.model_flux[idx])
    edge = (m.x[idx] < 8) | (m.y[idx] < 8) | (m.x[idx] > shape[1] - 9) | (m.y[idx] > shape[0] - 9)
    dra = (m.x[idx] - x[idx]) * scale_rad
    ddec = (m.y[idx] - y[idx]) * scale_rad
    point = truth.column("truth_type").to_numpy(zero_copy_only=False)[idx] == 2
    bright = (m.snr[idx] > 50) & ~m.saturated[idx] & ~edge
    saturated = m.saturated[idx]
    cr_center = np.zeros(n, dtype=bool)
    if mask is not None and n:
        col = np.clip(np.round(m.x[idx]).astype(np.int64), 0, shape[1] - 1)
        row = np.clip(np.round(m.y[idx]).astype(np.int64), 0, shape[0] - 1)
        centre = mask[row, col]
        saturated = saturated | (centre & mask_bits("SAT") != 0)
        cr_center = centre & mask_bits("CR") != 0
        bright &= ~saturated
    psf_star = bright & point
    src = _table(
        {
            "id": ids,
            "coord_ra": np.radians(ra[idx]) + dra / np.cos(np.radians(dec[idx])),
            "coord_dec": np.radians(dec[idx]) + ddec,
            "parent": np.zeros(n, dtype=np.int64),
            "deblend_nChild": np.zeros(n, dtype=np.int32),
            "base_SdssCentroid_x": m.x[idx],
            "base_SdssCentroid_y": m.y[idx],
            "base_SdssCentroid_xErr": m.x_err[idx].astype(np.float32),
            "base_SdssCentroid_yErr": m.y_err[idx].astype(np.float32),
            "base_SdssCentroid_flag": np.zeros(n, dtype=bool),
            "base_PsfFlux_instFlux": m.psf_flux[idx],
            "base_PsfFlux_instFluxErr": m.psf_flux_err[idx],
            "base_PsfFlux_flag": saturated,
            "base_PsfFlux_apCorr": np.ones(n),
            "base_GaussianFlux_instFlux": m.model_flux[idx],
            "base_GaussianFlux_instFluxErr": m.model_flux_err[idx],
            "base_CircularApertureFlux_12_0_instFlux": m.ap_flux[idx],
            "base_CircularApertureFlux_12_0_instFluxErr": m.ap_flux_err[idx],
            "base_SdssShape_xx": m.xx[idx],
            "base_SdssShape_yy": m.yy[idx],
            "base_SdssShape_xy": m.xy[idx],
            "base_ClassificationExtendedness_value": ext,
            "base_PixelFlags_flag_edge": edge,
            "base_PixelFlags_flag_saturatedCenter": saturated,
            "base_PixelFlags_flag_crCenter": cr_center,
            "calib_psf_candidate": psf_star,
            "calib_psf_used": psf_star & (rng.random(n) < 0.8),
            "calib_photometry_used": bright & point,
            "calib_astrometry_used": bright & point,
            "sky_source": np.zeros(n, dtype=bool),
        }
    )
    ic = src.filter(pa.array(bright))
    truth_ids = truth.column("id").to_numpy(zero_copy_only=False)[idx]
    matched = np.array([t in reference_ids for t in truth_ids], dtype=bool)
    match = match_table(truth_ids[matched], ids[matched], np.hypot(dra, ddec)[matched])
    return src, ic, match


def match_table(ref_ids: NDArray, src_ids: NDArray, distance_rad: NDArray) -> pa.Table:
    """A normalised match table: reference id, source id, separation (radians)."""
    return _table(
        {
            "first": np.asarray(ref_ids, dtype=np.int64),
            "second": np.asarray(src_ids, dtype=np.int64),
            "distance": np.asarray(distance_rad, dtype=np.float64),
        }
    )


def object_ids(tract: int, patch_x: int, patch_y: int, n: int) -> NDArray[np.int64]:
    """DP0.1 object ids of a patch: ``((tract << 10 | px << 5 | py) << 32) + 1, 2, …``."""
    prefix = (int(tract) << 10) | (int(patch_x) << 5) | int(patch_y)
    return (np.int64(prefix) << np.int64(32)) + 1 + np.arange(n, dtype=np.int64)


@dataclass(frozen=True)
class CoaddMeasurements:
    """Inputs of a patch's coadd catalogs: the truth objects on the coadd, per band.

    Attributes
    ----------
    truth
        Truth rows of objects inside the coadd's covered pixels.
    x, y
        Tract-frame pixel positions.
    ra, dec
        True positions (degrees).
    flux
        Band → mean flux (nJy) over the survey.
    noise
        Band → the coadd's noise.
    inner
        Whether each object lies in the patch's inner region (``detect_isPatchInner``).
    """

    truth: pa.Table
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    ra: NDArray[np.float64]
    dec: NDArray[np.float64]
    flux: dict[str, NDArray[np.float64]]
    noise: dict[str, ImageNoise]
    inner: NDArray[np.bool_]


def coadd_catalogs(
    inputs: CoaddMeasurements,
    tract: int,
    patch: tuple[int, int],
    pixel_scale: float,
    reference_ids: set[int],
    rng: np.random.Generator,
) -> dict[str, pa.Table | dict[str, pa.Table]]:
    """The coadd catalogs of one patch.

    Returns
    -------
    dict
        ``deepCoadd_mergeDet`` and ``deepCoadd_ref`` tables, and for
        ``deepCoadd_det``, ``deepCoadd_meas``, ``deepCoadd_forced_src`` and
        ``deepCoadd_measMatch`` a dict band → table.
    """
    bands = [b for b in BANDS if b in inputs.noise]
    measured = {
        b: _measure(
            inputs.truth, inputs.x, inputs.y, inputs.flux[b], inputs.noise[b], pixel_scale, rng
        )
        for b in bands
    }
    detected = {b: measured[b].snr >= DETECTION_SNR for b in bands}
    any_det = np.logical_or.reduce([detected[b] for b in bands])
    idx = np.nonzero(any_det)[0]
    n = idx.size
    ids = object_ids(tract, patch[0], patch[1], n)
    ra = np.radians(inputs.ra[idx])
    dec = np.radians(inputs.dec[idx])
    # Reference band: i if detected there, else the band of highest S/N.
    snr = np.stack([measured[b].snr[idx] for b in bands])
    ref_band = np.array(bands)[np.argmax(snr, axis=0)]
    if "i" in bands:
        ref_band = np.where(detected["i"][idx], "i", ref_band)
    band_index = np.array([bands.index(b) for b in ref_band], dtype=np.int64)
    ref_m = {
        k: np.choose(band_index, [getattr(measured[b], k)[idx] for b in bands])
        for k in ("x", "y", "psf_flux", "model_flux")
    }
    primary = inputs.inner[idx]
    base = {
        "id": ids,
        "coord_ra": ra,
        "coord_dec": dec,
        "parent": np.zeros(n, dtype=np.int64),
        "deblend_nChild": np.zeros(n, dtype=np.int32),
    }
    merge_det = _table(
        base
        | {f"merge_footprint_{b}": detected[b][idx] for b in bands}
        | {f"merge_peak_{b}": detected[b][idx] for b in bands}
    )
    ref = _table(
        base
        | {
            "base_SdssCentroid_x": ref_m["x"],
            "base_SdssCentroid_y": ref_m["y"],
            "base_ClassificationExtendedness_value": _extendedness(
                ref_m["psf_flux"], ref_m["model_flux"]
            ),
            "detect_isPatchInner": primary,
            "detect_isTractInner": np.ones(n, dtype=bool),
            "detect_isPrimary": primary,
        }
        | {f"merge_measurement_{b}": ref_band == b for b in bands}
    )
    det, meas, forced, meas_match = {}, {}, {}, {}
    truth_ids = inputs.truth.column("id").to_numpy(zero_copy_only=False)[idx]
    is_ref = np.array([t in reference_ids for t in truth_ids], dtype=bool)
    for b in bands:
        m = measured[b]
        sel = detected[b][idx]
        det[b] = _table(
            {
                "id": ids[sel],
                "coord_ra": ra[sel],
                "coord_dec": dec[sel],
                "parent": np.zeros(int(sel.sum()), dtype=np.int64),
                "peak_x": np.round(m.x[idx][sel]).astype(np.int32),
                "peak_y": np.round(m.y[idx][sel]).astype(np.int32),
                "significance": m.snr[idx][sel].astype(np.float32),
            }
        )
        meas[b] = _table(
            base
            | {
                "base_SdssCentroid_x": m.x[idx],
                "base_SdssCentroid_y": m.y[idx],
                "base_SdssCentroid_xErr": m.x_err[idx].astype(np.float32),
                "base_SdssCentroid_yErr": m.y_err[idx].astype(np.float32),
                "base_PsfFlux_instFlux": m.psf_flux[idx],
                "base_PsfFlux_instFluxErr": m.psf_flux_err[idx],
                "modelfit_CModel_instFlux": m.model_flux[idx],
                "modelfit_CModel_instFluxErr": m.model_flux_err[idx],
                "base_SdssShape_xx": m.xx[idx],
                "base_SdssShape_yy": m.yy[idx],
                "base_SdssShape_xy": m.xy[idx],
                "base_ClassificationExtendedness_value": _extendedness(
                    m.psf_flux[idx], m.model_flux[idx]
                ),
                "detect_isPatchInner": primary,
                "detect_isPrimary": primary,
                f"merge_peak_{b}": sel,
            }
        )
        # Forced photometry at the reference positions: new noise, any sign of flux.
        f = _measure(
            inputs.truth.take(pa.array(idx)),
            ref_m["x"],
            ref_m["y"],
            inputs.flux[b][idx],
            inputs.noise[b],
            pixel_scale,
            rng,
        )
        forced[b] = _table(
            base
            | {
                "objectId": ids,
                "base_TransformedCentroid_x": ref_m["x"],
                "base_TransformedCentroid_y": ref_m["y"],
                "base_PsfFlux_instFlux": f.psf_flux,
                "base_PsfFlux_instFluxErr": f.psf_flux_err,
                "modelfit_CModel_instFlux": f.model_flux,
                "modelfit_CModel_instFluxErr": f.model_flux_err,
            }
        )
        scale_rad = math.radians(pixel_scale / 3600.0)
        dist = np.hypot(m.x[idx] - inputs.x[idx], m.y[idx] - inputs.y[idx]) * scale_rad
        meas_match[b] = match_table(truth_ids[is_ref], ids[is_ref], dist[is_ref])
    return {
        "deepCoadd_mergeDet": merge_det,
        "deepCoadd_ref": ref,
        "deepCoadd_det": det,
        "deepCoadd_meas": meas,
        "deepCoadd_forced_src": forced,
        "deepCoadd_measMatch": meas_match,
    }
