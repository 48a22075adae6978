"""A rings sky map like DC2's: tracts in declination rings, 7×7 patches per tract.

The layout follows the definition of the LSST ``RingsSkyMap`` with DC2's
configuration (``numRings=120``, TAN projection, 0.2″ pixels, 4000-pixel patch
interiors with a 100-pixel border, tracts overlapping by 1′), so tract and patch
numbers of any position agree with the numbers DP0.1 users know (e.g. tract 3828
is centred on RA 56.650°, Dec −36.446°). It is written with numpy only because the
C++ skymap package is not installable from PyPI.

Everything here is pure and vectorised: arrays of positions in, arrays of
tract/patch/pixel numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DC2_SKYMAP", "RingsSkyMap", "TractInfo"]


@dataclass(frozen=True)
class TractInfo:
    """Geometry of one tract: its centre and TAN projection.

    Attributes
    ----------
    tract
        Tract id.
    ring
        Ring number (0 is the southmost ring).
    ra, dec
        Centre of the tract in degrees (the projection's tangent point).
    crpix
        Pixel position (0-based) of the tangent point in the tract frame.
    """

    tract: int
    ring: int
    ra: float
    dec: float
    crpix: float


@dataclass(frozen=True)
class RingsSkyMap:
    """The rings sky map.

    Parameters
    ----------
    num_rings
        Number of declination rings between the two polar caps.
    pixel_scale_arcsec
        Tract pixel scale.
    patch_inner
        Patch interior size in pixels (patches tile the tract without overlap).
    patch_border
        Extra pixels around a patch interior in coadds.
    patches_per_side
        Patches along each side of a tract.
    ra_start
        Right ascension of the first tract of each ring, degrees.
    name
        Sky map name as registered in a Butler repository.
    """

    num_rings: int = 120
    pixel_scale_arcsec: float = 0.2
    patch_inner: int = 4000
    patch_border: int = 100
    patches_per_side: int = 7
    ra_start: float = 0.0
    name: str = "DC2"

    @property
    def ring_size(self) -> float:
        """Height of a ring in degrees."""
        return 180.0 / (self.num_rings + 1)

    @property
    def tract_size_pixels(self) -> int:
        """Side of a tract's pixel grid."""
        return self.patch_inner * self.patches_per_side

    @cached_property
    def tracts_per_ring(self) -> NDArray[np.int64]:
        """Number of tracts in each ring (index 0 is the southmost ring)."""
        h = math.radians(self.ring_size)
        counts = []
        for ring in range(self.num_rings):
            start = h * (ring + 0.5) - 0.5 * math.pi
            stop = start + h
            edge = min(abs(start), abs(stop))  # the edge nearest the equator
            counts.append(int(2.0 * math.pi * math.cos(edge) / h) + 1)
        return np.asarray(counts, dtype=np.int64)

    @cached_property
    def first_tract_of_ring(self) -> NDArray[np.int64]:
        """Id of the first tract of each ring (tract 0 is the south polar cap)."""
        return 1 + np.concatenate([[0], np.cumsum(self.tracts_per_ring)[:-1]])

    @property
    def num_tracts(self) -> int:
        """Total number of tracts, the two polar caps included."""
        return int(self.tracts_per_ring.sum()) + 2

    def tract_info(self, tract: int) -> TractInfo:
        """Centre and projection of one ring tract.

        Raises
        ------
        ValueError
            If ``tract`` is a polar cap or out of range.
        """
        if not 1 <= tract < self.num_tracts - 1:
            raise ValueError(f"tract {tract} is not a ring tract of sky map {self.name}")
        ring = int(np.searchsorted(self.first_tract_of_ring, tract, side="right") - 1)
        index = tract - int(self.first_tract_of_ring[ring])
        n = int(self.tracts_per_ring[ring])
        ra = (self.ra_start + index * 360.0 / n) % 360.0
        dec = -90.0 + self.ring_size * (ring + 1)
        crpix = (self.tract_size_pixels - 1) / 2.0
        return TractInfo(tract=tract, ring=ring, ra=ra, dec=dec, crpix=crpix)

    def find_tract(self, ra: ArrayLike, dec: ArrayLike) -> NDArray[np.int64]:
        """Tract whose inner region holds each position (degrees).

        Positions in a polar cap get tract 0 (south) or ``num_tracts - 1`` (north).
        """
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        first_ring_start = 0.5 * self.ring_size - 90.0
        ring = np.floor((dec - first_ring_start) / self.ring_size).astype(np.int64)
        south = ring < 0
        north = ring >= self.num_rings
        ring_c = np.clip(ring, 0, self.num_rings - 1)
        n = self.tracts_per_ring[ring_c]
        index = np.floor((ra - self.ra_start) % 360.0 / (360.0 / n) + 0.5).astype(np.int64) % n
        tract = self.first_tract_of_ring[ring_c] + index
        tract = np.where(south, 0, tract)
        return np.where(north, self.num_tracts - 1, tract)

    def sky_to_pixel(
        self, tract: int, ra: ArrayLike, dec: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Tract-frame pixel coordinates (0-based, x toward lower RA, y north)."""
        info = self.tract_info(tract)
        xi, eta = gnomonic_forward(info.ra, info.dec, ra, dec)
        scale = self.pixel_scale_arcsec / 3600.0
        # x grows toward lower RA: the standard sky orientation (CD1_1 = -scale).
        return info.crpix - xi / scale, info.crpix + eta / scale

    def pixel_to_sky(
        self, tract: int, x: ArrayLike, y: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Inverse of `sky_to_pixel`: degrees from tract-frame pixels."""
        info = self.tract_info(tract)
        scale = self.pixel_scale_arcsec / 3600.0
        xi = (info.crpix - np.asarray(x, dtype=np.float64)) * scale
        eta = (np.asarray(y, dtype=np.float64) - info.crpix) * scale
        return gnomonic_inverse(info.ra, info.dec, xi, eta)

    def patch_indices(
        self, x: ArrayLike, y: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Patch (x, y) indices of tract-frame pixel positions, clipped to the tract."""
        last = self.patches_per_side - 1
        px = np.clip(np.floor(np.asarray(x) / self.patch_inner), 0, last).astype(np.int64)
        py = np.clip(np.floor(np.asarray(y) / self.patch_inner), 0, last).astype(np.int64)
        return px, py

    def locate(self, ra: ArrayLike, dec: ArrayLike) -> SkyLocation:
        """Tract, patch and tract-frame pixel position of each sky position."""
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        tract = self.find_tract(ra, dec)
        x = np.empty_like(ra)
        y = np.empty_like(ra)
        for t in np.unique(tract):
            sel = tract == t
            x[sel], y[sel] = self.sky_to_pixel(int(t), ra[sel], dec[sel])
        px, py = self.patch_indices(x, y)
        return SkyLocation(tract=tract, patch_x=px, patch_y=py, x=x, y=y)

    def patch_id(self, patch_x: ArrayLike, patch_y: ArrayLike) -> NDArray[np.int64]:
        """Gen3 integer patch id, ``x + 7 y``."""
        return np.asarray(patch_x) + self.patches_per_side * np.asarray(patch_y)

    def patch_corners(self, tract: int, patch_x: int, patch_y: int) -> NDArray[np.float64]:
        """Sky corners (ra, dec) of a patch interior, counter-clockwise from (x0, y0)."""
        x0 = patch_x * self.patch_inner - 0.5
        y0 = patch_y * self.patch_inner - 0.5
        x1 = x0 + self.patch_inner
        y1 = y0 + self.patch_inner
        ra, dec = self.pixel_to_sky(tract, [x0, x1, x1, x0], [y0, y0, y1, y1])
        return np.column_stack([ra, dec])


@dataclass(frozen=True)
class SkyLocation:
    """Where positions fall on the sky map (arrays of equal length)."""

    tract: NDArray[np.int64]
    patch_x: NDArray[np.int64]
    patch_y: NDArray[np.int64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]


def gnomonic_forward(
    ra0: float, dec0: float, ra: ArrayLike, dec: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Standard coordinates (ξ east, η north, degrees) of a TAN projection at (ra0, dec0)."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    a = np.radians(np.asarray(ra, dtype=np.float64))
    d = np.radians(np.asarray(dec, dtype=np.float64))
    cos_c = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cos_c
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cos_c
    return np.degrees(xi), np.degrees(eta)


def gnomonic_inverse(
    ra0: float, dec0: float, xi: ArrayLike, eta: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sky position (degrees) of TAN standard coordinates (degrees) about (ra0, dec0)."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    x = np.radians(np.asarray(xi, dtype=np.float64))
    y = np.radians(np.asarray(eta, dtype=np.float64))
    denom = math.cos(d0) - y * math.sin(d0)
    a = a0 + np.arctan2(x, denom)
    d = np.arctan2(math.sin(d0) + y * math.cos(d0), np.hypot(x, denom))
    return np.degrees(a) % 360.0, np.degrees(d)


DC2_SKYMAP = RingsSkyMap()
"""The sky map DC2 and DP0.1 used (registered as ``DC2``)."""
