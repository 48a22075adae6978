"""Dimension records of a repository: instrument, filters, detectors, sky map, visits.

Pure functions from dpzero's facts (`dpzero.repo.dimensions`, the DC2 sky map, the
metadata of exposures) to the record dictionaries that
``butler.registry.insertDimensionData`` takes, regions as ``lsst.sphgeom`` polygons.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass

import numpy as np
from astropy.time import Time
from lsst.daf.butler import Timespan
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d
from numpy.typing import ArrayLike

from dpzero.repo.dimensions import (
    DETECTORS,
    INSTRUMENT,
    INSTRUMENT_CLASS,
    PHYSICAL_FILTERS,
)
from dpzero.repo.exposure import Box, VisitInfo
from dpzero.sim.skymap import RingsSkyMap

__all__ = [
    "VISIT_MAX",
    "VISIT_SYSTEM",
    "DetectorObservation",
    "day_obs_of",
    "instrument_records",
    "polygon",
    "skymap_records",
    "tracts_touching",
    "visit_records",
]

VISIT_MAX = 1 << 30
"""Exclusive upper bound of visit and exposure ids (DC2's are below 1.3 M)."""

VISIT_SYSTEM = (0, "one-to-one")
"""The only visit system: each visit is one exposure, with the exposure's id."""

Records = dict[str, list[dict]]


def polygon(ra: ArrayLike, dec: ArrayLike) -> ConvexPolygon:
    """Smallest convex polygon on the sphere holding positions (degrees)."""
    points = [
        UnitVector3d(LonLat.fromDegrees(float(a), float(d)))
        for a, d in zip(np.ravel(ra), np.ravel(dec), strict=True)
    ]
    return ConvexPolygon.convexHull(points)


def instrument_records() -> Records:
    """Records of the instrument, its physical filters and detectors, and its visit system."""
    return {
        "instrument": [
            {
                "name": INSTRUMENT,
                "visit_max": VISIT_MAX,
                "exposure_max": VISIT_MAX,
                "detector_max": len(DETECTORS),
                "visit_system": VISIT_SYSTEM[0],
                "class_name": INSTRUMENT_CLASS,
            }
        ],
        "physical_filter": [
            {"instrument": INSTRUMENT, "name": name, "band": band}
            for name, band in PHYSICAL_FILTERS.items()
        ],
        "detector": [
            {
                "instrument": INSTRUMENT,
                "id": d.id,
                "full_name": d.full_name,
                "raft": d.raft,
                "name_in_raft": d.sensor,
                "purpose": "SCIENCE",
            }
            for d in DETECTORS
        ],
        "visit_system": [
            {"instrument": INSTRUMENT, "id": VISIT_SYSTEM[0], "name": VISIT_SYSTEM[1]}
        ],
    }


def skymap_hash(skymap: RingsSkyMap) -> bytes:
    """Identity of a sky map's definition (20 bytes), stored in its record."""
    return hashlib.sha1(repr(astuple(skymap)).encode(), usedforsecurity=False).digest()


def skymap_records(skymap: RingsSkyMap, tracts: Iterable[int]) -> Records:
    """Records of the sky map and of the given tracts with all their patches.

    Tract regions are the tract's whole pixel grid; patch regions are the patch
    interiors grown by the patch border (clipped to the tract), as coadds cover them.
    """
    n = skymap.patches_per_side
    size = skymap.tract_size_pixels
    records: Records = {
        "skymap": [
            {
                "name": skymap.name,
                "hash": skymap_hash(skymap),
                "tract_max": skymap.num_tracts,
                "patch_nx_max": n,
                "patch_ny_max": n,
            }
        ],
        "tract": [],
        "patch": [],
    }
    for tract in sorted(set(int(t) for t in tracts)):
        lo, hi = -0.5, size - 0.5
        ra, dec = skymap.pixel_to_sky(tract, [lo, hi, hi, lo], [lo, lo, hi, hi])
        records["tract"].append({"skymap": skymap.name, "id": tract, "region": polygon(ra, dec)})
        for py in range(n):
            for px in range(n):
                box = patch_outer_box(skymap, px, py)
                x0, y0 = box.x0 - 0.5, box.y0 - 0.5
                x1, y1 = box.x1 - 0.5, box.y1 - 0.5
                ra, dec = skymap.pixel_to_sky(tract, [x0, x1, x1, x0], [y0, y0, y1, y1])
                records["patch"].append(
                    {
                        "skymap": skymap.name,
                        "tract": tract,
                        "id": px + n * py,
                        "cell_x": px,
                        "cell_y": py,
                        "region": polygon(ra, dec),
                    }
                )
    return records


def patch_outer_box(skymap: RingsSkyMap, patch_x: int, patch_y: int) -> Box:
    """Tract-frame pixel box of a patch with its border, clipped to the tract."""
    inner, border, size = skymap.patch_inner, skymap.patch_border, skymap.tract_size_pixels
    x0 = max(0, patch_x * inner - border)
    y0 = max(0, patch_y * inner - border)
    x1 = min(size, (patch_x + 1) * inner + border)
    y1 = min(size, (patch_y + 1) * inner + border)
    return Box(x0, y0, x1 - x0, y1 - y0)


def tracts_touching(skymap: RingsSkyMap, regions: Iterable[ConvexPolygon]) -> set[int]:
    """Tracts holding any vertex or the centre of the given regions.

    Regions here are detectors (≈ 14′), far smaller than a tract (≈ 1.6°), so their
    vertices and centres find every tract they overlap.
    """
    ra: list[float] = []
    dec: list[float] = []
    for region in regions:
        for v in [*region.getVertices(), region.getCentroid()]:
            lonlat = LonLat(v)
            ra.append(lonlat.getLon().asDegrees())
            dec.append(lonlat.getLat().asDegrees())
    if not ra:
        return set()
    return {int(t) for t in np.unique(skymap.find_tract(ra, dec))}


def day_obs_of(mjd: float) -> int:
    """Observing night ``YYYYMMDD``: the TAI date 12 hours before ``mjd``."""
    return int(Time(mjd - 0.5, format="mjd", scale="tai").strftime("%Y%m%d"))


@dataclass(frozen=True)
class DetectorObservation:
    """What a visit's records need from one detector's image.

    Attributes
    ----------
    visit
        Visit id (equal to its exposure id).
    detector
        Detector number.
    physical_filter
        Filter of the visit.
    visit_info
        Observing conditions.
    corners
        ``(4, 2)`` sky corners (ra, dec degrees) of the detector's pixels.
    """

    visit: int
    detector: int
    physical_filter: str
    visit_info: VisitInfo
    corners: Sequence[Sequence[float]]

    @property
    def region(self) -> ConvexPolygon:
        """The detector's footprint on the sky."""
        corners = np.asarray(self.corners, dtype=np.float64)
        return polygon(corners[:, 0], corners[:, 1])


def _timespan(info: VisitInfo) -> Timespan | None:
    if not (math.isfinite(info.mjd) and math.isfinite(info.exposure_time)):
        return None
    half = info.exposure_time / 2.0 / 86400.0
    return Timespan(
        Time(info.mjd - half, format="mjd", scale="tai"),
        Time(info.mjd + half, format="mjd", scale="tai"),
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def visit_records(observations: Iterable[DetectorObservation]) -> Records:
    """Records of the exposures and visits of detector observations, with regions.

    A visit's region is the convex hull of its detectors' footprints; each
    visit/detector pair gets a ``visit_detector_region`` record.
    """
    by_visit: dict[int, dict[int, DetectorObservation]] = {}
    for obs in observations:
        by_visit.setdefault(obs.visit, {}).setdefault(obs.detector, obs)
    records: Records = {
        "day_obs": [],
        "group": [],
        "exposure": [],
        "visit": [],
        "visit_definition": [],
        "visit_system_membership": [],
        "visit_detector_region": [],
    }
    days: dict[int, Timespan] = {}
    for visit in sorted(by_visit):
        group = [by_visit[visit][d] for d in sorted(by_visit[visit])]
        first = group[0]
        info = first.visit_info
        mjd = info.mjd if math.isfinite(info.mjd) else 51544.0
        day_obs = day_obs_of(mjd)
        start = Time(math.floor(mjd - 0.5) + 0.5, format="mjd", scale="tai")
        days[day_obs] = Timespan(start, Time(start.mjd + 1.0, format="mjd", scale="tai"))
        timespan = _timespan(info)
        zenith = (
            math.degrees(math.acos(1.0 / info.airmass))
            if math.isfinite(info.airmass) and info.airmass >= 1.0
            else None
        )
        regions = [o.region for o in group]
        corners = np.concatenate([np.asarray(o.corners, dtype=np.float64) for o in group])
        common = {"instrument": INSTRUMENT, "physical_filter": first.physical_filter}
        records["group"].append({"instrument": INSTRUMENT, "name": str(visit)})
        records["exposure"].append(
            {
                **common,
                "id": visit,
                "obs_id": str(visit),
                "day_obs": day_obs,
                "group": str(visit),
                "exposure_time": _finite(info.exposure_time),
                "dark_time": _finite(info.exposure_time),
                "observation_type": "science",
                "observation_reason": "science",
                "seq_num": 0,
                "seq_start": 0,
                "seq_end": 0,
                "target_name": "WFD",
                "science_program": "DC2",
                "tracking_ra": _finite(info.boresight_ra),
                "tracking_dec": _finite(info.boresight_dec),
                "sky_angle": _finite(info.rotation_angle),
                "zenith_angle": zenith,
                "has_simulated": True,
                "can_see_sky": True,
                "timespan": timespan,
            }
        )
        records["visit"].append(
            {
                **common,
                "id": visit,
                "name": str(visit),
                "day_obs": day_obs,
                "seq_num": 0,
                "exposure_time": _finite(info.exposure_time),
                "target_name": "WFD",
                "observation_reason": "science",
                "science_program": "DC2",
                "zenith_angle": zenith,
                "region": polygon(corners[:, 0], corners[:, 1]),
                "timespan": timespan,
            }
        )
        records["visit_definition"].append(
            {"instrument": INSTRUMENT, "exposure": visit, "visit": visit}
        )
        records["visit_system_membership"].append(
            {"instrument": INSTRUMENT, "visit_system": VISIT_SYSTEM[0], "visit": visit}
        )
        for obs, region in zip(group, regions, strict=True):
            records["visit_detector_region"].append(
                {
                    "instrument": INSTRUMENT,
                    "visit": visit,
                    "detector": obs.detector,
                    "region": region,
                }
            )
    records["day_obs"] = [
        {"instrument": INSTRUMENT, "id": day, "timespan": span}
        for day, span in sorted(days.items())
    ]
    return records
