"""Pure pruning math: sky regions → HEALPix order-29 ranges → partitions, row groups, rows.

Everything here works on ``_healpix_29`` values (nested HEALPix at order 29, as HATS
stores them) and half-open ranges ``[lo, hi)`` of them. A region's ranges always cover
the region (never miss a row inside it); the query's own exact predicate removes the
few extra rows they let through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpzero.errors import InvalidInputError

__all__ = [
    "ALL_SKY",
    "Cone",
    "Polygon",
    "Region",
    "Zone",
    "coverage_ranges",
    "healpix29",
    "overlapping",
    "pixel_range",
    "rows_in_ranges",
]

_ORDER_29_CELLS = 12 * 4**29
ALL_SKY = np.array([[0, _ORDER_29_CELLS]], dtype=np.int64)
# Added to every region before covering it, so that rows on the region's edge are kept
# whatever the rounding of the exact predicate.
_EPSILON_DEG = 1e-6


@dataclass(frozen=True)
class Cone:
    """A circle on the sky: centre (deg) and radius (deg)."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ra) and math.isfinite(self.dec)):
            raise InvalidInputError(f"cone centre ({self.ra}, {self.dec}) is not finite")
        if not -90.0 <= self.dec <= 90.0:
            raise InvalidInputError(f"cone centre Dec {self.dec} is outside [-90, 90]")
        if not (math.isfinite(self.radius) and self.radius >= 0.0):
            raise InvalidInputError(f"cone radius {self.radius} must be finite and >= 0")


@dataclass(frozen=True)
class Polygon:
    """A spherical polygon with great-circle edges; the smaller of the two regions.

    ``vertices`` are (ra, dec) pairs in degrees, at least three.
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.vertices) < 3:
            raise InvalidInputError("a polygon needs at least three vertices")
        for ra, dec in self.vertices:
            if not (math.isfinite(ra) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
                raise InvalidInputError(f"polygon vertex ({ra}, {dec}) is not a sky position")


@dataclass(frozen=True)
class Zone:
    """A coordinate box: RA in [ra_min, ra_max] (through 0 when ra_min > ra_max) and Dec in
    [dec_min, dec_max], degrees."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def __post_init__(self) -> None:
        values = (self.ra_min, self.ra_max, self.dec_min, self.dec_max)
        if not all(math.isfinite(v) for v in values):
            raise InvalidInputError(f"zone bounds {values} are not finite")
        if not -90.0 <= self.dec_min <= self.dec_max <= 90.0:
            raise InvalidInputError(f"zone Dec range [{self.dec_min}, {self.dec_max}] is invalid")


Region = Cone | Polygon | Zone


def _order_for(size_deg: float) -> int:
    """HEALPix order whose cells are about a quarter of ``size_deg`` (between 3 and 16)."""
    if size_deg <= 0.0:
        return 16
    # Order-k cells are ~58.6°/2^k wide.
    order = math.ceil(math.log2(58.6 * 4.0 / size_deg))
    return max(3, min(16, order))


def _polygon_size(poly: Polygon) -> float:
    ra = np.radians([v[0] for v in poly.vertices])
    dec = np.radians([v[1] for v in poly.vertices])
    xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
    dots = np.clip(xyz @ xyz.T, -1.0, 1.0)
    return float(np.degrees(np.arccos(dots.min())))


def coverage_ranges(region: Region, *, dilate_deg: float = 0.0) -> np.ndarray:
    """Sorted, disjoint order-29 ranges ``[lo, hi)`` covering ``region`` grown by ``dilate_deg``.

    Parameters
    ----------
    region
        A `Cone` or a `Polygon`.
    dilate_deg
        Grow the region by this angle, so that every neighbour within it of a point
        in the region is covered too (pair queries).

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` int64 array.
    """
    import astropy.units as u
    from mocpy import MOC

    grow = dilate_deg + _EPSILON_DEG
    if isinstance(region, Cone):
        radius = region.radius + grow
        if radius >= 90.0:
            return ALL_SKY.copy()
        order = _order_for(radius)
        moc = MOC.from_cone(
            lon=(region.ra % 360.0) * u.deg,
            lat=region.dec * u.deg,
            radius=radius * u.deg,
            max_depth=order,
        )
    elif isinstance(region, Zone):
        return _zone_ranges(region, grow)
    else:
        size = _polygon_size(region)
        if size >= 90.0:
            return ALL_SKY.copy()
        order = _order_for(max(size, grow))
        lon = np.array([v[0] % 360.0 for v in region.vertices]) * u.deg
        lat = np.array([v[1] for v in region.vertices]) * u.deg
        moc = MOC.from_polygon(lon=lon, lat=lat, max_depth=order)
        # Cells cut by an edge are included by mocpy; growing by one cell ring makes the
        # cover safe against vertices on cell boundaries and adds the dilation.
        ring_order = min(order, _ring_order(grow))
        if ring_order < moc.max_order:
            moc = moc.degrade_to_order(ring_order)
        moc = moc.add_neighbours()
    ranges = np.asarray(moc.to_depth29_ranges, dtype=np.int64).reshape(-1, 2)
    return _merge(ranges)


