"""The query classes of the catalog and TAP benchmarks, written once for every peer.

Each class is a list of concrete queries (one per repetition, random positions inside
the survey's footprint, the same seed for every peer) with its ADQL for dpzero and TAP,
the SQL a careful user writes for DuckDB over one Parquet file (bounding-box prefilter,
then exact great-circle math), the SQL for PostgreSQL + q3c, and the LSDB call.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DB = "dp01_dc2_catalogs"
OBJECT = f"{DB}.object"
POSITION = f"{DB}.position"
FIVE_COLUMNS = ["objectId", "ra", "dec", "mag_i_cModel", "extendedness"]
MAG_CUT = 24.0


@dataclass(frozen=True)
class Query:
    """One concrete query, as each peer spells it."""

    adql: str
    duckdb: str
    postgres: str
    # LSDB: (kind, arguments) run by the benchmark; None when LSDB has no such search.
    lsdb: tuple[str, dict[str, object]] | None = None


@dataclass
class QueryClass:
    """A benchmark query class: a name, what it is, and one query per repetition."""

    name: str
    description: str
    queries: list[Query] = field(default_factory=list)
    scan: bool = False
    # Run only when asked for by name (slow forms kept to document them).
    optional: bool = False


@dataclass(frozen=True)
class Footprint:
    """Where random positions are drawn: a box around the survey's centre.

    ``half_width`` is in declination (degrees on the sky); ``ra_half_width``, if given,
    in RA degrees (else the box is square on the sky).
    """

    ra: float
    dec: float
    half_width: float
    ra_half_width: float | None = None

    @classmethod
    def from_survey(cls, survey: Path) -> Footprint:
        """The region recorded in a `dpzero sim catalogs` manifest."""
        region = json.loads((survey / "manifest.json").read_text())["region"]
        dec = (region["dec_min"] + region["dec_max"]) / 2
        return cls(region["ra_center"], dec, region["half_width"], region.get("ra_half_width"))

    def centres(
        self, n: int, rng: np.random.Generator, margin_deg: float
    ) -> list[tuple[float, float]]:
        """``n`` random centres at least ``margin_deg`` inside the box (or at its centre)."""
        half = max(self.half_width - margin_deg, 0.0)
        out = []
        for _ in range(n):
            dec = self.dec + rng.uniform(-half, half)
            cos = math.cos(math.radians(dec))
            if self.ra_half_width is None:
                ra_half = max(self.half_width - margin_deg, 0.0) / cos
            else:
                ra_half = max(self.ra_half_width - margin_deg / cos, 0.0)
            ra = self.ra + rng.uniform(-ra_half, ra_half)
            out.append((round(ra, 6), round(dec, 6)))
        return out


# Exact great-circle tests, written as a user writes them in plain SQL.
def _hav_sql(ra: str, dec: str, ra0: str, dec0: str) -> str:
    return (
        f"pow(sin(radians({dec} - {dec0}) / 2), 2) + cos(radians({dec})) * cos(radians({dec0}))"
        f" * pow(sin(radians({ra} - {ra0}) / 2), 2)"
    )


def _hav_limit(radius_deg: float) -> float:
    return math.sin(math.radians(radius_deg) / 2) ** 2


def _bbox_sql(ra0: float, dec0: float, radius_deg: float, ra: str = "ra", dec: str = "dec") -> str:
    dra = radius_deg / max(math.cos(math.radians(abs(dec0) + radius_deg)), 1e-9)
    return (
        f"{dec} BETWEEN {dec0 - radius_deg} AND {dec0 + radius_deg} "
        f"AND {ra} BETWEEN {ra0 - dra} AND {ra0 + dra}"
    )


def _duck_cone(ra0: float, dec0: float, radius_deg: float, alias: str = "") -> str:
    ra, dec = f"{alias}ra", f"{alias}dec"
    return (
        f"{_bbox_sql(ra0, dec0, radius_deg, ra, dec)} "
        f"AND {_hav_sql(ra, dec, str(ra0), str(dec0))} <= {_hav_limit(radius_deg)!r}"
    )


def _adql_cone(ra0: float, dec0: float, radius_deg: float, alias: str = "") -> str:
    return (
        f"CONTAINS(POINT('ICRS', {alias}ra, {alias}dec), "
        f"CIRCLE('ICRS', {ra0}, {dec0}, {radius_deg!r})) = 1"
    )


def _pg_cols(columns: list[str], alias: str = "") -> str:
    return ", ".join(f'{alias}"{c}"' for c in columns)


def cone(ra0: float, dec0: float, radius_deg: float, columns: list[str] | None) -> Query:
    """A cone search on the object table."""
    adql_cols = "*" if columns is None else ", ".join(columns)
    duck_cols = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
    pg_cols = "*" if columns is None else _pg_cols(columns)
    return Query(
        adql=f"SELECT {adql_cols} FROM {OBJECT} WHERE {_adql_cone(ra0, dec0, radius_deg)}",
        duckdb=f"SELECT {duck_cols} FROM object WHERE {_duck_cone(ra0, dec0, radius_deg)}",
        postgres=(
            f"SELECT {pg_cols} FROM object WHERE q3c_radial_query(ra, dec, {ra0}, {dec0}, "
            f"{radius_deg!r})"
        ),
        lsdb=(
            "cone",
            {"ra": ra0, "dec": dec0, "radius_arcsec": radius_deg * 3600, "columns": columns},
        ),
    )


def _unit(ra: float, dec: float) -> np.ndarray:
    r, d = math.radians(ra), math.radians(dec)
    return np.array([math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)])


def polygon(ra0: float, dec0: float, size_deg: float) -> Query:
    """A small convex quadrilateral around a centre, SELECT *.

    Plain SQL tests each great-circle edge with its normal vector (exact on the sphere).
    """
    c = math.cos(math.radians(dec0))
    offsets = [(-1.0, -0.7), (1.0, -0.9), (0.8, 0.8), (-0.9, 0.6)]  # counter-clockwise
    vertices = [
        (round(ra0 + dx * size_deg / 2 / c, 6), round(dec0 + dy * size_deg / 2, 6))
        for dx, dy in offsets
    ]
    centre = _unit(ra0, dec0)
    tests = []
    for (ra1, dec1), (ra2, dec2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        n = np.cross(_unit(ra1, dec1), _unit(ra2, dec2))
        if float(n @ centre) < 0:
            n = -n
        nx, ny, nz = (float(v) for v in n)
        tests.append(
            f"{nx!r} * cos(radians(dec)) * cos(radians(ra)) + {ny!r} * cos(radians(dec)) "
            f"* sin(radians(ra)) + {nz!r} * sin(radians(dec)) >= 0"
        )
    ras = [v[0] for v in vertices]
    decs = [v[1] for v in vertices]
    flat = ", ".join(f"{ra}, {dec}" for ra, dec in vertices)
    return Query(
        adql=(
            f"SELECT * FROM {OBJECT} WHERE CONTAINS(POINT('ICRS', ra, dec), "
            f"POLYGON('ICRS', {flat})) = 1"
        ),
        duckdb=(
            f"SELECT * FROM object WHERE dec BETWEEN {min(decs)} AND {max(decs)} "
            f"AND ra BETWEEN {min(ras)} AND {max(ras)} AND " + " AND ".join(tests)
        ),
        postgres=f"SELECT * FROM object WHERE q3c_poly_query(ra, dec, ARRAY[{flat}])",
        lsdb=("polygon", {"vertices": vertices}),
    )


def id_lookup(ids: list[int]) -> Query:
    """SELECT * of a list of objectIds."""
    listed = ", ".join(str(i) for i in ids)
    return Query(
        adql=f"SELECT * FROM {OBJECT} WHERE objectId IN ({listed})",
        duckdb=f'SELECT * FROM object WHERE "objectId" IN ({listed})',
        postgres=f'SELECT * FROM object WHERE "objectId" IN ({listed})',
        lsdb=("ids", {"ids": ids}),
    )


def join_in_cone(ra0: float, dec0: float, radius_deg: float) -> Query:
    """object ⋈ position on objectId for the objects of a cone."""
    return Query(
        adql=(
            "SELECT o.objectId, o.ra, o.dec, o.mag_i_cModel, p.detect_isPrimary "
            f"FROM {OBJECT} AS o JOIN {POSITION} AS p ON o.objectId = p.objectId "
            f"WHERE {_adql_cone(ra0, dec0, radius_deg, 'o.')}"
        ),
        duckdb=(
            'SELECT o."objectId", o.ra, o.dec, o."mag_i_cModel", p."detect_isPrimary" '
            'FROM object AS o JOIN position AS p ON o."objectId" = p."objectId" '
            f"WHERE {_duck_cone(ra0, dec0, radius_deg, 'o.')}"
        ),
        postgres=(
            'SELECT o."objectId", o.ra, o.dec, o."mag_i_cModel", p."detect_isPrimary" '
            'FROM object AS o JOIN position AS p ON o."objectId" = p."objectId" '
            f"WHERE q3c_radial_query(o.ra, o.dec, {ra0}, {dec0}, {radius_deg!r})"
        ),
        lsdb=("join", {"ra": ra0, "dec": dec0, "radius_arcsec": radius_deg * 3600}),
    )


def neighbour_pairs(
    ra0: float, dec0: float, radius_deg: float, sep_arcsec: float, distance_form: bool = False
) -> Query:
    """Ordered pairs of distinct objects closer than ``sep_arcsec``, first one in a cone.

    The ADQL says "b in a circle around a" (CONTAINS), or with ``distance_form``
    ``DISTANCE(a, b) < r`` in the join's ON clause; both are neighbour pairs to dpzero.
    """
    sep = sep_arcsec / 3600
    if distance_form:
        pair = f"DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {sep!r}"
    else:
        pair = f"CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, {sep!r})) = 1"
    return Query(
        adql=(
            "SELECT a.objectId AS id1, b.objectId AS id2 "
            f"FROM {OBJECT} AS a JOIN {OBJECT} AS b ON {pair} "
            f"WHERE {_adql_cone(ra0, dec0, radius_deg, 'a.')} AND a.objectId <> b.objectId"
        ),
        duckdb=(
            f'WITH a AS (SELECT "objectId", ra, dec FROM object WHERE '
            f"{_duck_cone(ra0, dec0, radius_deg)}), "
            f'b AS (SELECT "objectId", ra, dec FROM object WHERE '
            f"{_bbox_sql(ra0, dec0, radius_deg + 2 * sep)}) "
            'SELECT a."objectId" AS id1, b."objectId" AS id2 FROM a JOIN b '
            f"ON b.dec BETWEEN a.dec - {sep!r} AND a.dec + {sep!r} "
            'AND a."objectId" <> b."objectId" '
            f"WHERE {_hav_sql('b.ra', 'b.dec', 'a.ra', 'a.dec')} < {_hav_limit(sep)!r}"
        ),
        postgres=(
            'SELECT a."objectId" AS id1, b."objectId" AS id2 FROM object AS a, object AS b '
            f"WHERE q3c_radial_query(a.ra, a.dec, {ra0}, {dec0}, {radius_deg!r}) "
            f"AND q3c_join(a.ra, a.dec, b.ra, b.dec, {sep!r}) "
            f"AND q3c_dist(a.ra, a.dec, b.ra, b.dec) < {sep!r} "
            'AND a."objectId" <> b."objectId"'
        ),
        lsdb=None,
    )


def scan_aggregate() -> Query:
    """COUNT and AVG of a magnitude with a cut over the whole table."""
    return Query(
        adql=(
            f"SELECT COUNT(*) AS n, AVG(mag_i_cModel) AS mean_mag FROM {OBJECT} "
            f"WHERE mag_i_cModel < {MAG_CUT}"
        ),
        duckdb=(
            'SELECT COUNT(*) AS n, AVG("mag_i_cModel") AS mean_mag FROM object '
            f'WHERE "mag_i_cModel" < {MAG_CUT}'
        ),
        postgres=(
            'SELECT COUNT(*) AS n, AVG("mag_i_cModel") AS mean_mag FROM object '
            f'WHERE "mag_i_cModel" < {MAG_CUT}'
        ),
        lsdb=("scan", {"group_by": None}),
    )


def scan_group_by() -> Query:
    """A per-tract histogram over the whole table."""
    return Query(
        adql=(
            f"SELECT tract, COUNT(*) AS n, AVG(mag_i_cModel) AS mean_mag FROM {OBJECT} "
            f"WHERE mag_i_cModel < {MAG_CUT} GROUP BY tract ORDER BY tract"
        ),
        duckdb=(
            'SELECT tract, COUNT(*) AS n, AVG("mag_i_cModel") AS mean_mag FROM object '
            f'WHERE "mag_i_cModel" < {MAG_CUT} GROUP BY tract ORDER BY tract'
        ),
        postgres=(
            'SELECT tract, COUNT(*) AS n, AVG("mag_i_cModel") AS mean_mag FROM object '
            f'WHERE "mag_i_cModel" < {MAG_CUT} GROUP BY tract ORDER BY tract'
        ),
        lsdb=("scan", {"group_by": "tract"}),
    )


def build_classes(
    footprint: Footprint,
    id_pool: np.ndarray,
    repeat: int,
    scan_repeat: int,
    seed: int = 1,
    only: set[str] | None = None,
) -> list[QueryClass]:
    """Every query class with ``repeat + 1`` queries (the first is the warm-up)."""
    rng = np.random.default_rng(seed)
    n = repeat + 1
    classes = [
        QueryClass('cone 5" *', 'cone r = 5", SELECT *'),
        QueryClass("cones 0.01–0.05° *", "cones of random r = 0.01°–0.05°, SELECT *"),
        QueryClass("cone 0.5° 5 cols", "cone r = 0.5°, 5 columns"),
        QueryClass("polygon 0.1° *", "convex quadrilateral ~0.1° across, SELECT *"),
        QueryClass("12 ids *", "objectId IN (12 random ids), SELECT *"),
        QueryClass("join cone 0.05°", "object ⋈ position on objectId, objects in a 0.05° cone"),
        QueryClass('pairs 1" in 0.1°', 'neighbour pairs within 1", first object in a 0.1° cone'),
        QueryClass("scan COUNT/AVG", f"COUNT, AVG(mag_i_cModel) WHERE mag_i_cModel < {MAG_CUT}",
                   scan=True),
        QueryClass("scan GROUP BY tract", "per-tract COUNT and AVG with the same cut", scan=True),
        QueryClass("pairs DISTANCE form", 'as pairs 1" in 0.1°, written DISTANCE(a, b) < r',
                   optional=True),
    ]  # fmt: skip
    by_name = {c.name: c for c in classes}
    by_name['cone 5" *'].queries = [
        cone(ra, dec, 5 / 3600, None) for ra, dec in footprint.centres(n, rng, 5 / 3600)
    ]
    by_name["cones 0.01–0.05° *"].queries = [
        cone(ra, dec, round(float(rng.uniform(0.01, 0.05)), 5), None)
        for ra, dec in footprint.centres(n, rng, 0.05)
    ]
    by_name["cone 0.5° 5 cols"].queries = [
        cone(ra, dec, 0.5, FIVE_COLUMNS) for ra, dec in footprint.centres(n, rng, 0.5)
    ]
    by_name["polygon 0.1° *"].queries = [
        polygon(ra, dec, 0.1) for ra, dec in footprint.centres(n, rng, 0.06)
    ]
    by_name["12 ids *"].queries = [
        id_lookup(sorted(int(i) for i in rng.choice(id_pool, 12, replace=False))) for _ in range(n)
    ]
    by_name["join cone 0.05°"].queries = [
        join_in_cone(ra, dec, 0.05) for ra, dec in footprint.centres(n, rng, 0.05)
    ]
    by_name['pairs 1" in 0.1°'].queries = [
        neighbour_pairs(ra, dec, 0.1, 1.0) for ra, dec in footprint.centres(n, rng, 0.1)
    ]
    by_name["pairs DISTANCE form"].queries = [
        neighbour_pairs(ra, dec, 0.1, 1.0, distance_form=True)
        for ra, dec in footprint.centres(n, rng, 0.1)
    ]
    by_name["scan COUNT/AVG"].queries = [scan_aggregate()] * (scan_repeat + 1)
    by_name["scan GROUP BY tract"].queries = [scan_group_by()] * (scan_repeat + 1)
    if only:
        return [c for c in classes if c.name in only]
    return [c for c in classes if not c.optional]


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by every thread of process ``pid`` (ns resolution).

    Read from /proc/PID/task/*/schedstat, so it works for a server process too; the
    machine is shared, so CPU time says what a query costs when wall time includes
    waiting for a core.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def summarise(times_ms: list[float]) -> dict[str, float]:
    """Median, p95, min and max of the timed repetitions."""
    a = np.asarray(times_ms)
    return {
        "median_ms": round(float(np.median(a)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "min_ms": round(float(a.min()), 2),
        "max_ms": round(float(a.max()), 2),
    }
