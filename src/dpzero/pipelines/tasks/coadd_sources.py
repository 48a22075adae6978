"""Pixel-level helpers shared by the coadd detection, deblending and measurement tasks.

All coadds of a patch are measured on one common frame: the union of the bands'
boxes (each band's coadd covers only the part of the patch its visits reach), with
pixels a band lacks masked. Positions are tract-frame pixels, fluxes nJy.

Measurement uses `sep` for apertures, windowed centroids and segmentation masks, and
`photutils.psf.PSFPhotometry` (through `dpzero.pipelines.tasks.calibrate.psf_photometry`)
for PSF fluxes, fitted simultaneously over groups of neighbours so a blend's children
share the light of their overlap instead of each taking it all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from numpy.typing import NDArray

from dpzero.pipelines.tasks.calibrate import psf_photometry
from dpzero.repo.exposure import Box, Exposure, Psf, mask_bits

__all__ = [
    "APERTURE_RADII",
    "BAND_PRIORITY",
    "BandImage",
    "band_image",
    "detect",
    "extendedness",
    "matched_kernel",
    "measure_band",
    "union_box",
]

BAND_PRIORITY: tuple[str, ...] = ("i", "r", "z", "y", "g", "u")
"""Reference-band preference, as Rubin's mergeMeasurements (i first)."""

APERTURE_RADII: tuple[int, ...] = (3, 6, 9, 12, 17, 25, 35, 50, 70)
"""Circular aperture radii in pixels: the ``apNNFlux`` columns of the DP0.2 schema."""

_BAD = mask_bits("NO_DATA", "SAT", "BAD")


@dataclass(frozen=True)
class BandImage:
    """One band's coadd on the patch's common frame.

    Attributes
    ----------
    image, err
        Pixels (nJy) and their 1σ noise (huge where there is no data).
    bad
        Pixels without usable data.
    psf
        The coadd's PSF.
    box
        The common frame (tract pixels).
    """

    image: NDArray[np.float64]
    err: NDArray[np.float64]
    bad: NDArray[np.bool_]
    psf: Psf
    box: Box


def union_box(exposures: list[Exposure]) -> Box:
    """The smallest box holding every exposure's box."""
    x0 = min(e.bbox.x0 for e in exposures)
    y0 = min(e.bbox.y0 for e in exposures)
    x1 = max(e.bbox.x1 for e in exposures)
    y1 = max(e.bbox.y1 for e in exposures)
    return Box(x0, y0, x1 - x0, y1 - y0)


def band_image(coadd: Exposure, box: Box) -> BandImage:
    """A coadd padded (no data) onto ``box``."""
    image = np.zeros(box.shape)
    variance = np.full(box.shape, np.inf)
    rows, cols = coadd.bbox.slices_within(box)
    bad_here = (coadd.mask & _BAD) != 0
    image[rows, cols] = np.where(bad_here, 0.0, coadd.image)
    variance[rows, cols] = np.where(bad_here, np.inf, coadd.variance)
    bad = ~np.isfinite(variance) | (variance <= 0)
    err = np.sqrt(np.where(bad, 1e30, variance))
    psf = coadd.psf if coadd.psf is not None else Psf.gaussian(3.5)
    return BandImage(np.ascontiguousarray(image), np.ascontiguousarray(err), bad, psf, box)


