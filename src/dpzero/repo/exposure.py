"""The image container of dpzero: an exposure with its mask, variance and metadata.

An `Exposure` is what LSST's ``afw`` calls an ``ExposureF``, written on numpy and
astropy: a float32 image, an int32 mask of bit planes (`MASK_PLANES`), a float32
variance, a WCS, a PSF kernel, a photometric calibration, the visit's observing
conditions, the filter and the box the pixels occupy in their parent frame (the
detector for a calexp, the tract for a coadd patch).

On disk it is a multi-extension FITS file with uncompressed HDUs ``IMAGE``,
``MASK``, ``VARIANCE`` and ``PSF`` after a primary HDU carrying the metadata, so
`read_exposure` can read a box of pixels without reading the rest of the file.

Pixel conventions
-----------------
``exposure.image[row, col]`` is the pixel at parent-frame position
``(x, y) = (bbox.x0 + col, bbox.y0 + row)``. The `Exposure.wcs` maps the array's own
0-based pixel indices to the sky (astropy's convention), so
``exposure.wcs.pixel_to_world(col, row)`` works directly on the arrays; use
`Exposure.parent_to_sky` for parent-frame positions.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from numpy.typing import ArrayLike, NDArray

from dpzero.errors import InvalidInputError

__all__ = [
    "COMPONENTS",
    "MASK_PLANES",
    "Box",
    "BoxOutsideError",
    "Exposure",
    "ExposureFileError",
    "FilterLabel",
    "PhotoCalib",
    "Psf",
    "VisitInfo",
    "mask_bits",
    "read_exposure",
]

MASK_PLANES: Mapping[str, int] = {
    "BAD": 0,  # a bad pixel of the detector (from the defect list)
    "SAT": 1,  # saturated
    "INTRP": 2,  # value interpolated from neighbours
    "CR": 3,  # hit by a cosmic ray
    "EDGE": 4,  # too close to the edge to detect on
    "DETECTED": 5,  # above the detection threshold
    "DETECTED_NEGATIVE": 6,  # below minus the detection threshold
    "SUSPECT": 7,  # unreliable (near saturation, non-linear)
    "NO_DATA": 8,  # no input data (coadd holes, off the detector)
    "CROSSTALK": 9,  # crosstalk correction applied
    "NOT_DEBLENDED": 10,  # in a footprint too large to deblend
    "UNMASKEDNAN": 11,  # NaN not otherwise flagged
    "CLIPPED": 12,  # clipped when coadding
    "SENSOR_EDGE": 13,  # coadd input near a detector's edge
    "INEXACT_PSF": 14,  # coadd PSF not exact here
    "REJECTED": 15,  # coadd input rejected here
}
"""Mask plane name → bit number (the plane's value is ``1 << bit``), as LSST's afw."""

COMPONENTS: tuple[str, ...] = (
    "image",
    "mask",
    "variance",
    "wcs",
    "psf",
    "photoCalib",
    "visitInfo",
    "bbox",
    "filter",
)
"""Names of the parts `read_exposure` can read alone (Butler component names)."""

_FORMAT_NAME = "dpzero.Exposure"
_FORMAT_VERSION = 1


def mask_bits(*planes: str) -> int:
    """OR of the bit values of named mask planes (``mask_bits("SAT", "CR") == 10``).

    Raises
    ------
    ValueError
        If a plane name is not in `MASK_PLANES`.
    """
    value = 0
    for plane in planes:
        if plane not in MASK_PLANES:
            raise ValueError(f"unknown mask plane {plane!r}; known: {', '.join(MASK_PLANES)}")
        value |= 1 << MASK_PLANES[plane]
    return value


class BoxOutsideError(InvalidInputError):
    """A requested box of pixels does not lie within the exposure."""

    code = "bbox_outside"


class ExposureFileError(InvalidInputError):
    """A file is not an exposure written by `Exposure.write_fits`."""

    code = "not_an_exposure"


@dataclass(frozen=True)
class Box:
    """An integer box of pixels in a parent frame: origin and size.

    Attributes
    ----------
    x0, y0
        Parent-frame position of the first column and row.
    width, height
        Number of columns and rows (may be 0 for an empty box).
    """

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidInputError(f"Box.{name} must be an integer, not {value!r}")
            object.__setattr__(self, name, int(value))
        if self.width < 0 or self.height < 0:
            raise InvalidInputError(f"Box size must not be negative: {self}")

    @property
    def x1(self) -> int:
        """One past the last column (exclusive end)."""
        return self.x0 + self.width

    @property
    def y1(self) -> int:
        """One past the last row (exclusive end)."""
        return self.y0 + self.height

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)`` of an array covering the box."""
        return (self.height, self.width)

    @property
    def is_empty(self) -> bool:
        """True when the box has no pixels."""
        return self.width == 0 or self.height == 0

    def contains(self, other: Box) -> bool:
        """True when ``other`` lies wholly within this box."""
        return (
            self.x0 <= other.x0
            and self.y0 <= other.y0
            and other.x1 <= self.x1
            and other.y1 <= self.y1
        )

    def intersection(self, other: Box) -> Box:
        """The pixels common to both boxes (possibly empty, placed at the overlap)."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def slices_within(self, parent: Box) -> tuple[slice, slice]:
        """Numpy ``(rows, columns)`` slices selecting this box from an array on ``parent``.

        Raises
        ------
        BoxOutsideError
            If this box does not lie within ``parent``.
        """
        if not parent.contains(self):
            raise BoxOutsideError(f"box {self} does not lie within {parent}")
        r0, c0 = self.y0 - parent.y0, self.x0 - parent.x0
        return slice(r0, r0 + self.height), slice(c0, c0 + self.width)


@dataclass(frozen=True)
class FilterLabel:
    """The filter of an exposure: its band and physical filter (``"i"``, ``"i_sim_1.4"``)."""

    band: str
    physical_filter: str


@dataclass(frozen=True)
class PhotoCalib:
    """Photometric calibration: flux in nJy of one count (ADU or electron) of the image.

    Attributes
    ----------
    njy_per_count
        Calibration factor (``flux_nJy = njy_per_count * counts``).
    error
        1-sigma uncertainty of ``njy_per_count``.
    """

    njy_per_count: float
    error: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.njy_per_count) and self.njy_per_count > 0):
            raise InvalidInputError(
                f"PhotoCalib.njy_per_count must be finite and positive: {self.njy_per_count}"
            )
        if not (math.isfinite(self.error) and self.error >= 0):
            raise InvalidInputError(f"PhotoCalib.error must be finite and >= 0: {self.error}")

    @property
    def zero_point(self) -> float:
        """AB magnitude of one count: ``31.4 - 2.5 log10(nJy per count)``."""
        return 31.4 - 2.5 * math.log10(self.njy_per_count)

    def to_njy(self, counts: ArrayLike) -> NDArray[np.float64]:
        """Fluxes in nJy of instrumental fluxes in counts."""
        return np.asarray(counts, dtype=np.float64) * self.njy_per_count


@dataclass(frozen=True)
class Psf:
    """A point-spread function as one kernel image, constant over the exposure.

    Attributes
    ----------
    kernel
        2-D float64 image with odd sides, centred on the middle pixel, summing to 1
        (normalised on construction).
    fwhm
        Full width at half maximum, pixels.
    """

    kernel: NDArray[np.float64]
    fwhm: float

    def __post_init__(self) -> None:
        kernel = np.array(self.kernel, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise InvalidInputError(f"PSF kernel must be 2-D with odd sides, not {kernel.shape}")
        total = kernel.sum()
        if not (np.all(np.isfinite(kernel)) and total > 0):
            raise InvalidInputError("PSF kernel must be finite with a positive sum")
        kernel /= total
        kernel.flags.writeable = False
        object.__setattr__(self, "kernel", kernel)
        if not (math.isfinite(self.fwhm) and self.fwhm > 0):
            raise InvalidInputError(f"PSF FWHM must be finite and positive: {self.fwhm}")
        object.__setattr__(self, "fwhm", float(self.fwhm))

    @classmethod
    def gaussian(cls, fwhm: float, size: int | None = None) -> Psf:
        """A circular Gaussian PSF of a FWHM in pixels, on an odd ``size`` square."""
        sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        if size is None:
            size = 2 * math.ceil(4.0 * sigma) + 1
        if size % 2 == 0 or size < 1:
            raise InvalidInputError(f"PSF kernel size must be odd and positive, not {size}")
        r = np.arange(size) - size // 2
        g = np.exp(-0.5 * (r / sigma) ** 2)
        return cls(kernel=np.outer(g, g), fwhm=fwhm)


@dataclass(frozen=True)
class VisitInfo:
    """Observing conditions of the visit an exposure comes from.

    Attributes
    ----------
    exposure_time
        Open-shutter time, seconds.
    mjd
        Modified Julian Date (TAI) of the middle of the exposure.
    airmass
        Airmass at the boresight.
    seeing_fwhm
        Delivered seeing FWHM, arcseconds.
    boresight_ra, boresight_dec
        Telescope pointing, degrees.
    rotation_angle
        Sky rotation angle of the focal plane, degrees.
    filter
        Filter used.
    id
        Visit (exposure) id, or ``None`` for products without one (coadds).
    """

    exposure_time: float
    mjd: float
    airmass: float
    seeing_fwhm: float
    boresight_ra: float
    boresight_dec: float
    rotation_angle: float
    filter: FilterLabel
    id: int | None = None


@dataclass(frozen=True)
class Exposure:
    """Image, mask and variance planes with their WCS, PSF, calibration and metadata.

    Parameters
    ----------
    image
        Pixel values (float32; converted on construction).
    mask
        Bit planes of `MASK_PLANES` (int32).
    variance
        Per-pixel variance of ``image`` (float32).
    wcs
        Maps the arrays' 0-based pixel indices to the sky.
    psf
        Point-spread function.
    photo_calib
        nJy per count of ``image``.
    visit_info
        Observing conditions.
    bbox
        Position of the arrays in the parent frame; defaults to origin ``(0, 0)``.
    filter
        Band and physical filter.

    Raises
    ------
    InvalidInputError
        If the planes are not 2-D arrays of one shape, or ``bbox`` has another shape.
    """

    image: NDArray[np.float32]
    mask: NDArray[np.int32]
    variance: NDArray[np.float32]
    wcs: WCS | None = None
    psf: Psf | None = None
    photo_calib: PhotoCalib | None = None
    visit_info: VisitInfo | None = None
    bbox: Box = field(default=None)  # type: ignore[assignment]
    filter: FilterLabel | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image, dtype=np.float32)
        mask = np.asarray(self.mask, dtype=np.int32)
        variance = np.asarray(self.variance, dtype=np.float32)
        if image.ndim != 2:
            raise InvalidInputError(f"an exposure's image must be 2-D, not {image.shape}")
        if mask.shape != image.shape or variance.shape != image.shape:
            raise InvalidInputError(
                f"image {image.shape}, mask {mask.shape} and variance {variance.shape} "
                "must have one shape"
            )
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "variance", variance)
        if self.bbox is None:
            object.__setattr__(self, "bbox", Box(0, 0, image.shape[1], image.shape[0]))
        elif self.bbox.shape != image.shape:
            raise InvalidInputError(
                f"bbox {self.bbox} does not match the image shape {image.shape}"
            )

    @classmethod
    def from_image(
        cls,
        image: ArrayLike,
        *,
        variance: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        **metadata: Any,
    ) -> Exposure:
        """An exposure of an image, with an empty mask and unit variance by default.

        ``metadata`` are the other fields (``wcs``, ``psf``, ``photo_calib``, …).
        """
        image = np.asarray(image, dtype=np.float32)
        if variance is None:
            variance = np.ones_like(image)
        if mask is None:
            mask = np.zeros(image.shape, dtype=np.int32)
        return cls(image=image, mask=mask, variance=variance, **metadata)  # type: ignore[arg-type]

    def subset(self, bbox: Box) -> Exposure:
        """The exposure cut to a parent-frame box (arrays are views, not copies).

        Raises
        ------
        BoxOutsideError
            If ``bbox`` does not lie within `bbox`.
        """
        rows, cols = bbox.slices_within(self.bbox)
        wcs = self.wcs.slice((rows, cols)) if self.wcs is not None else None
        return replace(
            self,
            image=self.image[rows, cols],
            mask=self.mask[rows, cols],
            variance=self.variance[rows, cols],
            wcs=wcs,
            bbox=bbox,
        )

    def parent_to_sky(self, x: ArrayLike, y: ArrayLike) -> tuple[NDArray, NDArray]:
        """Sky position (ra, dec degrees) of parent-frame pixel positions.

        Raises
        ------
        InvalidInputError
            If the exposure has no WCS.
        """
        if self.wcs is None:
            raise InvalidInputError("this exposure has no WCS")
        ra, dec = self.wcs.all_pix2world(
            np.asarray(x, dtype=np.float64) - self.bbox.x0,
            np.asarray(y, dtype=np.float64) - self.bbox.y0,
            0,
        )
        return ra, dec

    def write_fits(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the exposure as one multi-extension FITS file.

        Parameters
        ----------
        path
            Output file.
        overwrite
            Replace an existing file.

        Raises
        ------
        OSError
            If the file exists and ``overwrite`` is false, or cannot be written.
        """
        # The headers are built here from typed values: astropy's verification of
        # every card would only repeat that, at half the cost of writing a 512² image.
        _to_hdulist(self).writeto(path, overwrite=overwrite, output_verify="ignore")


def read_exposure(
    source: str | os.PathLike[str] | BinaryIO,
    bbox: Box | None = None,
    component: str | None = None,
) -> Any:
    """Read an exposure, a box of it, or one component, from a file of `Exposure.write_fits`.

    Only the HDUs a component needs are read, and of those only the rows of ``bbox``.

    Parameters
    ----------
    source
        Path or seekable binary file object.
    bbox
        Parent-frame box of pixels to read; it must lie within the exposure.
    component
        One of `COMPONENTS` to read just that; ``None`` reads the whole `Exposure`.

    Returns
    -------
    Exposure or component
        `Exposure`; for components a numpy array (image, mask, variance), `WCS`, `Psf`,
        `PhotoCalib`, `VisitInfo`, `Box` or `FilterLabel` (``None`` when the exposure
        lacks that part). With ``bbox``, arrays, WCS and box refer to the box.

    Raises
    ------
    BoxOutsideError
        If ``bbox`` does not lie within the exposure.
    ExposureFileError
        If the file is not an exposure file.
    InvalidInputError
        If ``component`` is not one of `COMPONENTS`.
    """
    if component is not None and component not in COMPONENTS:
        raise InvalidInputError(
            f"unknown exposure component {component!r}; known: {', '.join(COMPONENTS)}"
        )
    with fits.open(source, memmap=False, lazy_load_hdus=True) as hdul:
        primary = hdul[0].header
        if primary.get("DPZFMT") != _FORMAT_NAME:
            raise ExposureFileError(f"{_describe(source)} is not a dpzero exposure file")
        try:
            image_hdu = hdul["IMAGE"]
        except KeyError:
            raise ExposureFileError(f"{_describe(source)} has no IMAGE HDU") from None
        ny, nx = int(image_hdu.header["NAXIS2"]), int(image_hdu.header["NAXIS1"])
        full = Box(int(primary.get("BBOX_X0", 0)), int(primary.get("BBOX_Y0", 0)), nx, ny)
        box = full if bbox is None else bbox
        rows, cols = box.slices_within(full)

        def plane(name: str, dtype: type) -> NDArray:
            # Whole rows are one contiguous read (one request on S3), then cut columns.
            band = np.asarray(hdul[name].section[rows, :])
            return band[:, cols].astype(dtype)

        def wcs() -> WCS | None:
            return _read_wcs(image_hdu.header, rows, cols)

        def psf() -> Psf | None:
            if "PSF" not in hdul:
                return None
            hdu = hdul["PSF"]
            return Psf(kernel=np.asarray(hdu.data, dtype=np.float64), fwhm=hdu.header["FWHM"])

        readers = {
            "image": lambda: plane("IMAGE", np.float32),
            "mask": lambda: plane("MASK", np.int32),
            "variance": lambda: plane("VARIANCE", np.float32),
            "wcs": wcs,
            "psf": psf,
            "photoCalib": lambda: _read_photo_calib(primary),
            "visitInfo": lambda: _read_visit_info(primary),
            "bbox": lambda: box,
            "filter": lambda: _read_filter(primary),
        }
        if component is not None:
            return readers[component]()
        return Exposure(
            image=readers["image"](),
            mask=readers["mask"](),
            variance=readers["variance"](),
            wcs=wcs(),
            psf=psf(),
            photo_calib=readers["photoCalib"](),
            visit_info=readers["visitInfo"](),
            bbox=box,
            filter=readers["filter"](),
        )


def _describe(source: object) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else "the file"


def _set_finite(header: fits.Header, key: str, value: float | None, comment: str) -> None:
    """Header cards cannot hold NaN: an absent card stands for an unknown value."""
    if value is not None and math.isfinite(value):
        header[key] = (float(value), comment)


def _get_float(header: fits.Header, key: str) -> float:
    value = header.get(key)
    return math.nan if value is None else float(value)


def _to_hdulist(exposure: Exposure) -> fits.HDUList:
    primary = fits.PrimaryHDU()
    h = primary.header
    h["DPZFMT"] = (_FORMAT_NAME, "file format")
    h["DPZFMTV"] = (_FORMAT_VERSION, "file format version")
    h["BBOX_X0"] = (exposure.bbox.x0, "parent-frame x of the first column")
    h["BBOX_Y0"] = (exposure.bbox.y0, "parent-frame y of the first row")
    if exposure.filter is not None:
        h["BAND"] = (exposure.filter.band, "band")
        h["FILTER"] = (exposure.filter.physical_filter, "physical filter")
    if exposure.photo_calib is not None:
        h["PHOTCAL"] = (exposure.photo_calib.njy_per_count, "nJy per count")
        h["PHOTCERR"] = (exposure.photo_calib.error, "error of PHOTCAL")
    info = exposure.visit_info
    if info is not None:
        h["HASVINFO"] = (True, "visit info present")
        if info.id is not None:
            h["VISIT"] = (int(info.id), "visit id")
        _set_finite(h, "EXPTIME", info.exposure_time, "exposure time (s)")
        _set_finite(h, "MJD-AVG", info.mjd, "MJD (TAI) mid-exposure")
        _set_finite(h, "AIRMASS", info.airmass, "airmass at boresight")
        _set_finite(h, "SEEING", info.seeing_fwhm, "seeing FWHM (arcsec)")
        _set_finite(h, "BORE-RA", info.boresight_ra, "boresight RA (deg)")
        _set_finite(h, "BORE-DEC", info.boresight_dec, "boresight Dec (deg)")
        _set_finite(h, "ROTANG", info.rotation_angle, "sky rotation angle (deg)")
        h["VIBAND"] = (info.filter.band, "visit band")
        h["VIFILTER"] = (info.filter.physical_filter, "visit physical filter")

    image_header = fits.Header()
    if exposure.wcs is not None:
        image_header.extend(exposure.wcs.to_header(relax=True), update=True)
    # The parent frame, as IRAF's LTV keys and an alternate linear WCS "A" (for viewers).
    image_header["LTV1"] = -exposure.bbox.x0
    image_header["LTV2"] = -exposure.bbox.y0
    for axis, origin in ((1, exposure.bbox.x0), (2, exposure.bbox.y0)):
        image_header[f"CTYPE{axis}A"] = "LINEAR"
        image_header[f"CRPIX{axis}A"] = 1.0
        image_header[f"CRVAL{axis}A"] = float(origin)
        image_header[f"CUNIT{axis}A"] = "PIXEL"
    mask_header = fits.Header()
    for name, bit in MASK_PLANES.items():
        mask_header[f"HIERARCH MP_{name}"] = (bit, "mask plane bit")
    hdus: list[fits.hdu.base.ExtensionHDU] = [
        fits.ImageHDU(exposure.image, header=image_header, name="IMAGE"),
        fits.ImageHDU(exposure.mask, header=mask_header, name="MASK"),
        fits.ImageHDU(exposure.variance, name="VARIANCE"),
    ]
    if exposure.psf is not None:
        psf_hdu = fits.ImageHDU(exposure.psf.kernel, name="PSF")
        psf_hdu.header["FWHM"] = (exposure.psf.fwhm, "PSF FWHM (pixels)")
        hdus.append(psf_hdu)
    return fits.HDUList([primary, *hdus])


def _read_wcs(header: fits.Header, rows: slice, cols: slice) -> WCS | None:
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, key=" ")
    if rows.start == 0 and cols.start == 0:
        return wcs
    return wcs.slice((rows, cols))


def _read_photo_calib(header: fits.Header) -> PhotoCalib | None:
    if "PHOTCAL" not in header:
        return None
    return PhotoCalib(float(header["PHOTCAL"]), float(header.get("PHOTCERR", 0.0)))


def _read_filter(header: fits.Header) -> FilterLabel | None:
    if "BAND" not in header:
        return None
    return FilterLabel(band=header["BAND"], physical_filter=header["FILTER"])


def _read_visit_info(header: fits.Header) -> VisitInfo | None:
    if not header.get("HASVINFO", False):
        return None
    visit = header.get("VISIT")
    return VisitInfo(
        exposure_time=_get_float(header, "EXPTIME"),
        mjd=_get_float(header, "MJD-AVG"),
        airmass=_get_float(header, "AIRMASS"),
        seeing_fwhm=_get_float(header, "SEEING"),
        boresight_ra=_get_float(header, "BORE-RA"),
        boresight_dec=_get_float(header, "BORE-DEC"),
        rotation_angle=_get_float(header, "ROTANG"),
        filter=FilterLabel(band=header["VIBAND"], physical_filter=header["VIFILTER"]),
        id=None if visit is None else int(visit),
    )
