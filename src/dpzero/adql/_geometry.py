"""Exact spherical geometry for ADQL regions: pure functions and frozen values.

All angles are in degrees, positions are (ra, dec) on the unit sphere, and every
edge is a great-circle arc. Conventions:

- A CIRCLE holds the points whose great-circle distance to the centre is at most
  the radius (the boundary is inside).
- A POLYGON's interior is the smaller of the two regions its edges bound, whatever
  the order of the vertices (so users need not know an orientation convention).
  Edges must be shorter than 180 degrees and must not cross each other.
- A BOX is the STC-S box: a four-sided polygon centred on (ra, dec) whose sides are
  great circles, with side midpoints ``width/2`` east-west and ``height/2``
  north-south of the centre along the great circles through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dpzero.adql._errors import AdqlError

__all__ = [
    "AdqlGeometryError",
    "Circle",
    "Polygon",
    "RaDecRange",
    "angular_separation",
    "box_polygon",
    "region_contains",
    "regions_intersect",
    "unit_vectors",
]


class AdqlGeometryError(AdqlError):
    """A region in a query is not a valid region on the sphere."""

    code = "adql_geometry"


def unit_vectors(ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
    """Unit vectors (..., 3) of positions given in degrees."""
    a = np.radians(np.asarray(ra, dtype=float))
    d = np.radians(np.asarray(dec, dtype=float))
    cd = np.cos(d)
    return np.stack([cd * np.cos(a), cd * np.sin(a), np.sin(d)], axis=-1)


def _to_radec(v: np.ndarray) -> tuple[float, float]:
    ra = math.degrees(math.atan2(v[1], v[0])) % 360.0
    dec = math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))
    return ra, dec


def angular_separation(
    ra1: np.ndarray | float,
    dec1: np.ndarray | float,
    ra2: np.ndarray | float,
    dec2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in degrees (Vincenty's formula, exact at all distances)."""
    a1, d1, a2, d2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    da = a2 - a1
    num = np.hypot(
        np.cos(d2) * np.sin(da), np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(da)
    )
    den = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(da)
    return np.degrees(np.arctan2(num, den))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``numpy.cross`` of two 3-vectors, the same arithmetic without its ~15 µs of
    array handling (polygon planning calls it a few dozen times)."""
    a0, a1, a2 = a.tolist()
    b0, b1, b2 = b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _check_position(ra: float, dec: float) -> None:
    if not (math.isfinite(ra) and math.isfinite(dec)) or abs(dec) > 90:
        raise AdqlGeometryError(f"({ra}, {dec}) is not a position on the sky")


@dataclass(frozen=True)
class Circle:
    """A cone: centre (ra, dec) and radius, in degrees."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        _check_position(self.ra, self.dec)
        if not math.isfinite(self.radius) or self.radius < 0:
            raise AdqlGeometryError(f"a circle's radius must be >= 0, not {self.radius}")

    def contains(self, ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
        """Whether positions lie in the circle (haversine test, boundary included)."""
        if self.radius >= 180:
            return np.ones(np.shape(np.asarray(ra, dtype=float)), dtype=bool)
        d1 = np.radians(np.asarray(dec, dtype=float))
        d0 = math.radians(self.dec)
        hav = (
            np.sin((d1 - d0) / 2) ** 2
            + np.cos(d1)
            * math.cos(d0)
            * np.sin(np.radians(np.asarray(ra, dtype=float) - self.ra) / 2) ** 2
        )
        return hav <= math.sin(math.radians(self.radius) / 2) ** 2

    @property
    def area(self) -> float:
        """Area in square degrees."""
        r = math.radians(min(self.radius, 180.0))
        return 2 * math.pi * (1 - math.cos(r)) * (180 / math.pi) ** 2

    @property
    def centroid(self) -> tuple[float, float]:
        """The centre."""
        return (self.ra % 360.0, self.dec)

    def dec_range(self) -> tuple[float, float]:
        """Smallest and largest declination of the circle's points."""
        return (max(-90.0, self.dec - self.radius), min(90.0, self.dec + self.radius))


@dataclass(frozen=True)
class Polygon:
    """A spherical polygon: vertices (ra, dec) in degrees joined by great-circle arcs."""

    vertices: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.vertices) < 3:
            raise AdqlGeometryError("a polygon needs at least three vertices")
        for ra, dec in self.vertices:
            _check_position(ra, dec)
        v = self._raw
        cross = np.linalg.norm(np.cross(v, np.roll(v, -1, axis=0)), axis=1)
        for i in np.flatnonzero(cross < 1e-15)[:1].tolist():
            raise AdqlGeometryError(
                "a polygon edge joins identical or opposite vertices "
                f"{self.vertices[i]} and {self.vertices[(i + 1) % len(v)]}"
            )
        if not math.isfinite(self._left_area) or self._left_area <= 0:
            raise AdqlGeometryError("the polygon is degenerate")

    @cached_property
    def _raw(self) -> np.ndarray:
        return unit_vectors([p[0] for p in self.vertices], [p[1] for p in self.vertices])

    @cached_property
    def _turns(self) -> np.ndarray:
        v = self._raw
        prev, nxt = np.roll(v, 1, axis=0), np.roll(v, -1, axis=0)
        t_in = np.cross(np.cross(prev, v), v)
        t_out = np.cross(np.cross(v, nxt), v)
        t_in /= np.linalg.norm(t_in, axis=1, keepdims=True)
        t_out /= np.linalg.norm(t_out, axis=1, keepdims=True)
        sin = np.einsum("ij,ij->i", np.cross(t_in, t_out), v)
        cos = np.einsum("ij,ij->i", t_in, t_out)
        return np.arctan2(sin, cos)

    @cached_property
    def _left_area(self) -> float:
        return float(2 * math.pi - self._turns.sum())

    @cached_property
    def oriented(self) -> np.ndarray:
        """Unit vectors of the vertices, ordered so that the interior is on the left."""
        return self._raw if self._left_area <= 2 * math.pi else self._raw[::-1].copy()

    @cached_property
    def is_convex(self) -> bool:
        """Whether every turn, going round with the interior on the left, is a left turn."""
        turns = self._turns if self._left_area <= 2 * math.pi else -self._turns
        return bool(np.all(turns > 0))

    @cached_property
    def edge_normals(self) -> np.ndarray:
        """Unit normals (n, 3) of the oriented edges; inside means ``normal . p >= 0``
        for every edge when the polygon is convex."""
        v = self.oriented
        n = np.cross(v, np.roll(v, -1, axis=0))
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    @property
    def area(self) -> float:
        """Area of the interior in square degrees."""
        left = self._left_area
        sr = left if left <= 2 * math.pi else 4 * math.pi - left
        return sr * (180 / math.pi) ** 2

    @cached_property
    def gnomonic(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Tangent point, plane basis and projected vertices (n, 2) for the
        crossing-number test of a non-convex polygon.

        Raises
        ------
        AdqlGeometryError
            If the polygon does not fit in an open hemisphere.
        """
        v = self.oriented
        centre = v.sum(axis=0)
        norm = np.linalg.norm(centre)
        if norm < 1e-12 or np.min(v @ (centre / norm)) <= 1e-9:
            raise AdqlGeometryError(
                "a non-convex polygon must fit within a hemisphere; split it into parts"
            )
        centre = centre / norm
        e1 = np.cross([0.0, 0.0, 1.0], centre)
        if np.linalg.norm(e1) < 1e-9:
            e1 = np.array([1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(centre, e1)
        w = v @ centre
        xy = np.stack([(v @ e1) / w, (v @ e2) / w], axis=1)
        return centre, e1, e2, xy

    def contains(self, ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
        """Whether positions lie in the polygon (boundary included for convex ones)."""
        p = unit_vectors(ra, dec)
        if self.is_convex:
            # Vertices lie on their own edges only up to rounding, which short edges
            # amplify: allow 1e-12 rad (0.2 micro-arcsec).
            return np.all(p @ self.edge_normals.T >= -1e-12, axis=-1)
        centre, e1, e2, xy = self.gnomonic
        w = p @ centre
        with np.errstate(divide="ignore", invalid="ignore"):
            px, py = (p @ e1) / w, (p @ e2) / w
        inside = np.zeros(np.shape(w), dtype=bool)
        x2, y2 = np.roll(xy[:, 0], -1), np.roll(xy[:, 1], -1)
        for x1, y1, xb, yb in zip(xy[:, 0], xy[:, 1], x2, y2, strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                crosses = ((y1 > py) != (yb > py)) & (px < (xb - x1) * (py - y1) / (yb - y1) + x1)
            inside ^= crosses
        return inside & (w > 0)

    @property
    def centroid(self) -> tuple[float, float]:
        """Area-weighted centre of a fan of spherical triangles from the first vertex."""
        v = self.oriented
        total = np.zeros(3)
        for i in range(1, len(v) - 1):
            a, b, c = v[0], v[i], v[i + 1]
            det = float(np.dot(a, np.cross(b, c)))
            excess = 2 * math.atan2(det, 1 + a @ b + b @ c + c @ a)
            total += excess * (a + b + c) / np.linalg.norm(a + b + c)
        if np.linalg.norm(total) < 1e-15:
            total = v.sum(axis=0)
        return _to_radec(total / np.linalg.norm(total))

    def dec_range(self) -> tuple[float, float]:
        """Smallest and largest declination of the polygon's points (exact)."""
        v = self.oriented
        z = list(v[:, 2])
        for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
            n = _cross(a, b)
            n /= np.linalg.norm(n)
            top = np.array([0.0, 0.0, 1.0]) - n[2] * n
            if np.linalg.norm(top) < 1e-15:
                continue
            top /= np.linalg.norm(top)
            for extreme in (top, -top):
                if np.dot(_cross(a, extreme), n) >= 0 and np.dot(_cross(extreme, b), n) >= 0:
                    z.append(extreme[2])
        low, high = min(z), max(z)
        if self.contains(0.0, 90.0):
            high = 1.0
        if self.contains(0.0, -90.0):
            low = -1.0
        as_dec = [math.degrees(math.asin(max(-1.0, min(1.0, x)))) for x in (low, high)]
        return as_dec[0], as_dec[1]

    def distance_to(self, ra: float, dec: float) -> float:
        """Distance in degrees from a position to the polygon (0 inside)."""
        if bool(self.contains(ra, dec)):
            return 0.0
        return self.boundary_distance(ra, dec)

    def boundary_distance(self, ra: float, dec: float) -> float:
        """Distance in degrees from a position to the nearest point of an edge."""
        p = unit_vectors(ra, dec)
        best = math.pi
        v = self.oriented
        for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
            n = np.cross(a, b)
            n /= np.linalg.norm(n)
            foot = p - (p @ n) * n
            if np.linalg.norm(foot) > 1e-15:
                foot /= np.linalg.norm(foot)
                if np.dot(np.cross(a, foot), n) >= 0 and np.dot(np.cross(foot, b), n) >= 0:
                    best = min(best, math.asin(min(1.0, abs(float(p @ n)))))
            for end in (a, b):
                best = min(best, math.atan2(np.linalg.norm(np.cross(p, end)), p @ end))
        return math.degrees(best)

    def intersects_polygon(self, other: Polygon) -> bool:
        """Whether two polygons share a point (edge crossing or one inside the other)."""
        if any(bool(other.contains(ra, dec)) for ra, dec in self.vertices):
            return True
        if any(bool(self.contains(ra, dec)) for ra, dec in other.vertices):
            return True
        return self.edges_cross(other)

    def edges_cross(self, other: Polygon) -> bool:
        """Whether an edge of this polygon crosses or touches an edge of ``other``."""
        return any(
            _arcs_cross(a, b, c, d)
            for a, b in _edges(self.oriented)
            for c, d in _edges(other.oriented)
        )

    def contains_polygon(self, other: Polygon) -> bool:
        """Whether ``other`` lies inside this polygon (edges may touch)."""
        inside = all(bool(self.contains(ra, dec)) for ra, dec in other.vertices)
        if not inside:
            return False
        if self.is_convex:
            return True
        # a non-convex polygon can hold every vertex of another yet cut its edges
        return not any(
            bool(other.contains(ra, dec)) and not _on_boundary(self, ra, dec)
            for ra, dec in self.vertices
        ) and not self._edges_cross_strictly(other)

    def _edges_cross_strictly(self, other: Polygon) -> bool:
        return any(
            _arcs_cross(a, b, c, d, strict=True)
            for a, b in _edges(self.oriented)
            for c, d in _edges(other.oriented)
        )


def _edges(v: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(v[i], v[(i + 1) % len(v)]) for i in range(len(v))]


def _arcs_cross(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, strict: bool = False
) -> bool:
    """Whether arcs a-b and c-d share a point (strictly inside both, if ``strict``)."""
    n1, n2 = np.cross(a, b), np.cross(c, d)
    line = np.cross(n1, n2)
    if np.linalg.norm(line) < 1e-15:
        # Both arcs on one great circle: they share a point when an end of one lies
        # on the other (a polygon against itself, neighbours sharing an edge).
        if strict:
            return False

        def on(x: np.ndarray, p: np.ndarray, q: np.ndarray, n: np.ndarray) -> bool:
            return bool(np.dot(np.cross(p, x), n) >= -1e-15 and np.dot(np.cross(x, q), n) >= -1e-15)

        return any(on(x, a, b, n1) for x in (c, d)) or any(on(x, c, d, n2) for x in (a, b))
    line /= np.linalg.norm(line)
    tolerance = 1e-12 if strict else 0.0
    for x in (line, -line):
        on_first = (
            np.dot(np.cross(a, x), n1) >= tolerance and np.dot(np.cross(x, b), n1) >= tolerance
        )
        on_second = (
            np.dot(np.cross(c, x), n2) >= tolerance and np.dot(np.cross(x, d), n2) >= tolerance
        )
        if on_first and on_second:
            return True
    return False


def _on_boundary(polygon: Polygon, ra: float, dec: float) -> bool:
    return polygon.boundary_distance(ra, dec) < 1e-9


@dataclass(frozen=True)
class RaDecRange:
    """A coordinate box: ra in [ra_min, ra_max] (wrapping through 0 when
    ra_min > ra_max) and dec in [dec_min, dec_max], in degrees."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float


def box_polygon(ra: float, dec: float, width: float, height: float) -> Polygon:
    """The STC-S box centred on (ra, dec) as a polygon (see the module notes).

    Raises
    ------
    AdqlGeometryError
        For a non-positive size or one of 180 degrees or more.
    """
    _check_position(ra, dec)
    if not (0 < width < 180 and 0 < height < 180):
        raise AdqlGeometryError(
            f"a box's width and height must lie between 0 and 180 degrees, not {width}, {height}"
        )
    c = unit_vectors(ra, dec)
    a = math.radians(ra)
    east = np.array([-math.sin(a), math.cos(a), 0.0])
    north = np.cross(c, east)
    hw, hh = math.radians(width / 2), math.radians(height / 2)
    # Side great circles: through the midpoint m, containing the direction along the side.
    sides = []
    for m, along in (
        (math.cos(hh) * c + math.sin(hh) * north, east),  # north side
        (math.cos(hw) * c - math.sin(hw) * east, north),  # west side (lower ra)
        (math.cos(hh) * c - math.sin(hh) * north, east),  # south side
        (math.cos(hw) * c + math.sin(hw) * east, north),  # east side
    ):
        along = along - np.dot(along, m) * m
        sides.append(np.cross(m, along))
    corners = []
    for i in range(4):
        x = np.cross(sides[i], sides[(i + 1) % 4])
        x /= np.linalg.norm(x)
        if np.dot(x, c) < 0:
            x = -x
        corners.append(_to_radec(x))
    return Polygon(tuple(corners))


def region_contains(outer: Circle | Polygon, inner: Circle | Polygon) -> bool:
    """Whether region ``inner`` lies inside region ``outer`` (boundaries may touch)."""
    if isinstance(outer, Circle) and isinstance(inner, Circle):
        d = float(angular_separation(outer.ra, outer.dec, inner.ra, inner.dec))
        return d + inner.radius <= outer.radius
    if isinstance(outer, Circle) and isinstance(inner, Polygon):
        return bool(all(outer.contains(ra, dec) for ra, dec in inner.vertices)) and (
            outer.radius >= 90 or not inner.contains(outer.ra + 180, -outer.dec)
        )
    if isinstance(outer, Polygon) and isinstance(inner, Polygon):
        return outer.contains_polygon(inner)
    assert isinstance(outer, Polygon) and isinstance(inner, Circle)
    return bool(outer.contains(inner.ra, inner.dec)) and (
        outer.boundary_distance(inner.ra, inner.dec) >= inner.radius
    )


def regions_intersect(a: Circle | Polygon, b: Circle | Polygon) -> bool:
    """Whether two regions share a point."""
    if isinstance(a, Circle) and isinstance(b, Circle):
        d = float(angular_separation(a.ra, a.dec, b.ra, b.dec))
        return d <= a.radius + b.radius
    if isinstance(a, Polygon) and isinstance(b, Polygon):
        return a.intersects_polygon(b)
    circle, polygon = (a, b) if isinstance(a, Circle) else (b, a)
    assert isinstance(circle, Circle) and isinstance(polygon, Polygon)
    return polygon.distance_to(circle.ra, circle.dec) <= circle.radius


Point = tuple[float, float]
"""A position (ra, dec) in degrees, as a region-valued column may hold one."""

Region = Circle | Polygon | Point

_STCS_WORDS = {
    "ICRS",
    "J2000",
    "FK5",
    "UNKNOWNFRAME",
    "GEOCENTER",
    "BARYCENTER",
    "HELIOCENTER",
    "TOPOCENTER",
    "UNKNOWNREFPOS",
    "SPHERICAL2",
}


def parse_stcs(text: str) -> Region:
    """A region written as an STC-S string, as ObsCore's ``s_region`` holds it.

    ``POLYGON ICRS ra1 dec1 ra2 dec2 ...``, ``CIRCLE ICRS ra dec r``,
    ``BOX ICRS ra dec width height`` and ``POSITION ICRS ra dec`` (the frame word is
    optional; ICRS and the equivalent J2000/FK5 frames are accepted).

    Raises
    ------
    AdqlGeometryError
        If the text is not such a region, or the region is not valid on the sphere.
    """
    words = text.split()
    if not words:
        raise AdqlGeometryError("an empty string is not a region")
    shape = words[0].upper()
    numbers: list[float] = []
    for word in words[1:]:
        if not numbers and word.upper() in _STCS_WORDS:
            continue
        try:
            numbers.append(float(word))
        except ValueError:
            raise AdqlGeometryError(f"{text[:80]!r} is not an STC-S region") from None
    if shape == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
        return Polygon(tuple(zip(numbers[::2], numbers[1::2], strict=True)))
    if shape == "CIRCLE" and len(numbers) == 3:
        return Circle(*numbers)
    if shape == "BOX" and len(numbers) == 4:
        return box_polygon(*numbers)
    if shape in ("POSITION", "POINT") and len(numbers) == 2:
        _check_position(numbers[0], numbers[1])
        return (numbers[0], numbers[1])
    raise AdqlGeometryError(f"{text[:80]!r} is not an STC-S region")


def to_stcs(region: Polygon | Circle, digits: int = 12) -> str:
    """The STC-S string of a region (``POLYGON ICRS ...``), as `parse_stcs` reads it."""
    if isinstance(region, Circle):
        values = [region.ra, region.dec, region.radius]
        return "CIRCLE ICRS " + " ".join(f"{v:.{digits}g}" for v in values)
    return "POLYGON ICRS " + " ".join(f"{x:.{digits}g}" for v in region.vertices for x in v)


def relate(name: str, a: Region, b: Region) -> bool:
    """ADQL ``CONTAINS(a, b)`` (``name`` = ``"CONTAINS"``) or ``INTERSECTS(a, b)``,
    exactly on the sphere.

    Points are 2-tuples; a point is contained in a region holding it (boundary
    included) and in an identical point; a circle or polygon has an area and so is
    contained in no point (a circle of radius 0 excepted).
    """
    if name == "INTERSECTS":
        if isinstance(b, tuple) and not isinstance(a, tuple):
            a, b = b, a
        if isinstance(a, tuple):
            return relate("CONTAINS", a, b)
        return regions_intersect(a, b)
    if isinstance(a, tuple):
        if isinstance(b, tuple):
            return bool(float(angular_separation(a[0], a[1], b[0], b[1])) == 0.0)
        return bool(b.contains(a[0], a[1]))
    if isinstance(b, tuple):
        if isinstance(a, Circle) and a.radius == 0:
            return relate("CONTAINS", (a.ra, a.dec), b)
        return False
    return region_contains(b, a)
