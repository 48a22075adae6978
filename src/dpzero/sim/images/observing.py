"""Image sizes and the visits that observe the simulated area.

Visits follow DC2's wide-fast-deep cadence in miniature: 30 s exposures, ids like
OpSim's ``obsHistID`` growing with time, random translational dithers around a
pointing centre and a random rotation per filter, airmass between 1.0 and 1.5,
seeing scattered about the band's median and degraded by airmass (X^0.6), and a sky
brightened by the Moon on some nights. Each visit's 5σ depth follows from those
conditions with Ivezić et al. (2019) eq. 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpzero.errors import InvalidInputError
from dpzero.sim.images.camera import BANDS, FILTERS, PIXEL_SCALE_ARCSEC, FilterSpec

__all__ = [
    "IMAGE_SIZES",
    "MJD_START",
    "ImageSize",
    "Visit",
    "image_size",
    "plan_visits",
]

MJD_START = 59582.0
"""First night of the survey (DC2's first WFD visit)."""

MJD_END = 61406.0
"""Last night of the five simulated years."""

AB_NJY = 31.4
"""m_AB = 31.4 − 2.5 log10(f / nJy)."""


@dataclass(frozen=True)
class ImageSize:
    """How much to render for one ``--size``.

    Attributes
    ----------
    name
        tiny, small or medium.
    detector_width, detector_height
        Pixels per detector.
    detector_gap
        Pixels between detectors.
    visits_per_band
        Visits rendered in each band.
    dither_arcsec
        Largest translational dither from the pointing centre (each axis).
    max_rotation_deg
        Largest sky rotation of a visit (uniform in ±this).
    on_patch_centre
        Point at the centre of the sky-map patch holding the survey centre (so a
        whole patch is imaged) rather than at the survey centre itself.
    background_bin
        Pixels per side of a background-model mesh cell.
    min_patch_coverage
        Coadd only the patches whose inner area the visits cover at least this much.
    """

    name: str
    detector_width: int
    detector_height: int
    detector_gap: int
    visits_per_band: int
    dither_arcsec: float
    max_rotation_deg: float
    on_patch_centre: bool
    background_bin: int
    min_patch_coverage: float


IMAGE_SIZES: dict[str, ImageSize] = {
    "tiny": ImageSize("tiny", 512, 512, 16, 1, 20.0, 90.0, False, 64, 0.0),
    "small": ImageSize("small", 2048, 2048, 40, 2, 60.0, 10.0, True, 128, 0.5),
    "medium": ImageSize("medium", 4072, 4000, 80, 3, 300.0, 90.0, True, 256, 0.25),
}
"""The image sizes of ``dpzero sim images --size``."""


def image_size(name: str) -> ImageSize:
    """The `ImageSize` called ``name``.

    Raises
    ------
    InvalidInputError
        If there is no such size.
    """
    try:
        return IMAGE_SIZES[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown image size {name!r}; choose one of {', '.join(IMAGE_SIZES)}"
        ) from None


@dataclass(frozen=True)
class Visit:
    """One 30 s exposure of the whole (reduced) focal plane.

    Attributes
    ----------
    id
        Visit id (``obsHistID``).
    band
        Band letter.
    mjd
        MJD (TAI) at mid-exposure.
    exposure_time
        Seconds.
    airmass
        Airmass at the boresight.
    seeing
        Delivered PSF FWHM, arcsec.
    psf_e1, psf_e2
        PSF ellipticity (from wind shake and optics).
    sky_mag
        Sky brightness, AB mag per arcsec².
    ra, dec
        Boresight, degrees.
    rotation
        Sky rotation angle of the focal plane, degrees.
    """

    id: int
    band: str
    mjd: float
    exposure_time: float
    airmass: float
    seeing: float
    psf_e1: float
    psf_e2: float
    sky_mag: float
    ra: float
    dec: float
    rotation: float

    @property
    def filter(self) -> FilterSpec:
        """The filter of the visit."""
        return FILTERS[self.band]

    @property
    def zero_point(self) -> float:
        """Magnitude giving one electron per second, through this visit's airmass."""
        return self.filter.zero_point - self.filter.extinction * (self.airmass - 1.0)

    @property
    def electrons_per_njy(self) -> float:
        """Electrons collected in the exposure from a 1 nJy source."""
        return self.exposure_time * 10.0 ** (-0.4 * (AB_NJY - self.zero_point))

    @property
    def sky_electrons(self) -> float:
        """Sky electrons per pixel in the exposure."""
        mag_per_pixel = self.sky_mag - 5.0 * math.log10(PIXEL_SCALE_ARCSEC)
        return self.exposure_time * 10.0 ** (-0.4 * (mag_per_pixel - self.zero_point))

    @property
    def m5(self) -> float:
        """5σ point-source depth (Ivezić et al. 2019 eq. 6)."""
        f = self.filter
        theta = self.seeing * 1.04  # θ_eff is ≈ 4 % above the FWHM for a Kolmogorov PSF
        return (
            f.single_m5
            + 0.5 * (self.sky_mag - f.sky_mag)
            + 2.5 * math.log10(f.seeing_fwhm * 1.04 / theta)
            + 1.25 * math.log10(self.exposure_time / 30.0)
            - f.extinction * (self.airmass - 1.0)
        )

    @property
    def day_obs(self) -> int:
        """Observing night as ``YYYYMMDD`` (the night's local noon-to-noon date, UTC−12)."""
        from astropy.time import Time

        return int(Time(self.mjd - 0.5, format="mjd", scale="tai").strftime("%Y%m%d"))


def plan_visits(size: ImageSize, ra: float, dec: float, seed: int) -> tuple[Visit, ...]:
    """Visits observing around a pointing centre, in time order.

    Parameters
    ----------
    size
        How many visits and how far they dither.
    ra, dec
        Pointing centre, degrees.
    seed
        Random seed; the same seed gives the same visits.

    Returns
    -------
    tuple of Visit
        ``size.visits_per_band`` visits per band, ids and dates increasing.
    """
    rng = np.random.default_rng([seed, 20_190_111])
    n = size.visits_per_band * len(BANDS)
    bands = [band for _ in range(size.visits_per_band) for band in BANDS]
    order = rng.permutation(n)
    bands = [bands[i] for i in order]
    nights = np.sort(rng.uniform(MJD_START, MJD_END, n))
    mjds = np.floor(nights) + 0.1 + rng.uniform(0.0, 0.25, n)  # Chilean nights in UTC
    ids = 1_472 + np.cumsum(rng.integers(200, 20_000, n))
    visits = []
    for i, band in enumerate(bands):
        f = FILTERS[band]
        airmass = float(1.0 + 0.5 * rng.beta(1.5, 3.0))
        seeing = float(f.seeing_fwhm * airmass**0.6 * math.exp(rng.normal(0.0, 0.12)))
        moon = float(rng.choice([0.0, 0.0, rng.uniform(0.2, 1.2)]))
        sky = f.sky_mag - moon - 0.1 * (airmass - 1.0)
        cos_dec = math.cos(math.radians(dec))
        dx, dy = rng.uniform(-size.dither_arcsec, size.dither_arcsec, 2) / 3600.0
        visits.append(
            Visit(
                id=int(ids[i]),
                band=band,
                mjd=float(mjds[i]),
                exposure_time=30.0,
                airmass=airmass,
                seeing=seeing,
                psf_e1=float(rng.normal(0.0, 0.02)),
                psf_e2=float(rng.normal(0.0, 0.02)),
                sky_mag=float(sky),
                ra=float((ra + dx / cos_dec) % 360.0),
                dec=float(dec + dy),
                rotation=float(rng.uniform(-size.max_rotation_deg, size.max_rotation_deg)),
            )
        )
    return tuple(visits)