def _sep(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance in degrees (haversine)."""
    r1, d1, r2, d2 = (np.radians(x) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def _zone_ranges(zone: Zone, grow: float) -> np.ndarray:
    """Cover a zone with the circumscribed cones of a grid of tiles.

    (mocpy's zone MOC keeps only cells whose centre lies inside, which would miss rows.)
    """
    import astropy.units as u
    from mocpy import MOC

    dec_min = max(-90.0, zone.dec_min - grow)
    dec_max = min(90.0, zone.dec_max + grow)
    width = (zone.ra_max - zone.ra_min) % 360.0
    if zone.ra_max - zone.ra_min >= 360.0 or (width == 0.0 and zone.ra_max != zone.ra_min):
        width = 360.0
    widest = max(abs(dec_min), abs(dec_max))
    ra_grow = grow / max(math.cos(math.radians(min(widest, 89.9))), 1e-3)
    ra_min = zone.ra_min - ra_grow
    width = min(360.0, width + 2 * ra_grow)
    n_ra = max(1, min(16, math.ceil(width / 10.0)))
    n_dec = max(1, min(16, math.ceil((dec_max - dec_min) / 10.0)))
    n_ra, n_dec = max(n_ra, 4), max(n_dec, 4)
    ra_edges = ra_min + width * np.arange(n_ra + 1) / n_ra
    dec_edges = dec_min + (dec_max - dec_min) * np.arange(n_dec + 1) / n_dec
    ra0, ra1 = ra_edges[:-1][:, None], ra_edges[1:][:, None]
    d0, d1 = dec_edges[:-1][None, :], dec_edges[1:][None, :]
    shape = (n_ra, n_dec)
    ra0, ra1, d0, d1 = (np.broadcast_to(x, shape).ravel() for x in (ra0, ra1, d0, d1))
    cra, cdec = (ra0 + ra1) / 2, (d0 + d1) / 2
    radius = np.zeros(cra.size)
    for pra, pdec in (
        (ra0, d0),
        (ra0, d1),
        (ra1, d0),
        (ra1, d1),
        (cra, d0),
        (cra, d1),
        (ra0, cdec),
        (ra1, cdec),
    ):
        radius = np.maximum(radius, _sep(cra, cdec, pra, pdec))
    radius = radius * 1.01 + _EPSILON_DEG
    if radius.max() >= 90.0:
        return ALL_SKY.copy()
    order = _order_for(float(radius.min()))
    moc = MOC.from_cones(
        lon=np.mod(cra, 360.0) * u.deg,
        lat=cdec * u.deg,
        radius=radius * u.deg,
        max_depth=order,
        union_strategy="large_cones",
    )
    return _merge(np.asarray(moc.to_depth29_ranges, dtype=np.int64).reshape(-1, 2))


def _ring_order(grow_deg: float) -> int:
    """Finest order whose cells are at least ``grow_deg`` across (one ring covers it)."""
    # Smallest cell width at order k is > 0.5 × 58.6°/2^k for all cells.
    if grow_deg <= 0.0:
        return 29
    return max(0, min(29, math.floor(math.log2(0.5 * 58.6 / grow_deg))))


def _merge(ranges: np.ndarray) -> np.ndarray:
    if ranges.shape[0] <= 1:
        return ranges
    ranges = ranges[np.argsort(ranges[:, 0], kind="stable")]
    out = [ranges[0].copy()]
    for lo, hi in ranges[1:]:
        if lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append(np.array([lo, hi]))
    return np.asarray(out, dtype=np.int64)


def pixel_range(order: int, pixel: int) -> tuple[int, int]:
    """Order-29 range ``[lo, hi)`` of HEALPix pixel ``pixel`` at ``order``."""
    shift = 2 * (29 - order)
    return pixel << shift, (pixel + 1) << shift


def overlapping(ranges: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which closed intervals ``[lo[i], hi[i]]`` meet any of the half-open ``ranges``.

    Used for partitions (``hi`` = last cell) and row groups (min/max statistics).
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if ranges.shape[0] == 0:
        return np.zeros(lo.shape, dtype=bool)
    # The first range whose end lies above lo: it meets [lo, hi] iff it starts at or
    # below hi.
    i = np.searchsorted(ranges[:, 1], lo, side="right")
    inside = i < ranges.shape[0]
    starts = np.where(inside, ranges[np.minimum(i, ranges.shape[0] - 1), 0], np.iinfo(np.int64).max)
    return inside & (starts <= hi)


def contained(ranges: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which closed intervals ``[lo[i], hi[i]]`` lie wholly inside one of ``ranges``."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if ranges.shape[0] == 0:
        return np.zeros(lo.shape, dtype=bool)
    i = np.minimum(np.searchsorted(ranges[:, 1], lo, side="right"), ranges.shape[0] - 1)
    return (ranges[i, 0] <= lo) & (hi < ranges[i, 1])


def rows_in_ranges(ranges: np.ndarray, hp29: np.ndarray) -> np.ndarray:
    """Mask of the ``_healpix_29`` values lying in one of ``ranges``."""
    return overlapping(ranges, hp29, hp29)


def healpix29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """``_healpix_29`` of positions in degrees, as HATS computes it."""
    from hats.pixel_math.spatial_index import compute_spatial_index

    return np.asarray(
        compute_spatial_index(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)),
        dtype=np.int64,
    )
