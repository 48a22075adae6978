"""Instrument signature removal: raw amplifiers → an assembled, calibrated ``postISRCCD``.

Each amplifier's serial overscan (per-row median) is subtracted, its data section is
placed on the detector by its ``DETSEC`` header (reversed ranges flip the readout),
saturated pixels are masked from the raw ADU, and the master bias (ADU), dark
(electrons per second) and flat (relative response) are removed. The image comes out
in electrons, sky included, with a variance plane from the gain and read noise.
Cosmic rays are found with L.A.Cosmic (``astroscrappy``), masked ``CR`` and replaced
by its cleaned values (``INTRP``). The WCS is the camera's nominal one for the
visit's pointing; ``calibrate`` fits the real one.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from lsst.pex.config import Field
from lsst.pipe.base import (
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)
from lsst.pipe.base import connectionTypes as cT
from numpy.typing import NDArray
from scipy import ndimage

from dpzero.repo.dimensions import band_of
from dpzero.repo.exposure import Exposure, FilterLabel, VisitInfo, mask_bits

__all__ = [
    "AmplifierReadout",
    "IsrConfig",
    "IsrConnections",
    "IsrTask",
    "assemble_amplifiers",
    "nominal_detector_wcs",
    "parse_section",
    "raw_visit_info",
]

_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


def parse_section(text: str) -> tuple[slice, slice, bool, bool]:
    """Numpy ``(rows, columns)`` slices of a FITS section and whether each axis runs backwards.

    Raises
    ------
    ValueError
        If ``text`` is not a ``[x0:x1,y0:y1]`` section.
    """
    found = _SECTION.match(text.strip())
    if found is None:
        raise ValueError(f"not a FITS section: {text!r}")
    x0, x1, y0, y1 = (int(v) for v in found.groups())
    cols = slice(min(x0, x1) - 1, max(x0, x1))
    rows = slice(min(y0, y1) - 1, max(y0, y1))
    return rows, cols, x0 > x1, y0 > y1


@dataclass(frozen=True)
class AmplifierReadout:
    """What the assembly learnt of one amplifier.

    Attributes
    ----------
    name
        Extension name.
    overscan_level
        Median overscan level, ADU.
    overscan_noise
        Robust standard deviation of the overscan, ADU (the read noise).
    """

    name: str
    overscan_level: float
    overscan_noise: float


def assemble_amplifiers(
    hdus: fits.HDUList,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64], list[AmplifierReadout]]:
    """Overscan-subtracted ADU on the detector frame from a raw's amplifier extensions.

    Returns
    -------
    image, saturated, gain, readouts
        ADU above the overscan level, pixels at or above the amplifier's ``SATURATE``,
        the gain (e⁻/ADU) of each pixel's amplifier, and per-amplifier facts.

    Raises
    ------
    ValueError
        If the raw has no amplifier extensions with ``DATASEC``/``DETSEC``.
    """
    amps = [hdu for hdu in hdus[1:] if "DATASEC" in hdu.header and "DETSEC" in hdu.header]
    if not amps:
        raise ValueError("the raw has no amplifier extensions with DATASEC and DETSEC")
    rows_det, cols_det, _, _ = parse_section(amps[0].header["DETSIZE"])
    shape = (rows_det.stop - rows_det.start, cols_det.stop - cols_det.start)
    image = np.zeros(shape, dtype=np.float64)
    saturated = np.zeros(shape, dtype=bool)
    gain = np.ones(shape, dtype=np.float64)
    readouts = []
    for hdu in amps:
        header = hdu.header
        raw = np.asarray(hdu.data, dtype=np.float64)
        d_rows, d_cols, _, _ = parse_section(header["DATASEC"])
        b_rows, b_cols, _, _ = parse_section(header["BIASSEC"])
        t_rows, t_cols, flip_x, flip_y = parse_section(header["DETSEC"])
        # Skip the first overscan columns, where deferred charge raises the level.
        overscan = raw[b_rows, b_cols][:, 2:]
        level = np.median(overscan, axis=1)
        data = raw[d_rows, d_cols] - level[:, None]
        sat = raw[d_rows, d_cols] - float(header.get("BIASLVL", 0.0)) >= float(
            header.get("SATURATE", np.inf)
        )
        if flip_x:
            data, sat = data[:, ::-1], sat[:, ::-1]
        if flip_y:
            data, sat = data[::-1, :], sat[::-1, :]
        image[t_rows, t_cols] = data
        saturated[t_rows, t_cols] = sat
        gain[t_rows, t_cols] = float(header.get("GAIN", 1.0))
        residual = overscan - level[:, None]
        noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
        readouts.append(
            AmplifierReadout(str(header.get("EXTNAME", "")), float(np.median(level)), noise)
        )
    return image, saturated, gain, readouts


def _float(header: fits.Header, *keys: str) -> float:
    for key in keys:
        if key in header:
            return float(header[key])
    return math.nan


def raw_visit_info(header: fits.Header) -> VisitInfo:
    """The observing conditions written in a raw's primary header (imSim's keys)."""
    physical = str(header.get("FILTNAME") or header.get("FILTER"))
    exposure_time = _float(header, "EXPTIME")
    mjd = _float(header, "MJD")
    if math.isnan(mjd):
        mjd = _float(header, "MJD-OBS") + exposure_time / 2 / 86400.0
    visit = header.get("RUNNUM", header.get("VISIT"))
    label = FilterLabel(band_of(physical), physical)
    return VisitInfo(
        exposure_time=exposure_time,
        mjd=mjd,
        airmass=_float(header, "AIRMASS"),
        seeing_fwhm=_float(header, "SEEING"),
        boresight_ra=_float(header, "RATEL"),
        boresight_dec=_float(header, "DECTEL"),
        rotation_angle=_float(header, "ROTANGLE"),
        filter=label,
        id=None if visit is None else int(visit),
    )


def nominal_detector_wcs(
    camera: dict[str, Any], detector: int, info: VisitInfo, shape: tuple[int, int]
) -> WCS:
    """TAN WCS of a detector from the camera description and the telescope pointing.

    The boresight is the focal-plane origin; the detector's centre lies
    ``focal_plane_offset_pixels`` from it; x points west at rotation 0 and the axes
    turn with the rotation angle.

    Raises
    ------
    ValueError
        If the camera does not place the detector.
    """
    entry = next((d for d in camera.get("detectors", []) if int(d.get("id", -1)) == detector), None)
    if entry is None or "focal_plane_offset_pixels" not in entry:
        raise ValueError(f"the camera description does not place detector {detector}")
    fx, fy = (float(v) for v in entry["focal_plane_offset_pixels"])
    scale = float(camera.get("pixel_scale_arcsec", 0.2)) / 3600.0
    theta = math.radians(info.rotation_angle)
    c, s = math.cos(theta), math.sin(theta)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [info.boresight_ra, info.boresight_dec]
    wcs.wcs.crpix = [(shape[1] - 1) / 2.0 - fx + 1.0, (shape[0] - 1) / 2.0 - fy + 1.0]
    wcs.wcs.cd = scale * np.array([[-c, -s], [-s, c]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs.wcs.set()
    return wcs


class IsrConnections(PipelineTaskConnections, dimensions=("instrument", "exposure", "detector")):
    """Inputs and output of `IsrTask`."""

    raw = cT.Input(
        name="raw",
        doc="Raw amplifier images.",
        storageClass="DpzeroRaw",
        dimensions=("instrument", "exposure", "detector"),
    )
    bias = cT.PrerequisiteInput(
        name="bias",
        doc="Master bias, ADU after overscan subtraction.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )
    dark = cT.PrerequisiteInput(
        name="dark",
        doc="Master dark, electrons per second.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )
    flat = cT.PrerequisiteInput(
        name="flat",
        doc="Master flat, relative response.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "detector", "physical_filter"),
        isCalibration=True,
    )
    camera = cT.PrerequisiteInput(
        name="camera",
        doc="Camera description (detector placement, pixel scale).",
        storageClass="StructuredDataDict",
        dimensions=("instrument",),
    )
    exposure = cT.Output(
        name="postISRCCD",
        doc="Assembled, calibrated detector image in electrons.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "exposure", "detector"),
    )


class IsrConfig(PipelineTaskConfig, pipelineConnections=IsrConnections):
    """Configuration of `IsrTask`."""

    doDark = Field[bool](doc="Subtract the dark.", default=True)  # noqa: N815
    doFlat = Field[bool](doc="Divide by the flat.", default=True)  # noqa: N815
    doCrosstalk = Field[bool](doc="Unused: the simulated camera has no crosstalk.", default=False)  # noqa: N815
    crSigmaClip = Field[float](doc="L.A.Cosmic detection limit (sigma).", default=5.0)  # noqa: N815
    crObjLim = Field[float](doc="L.A.Cosmic contrast limit against stars.", default=5.0)  # noqa: N815
    crEdgePad = Field[int](doc="Pixels reflected around the image for L.A.Cosmic.", default=8)  # noqa: N815
    saturatedGrow = Field[int](doc="Pixels by which the SAT mask grows.", default=1)  # noqa: N815


class IsrTask(PipelineTask):
    """Remove the instrument signature from a raw detector image."""

    ConfigClass = IsrConfig
    _DefaultName = "isr"
    config: IsrConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the inputs, run, and write ``postISRCCD`` (the detector from the data ID)."""
        inputs = butlerQC.get(inputRefs)
        detector = int(butlerQC.quantum.dataId["detector"])
        butlerQC.put(self.run(detector=detector, **inputs), outputRefs)

    def run(
        self,
        raw: fits.HDUList,
        bias: Exposure,
        dark: Exposure,
        flat: Exposure,
        camera: dict,
        detector: int,
    ) -> Struct:
        """Assemble and calibrate one raw.

        Parameters
        ----------
        raw
            Primary HDU with the observation's header, then one HDU per amplifier.
        bias, dark, flat
            Master calibrations of the detector (and filter, for the flat).
        camera
            Camera description.
        detector
            Detector number.

        Returns
        -------
        lsst.pipe.base.Struct
            ``exposure``: the `Exposure` in electrons.
        """
        import astroscrappy

        header = raw[0].header
        info = raw_visit_info(header)
        adu, saturated, gain, readouts = assemble_amplifiers(raw)
        electrons = (adu - bias.image) * gain
        if self.config.doDark:
            electrons -= dark.image * info.exposure_time
        read_noise_e = np.full(adu.shape, float(np.median([r.overscan_noise for r in readouts])))
        read_noise_e *= gain
        response = flat.image.astype(np.float64) if self.config.doFlat else np.ones(adu.shape)
        image = electrons / response
        variance = (np.clip(electrons, 0.0, None) + read_noise_e**2) / response**2
        mask = np.zeros(adu.shape, dtype=np.int32)
        grown = ndimage.binary_dilation(saturated, iterations=self.config.saturatedGrow)
        mask[grown] |= mask_bits("SAT")
        # Reflected borders: a star cut by the edge must not look as sharp as a hit.
        pad = self.config.crEdgePad
        crmask, cleaned = astroscrappy.detect_cosmics(
            np.pad(image, pad, mode="reflect").astype(np.float32),
            inmask=np.pad(grown, pad, mode="reflect"),
            sigclip=self.config.crSigmaClip,
            objlim=self.config.crObjLim,
            gain=1.0,
            readnoise=float(np.median(read_noise_e)),
            satlevel=np.inf,
            sepmed=True,
            verbose=False,
        )
        inner = (slice(pad, pad + image.shape[0]), slice(pad, pad + image.shape[1]))
        crmask, cleaned = crmask[inner], cleaned[inner]
        crmask &= ~grown
        image = np.where(crmask, cleaned, image)
        mask[crmask] |= mask_bits("CR", "INTRP")
        wcs = nominal_detector_wcs(camera, detector, info, adu.shape)
        self.log.info(
            "ISR of visit %s detector %s: %d saturated, %d cosmic-ray pixels",
            info.id, detector, int(grown.sum()), int(crmask.sum()),
        )  # fmt: skip
        exposure = Exposure(
            image=image, mask=mask, variance=variance, wcs=wcs, visit_info=info, filter=info.filter
        )
        return Struct(exposure=exposure)
