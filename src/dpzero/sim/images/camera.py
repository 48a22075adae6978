"""The simulated camera: a reduced LSSTCam-imSim focal plane and its filters.

The camera is the nine detectors of raft R22 (detectors 90–98, R22_S11 = 94 at the
centre of the focal plane), each read through 16 amplifiers in two rows of eight as
on the real ITL sensors, with LSSTCam-imSim's electronics: gain 0.7 e⁻/ADU, read
noise 7 ADU, a bias level near 1000 ADU, a full well of 10⁵ e⁻ (saturation at
142,857 ADU above bias), and raw amplifier images with 3 prescan columns, 32 serial
overscan columns and 48 parallel overscan rows. Detectors can be made smaller than
the real 4072×4000 pixels so that tests render in seconds.

The filters are ``u_sim_1.4`` … ``y_sim_1.4`` with the observing facts of Ivezić et
al. (2019) Table 2: dark-sky brightness, median seeing, atmospheric extinction and
the fiducial zero points (electrons per second of a 0-magnitude source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dpzero.repo import INSTRUMENT, Box, detector_facts, physical_filter_of

__all__ = [
    "BANDS",
    "FILTERS",
    "PIXEL_SCALE_ARCSEC",
    "RAFT",
    "AmplifierSpec",
    "CameraSpec",
    "DetectorSpec",
    "FilterSpec",
    "make_camera",
]

PIXEL_SCALE_ARCSEC = 0.2
"""Detector pixel scale at the focal plane's centre."""

RAFT = "R22"
"""The raft the reduced focal plane is made of."""

BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
"""Bands, bluest first."""

GAIN = 0.7
"""Electrons per ADU, every amplifier."""

READ_NOISE_ADU = 7.0
"""Read noise in ADU, every amplifier."""

FULL_WELL = 100_000.0
"""Full well in electrons; a pixel saturates there."""

SATURATION_ADU = 142_857.0
"""Saturation level in ADU above bias (``FULL_WELL / GAIN``)."""

BIAS_LEVEL_ADU = 1000.0
"""Nominal bias level in ADU."""

PRESCAN = 3
SERIAL_OVERSCAN = 32
PARALLEL_OVERSCAN = 48


@dataclass(frozen=True)
class FilterSpec:
    """A filter and the typical observing conditions through it.

    Attributes
    ----------
    band
        Band letter.
    physical_filter
        Filter name, e.g. ``i_sim_1.4``.
    sky_mag
        Dark-sky brightness at zenith, AB mag per arcsec².
    seeing_fwhm
        Median delivered seeing at zenith, arcsec.
    extinction
        Atmospheric extinction per airmass, mag.
    zero_point
        AB magnitude giving one electron per second above the atmosphere at zenith.
    single_m5
        Single-visit 5σ point-source depth at zenith (30 s), AB mag.
    coadd_m5
        Five-year coadd 5σ point-source depth, AB mag.
    """

    band: str
    physical_filter: str
    sky_mag: float
    seeing_fwhm: float
    extinction: float
    zero_point: float
    single_m5: float
    coadd_m5: float


def _filter(band: str, *facts: float) -> FilterSpec:
    return FilterSpec(band, physical_filter_of(band), *facts)


FILTERS: dict[str, FilterSpec] = {
    "u": _filter("u", 22.99, 0.81, 0.491, 26.52, 23.78, 25.4),
    "g": _filter("g", 22.26, 0.77, 0.213, 28.51, 24.81, 26.6),
    "r": _filter("r", 21.20, 0.73, 0.126, 28.36, 24.35, 26.7),
    "i": _filter("i", 20.48, 0.71, 0.096, 28.17, 23.92, 26.2),
    "z": _filter("z", 19.60, 0.69, 0.069, 27.78, 23.34, 25.5),
    "y": _filter("y", 18.61, 0.68, 0.170, 26.82, 22.45, 24.7),
}
"""Filters by band letter (Ivezić et al. 2019 Table 2; zero points of obs_lsst)."""


@dataclass(frozen=True)
class AmplifierSpec:
    """One amplifier (segment) of a detector.

    Attributes
    ----------
    name
        Amplifier name, ``C10`` … ``C17`` (top row), ``C07`` … ``C00`` (bottom row).
    data_box
        The pixels it reads, in the detector's assembled frame.
    flip_x, flip_y
        Whether the raw readout runs against the detector's x or y axis.
    gain
        Electrons per ADU.
    read_noise
        Read noise, ADU.
    bias_level
        Mean bias (overscan) level, ADU.
    saturation
        Saturation level, ADU above bias.
    """

    name: str
    data_box: Box
    flip_x: bool
    flip_y: bool
    gain: float
    read_noise: float
    bias_level: float
    saturation: float

    @property
    def segment(self) -> str:
        """Raw extension name, ``Segment10`` style."""
        return "Segment" + self.name[1:]

    @property
    def raw_shape(self) -> tuple[int, int]:
        """Numpy shape of the raw amplifier image, prescan and overscans included."""
        return (
            self.data_box.height + PARALLEL_OVERSCAN,
            PRESCAN + self.data_box.width + SERIAL_OVERSCAN,
        )


