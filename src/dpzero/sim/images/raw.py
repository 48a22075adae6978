"""Raw files: one multi-extension FITS file per visit and detector, as imSim wrote them.

The primary HDU carries the observation's header (visit, time, pointing, filter,
airmass, detector) and the detector's nominal WCS for the assembled frame (as the
telescope's pointing model gives it, before any astrometric fit); then one image
extension per amplifier, ``Segment10`` … ``Segment17``, ``Segment07`` …
``Segment00``, int32 pixels in readout order with
``DATASEC``, ``BIASSEC``, ``DETSEC``, ``DETSIZE``, gain, read noise and saturation.
"""

from __future__ import annotations

import functools

from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from numpy.typing import NDArray

from dpzero.sim.images.camera import (
    PRESCAN,
    SERIAL_OVERSCAN,
    AmplifierSpec,
    CameraSpec,
    DetectorSpec,
)
from dpzero.sim.images.observing import Visit

__all__ = ["raw_hdulist"]


def _primary_header(visit: Visit, detector: DetectorSpec, camera: CameraSpec) -> fits.Header:
    start = Time(visit.mjd - visit.exposure_time / 2 / 86400.0, format="mjd", scale="tai")
    h = fits.Header()
    h["TELESCOP"] = ("LSST", "telescope")
    h["INSTRUME"] = (camera.name, "instrument")
    h["TESTTYPE"] = ("IMSIM", "simulation")
    h["IMGTYPE"] = ("SKYEXP", "image type")
    h["OBSTYPE"] = ("science", "observation type")
    h["OBSID"] = (f"{visit.id}", "observation id")
    h["RUNNUM"] = (visit.id, "run number (the visit)")
    h["DAYOBS"] = (str(visit.day_obs), "observing night YYYYMMDD")
    h["SEQNUM"] = (0, "sequence number in the night")
    h["DATE-OBS"] = (start.utc.isot, "UTC start of exposure")
    h["MJD-OBS"] = (start.mjd, "MJD (TAI) start of exposure")
    h["MJD"] = (visit.mjd, "MJD (TAI) mid-exposure")
    h["TIMESYS"] = ("TAI", "time scale of MJD keys")
    h["EXPTIME"] = (visit.exposure_time, "exposure time (s)")
    h["DARKTIME"] = (visit.exposure_time + 1.0, "dark time (s)")
    h["SHUTTIME"] = (visit.exposure_time, "shutter open time (s)")
    h["FILTER"] = (visit.band, "filter band")
    h["FILTNAME"] = (visit.filter.physical_filter, "physical filter")
    h["RATEL"] = (visit.ra, "telescope pointing RA (deg)")
    h["DECTEL"] = (visit.dec, "telescope pointing Dec (deg)")
    h["ROTANGLE"] = (visit.rotation, "sky rotation angle (deg)")
    h["AIRMASS"] = (visit.airmass, "airmass at boresight")
    h["ZENITH"] = (_zenith_distance(visit.airmass), "zenith distance (deg)")
    h["SEEING"] = (visit.seeing, "delivered PSF FWHM (arcsec)")
    h["SKYBRITE"] = (visit.sky_mag, "sky brightness (AB mag/arcsec2)")
    h["CHIPID"] = (detector.full_name, "detector name")
    h["DETNUM"] = (detector.id, "detector number")
    h["RAFTBAY"] = (detector.raft, "raft")
    h["CCDSLOT"] = (detector.sensor, "sensor in raft")
    h["LSST_NUM"] = (detector.serial, "sensor serial")
    h["CCD_MANU"] = ("ITL", "sensor vendor")
    h["DETSIZE"] = (f"[1:{detector.width},1:{detector.height}]", "assembled size")
    return h


def _zenith_distance(airmass: float) -> float:
    import math

    return math.degrees(math.acos(min(1.0, 1.0 / airmass)))


def _section(x0: int, x1: int, y0: int, y1: int) -> str:
    """A FITS section string from 1-based inclusive bounds (reversed ranges allowed)."""
    return f"[{x0}:{x1},{y0}:{y1}]"


@functools.lru_cache(maxsize=512)
def _amp_header(amp: AmplifierSpec, detector: DetectorSpec) -> fits.Header:
    """An amplifier's header, the same in every visit (made once; HDUs copy it)."""
    b = amp.data_box
    h = fits.Header()
    h["EXTNAME"] = amp.segment
    h["CHANNEL"] = (detector.amplifiers.index(amp) + 1, "amplifier number")
    h["AMPNAME"] = (amp.name, "amplifier name")
    h["DATASEC"] = _section(PRESCAN + 1, PRESCAN + b.width, 1, b.height)
    h["BIASSEC"] = _section(PRESCAN + b.width + 1, PRESCAN + b.width + SERIAL_OVERSCAN, 1, b.height)
    xs = (b.x1, b.x0 + 1) if amp.flip_x else (b.x0 + 1, b.x1)
    ys = (b.y1, b.y0 + 1) if amp.flip_y else (b.y0 + 1, b.y1)
    h["DETSEC"] = (_section(*xs, *ys), "where the data section goes, readout order")
    h["DETSIZE"] = _section(1, detector.width, 1, detector.height)
    h["GAIN"] = (amp.gain, "e-/ADU")
    h["RDNOISE"] = (amp.read_noise, "read noise (ADU)")
    h["SATURATE"] = (amp.saturation, "saturation (ADU above bias)")
    h["BIASLVL"] = (amp.bias_level, "nominal bias level (ADU)")
    return h


def raw_hdulist(
    amplifiers: list[tuple[AmplifierSpec, NDArray]],
    visit: Visit,
    detector: DetectorSpec,
    camera: CameraSpec,
    wcs: WCS | None = None,
) -> fits.HDUList:
    """The raw file's HDUs for a detector's amplifier images (from `read_out`).

    ``wcs`` (of the assembled detector, 0-based pixels) goes into the primary header.
    """
    header = _primary_header(visit, detector, camera)
    if wcs is not None:
        header.extend(wcs.to_header(), update=True)
    hdus: list = [fits.PrimaryHDU(header=header)]
    for amp, data in amplifiers:
        hdu = fits.ImageHDU(data, header=_amp_header(amp, detector))
        hdu.header["EXTNAME"] = amp.segment  # imSim's case, which the name setter would lose
        hdus.append(hdu)
    return fits.HDUList(hdus)
