"""Rendering the truth universe onto a pixel grid with GalSim.

Galaxies are a de Vaucouleurs (n = 4) bulge plus an exponential (n = 1) disk with
the truth's half-light radii, bulge-to-total ratio and per-component ellipticities
(e = (1 − q)/(1 + q), e1 along the RA/Dec axes), convolved with the PSF; stars and
supernovae are point sources. Fluxes are the truth's observed fluxes (nJy), with
variable stars and supernovae taken at the visit's date.

Objects whose whole flux is below a threshold (the caller passes a PSF
signal-to-noise of 50 for visits, 100 for coadds) and whose image is not too wide
(σ ≤ 10 pixels, 2″, PSF included) are drawn, all at once with numpy, as elliptical
Gaussians of the same half-light size, disk ellipticity, position and flux instead
of exact Sérsic profiles: they add the right light at the right place, but their
profile's shape is approximate. Brighter or wider objects get the exact GalSim
profile. Each stand-in gets a stamp reaching 4σ along its major axis, so a wide
faint galaxy costs a few thousand pixel evaluations instead of an FFT of its whole
Sérsic wings. This keeps a detector with thousands of faint galaxies to a fraction
of a second.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import galsim
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from dpzero.sim.images.observing import MJD_END, MJD_START

__all__ = [
    "SceneObjects",
    "flux_at",
    "mean_flux",
    "psf_fwhm",
    "render",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_HLR_TO_SIGMA = 1.0 / math.sqrt(2.0 * math.log(2.0))  # a Gaussian's r½ = 1.1774 σ

SN_RISE_DAYS = 15.0
"""A supernova brightens linearly from zero over this many days to its peak."""

SN_DECAY_DAYS = 30.0
"""After its peak a supernova fades exponentially with this e-folding time."""


def _sn_light_curve(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fraction of peak flux at ``t`` days after the peak."""
    with np.errstate(over="ignore", invalid="ignore"):
        rise = np.clip(1.0 + t / SN_RISE_DAYS, 0.0, 1.0)
        fall = np.exp(-np.clip(t, 0.0, None) / SN_DECAY_DAYS)
    out = np.where(t <= 0.0, rise, fall)
    return np.where(np.isfinite(t), out, 0.0)


