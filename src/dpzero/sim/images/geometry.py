"""WCSs of detectors and coadd patches, and the boxes they cover.

A detector's WCS is a gnomonic (TAN) projection about the visit's boresight: the
detector's pixels are placed in the focal plane by their offset from the boresight,
rotated by the visit's sky rotation, with x toward lower RA at rotation 0 (north up,
east left, as a sky image is shown). A coadd patch's WCS is its tract's projection
(`dpzero.sim.skymap`) shifted to the patch box's origin, so that array index
``(row, col)`` is tract pixel ``(y0 + row, x0 + col)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from astropy.wcs import WCS, FITSFixedWarning
from numpy.typing import NDArray

from dpzero.repo import Box
from dpzero.sim.images.camera import CameraSpec, DetectorSpec
from dpzero.sim.images.observing import Visit
from dpzero.sim.skymap import DC2_SKYMAP, RingsSkyMap

__all__ = [
    "detector_corners",
    "detector_wcs",
    "focal_plane_corners",
    "local_jacobian",
    "patch_box",
    "patch_wcs",
]


def _tan_wcs(crval: tuple[float, float], crpix: tuple[float, float], cd: NDArray) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = list(crpix)
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs.wcs.set()
    return wcs


def detector_wcs(detector: DetectorSpec, visit: Visit, pixel_scale: float) -> WCS:
    """WCS of a detector in a visit (0-based array indices → ICRS degrees).

    Parameters
    ----------
    detector
        The detector.
    visit
        The visit (boresight and rotation).
    pixel_scale
        Arcsec per pixel.
    """
    theta = math.radians(visit.rotation)
    s = pixel_scale / 3600.0
    c, n = math.cos(theta), math.sin(theta)
    # Rotation of the flipped frame (x toward west): [[−cos, −sin], [−sin, cos]] · s.
    cd = s * np.array([[-c, -n], [-n, c]])
    # FITS CRPIX is 1-based: the boresight sits at the detector pixel below.
    crpix_x = (detector.width - 1) / 2.0 - detector.focal_x + 1.0
    crpix_y = (detector.height - 1) / 2.0 - detector.focal_y + 1.0
    return _tan_wcs((visit.ra, visit.dec), (crpix_x, crpix_y), cd)


def detector_corners(detector: DetectorSpec, visit: Visit, camera: CameraSpec) -> NDArray:
    """Sky corners (ra, dec degrees) of a detector's pixel area, shape (4, 2)."""
    wcs = detector_wcs(detector, visit, camera.pixel_scale)
    x = np.array([-0.5, detector.width - 0.5, detector.width - 0.5, -0.5])
    y = np.array([-0.5, -0.5, detector.height - 0.5, detector.height - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.column_stack([ra, dec])


def focal_plane_corners(camera: CameraSpec, visit: Visit) -> NDArray:
    """Sky corners (ra, dec degrees) of the outline of the whole focal plane, shape (4, 2).

    The outline spans the detectors and the gaps between them: the area a visit
    observes, as a survey of many dithered visits fills the gaps.
    """
    centre = min(camera.detectors, key=lambda d: math.hypot(d.focal_x, d.focal_y))
    wcs = detector_wcs(centre, visit, camera.pixel_scale)
    x0 = min(d.focal_x - d.width / 2 for d in camera.detectors) - centre.focal_x
    x1 = max(d.focal_x + d.width / 2 for d in camera.detectors) - centre.focal_x
    y0 = min(d.focal_y - d.height / 2 for d in camera.detectors) - centre.focal_y
    y1 = max(d.focal_y + d.height / 2 for d in camera.detectors) - centre.focal_y
    cx, cy = (centre.width - 1) / 2, (centre.height - 1) / 2
    x = np.array([x0, x1, x1, x0]) + cx
    y = np.array([y0, y0, y1, y1]) + cy
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.column_stack([ra, dec])


def local_jacobian(wcs: WCS) -> tuple[float, float, float, float]:
    """``(dudx, dudy, dvdx, dvdy)`` in arcsec per pixel, u east and v north.

    Good over a detector for a TAN projection of a few arcminutes.
    """
    cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.pixel_scale_matrix
    cd = np.asarray(cd) * 3600.0
    # u = ξ (east, toward higher RA), v = η (north).
    return float(cd[0, 0]), float(cd[0, 1]), float(cd[1, 0]), float(cd[1, 1])


def patch_box(tract: int, patch_x: int, patch_y: int, skymap: RingsSkyMap = DC2_SKYMAP) -> Box:
    """Tract-frame box of a patch with its border (the coadd's pixels)."""
    inner = skymap.patch_inner
    border = skymap.patch_border
    x0 = patch_x * inner - border
    y0 = patch_y * inner - border
    return Box(x0, y0, inner + 2 * border, inner + 2 * border)


def patch_wcs(tract: int, box: Box, skymap: RingsSkyMap = DC2_SKYMAP) -> WCS:
    """WCS of a coadd on ``box`` of a tract (0-based array indices → ICRS degrees)."""
    info = skymap.tract_info(tract)
    s = skymap.pixel_scale_arcsec / 3600.0
    cd = np.array([[-s, 0.0], [0.0, s]])
    crpix = (info.crpix - box.x0 + 1.0, info.crpix - box.y0 + 1.0)
    return _tan_wcs((info.ra, info.dec), crpix, cd)
