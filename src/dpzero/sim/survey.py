"""The survey's fixed facts: bands, depths, seeing, zero points, sizes and sky regions.

Numbers follow DC2 (LSST WFD after 5 years) as collected in the project's DC2 facts:
Ivezić et al. 2019 Table 2 for sky, seeing and single-visit depth, the 5-year coadd
depths, the WFD footprint, and the detected-object density of DC2's object table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dpzero.errors import InvalidInputError

__all__ = [
    "AB_ZERO_POINT_NJY",
    "BANDS",
    "BAND_FACTS",
    "COADD_INSTFLUX_NJY",
    "OBJECT_DENSITY_PER_DEG2",
    "SIZES",
    "WFD_REGION",
    "BandFacts",
    "SurveyRegion",
    "flux_to_mag",
    "mag_to_flux",
    "survey_region",
]

BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")

AB_ZERO_POINT_NJY = 31.4
"""m_AB = 31.4 − 2.5 log10(f / nJy)."""

COADD_INSTFLUX_NJY = 57.543993733715695
"""nJy per coadd count: DC2 coadds are calibrated to a zero point of 27 (10**(0.4*4.4))."""


@dataclass(frozen=True)
class BandFacts:
    """Per-band observing facts.

    Attributes
    ----------
    coadd_m5
        5σ point-source depth of the 5-year coadd (AB mag).
    psf_fwhm
        Typical coadd PSF FWHM, arcsec (θ_eff of Ivezić Table 2).
    saturation_mag
        Point-source magnitude that saturates a single 30 s visit.
    extinction_coeff
        A_band / E(B−V) for the band.
    visits_5yr
        Typical number of visits at a point after 5 years.
    physical_filter
        Filter name as the camera reports it.
    """

    coadd_m5: float
    psf_fwhm: float
    saturation_mag: float
    extinction_coeff: float
    visits_5yr: int
    physical_filter: str


BAND_FACTS: dict[str, BandFacts] = {
    "u": BandFacts(25.4, 0.92, 14.7, 4.145, 28, "u_sim_1.4"),
    "g": BandFacts(26.6, 0.87, 15.7, 3.237, 40, "g_sim_1.4"),
    "r": BandFacts(26.7, 0.83, 15.8, 2.273, 92, "r_sim_1.4"),
    "i": BandFacts(26.2, 0.80, 15.8, 1.684, 92, "i_sim_1.4"),
    "z": BandFacts(25.5, 0.78, 15.4, 1.323, 70, "z_sim_1.4"),
    "y": BandFacts(24.7, 0.76, 14.5, 1.088, 75, "y_sim_1.4"),
}

OBJECT_DENSITY_PER_DEG2 = 3.6e5
"""Primary objects per deg² that the simulation detects (measured on small surveys).

DC2's object table has 4.8 × 10⁵ deg⁻² (DR6a: 51.8 M in 108.7 deg²); the simulation
follows the published galaxy number counts, which hold fewer faint galaxies than
cosmoDC2, and detects 50 % of galaxies at i ≈ 26.4. Survey areas are sized from this
density so that each size gives the number of objects it promises.
"""


def mag_to_flux(mag: ArrayLike) -> NDArray[np.float64]:
    """AB magnitude to flux in nJy."""
    return np.power(10.0, -0.4 * (np.asarray(mag, dtype=np.float64) - AB_ZERO_POINT_NJY))


def flux_to_mag(flux: ArrayLike) -> NDArray[np.float64]:
    """Flux in nJy to AB magnitude; NaN where the flux is not positive."""
    f = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, AB_ZERO_POINT_NJY - 2.5 * np.log10(f), np.nan)


@dataclass(frozen=True)
class SurveyRegion:
    """A survey area shaped like DC2's WFD: a square in (ΔRA·cos Dec, Dec).

    Attributes
    ----------
    ra_center
        RA of the central meridian, degrees.
    dec_min, dec_max
        Declination limits, degrees.
    half_width
        Half width across RA, degrees of great circle: |(RA − ra_center)·cos Dec| ≤ it.
    """

    ra_center: float
    dec_min: float
    dec_max: float
    half_width: float

    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray[np.bool_]:
        """Whether each position (degrees) lies inside the region."""
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        dra = (ra - self.ra_center + 180.0) % 360.0 - 180.0
        inside_ra = np.abs(dra * np.cos(np.radians(dec))) <= self.half_width
        return inside_ra & (dec >= self.dec_min) & (dec <= self.dec_max)

    @property
    def area_deg2(self) -> float:
        """Area in square degrees (exact for this shape)."""
        # |ΔRA| ≤ w / cos δ, so dA = 2 w / cos δ · cos δ dδ = 2 w dδ.
        return 2.0 * self.half_width * (self.dec_max - self.dec_min)

    def bounding_box(self) -> tuple[float, float, float, float]:
        """(ra_min, ra_max, dec_min, dec_max) enclosing the region, degrees."""
        widest = max(math.cos(math.radians(self.dec_min)), 1e-9)
        widest = min(widest, max(math.cos(math.radians(self.dec_max)), 1e-9))
        half_ra = self.half_width / widest
        return (
            self.ra_center - half_ra,
            self.ra_center + half_ra,
            self.dec_min,
            self.dec_max,
        )

    def distance_to_edge(self, ra: ArrayLike, dec: ArrayLike) -> NDArray[np.float64]:
        """Approximate distance (degrees) from each position to the region's edge."""
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        dra = (ra - self.ra_center + 180.0) % 360.0 - 180.0
        across = self.half_width - np.abs(dra * np.cos(np.radians(dec)))
        return np.minimum(across, np.minimum(dec - self.dec_min, self.dec_max - dec))


WFD_REGION = SurveyRegion(ra_center=61.856, dec_min=-44.33, dec_max=-27.25, half_width=8.54)
"""DC2's whole wide-fast-deep footprint (≈ 300 deg²)."""

# Smaller surveys are squares around the position DP0.1 tutorials query most
# (RA 62°, Dec −37°), so those queries return rows at every size.
_CENTER_RA, _CENTER_DEC = 62.0, -37.0

SIZES: dict[str, int] = {"tiny": 10_000, "small": 1_000_000, "medium": 10_000_000}
"""Target number of objects; ``large`` is the whole WFD footprint (≈ 140 M objects)."""


def survey_region(size: str) -> SurveyRegion:
    """The sky area simulated for a size.

    Raises
    ------
    InvalidInputError
        If ``size`` is not tiny, small, medium or large.
    """
    if size == "large":
        return WFD_REGION
    if size not in SIZES:
        raise InvalidInputError(f"unknown size {size!r}; choose one of tiny, small, medium, large")
    side = math.sqrt(SIZES[size] / OBJECT_DENSITY_PER_DEG2)
    return SurveyRegion(
        ra_center=_CENTER_RA,
        dec_min=_CENTER_DEC - side / 2,
        dec_max=_CENTER_DEC + side / 2,
        half_width=side / 2,
    )
