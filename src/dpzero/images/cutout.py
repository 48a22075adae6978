"""SODA cutout regions and the pixel box of an image that holds one (pure functions).

A SODA request names its region with one of ``CIRCLE="ra dec radius"``,
``POLYGON="ra1 dec1 ra2 dec2 …"`` or ``POS="CIRCLE …" | "RANGE ra1 ra2 dec1 dec2" |
"POLYGON …"`` (degrees, ICRS). `parse_region` turns the parameters into a region;
`cutout_box` finds the smallest box of whole pixels that holds the region, clipped to
the image, so the Butler reads only those pixels (its ``bbox`` parameter).

How the box is found: the region's outline is sampled densely on the sphere (fine
enough that the straight chords between samples stray less than 1/1000 pixel from
the outline; a circle's samples lie on its circumscribed polygon, so the box always
holds the whole circle), the samples are taken to pixels through the image's WCS, and the box covers
every pixel a sample falls in. Corners of the image that lie inside the region are
added, so a region larger than the image gives the whole image.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy.wcs import WCS
from numpy.typing import NDArray

from dpzero.images.faults import UsageFault
from dpzero.repo.exposure import Box

__all__ = [
    "REGION_PARAMETERS",
    "CircleRegion",
    "PolygonRegion",
    "RangeRegion",
    "SkyRegion",
    "cutout_box",
    "parse_region",
]

REGION_PARAMETERS = ("CIRCLE", "POLYGON", "POS")
"""SODA parameters that name a spatial region (one of them per cutout)."""

_MAX_CHORD_ERROR_PIX = 0.001  # largest gap between the sampled outline and the true one
_MAX_STEP_PIX = 64.0  # straight edges: short enough for a distortion's curvature
_MAX_SAMPLES = 200_000

Floats = NDArray[np.float64]


class SkyRegion(Protocol):
    """A region of the sky a cutout is asked for."""

    def contains(self, ra: Floats, dec: Floats) -> NDArray[np.bool_]:
        """Whether each position (degrees) lies in the region."""
        ...

    def outline(self, step: float) -> tuple[Floats, Floats]:
        """Points along the region's edge, at most ``step`` degrees apart."""
        ...

    def curvature_radius(self) -> float:
        """Smallest radius of curvature of the edge on the sky, degrees (inf: straight)."""
        ...

    def describe(self) -> str:
        """The region as a SODA ``POS`` value."""
        ...


def _unit(ra: Floats | float, dec: Floats | float) -> Floats:
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    return np.stack(
        [np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)], axis=-1
    )


def _lonlat(vectors: Floats) -> tuple[Floats, Floats]:
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    ra = np.degrees(np.arctan2(y, x)) % 360.0
    dec = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return ra, dec


def _great_circle_arc(a: Floats, b: Floats, step: float) -> Floats:
    """Unit vectors from ``a`` to ``b`` (excluded) along the shorter great circle."""
    angle = math.degrees(math.acos(float(np.clip(np.dot(a, b), -1.0, 1.0))))
    n = max(1, min(_MAX_SAMPLES, math.ceil(angle / step)))
    t = np.arange(n) / n
    if angle < 1e-12:
        return a[None, :]
    theta = math.radians(angle)
    # Spherical linear interpolation.
    return (np.sin((1 - t) * theta)[:, None] * a + np.sin(t * theta)[:, None] * b) / math.sin(theta)


@dataclass(frozen=True)
class CircleRegion:
    """A cone: centre (ra, dec) and radius, degrees."""

    ra: float
    dec: float
    radius: float

    def contains(self, ra: Floats, dec: Floats) -> NDArray[np.bool_]:
        """Whether each position lies within ``radius`` of the centre (inclusive)."""
        cos_distance = _unit(ra, dec) @ _unit(self.ra, self.dec)
        return cos_distance >= math.cos(math.radians(self.radius)) - 1e-15

    def outline(self, step: float) -> tuple[Floats, Floats]:
        """Points on the circle, at most ``step`` degrees apart."""
        circumference = 360.0 * math.sin(math.radians(min(self.radius, 90.0)))
        n = max(16, min(_MAX_SAMPLES, math.ceil(circumference / step)))
        bearing = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        d0 = math.radians(self.dec)
        # Vertices of the circumscribed polygon, so the chords hold the whole circle.
        r = math.radians(self.radius)
        if self.radius < 90.0:
            r = math.atan(math.tan(r) / math.cos(math.pi / n))
        sin_dec = math.sin(d0) * math.cos(r) + math.cos(d0) * math.sin(r) * np.cos(bearing)
        dec = np.arcsin(np.clip(sin_dec, -1.0, 1.0))
        ra = math.radians(self.ra) + np.arctan2(
            np.sin(bearing) * math.sin(r) * math.cos(d0), math.cos(r) - math.sin(d0) * sin_dec
        )
        return np.degrees(ra) % 360.0, np.degrees(dec)

    def curvature_radius(self) -> float:
        """The circle's own radius (on the sphere, its geodesic curvature radius)."""
        return math.degrees(math.tan(math.radians(min(self.radius, 89.999))))

    def describe(self) -> str:
        """``CIRCLE ra dec radius``."""
        return f"CIRCLE {self.ra:.10g} {self.dec:.10g} {self.radius:.10g}"