def matched_kernel(psf: Psf) -> NDArray[np.float32]:
    """The PSF cut to ±2σ: sep's matched filter, so the threshold is a PSF S/N."""
    sigma = psf.fwhm / 2.3548
    half = min(psf.kernel.shape[0] // 2, max(1, math.ceil(2 * sigma)))
    c = psf.kernel.shape[0] // 2
    return np.ascontiguousarray(psf.kernel[c - half : c + half + 1, c - half : c + half + 1])


def detect(
    band: BandImage,
    threshold: float,
    min_area: int,
    *,
    deblend_cont: float = 1.0,
    matched_filter: bool = True,
) -> tuple[NDArray, NDArray[np.int32]]:
    """Sources above ``threshold`` (matched-filter S/N) and their segmentation map.

    ``deblend_cont=1`` keeps each connected footprint whole (parents); sep's
    multi-threshold deblending splits them at smaller contrasts. Cleaning is off so the
    deblended segments partition the parents' pixels exactly. ``matched_filter=False``
    for an image that is already a S/N (no further filtering, ``err`` of 1).
    """
    import sep

    objects, segmap = sep.extract(
        band.image,
        threshold,
        err=band.err,
        mask=band.bad,
        minarea=min_area,
        filter_kernel=matched_kernel(band.psf) if matched_filter else None,
        filter_type="matched",
        deblend_nthresh=32,
        deblend_cont=deblend_cont,
        clean=False,
        segmentation_map=True,
    )
    return objects, np.ascontiguousarray(segmap, dtype=np.int32)


def extendedness(
    psf_flux: NDArray, psf_err: NDArray, model_flux: NDArray, model_err: NDArray
) -> NDArray[np.float64]:
    """1 where the PSF flux falls short of the extended-aperture flux, else 0.

    As Rubin's ``base_ClassificationExtendedness`` (PSF/model flux < 0.985), with the
    difference also required to exceed 3σ so faint point sources are not called
    extended on noise alone. NaN when a flux is missing.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = psf_flux / model_flux
        diff_err = np.hypot(psf_err, model_err)
        ext = (ratio < 0.985) & ((model_flux - psf_flux) > 3.0 * diff_err)
    out = ext.astype(np.float64)
    out[~(np.isfinite(psf_flux) & np.isfinite(model_flux) & (model_flux > 0))] = np.nan
    return out


def measure_band(
    band: BandImage,
    rows: Table,
    footprints: NDArray[np.int32],
    *,
    free_centroid: bool,
) -> Table:
    """Measure one band at the positions of ``rows`` (a deblended catalog).

    Parameters
    ----------
    band
        The band's image on the common frame.
    rows
        ``id``, ``x``, ``y`` (tract pixels), ``deblend_nChild``, ``footprint`` (leaf
        label) and ``parent_footprint`` (parent label).
    footprints
        ``(2, rows, cols)``: parent labels then leaf labels on the common frame.
    free_centroid
        Measure a windowed centroid in this band and fit the PSF there
        (``deepCoadd_meas``); otherwise keep the given positions (forced photometry).

    Returns
    -------
    astropy.table.Table
        ``centroid_x/y`` (tract), ``centroid_flag``, ``psfFlux(Err)``, ``psfFlux_flag``,
        ``apNNFlux(Err)``/``_flag``, ``blendedness``, ``extendedness``, ``inputCount``
        is left to the caller.
    """
    import sep

    parents = footprints[0]
    n = len(rows)
    x0, y0 = band.box.x0, band.box.y0
    x = np.asarray(rows["x"], float) - x0
    y = np.asarray(rows["y"], float) - y0
    blended_parent = np.asarray(rows["deblend_nChild"]) > 0
    leaf = ~blended_parent
    cx, cy = x.copy(), y.copy()
    centroid_flag = np.zeros(n, bool)
    if free_centroid and n:
        sig = np.full(n, max(band.psf.fwhm / 2.3548, 1.0))
        wx, wy, wflag = sep.winpos(band.image, x, y, sig, mask=band.bad)
        moved = (wflag != 0) | ~np.isfinite(wx) | (np.hypot(wx - x, wy - y) > 1.5)
        cx, cy = np.where(moved, x, wx), np.where(moved, y, wy)
        centroid_flag = moved
    out: dict[str, NDArray] = {
        "id": np.asarray(rows["id"]),
        "centroid_x": cx + x0,
        "centroid_y": cy + y0,
        "centroid_flag": centroid_flag,
    }
    # PSF fluxes of the leaves, neighbours fitted together.
    psf_flux, psf_err = np.full(n, np.nan), np.full(n, np.nan)
    psf_flag = np.ones(n, bool)
    height, width = band.image.shape
    fit = leaf & (cx > 0) & (cy > 0) & (cx < width - 1) & (cy < height - 1)
    if fit.any():
        f, e, fl = psf_photometry(
            band.image, band.err, band.bad, band.psf, cx[fit], cy[fit],
            group_separation=2.5 * band.psf.fwhm,
        )  # fmt: skip
        psf_flux[fit], psf_err[fit], psf_flag[fit] = f, e, fl
    # Apertures: isolated objects and parents on the image itself; children on their
    # share of the parent's pixels.
    apertures = _apertures(band.image, band.err, band.bad, cx, cy)
    children = np.nonzero(np.asarray(rows["parentObjectId"]) != 0)[0]
    for label, members in _group(np.asarray(rows["parent_footprint"])[children], children):
        for i, image in zip(
            members, _child_images(band, parents == label, cx, cy, psf_flux, members), strict=True
        ):
            for key, value in _apertures(
                image, band.err, band.bad, cx[i : i + 1], cy[i : i + 1]
            ).items():
                apertures[key][i] = value[0]
    out.update(apertures)
    # Blendedness on a 6-pixel aperture: 1 − (the child's share) / (all the light).
    full = _apertures(band.image, band.err, band.bad, cx, cy, radii=(6,))["ap06Flux"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["blendedness"] = np.where(
            leaf & (full > 0), np.clip(1.0 - out["ap06Flux"] / full, 0.0, 1.0), np.nan
        )
    # Aperture corrections to 12 pixels from bright, isolated, point-like leaves.
    snr = out["ap12Flux"] / np.where(out["ap12FluxErr"] > 0, out["ap12FluxErr"], np.inf)
    isolated = leaf & (np.asarray(rows["parentObjectId"]) == 0)
    clean = isolated & ~psf_flag & ~out["ap12Flux_flag"] & ~out["ap06Flux_flag"] & (snr > 50)
    ap_corr, ap06_corr = 1.0, 1.0
    if clean.sum() >= 3:
        ratio = out["ap12Flux"][clean] / psf_flux[clean]
        # The most compact half of the bright sources: the point sources.
        compact = clean.copy()
        compact[clean] = ratio <= np.median(ratio) * 1.02
        ap_corr = float(np.median(out["ap12Flux"][compact] / psf_flux[compact]))
        ap06_corr = float(np.median(out["ap12Flux"][compact] / out["ap06Flux"][compact]))
    out["psfFlux"], out["psfFluxErr"], out["psfFlux_flag"] = (
        psf_flux * ap_corr,
        psf_err * ap_corr,
        psf_flag,
    )
    out["psfFlux_apCorr"] = np.full(n, ap_corr)
    out["extendedness"] = extendedness(
        out["psfFlux"],
        out["psfFluxErr"],
        out["ap06Flux"] * ap06_corr,
        out["ap06FluxErr"] * ap06_corr,
    )
    table = Table(out)
    table.meta["APCORR"] = ap_corr
    return table


def _apertures(
    image: NDArray, err: NDArray, bad: NDArray, x: NDArray, y: NDArray,
    radii: tuple[int, ...] = APERTURE_RADII,
) -> dict[str, NDArray]:  # fmt: skip
    """``apNNFlux``, ``apNNFluxErr``, ``apNNFlux_flag`` (flag: truncated or masked pixels)."""
    import sep

    out: dict[str, NDArray] = {}
    for radius in radii:
        if len(x):
            flux, flux_err, flag = sep.sum_circle(
                image, x, y, float(radius), err=err, mask=bad, subpix=5
            )
        else:
            flux, flux_err, flag = np.zeros(0), np.zeros(0), np.zeros(0, int)
        out[f"ap{radius:02d}Flux"] = np.asarray(flux, float)
        out[f"ap{radius:02d}FluxErr"] = np.asarray(flux_err, float)
        out[f"ap{radius:02d}Flux_flag"] = np.asarray(flag) != 0
    return out


def _group(labels: NDArray, members: NDArray) -> list[tuple[int, NDArray]]:
    return [(int(lab), members[labels == lab]) for lab in np.unique(labels)]


def _child_images(
    band: BandImage, footprint: NDArray, x: NDArray, y: NDArray, flux: NDArray, members: NDArray
) -> list[NDArray]:
    """Each child's image: the parent's pixels shared in proportion to the children's
    fitted PSF models (so the shares add up to the parent), other pixels untouched."""
    from photutils.psf import ImagePSF

    rows, cols = np.nonzero(footprint)
    templates = []
    for i in members:
        model = ImagePSF(
            band.psf.kernel, flux=max(float(np.nan_to_num(flux[i])), 0.0), x_0=x[i], y_0=y[i]
        )
        templates.append(model(cols.astype(float), rows.astype(float)))
    templates = np.array(templates)
    total = templates.sum(axis=0)
    # Where no model reaches, share equally: the light must go somewhere.
    k = len(members)
    share = np.where(total > 0, templates / np.where(total > 0, total, 1.0), 1.0 / k)
    images = []
    for j in range(k):
        image = band.image.copy()
        image[rows, cols] = band.image[rows, cols] * share[j]
        images.append(image)
    return images