def flux_at(truth: pa.Table, band: str, mjd: float) -> NDArray[np.float64]:
    """Observed flux (nJy) of each truth row in a band at a date.

    Variable stars follow ``m(t) = m + A sin(2π (t / P + φ))``; supernovae follow
    `SN_RISE_DAYS` and `SN_DECAY_DAYS` around ``sn_peak_mjd`` (their catalog flux is
    the peak flux).
    """
    flux = truth.column(f"flux_{band}").to_numpy(zero_copy_only=False).astype(np.float64)
    variable = truth.column("is_variable").to_numpy(zero_copy_only=False) == 1
    if variable.any():
        amp = truth.column("variability_amplitude_mag").to_numpy(zero_copy_only=False)
        period = truth.column("variability_period_days").to_numpy(zero_copy_only=False)
        phase = truth.column("variability_phase").to_numpy(zero_copy_only=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            dm = amp * np.sin(2.0 * np.pi * (mjd / period + phase))
        flux = np.where(variable & (period > 0), flux * 10.0 ** (-0.4 * dm), flux)
    sn = truth.column("truth_type").to_numpy(zero_copy_only=False) == 3
    if sn.any():
        peak = truth.column("sn_peak_mjd").to_numpy(zero_copy_only=False)
        flux = np.where(sn, flux * _sn_light_curve(mjd - peak), flux)
    return flux


def mean_flux(truth: pa.Table, band: str) -> NDArray[np.float64]:
    """Flux (nJy) averaged over the five survey years: what a deep coadd sees.

    Variable stars average to their catalog flux; supernovae to the area under their
    light curve divided by the survey's length.
    """
    flux = truth.column(f"flux_{band}").to_numpy(zero_copy_only=False).astype(np.float64)
    sn = truth.column("truth_type").to_numpy(zero_copy_only=False) == 3
    if sn.any():
        peak = truth.column("sn_peak_mjd").to_numpy(zero_copy_only=False)
        days = np.linspace(MJD_START, MJD_END, 4097)
        curve = _sn_light_curve(days[None, :] - peak[sn, None]).mean(axis=1)
        flux = flux.copy()
        flux[sn] *= curve
    return flux


@dataclass(frozen=True)
class SceneObjects:
    """Objects to draw on one image: positions, fluxes in image units and shapes.

    All arrays have one length. Sizes are half-light radii in arcsec; ellipticities
    are in the (east, north) frame.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    flux: NDArray[np.float64]
    is_point: NDArray[np.bool_]
    hlr_bulge: NDArray[np.float64]
    hlr_disk: NDArray[np.float64]
    bulge_fraction: NDArray[np.float64]
    e1_bulge: NDArray[np.float64]
    e2_bulge: NDArray[np.float64]
    e1_disk: NDArray[np.float64]
    e2_disk: NDArray[np.float64]

    @classmethod
    def from_truth(cls, truth: pa.Table, x: NDArray, y: NDArray, flux: NDArray) -> SceneObjects:
        """Shapes from truth rows, with given pixel positions and fluxes."""

        def col(name: str) -> NDArray[np.float64]:
            values = truth.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            return np.nan_to_num(values)

        point = (truth.column("is_pointsource").to_numpy(zero_copy_only=False) == 1) | (
            truth.column("truth_type").to_numpy(zero_copy_only=False) != 1
        )
        return cls(
            x=np.asarray(x, dtype=np.float64),
            y=np.asarray(y, dtype=np.float64),
            flux=np.asarray(flux, dtype=np.float64),
            is_point=point,
            hlr_bulge=col("size_bulge_true"),
            hlr_disk=col("size_disk_true"),
            bulge_fraction=np.clip(col("bulge_to_total_ratio_i"), 0.0, 1.0),
            e1_bulge=col("ellipticity_1_bulge_true"),
            e2_bulge=col("ellipticity_2_bulge_true"),
            e1_disk=col("ellipticity_1_disk_true"),
            e2_disk=col("ellipticity_2_disk_true"),
        )

    def __len__(self) -> int:
        return len(self.x)

    def gaussian_sigma(self, psf_fwhm: float) -> NDArray[np.float64]:
        """σ (arcsec) of each object's Gaussian stand-in, PSF included."""
        bulge = (self.hlr_bulge * _HLR_TO_SIGMA) ** 2
        disk = (self.hlr_disk * _HLR_TO_SIGMA) ** 2
        size2 = np.where(
            self.is_point, 0.0, self.bulge_fraction * bulge + (1 - self.bulge_fraction) * disk
        )
        return np.sqrt(size2 + (psf_fwhm * _FWHM_TO_SIGMA) ** 2)


def _shear(e1: float, e2: float) -> galsim.Shear | None:
    e = math.hypot(e1, e2)
    if e < 1e-6:
        return None
    e = min(e, 0.95)
    scale = e / math.hypot(e1, e2)
    # e = (1 − q)/(1 + q) is GalSim's reduced shear g.
    return galsim.Shear(g1=e1 * scale, g2=e2 * scale)


def _galaxy(obj: SceneObjects, i: int, gsparams: galsim.GSParams) -> galsim.GSObject:
    parts = []
    bt = obj.bulge_fraction[i]
    for frac, n, hlr, e1, e2 in (
        (bt, 4.0, obj.hlr_bulge[i], obj.e1_bulge[i], obj.e2_bulge[i]),
        (1.0 - bt, 1.0, obj.hlr_disk[i], obj.e1_disk[i], obj.e2_disk[i]),
    ):
        if frac <= 1e-4 or hlr <= 0:
            continue
        prof = galsim.Sersic(n=n, half_light_radius=max(hlr, 0.02), flux=frac, gsparams=gsparams)
        shear = _shear(e1, e2)
        parts.append(prof.shear(shear) if shear is not None else prof)
    if not parts:
        return galsim.DeltaFunction(flux=1.0, gsparams=gsparams)
    return parts[0] if len(parts) == 1 else galsim.Add(parts, gsparams=gsparams)


def render(
    objects: SceneObjects,
    shape: tuple[int, int],
    psf: galsim.GSObject,
    jacobian: tuple[float, float, float, float],
    exact_above: float,
) -> NDArray[np.float64]:
    """Noise-free image of a set of objects.

    Parameters
    ----------
    objects
        Objects with 0-based pixel positions (``x`` column, ``y`` row) and fluxes in
        the image's units.
    shape
        ``(rows, columns)`` of the image.
    psf
        Point-spread function in sky coordinates (arcsec), flux 1.
    jacobian
        ``(dudx, dudy, dvdx, dvdy)``: arcsec east and north per pixel step.
    exact_above
        Objects with flux above this get the exact profile, the others a Gaussian.

    Returns
    -------
    numpy.ndarray
        The image (float64).
    """
    image = galsim.ImageD(shape[1], shape[0], xmin=0, ymin=0)
    wcs = galsim.JacobianWCS(*jacobian)
    gsparams = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=5e-3)
    pixel_scale = math.sqrt(abs(jacobian[0] * jacobian[3] - jacobian[1] * jacobian[2]))
    sigma_pix = objects.gaussian_sigma(psf_fwhm(psf)) / pixel_scale
    margin = 64
    with np.errstate(invalid="ignore"):
        keep = (
            (objects.flux > 0)
            & (objects.x > -margin) & (objects.x < shape[1] + margin)
            & (objects.y > -margin) & (objects.y < shape[0] + margin)
        )  # fmt: skip
    exact = keep & ((objects.flux > exact_above) | (sigma_pix > _SPLAT_MAX_SIGMA))
    for i in np.nonzero(exact)[0]:
        flux = float(objects.flux[i])
        if objects.is_point[i]:
            prof = psf.withFlux(flux)
        else:
            prof = galsim.Convolve(_galaxy(objects, i, gsparams), psf, gsparams=gsparams)
            prof = prof.withFlux(flux)
        stamp = prof.drawImage(wcs=wcs, center=galsim.PositionD(objects.x[i], objects.y[i]))
        overlap = stamp.bounds & image.bounds
        if overlap.isDefined():
            image[overlap] += stamp[overlap]
    faint = np.nonzero(keep & ~exact)[0]
    _splat_gaussians(image.array, objects, faint, sigma_pix * pixel_scale, jacobian)
    return image.array