@dataclass(frozen=True)
class PolygonRegion:
    """A polygon with great-circle edges; vertices ``((ra, dec), …)`` in degrees.

    Either winding order is accepted: the region is the smaller of the two the
    vertices bound (it must fit in a hemisphere). Non-convex polygons work too.
    """

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.vertices) < 3:
            raise UsageFault("POLYGON needs at least 3 vertices")
        vectors = self._vectors()
        centre = vectors.sum(axis=0)
        norm = float(np.linalg.norm(centre))
        if norm < 1e-12 or np.any(vectors @ (centre / norm) <= 1e-9):
            raise UsageFault("POLYGON must fit within a hemisphere")

    def _vectors(self) -> Floats:
        ra = np.array([v[0] for v in self.vertices], dtype=np.float64)
        dec = np.array([v[1] for v in self.vertices], dtype=np.float64)
        return _unit(ra, dec)

    def _gnomonic(self, vectors: Floats) -> tuple[Floats, Floats, NDArray[np.bool_]]:
        """Positions on the plane tangent at the vertices' centre (great circles stay
        straight lines there), and whether each point is on the near hemisphere."""
        corners = self._vectors()
        centre = corners.sum(axis=0)
        centre /= np.linalg.norm(centre)
        east = np.cross([0.0, 0.0, 1.0], centre)
        if np.linalg.norm(east) < 1e-12:  # centred on a pole
            east = np.array([0.0, 1.0, 0.0])
        east /= np.linalg.norm(east)
        north = np.cross(centre, east)
        depth = vectors @ centre
        near = depth > 1e-12
        safe = np.where(near, depth, 1.0)
        return (vectors @ east) / safe, (vectors @ north) / safe, near

    def contains(self, ra: Floats, dec: Floats) -> NDArray[np.bool_]:
        """Whether each position lies inside (even-odd rule on the tangent plane)."""
        px, py, near = self._gnomonic(_unit(np.atleast_1d(ra), np.atleast_1d(dec)))
        vx, vy, _ = self._gnomonic(self._vectors())
        inside = np.zeros(px.shape, dtype=bool)
        n = len(vx)
        for i in range(n):
            x1, y1, x2, y2 = vx[i], vy[i], vx[(i + 1) % n], vy[(i + 1) % n]
            crosses = (y1 > py) != (y2 > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            inside ^= crosses & (px < x_at)
        return inside & near

    def outline(self, step: float) -> tuple[Floats, Floats]:
        """Points along the edges, at most ``step`` degrees apart."""
        vectors = self._vectors()
        arcs = [
            _great_circle_arc(vectors[i], vectors[(i + 1) % len(vectors)], step)
            for i in range(len(vectors))
        ]
        return _lonlat(np.concatenate(arcs))

    def curvature_radius(self) -> float:
        """Great-circle edges are straight in a tangent-plane WCS."""
        return math.inf

    def describe(self) -> str:
        """``POLYGON ra1 dec1 …``."""
        return "POLYGON " + " ".join(f"{ra:.10g} {dec:.10g}" for ra, dec in self.vertices)


@dataclass(frozen=True)
class RangeRegion:
    """A box in RA and Dec, degrees; ``ra_min > ra_max`` wraps through RA 0."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    @property
    def _ra_span(self) -> float:
        span = (self.ra_max - self.ra_min) % 360.0
        return 360.0 if span == 0.0 and self.ra_max != self.ra_min else span

    def contains(self, ra: Floats, dec: Floats) -> NDArray[np.bool_]:
        """Whether each position lies in the RA and Dec intervals (inclusive)."""
        in_ra = (np.asarray(ra) - self.ra_min) % 360.0 <= self._ra_span
        return in_ra & (np.asarray(dec) >= self.dec_min) & (np.asarray(dec) <= self.dec_max)

    def outline(self, step: float) -> tuple[Floats, Floats]:
        """Points along the two meridians and the two parallels of the edge."""
        span = self._ra_span
        ras, decs = [], []
        for dec in (self.dec_min, self.dec_max):
            circumference = span * math.cos(math.radians(dec))
            n = max(2, min(_MAX_SAMPLES, math.ceil(circumference / step) + 1))
            ras.append(self.ra_min + np.linspace(0.0, span, n))
            decs.append(np.full(n, dec))
        if span < 360.0:
            n = max(2, min(_MAX_SAMPLES, math.ceil((self.dec_max - self.dec_min) / step) + 1))
            for ra in (self.ra_min, self.ra_min + span):
                ras.append(np.full(n, ra))
                decs.append(np.linspace(self.dec_min, self.dec_max, n))
        return np.concatenate(ras) % 360.0, np.concatenate(decs)

    def curvature_radius(self) -> float:
        """Parallels are small circles of radius ``90 - |dec|``."""
        highest = max(abs(self.dec_min), abs(self.dec_max))
        return math.degrees(math.tan(math.radians(max(90.0 - highest, 1e-6))))

    def describe(self) -> str:
        """``RANGE ra1 ra2 dec1 dec2``."""
        return (
            f"RANGE {self.ra_min:.10g} {self.ra_max:.10g} {self.dec_min:.10g} {self.dec_max:.10g}"
        )


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?inf$", re.IGNORECASE)


def _numbers(parameter: str, text: str) -> list[float]:
    words = text.replace(",", " ").split()
    values = []
    for word in words:
        if not _NUMBER.match(word):
            raise UsageFault(f"{parameter} must hold numbers (degrees), not {word!r}")
        values.append(float(word))
    return values


def _check_position(parameter: str, ra: float, dec: float) -> tuple[float, float]:
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise UsageFault(f"{parameter}: positions must be finite")
    if not -90.0 <= dec <= 90.0:
        raise UsageFault(f"{parameter}: declination {dec:g} is outside [-90, 90]")
    return ra % 360.0, dec


def _circle(parameter: str, values: Sequence[float]) -> CircleRegion:
    if len(values) != 3:
        raise UsageFault(f"{parameter} needs 3 numbers: ra dec radius (degrees)")
    ra, dec = _check_position(parameter, values[0], values[1])
    radius = values[2]
    if not (math.isfinite(radius) and 0.0 < radius <= 180.0):
        raise UsageFault(f"{parameter}: the radius must be in (0, 180] degrees, not {radius:g}")
    return CircleRegion(ra, dec, radius)


def _polygon(parameter: str, values: Sequence[float]) -> PolygonRegion:
    if len(values) < 6 or len(values) % 2:
        raise UsageFault(
            f"{parameter} needs an even count of at least 6 numbers: ra1 dec1 ra2 dec2 ra3 dec3 …"
        )
    vertices = tuple(
        _check_position(parameter, values[i], values[i + 1]) for i in range(0, len(values), 2)
    )
    try:
        return PolygonRegion(vertices)
    except UsageFault as exc:
        raise UsageFault(f"{parameter}: {exc.detail}") from None


def _range(parameter: str, values: Sequence[float]) -> RangeRegion:
    if len(values) != 4:
        raise UsageFault(f"{parameter} RANGE needs 4 numbers: ra1 ra2 dec1 dec2")
    ra1, ra2, dec1, dec2 = values
    if math.isinf(ra1) or math.isinf(ra2):
        if not (ra1 == -math.inf and ra2 == math.inf):
            raise UsageFault(f"{parameter}: an open RA range must be -Inf +Inf")
        ra1, ra2 = 0.0, 360.0
    if math.isnan(ra1) or math.isnan(ra2) or math.isnan(dec1) or math.isnan(dec2):
        raise UsageFault(f"{parameter}: range limits must be numbers")
    dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
    if dec1 > dec2:
        raise UsageFault(f"{parameter}: the Dec range {dec1:g} .. {dec2:g} is empty")
    if ra2 - ra1 >= 360.0:
        return RangeRegion(0.0, 360.0, dec1, dec2)
    return RangeRegion(ra1 % 360.0, ra2 % 360.0, dec1, dec2)


def parse_region(parameters: Mapping[str, Sequence[str]]) -> SkyRegion:
    """The region of a SODA request.

    Parameters
    ----------
    parameters
        Request parameters, keys upper-cased, each with its list of values.

    Returns
    -------
    SkyRegion
        The one region named by ``CIRCLE``, ``POLYGON`` or ``POS``.

    Raises
    ------
    UsageFault
        If no region or more than one is given, or a value is malformed.
    """
    given = [(name, value) for name in REGION_PARAMETERS for value in parameters.get(name, ())]
    if not given:
        raise UsageFault("no region given: use CIRCLE, POLYGON or POS")
    if len(given) > 1:
        names = ", ".join(name for name, _ in given)
        raise UsageFault(f"one region per request, got {len(given)} ({names})")
    name, text = given[0]
    if name == "CIRCLE":
        return _circle(name, _numbers(name, text))
    if name == "POLYGON":
        return _polygon(name, _numbers(name, text))
    shape, _, rest = text.strip().partition(" ")
    shape = shape.upper()
    if shape == "CIRCLE":
        return _circle("POS CIRCLE", _numbers("POS", rest))
    if shape == "RANGE":
        return _range("POS", _numbers("POS", rest))
    if shape == "POLYGON":
        return _polygon("POS POLYGON", _numbers("POS", rest))
    raise UsageFault(f"POS must start with CIRCLE, RANGE or POLYGON, not {shape or text!r}")


def _pixel_scale_deg(wcs: WCS) -> float:
    scales = wcs.proj_plane_pixel_scales()
    return float(min(abs(float(getattr(s, "value", s))) for s in scales))


def cutout_box(region: SkyRegion, wcs: WCS, image: Box) -> Box:
    """The smallest box of whole pixels holding ``region``, clipped to the image.

    Parameters
    ----------
    region
        Region asked for.
    wcs
        WCS of the full image: maps its arrays' 0-based indices to the sky.
    image
        The image's box in its parent frame (arrays index ``x - image.x0``).

    Returns
    -------
    Box
        Parent-frame box within ``image``, never empty.

    Raises
    ------
    UsageFault
        If the region does not overlap the image.
    """
    nx, ny = image.width, image.height
    scale = _pixel_scale_deg(wcs)
    curvature_pix = region.curvature_radius() / scale
    step_pix = min(_MAX_STEP_PIX, math.sqrt(8.0 * _MAX_CHORD_ERROR_PIX * curvature_pix))
    ra, dec = region.outline(max(step_pix, 0.05) * scale)

    centre_ra, centre_dec = wcs.all_pix2world([(nx - 1) / 2], [(ny - 1) / 2], 0)
    centre = _unit(centre_ra, centre_dec)[0]
    near = _unit(ra, dec) @ centre > math.cos(math.radians(80.0))  # TAN diverges at 90°
    xs, ys = wcs.all_world2pix(ra[near], dec[near], 0)
    finite = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[finite], ys[finite]

    corner_x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    corner_y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    corner_ra, corner_dec = wcs.all_pix2world(corner_x, corner_y, 0)
    inside_corners = region.contains(corner_ra, corner_dec)
    on_image = (xs >= -0.5) & (xs <= nx - 0.5) & (ys >= -0.5) & (ys <= ny - 0.5)
    if not (on_image.any() or inside_corners.any()):
        raise UsageFault(f"region does not overlap the image: {region.describe()}")
    all_x = np.concatenate([xs, corner_x[inside_corners]])
    all_y = np.concatenate([ys, corner_y[inside_corners]])
    # Pixel i spans [i - 0.5, i + 0.5); clip to the image.
    x_lo = max(0, math.floor(float(all_x.min()) + 0.5))
    x_hi = min(nx - 1, math.floor(float(all_x.max()) + 0.5))
    y_lo = max(0, math.floor(float(all_y.min()) + 0.5))
    y_hi = min(ny - 1, math.floor(float(all_y.max()) + 0.5))
    x_lo, y_lo = min(x_lo, nx - 1), min(y_lo, ny - 1)
    x_hi, y_hi = max(x_hi, x_lo), max(y_hi, y_lo)
    return Box(image.x0 + x_lo, image.y0 + y_lo, x_hi - x_lo + 1, y_hi - y_lo + 1)
