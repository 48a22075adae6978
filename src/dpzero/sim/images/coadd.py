"""Coadds on the sky map's patch grid, rendered at the five-year depth.

A coadd is rendered directly on the patch's pixel grid (the tract's TAN projection,
0.2″ pixels): the truth's mean fluxes over the survey, through a coadd PSF of the
band's typical width, with Gaussian sky noise set so that the 5σ point-source depth
is the band's five-year coadd depth (Ivezić et al. 2019), plus the sources' own
Poisson noise. Pixels that no simulated visit covered are ``NO_DATA`` (NaN);
``deepCoadd_nImage`` counts the simulated visits covering each pixel. Coadds are in
counts of 57.54 nJy (zero point 27), as DC2's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import galsim
import numpy as np
from numpy.typing import NDArray

from dpzero.repo import Box
from dpzero.sim.images.camera import FILTERS

__all__ = [
    "COADD_NJY_PER_COUNT",
    "VISITS_5YR",
    "CoaddNoise",
    "coadd_noise",
    "coadd_psf",
    "coverage",
]

COADD_NJY_PER_COUNT = 10.0 ** (0.4 * (31.4 - 27.0))
"""nJy per coadd count (zero point 27)."""

VISITS_5YR: dict[str, int] = {"u": 28, "g": 40, "r": 92, "i": 92, "z": 70, "y": 75}
"""Typical visits at a point after five years."""

_AIRMASS = 1.2


@dataclass(frozen=True)
class CoaddNoise:
    """Noise of a band's coadd.

    Attributes
    ----------
    psf_fwhm
        Coadd PSF FWHM, arcsec.
    sigma
        Sky noise per pixel, counts.
    gain
        Electrons per count of the stacked exposures (sources' Poisson noise).
    """

    psf_fwhm: float
    sigma: float
    gain: float


def coadd_psf(band: str) -> galsim.GSObject:
    """The band's coadd PSF (Kolmogorov, the median seeing at airmass 1.2)."""
    return galsim.Kolmogorov(fwhm=coadd_noise(band).psf_fwhm)


def coadd_noise(band: str, pixel_scale: float = 0.2) -> CoaddNoise:
    """Per-pixel noise giving the band's five-year 5σ point-source depth."""
    f = FILTERS[band]
    fwhm = f.seeing_fwhm * _AIRMASS**0.6
    # Effective number of pixels of a PSF-fitted point source (θ_eff ≈ 1.04 FWHM).
    n_eff = 2.266 * (1.04 * fwhm / pixel_scale) ** 2
    f5 = 10.0 ** (-0.4 * (f.coadd_m5 - 31.4)) / COADD_NJY_PER_COUNT
    sigma = f5 / (5.0 * math.sqrt(n_eff))
    zp = f.zero_point - f.extinction * (_AIRMASS - 1.0)
    electrons_per_njy = VISITS_5YR[band] * 30.0 * 10.0 ** (-0.4 * (31.4 - zp))
    return CoaddNoise(psf_fwhm=fwhm, sigma=sigma, gain=electrons_per_njy * COADD_NJY_PER_COUNT)


def coverage(box: Box, quads: list[NDArray[np.float64]], block: int = 4) -> NDArray[np.int32]:
    """Number of quadrilaterals covering each pixel of a box (computed per block of pixels).

    Parameters
    ----------
    box
        The pixels, in the frame of the quadrilaterals.
    quads
        Convex quadrilaterals, each a (4, 2) array of x, y corners in order.
    block
        Evaluate on blocks of this many pixels a side (their centres), then expand.
    """
    ny = -(-box.height // block)
    nx = -(-box.width // block)
    yc = box.y0 + (np.arange(ny) + 0.5) * block - 0.5
    xc = box.x0 + (np.arange(nx) + 0.5) * block - 0.5
    count = np.zeros((ny, nx), dtype=np.int32)
    for quad in quads:
        x_lo, x_hi = quad[:, 0].min(), quad[:, 0].max()
        y_lo, y_hi = quad[:, 1].min(), quad[:, 1].max()
        ci = np.nonzero((xc >= x_lo) & (xc <= x_hi))[0]
        ri = np.nonzero((yc >= y_lo) & (yc <= y_hi))[0]
        if ci.size == 0 or ri.size == 0:
            continue
        xx, yy = np.meshgrid(xc[ci], yc[ri])
        inside = np.ones(xx.shape, dtype=bool)
        (ax, ay), (bx, by), (cx, cy) = quad[0], quad[1], quad[2]
        sign = 1.0 if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0 else -1.0
        for k in range(4):
            x0, y0 = quad[k]
            x1, y1 = quad[(k + 1) % 4]
            cross = (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0)
            inside &= sign * cross >= 0
        count[np.ix_(ri, ci)] += inside.astype(np.int32)
    full = np.repeat(np.repeat(count, block, axis=0), block, axis=1)
    return full[: box.height, : box.width]
