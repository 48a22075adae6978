"""Names and numbers of the Butler dimensions that dpzero's data uses.

One place for the facts that both the simulator and the Butler repository need:
the instrument's name, its filters and bands, its detectors, the sky map's name and
the release's collection names. They follow DC2 and DP0.1, so users' Butler code
(``instrument="LSSTCam-imSim"``, ``skymap="DC2"``, ``band="i"``) runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BANDS",
    "DETECTORS",
    "DETECTOR_COLUMNS",
    "DETECTOR_ROWS",
    "INSTRUMENT",
    "INSTRUMENT_CLASS",
    "PHYSICAL_FILTERS",
    "RAFTS",
    "RELEASE_COLLECTION",
    "SKYMAP_NAME",
    "DetectorFacts",
    "band_of",
    "detector_facts",
    "physical_filter_of",
]

INSTRUMENT = "LSSTCam-imSim"
"""Instrument name, as DC2 and DP0.1 registered it."""

INSTRUMENT_CLASS = "dpzero.repo.instrument.LsstCamImSim"
"""Value of the ``class_name`` field of the instrument's dimension record."""

SKYMAP_NAME = "DC2"
"""Name of the rings sky map (`dpzero.sim.skymap.DC2_SKYMAP`)."""

RELEASE_COLLECTION = "2.2i/runs/DP0.1"
"""The release's CHAINED collection: processing runs, calibrations, refcats, sky maps."""

BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
"""Abstract filters (``band``), bluest first."""

PHYSICAL_FILTERS: dict[str, str] = {f"{band}_sim_1.4": band for band in BANDS}
"""Physical filter name → band (imSim throughputs v1.4)."""

RAFTS: tuple[str, ...] = (
    "R01", "R02", "R03",
    "R10", "R11", "R12", "R13", "R14",
    "R20", "R21", "R22", "R23", "R24",
    "R30", "R31", "R32", "R33", "R34",
    "R41", "R42", "R43",
)  # fmt: skip
"""The 21 science rafts in detector-number order."""

DETECTOR_ROWS = 4000
"""Pixel rows of a detector (y)."""

DETECTOR_COLUMNS = 4072
"""Pixel columns of a detector (x)."""


@dataclass(frozen=True)
class DetectorFacts:
    """Identity of one detector of the camera.

    Attributes
    ----------
    id
        Detector number, ``9 * raft index + 3 * sensor row + sensor column``.
    raft
        Raft name, e.g. ``"R22"``.
    sensor
        Sensor name within the raft, e.g. ``"S11"``.
    """

    id: int
    raft: str
    sensor: str

    @property
    def full_name(self) -> str:
        """``R22_S11`` style name (the detector record's ``full_name``)."""
        return f"{self.raft}_{self.sensor}"


DETECTORS: tuple[DetectorFacts, ...] = tuple(
    DetectorFacts(id=9 * r + 3 * row + col, raft=raft, sensor=f"S{row}{col}")
    for r, raft in enumerate(RAFTS)
    for row in range(3)
    for col in range(3)
)
"""All 189 science detectors, by number (``DETECTORS[94].full_name == "R22_S11"``)."""


def detector_facts(detector: int) -> DetectorFacts:
    """Facts of one detector by number.

    Raises
    ------
    ValueError
        If ``detector`` is not a detector of the camera.
    """
    if not 0 <= detector < len(DETECTORS):
        raise ValueError(f"detector {detector} is not one of 0..{len(DETECTORS) - 1}")
    return DETECTORS[detector]


def physical_filter_of(band: str) -> str:
    """Physical filter of a band (``"i"`` → ``"i_sim_1.4"``).

    Raises
    ------
    ValueError
        If ``band`` is not one of `BANDS`.
    """
    if band not in BANDS:
        raise ValueError(f"band {band!r} is not one of {', '.join(BANDS)}")
    return f"{band}_sim_1.4"


def band_of(physical_filter: str) -> str:
    """Band of a physical filter (``"i_sim_1.4"`` → ``"i"``).

    Raises
    ------
    ValueError
        If ``physical_filter`` is not one of `PHYSICAL_FILTERS`.
    """
    try:
        return PHYSICAL_FILTERS[physical_filter]
    except KeyError:
        raise ValueError(
            f"physical filter {physical_filter!r} is not one of {', '.join(PHYSICAL_FILTERS)}"
        ) from None