@dataclass(frozen=True)
class DetectorSpec:
    """One detector: identity, size, place in the focal plane and amplifiers.

    Attributes
    ----------
    id
        Detector number (94 for R22_S11).
    raft, sensor
        ``R22``, ``S11``.
    width, height
        Pixel columns and rows of the assembled image.
    focal_x, focal_y
        Offset of the detector's centre from the boresight, pixels.
    amplifiers
        The 16 amplifiers.
    serial
        A sensor serial number for headers.
    """

    id: int
    raft: str
    sensor: str
    width: int
    height: int
    focal_x: float
    focal_y: float
    amplifiers: tuple[AmplifierSpec, ...]
    serial: str

    @property
    def full_name(self) -> str:
        """``R22_S11`` style name."""
        return f"{self.raft}_{self.sensor}"

    @property
    def bbox(self) -> Box:
        """The assembled image's box."""
        return Box(0, 0, self.width, self.height)


@dataclass(frozen=True)
class CameraSpec:
    """The camera: detectors, pixel scale and readout geometry.

    Attributes
    ----------
    name
        Instrument name (``LSSTCam-imSim``).
    pixel_scale
        Arcsec per pixel.
    detectors
        Detectors in number order.
    """

    name: str
    pixel_scale: float
    detectors: tuple[DetectorSpec, ...]

    def detector(self, detector_id: int) -> DetectorSpec:
        """A detector by number.

        Raises
        ------
        KeyError
            If the camera has no such detector.
        """
        for det in self.detectors:
            if det.id == detector_id:
                return det
        raise KeyError(f"detector {detector_id} is not part of this camera")

    @property
    def focal_plane_extent(self) -> float:
        """Half the diagonal of the focal plane, pixels (the radius a visit covers)."""
        return max(
            math.hypot(abs(d.focal_x) + d.width / 2, abs(d.focal_y) + d.height / 2)
            for d in self.detectors
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain description (the ``camera`` dataset, written as YAML)."""
        return {
            "name": self.name,
            "pixel_scale_arcsec": self.pixel_scale,
            "plate_scale_mm_per_arcsec": 0.05,
            "raw_geometry": {
                "prescan": PRESCAN,
                "serial_overscan": SERIAL_OVERSCAN,
                "parallel_overscan": PARALLEL_OVERSCAN,
            },
            "filters": [
                {"band": f.band, "physical_filter": f.physical_filter} for f in FILTERS.values()
            ],
            "detectors": [
                {
                    "id": d.id,
                    "name": d.full_name,
                    "raft": d.raft,
                    "sensor": d.sensor,
                    "serial": d.serial,
                    "type": "ITL",
                    "purpose": "SCIENCE",
                    "bbox": [0, 0, d.width, d.height],
                    "focal_plane_offset_pixels": [d.focal_x, d.focal_y],
                    "pixel_size_mm": 0.01,
                    "amplifiers": [
                        {
                            "name": a.name,
                            "segment": a.segment,
                            "bbox": [
                                a.data_box.x0,
                                a.data_box.y0,
                                a.data_box.width,
                                a.data_box.height,
                            ],
                            "flip_x": a.flip_x,
                            "flip_y": a.flip_y,
                            "gain": a.gain,
                            "read_noise": a.read_noise,
                            "bias_level": a.bias_level,
                            "saturation": a.saturation,
                        }
                        for a in d.amplifiers
                    ],
                }
                for d in self.detectors
            ],
        }


def _amplifiers(detector_id: int, width: int, height: int) -> tuple[AmplifierSpec, ...]:
    """16 amplifiers: ``C1k`` along the top half left to right, ``C0k`` right to left below."""
    if width % 8 or height % 2:
        raise ValueError(f"detector size {width}×{height} must divide into 8×2 amplifiers")
    aw, ah = width // 8, height // 2
    amps = []
    for row in (1, 0):
        for k in range(8):
            col = k if row == 1 else 7 - k
            # A fixed, detector-dependent spread of bias levels, as real amplifiers have.
            level = BIAS_LEVEL_ADU + ((detector_id * 16 + row * 8 + k) * 37 % 41) - 20
            amps.append(
                AmplifierSpec(
                    name=f"C{row}{k}",
                    data_box=Box(col * aw, row * ah, aw, ah),
                    flip_x=row == 0,
                    flip_y=row == 1,
                    gain=GAIN,
                    read_noise=READ_NOISE_ADU,
                    bias_level=float(level),
                    saturation=SATURATION_ADU,
                )
            )
    return tuple(amps)


def make_camera(width: int = 4072, height: int = 4000, gap: int = 40) -> CameraSpec:
    """The reduced camera: the nine detectors of raft R22 at a chosen size.

    Parameters
    ----------
    width, height
        Pixels of each detector (multiples of 8 and 2; DC2's are 4072×4000).
    gap
        Pixels between neighbouring detectors.

    Returns
    -------
    CameraSpec
        Detectors 90–98 on a 3×3 grid centred on R22_S11 (94).
    """
    detectors = []
    first = detector_facts(94).id - 4
    for number in range(first, first + 9):
        facts = detector_facts(number)
        row, col = int(facts.sensor[1]), int(facts.sensor[2])
        detectors.append(
            DetectorSpec(
                id=facts.id,
                raft=facts.raft,
                sensor=facts.sensor,
                width=width,
                height=height,
                focal_x=(col - 1) * (width + gap),
                focal_y=(row - 1) * (height + gap),
                amplifiers=_amplifiers(facts.id, width, height),
                serial=f"ITL-3800C-{100 + facts.id:03d}",
            )
        )
    return CameraSpec(name=INSTRUMENT, pixel_scale=PIXEL_SCALE_ARCSEC, detectors=tuple(detectors))