_SPLAT_MAX_SIGMA = 10.0
"""Gaussian stand-ins wider than this (pixels) are drawn exactly instead.

Below the signal-to-noise threshold the profile's shape is lost in the noise whatever
the size (a wide galaxy's surface brightness is lower still); the bound keeps the
stamps (4σ of the major axis, up to 6× σ for the most elongated) from growing
without limit.
"""

_SPLAT_REACH_SIGMA = 4.0
"""A stand-in's stamp reaches this many σ along its major axis (99.97 % of its light)."""

_SPLAT_CHUNK_PIXELS = 1 << 22
"""Stamp pixels evaluated at once (bounds the temporary arrays to ~30 MB each)."""


def _splat_gaussians(
    image: NDArray[np.float64],
    objects: SceneObjects,
    index: NDArray[np.int64],
    sigma: NDArray[np.float64],
    jacobian: tuple[float, float, float, float],
) -> None:
    """Add elliptical Gaussians, each flux-normalised on its own square stamp.

    A stamp reaches `_SPLAT_REACH_SIGMA` along the object's major axis. Sized per
    object rather than for the widest one, stamps cost ~3× fewer pixels: most faint
    objects are barely resolved.
    """
    if index.size == 0:
        return
    # Sky covariance σ² A Aᵀ, A the area-preserving shear matrix of the disk's ellipticity.
    e1 = np.where(objects.is_point[index], 0.0, objects.e1_disk[index])
    e2 = np.where(objects.is_point[index], 0.0, objects.e2_disk[index])
    e = np.hypot(e1, e2)
    shrink = np.where(e > 0.95, 0.95 / np.maximum(e, 1e-12), 1.0)
    g1, g2 = e1 * shrink, e2 * shrink
    norm = 1.0 / np.sqrt(1.0 - (g1 * g1 + g2 * g2))
    a = np.empty((index.size, 2, 2))
    a[:, 0, 0] = norm * (1 + g1)
    a[:, 0, 1] = a[:, 1, 0] = norm * g2
    a[:, 1, 1] = norm * (1 - g1)
    cov_sky = sigma[index, None, None] ** 2 * (a @ a.transpose(0, 2, 1))
    jac_inv = np.linalg.inv(np.array(jacobian).reshape(2, 2))
    cov = jac_inv @ cov_sky @ jac_inv.T + np.eye(2) / 12.0  # the pixel's own width
    inv = np.linalg.inv(cov)
    # Major-axis σ from the covariance's larger eigenvalue; +0.5 for the rounded centre.
    half_trace = 0.5 * (cov[:, 0, 0] + cov[:, 1, 1])
    spread = np.hypot(0.5 * (cov[:, 0, 0] - cov[:, 1, 1]), cov[:, 0, 1])
    halves = np.ceil(_SPLAT_REACH_SIGMA * np.sqrt(half_trace + spread) + 0.5).astype(np.int64)
    # Stamps of all sizes are gathered and added to the image in one pass per
    # `_SPLAT_CHUNK_PIXELS`, not one whole-image pass per stamp size.
    pixels: list[NDArray[np.int64]] = []
    weights: list[NDArray[np.float64]] = []
    pending = 0
    for half in np.unique(halves):
        group = np.nonzero(halves == half)[0]
        step = max(1, _SPLAT_CHUNK_PIXELS // (2 * int(half) + 1) ** 2)
        for start in range(0, group.size, step):
            chunk = group[start : start + step]
            flat, values = _stamps(image.shape, objects, index[chunk], inv[chunk], int(half))
            pixels.append(flat)
            weights.append(values)
            pending += flat.size
            if pending >= _SPLAT_CHUNK_PIXELS:
                _add_pixels(image, pixels, weights)
                pending = 0
    _add_pixels(image, pixels, weights)


def _stamps(
    shape: tuple[int, int],
    objects: SceneObjects,
    index: NDArray[np.int64],
    inv: NDArray[np.float64],
    half: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Gaussians of inverse pixel covariances ``inv`` on stamps of ``2 half + 1`` pixels.

    Returns the flat image index and value of every stamp pixel inside the image.
    Row and column terms are kept apart until the cross term needs the full stamp.
    """
    offsets = np.arange(-half, half + 1)
    x, y = objects.x[index], objects.y[index]
    px = np.round(x).astype(np.int64)[:, None, None] + offsets[None, None, :]  # (n, 1, w)
    py = np.round(y).astype(np.int64)[:, None, None] + offsets[None, :, None]  # (n, w, 1)
    # Single precision: a stand-in's pixels need ~1e-7 relative accuracy at most.
    dx = (px - x[:, None, None]).astype(np.float32)
    dy = (py - y[:, None, None]).astype(np.float32)
    inv = inv.astype(np.float32)
    q = (
        (-0.5 * inv[:, 0, 0, None, None]) * (dx * dx)
        + (-0.5 * inv[:, 1, 1, None, None]) * (dy * dy)
        + (-inv[:, 0, 1, None, None] * dy) * dx
    )
    values = np.exp(q)
    values *= (objects.flux[index] / values.sum(axis=(1, 2), dtype=np.float64))[:, None, None]
    rows, cols = shape
    inside = ((px >= 0) & (px < cols)) & ((py >= 0) & (py < rows))
    flat = py * cols + px
    return flat[inside], values[inside]


def _add_pixels(
    image: NDArray[np.float64],
    pixels: list[NDArray[np.int64]],
    weights: list[NDArray[np.float64]],
) -> None:
    """Add gathered stamp pixels to the image (and empty the lists)."""
    if pixels:
        flat, values = np.concatenate(pixels), np.concatenate(weights)
        image += np.bincount(flat, weights=values, minlength=image.size).reshape(image.shape)
    pixels.clear()
    weights.clear()


@functools.lru_cache(maxsize=256)
def psf_fwhm(psf: galsim.GSObject) -> float:
    """FWHM (arcsec) of a PSF, measured on a fine grid once per PSF (0.8″ if it fails).

    The renderer and the calexp's PSF model both need it for the same visit PSF.
    """
    try:
        return float(psf.calculateFWHM(scale=0.05, size=256))
    except Exception:
        return 0.8
