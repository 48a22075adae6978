"""Warping calexps onto the sky map's patches and assembling them into coadds.

``makeWarp`` (per visit and patch) resamples each detector's calexp onto the tract's
TAN projection with `reproject.reproject_interp` (bilinear), over the part of the
patch (border included) the visit covers, in nJy (the calexp's calibration
applied). ``assembleCoadd`` (per patch and band) stacks the warps of a band,
rejects per pixel the inputs far from their median for their own variance (with a
handful of inputs a sample σ cannot be trusted) and averages the rest weighted by
each warp's inverse mean variance; the coadd covers the union of its
warps' boxes, its PSF is the weighted mean of theirs and ``deepCoadd_nImage``
counts the inputs per pixel.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from astropy.wcs import WCS, FITSFixedWarning
from lsst.pex.config import Field
from lsst.pipe.base import (
    NoWorkFound,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)
from lsst.pipe.base import connectionTypes as cT
from numpy.typing import NDArray

from dpzero.repo.exposure import Box, Exposure, PhotoCalib, Psf, mask_bits
from dpzero.sim.skymap import RingsSkyMap

__all__ = [
    "AssembleCoaddConfig",
    "AssembleCoaddConnections",
    "AssembleCoaddTask",
    "MakeWarpConfig",
    "MakeWarpConnections",
    "MakeWarpTask",
    "coadd_warps",
    "patch_outer_box",
    "tract_wcs",
    "warp_box",
]

_NO_DATA = mask_bits("NO_DATA")


def patch_outer_box(skymap: RingsSkyMap, patch: int) -> Box:
    """Tract-frame box of a patch (Gen3 index ``x + 7 y``) with its border."""
    n = skymap.patches_per_side
    px, py = patch % n, patch // n
    inner, border = skymap.patch_inner, skymap.patch_border
    return Box(px * inner - border, py * inner - border, inner + 2 * border, inner + 2 * border)


def tract_wcs(skymap: RingsSkyMap, tract: int, box: Box) -> WCS:
    """WCS of an array covering ``box`` of a tract (0-based indices → ICRS degrees)."""
    info = skymap.tract_info(tract)
    scale = skymap.pixel_scale_arcsec / 3600.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [info.ra, info.dec]
    wcs.wcs.crpix = [info.crpix - box.x0 + 1.0, info.crpix - box.y0 + 1.0]
    wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs.wcs.set()
    return wcs


def warp_box(skymap: RingsSkyMap, tract: int, calexp: Exposure, patch_box: Box) -> Box:
    """The tract pixels of ``patch_box`` that a calexp covers (possibly empty)."""
    h, w = calexp.image.shape
    ra, dec = calexp.wcs.all_pix2world(
        [-0.5, w - 0.5, w - 0.5, -0.5], [-0.5, -0.5, h - 0.5, h - 0.5], 0
    )
    x, y = skymap.sky_to_pixel(tract, ra, dec)
    x0, y0 = math.floor(float(np.min(x))), math.floor(float(np.min(y)))
    x1, y1 = math.ceil(float(np.max(x))) + 1, math.ceil(float(np.max(y))) + 1
    return Box(x0, y0, x1 - x0, y1 - y0).intersection(patch_box)


def _union(boxes: list[Box]) -> Box:
    x0, y0 = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
    x1, y1 = max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    return Box(x0, y0, x1 - x0, y1 - y0)


class MakeWarpConnections(
    PipelineTaskConnections, dimensions=("tract", "patch", "skymap", "instrument", "visit")
):
    """Inputs and output of `MakeWarpTask`."""

    calexps = cT.Input(
        name="calexp",
        doc="Calibrated exposures of the visit overlapping the patch.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
    )
    sky_map = cT.Input(
        name="skyMap",
        doc="The sky map.",
        storageClass="DpzeroSkyMap",
        dimensions=("skymap",),
    )
    warp = cT.Output(
        name="deepCoadd_directWarp",
        doc="The visit resampled onto the patch, nJy.",
        storageClass="DpzeroExposure",
        dimensions=("tract", "patch", "skymap", "instrument", "visit"),
    )


class MakeWarpConfig(PipelineTaskConfig, pipelineConnections=MakeWarpConnections):
    """Configuration of `MakeWarpTask`."""

    minPixels = Field[int](doc="Least pixels of the patch a warp must cover.", default=100)  # noqa: N815


class MakeWarpTask(PipelineTask):
    """Resample a visit's calexps onto a patch."""

    ConfigClass = MakeWarpConfig
    _DefaultName = "makeWarp"
    config: MakeWarpConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the calexps and sky map, run for the quantum's tract and patch, write."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        result = self.run(
            inputs["calexps"], inputs["sky_map"], int(data_id["tract"]), int(data_id["patch"])
        )
        butlerQC.put(result, outputRefs)

    def run(self, calexps: list[Exposure], sky_map: RingsSkyMap, tract: int, patch: int) -> Struct:
        """Warp calexps of one visit onto a patch.

        Returns
        -------
        lsst.pipe.base.Struct
            ``warp``: an `Exposure` in nJy on the covered part of the patch.

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If the visit covers fewer than ``minPixels`` of the patch.
        """
        from reproject import reproject_interp

        patch_box = patch_outer_box(sky_map, patch)
        boxes = [warp_box(sky_map, tract, c, patch_box) for c in calexps]
        boxes = [b for b in boxes if not b.is_empty]
        if not boxes or sum(b.width * b.height for b in boxes) < self.config.minPixels:
            raise NoWorkFound(f"the visit hardly covers patch {patch} of tract {tract}")
        box = _union(boxes)
        wcs = tract_wcs(sky_map, tract, box)
        image = np.full(box.shape, np.nan)
        variance = np.full(box.shape, np.nan)
        mask = np.zeros(box.shape, dtype=np.int32)
        for calexp in calexps:
            scale = calexp.photo_calib.njy_per_count
            good = (calexp.mask & mask_bits("BAD", "SAT", "NO_DATA", "EDGE")) == 0
            flux = np.where(good, calexp.image * scale, np.nan)
            warped, footprint = reproject_interp(
                (flux, calexp.wcs), wcs, shape_out=box.shape, order="bilinear"
            )
            var, _ = reproject_interp(
                (np.where(good, calexp.variance * scale**2, np.nan), calexp.wcs),
                wcs,
                shape_out=box.shape,
                order="bilinear",
            )
            take = (footprint > 0) & np.isfinite(warped) & ~np.isfinite(image)
            image[take] = warped[take]
            variance[take] = var[take]
        missing = ~np.isfinite(image)
        mask[missing] |= _NO_DATA
        psf = calexps[0].psf
        first = calexps[0]
        warp = Exposure(
            image=np.where(missing, 0.0, image),
            mask=mask,
            variance=np.where(missing, np.inf, variance),
            wcs=wcs,
            psf=psf,
            photo_calib=PhotoCalib(1.0),
            visit_info=first.visit_info,
            bbox=box,
            filter=first.filter,
        )
        self.log.info(
            "Warp of %d pixels, %d with data", box.width * box.height, int((~missing).sum())
        )
        return Struct(warp=warp)


def coadd_warps(
    images: NDArray, variances: NDArray, weights: NDArray, clip_sigma: float
) -> tuple[NDArray, NDArray, NDArray]:
    """Outlier-rejected, weighted mean of a stack (NaN where a warp has no data).

    Parameters
    ----------
    images, variances
        Stacks, shape ``(n, rows, cols)``.
    weights
        One weight per warp.
    clip_sigma
        Rejection threshold in units of each input's noise, about the stack's median
        (applied with three inputs or more).

    Returns
    -------
    image, variance, count
        The mean (NaN where nothing went in), its variance and the inputs used.
    """
    used = np.isfinite(images)
    if images.shape[0] >= 3:
        # Reject against each input's own noise: far from the median of the inputs
        # (whose noise is about that of one input, hence the factor 2 in variance).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            centre = np.nanmedian(images, axis=0)
        used &= np.abs(images - centre) <= clip_sigma * np.sqrt(2.0 * variances)
    w = np.where(used, weights[:, None, None], 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used, np.nan_to_num(images), 0.0) * w
        image = mean.sum(axis=0) / total
        variance = (w**2 * np.where(used, np.nan_to_num(variances), 0.0)).sum(axis=0) / total**2
    image[total == 0] = np.nan
    variance[total == 0] = np.inf
    return image, variance, used.sum(axis=0)


class AssembleCoaddConnections(
    PipelineTaskConnections, dimensions=("tract", "patch", "skymap", "band")
):
    """Inputs and outputs of `AssembleCoaddTask`."""

    warps = cT.Input(
        name="deepCoadd_directWarp",
        doc="Warps of the band's visits on the patch.",
        storageClass="DpzeroExposure",
        dimensions=("tract", "patch", "skymap", "instrument", "visit"),
        multiple=True,
    )
    coadd = cT.Output(
        name="deepCoadd",
        doc="The coadd, nJy.",
        storageClass="DpzeroExposure",
        dimensions=("tract", "patch", "skymap", "band"),
    )
    n_image = cT.Output(
        name="deepCoadd_nImage",
        doc="Inputs per pixel.",
        storageClass="DpzeroImage",
        dimensions=("tract", "patch", "skymap", "band"),
    )


class AssembleCoaddConfig(PipelineTaskConfig, pipelineConnections=AssembleCoaddConnections):
    """Configuration of `AssembleCoaddTask`."""

    clipSigma = Field[float](doc="Per-pixel rejection threshold, σ.", default=3.0)  # noqa: N815


class AssembleCoaddTask(PipelineTask):
    """Stack a band's warps of a patch into its coadd."""

    ConfigClass = AssembleCoaddConfig
    _DefaultName = "assembleCoadd"
    config: AssembleCoaddConfig

    def run(self, warps: list[Exposure]) -> Struct:
        """Assemble warps (all on one tract) into a coadd.

        Returns
        -------
        lsst.pipe.base.Struct
            ``coadd`` (`Exposure`, nJy) and ``n_image`` (int32 array).
        """
        box = _union([w.bbox for w in warps])
        n = len(warps)
        images = np.full((n, *box.shape), np.nan)
        variances = np.full((n, *box.shape), np.inf)
        weights = np.zeros(n)
        for i, warp in enumerate(warps):
            rows, cols = warp.bbox.slices_within(box)
            good = (warp.mask & _NO_DATA) == 0
            images[i, rows, cols] = np.where(good, warp.image, np.nan)
            variances[i, rows, cols] = np.where(good, warp.variance, np.inf)
            weights[i] = 1.0 / float(np.median(warp.variance[good])) if good.any() else 0.0
        image, variance, count = coadd_warps(images, variances, weights, self.config.clipSigma)
        missing = count == 0
        mask = np.where(missing, _NO_DATA, 0).astype(np.int32)
        kernels = [w.psf.kernel for w in warps if w.psf is not None]
        psf = None
        if kernels and all(k.shape == kernels[0].shape for k in kernels):
            mean_kernel = np.average(np.stack(kernels), axis=0, weights=weights + 1e-30)
            fwhm = float(np.average([w.psf.fwhm for w in warps], weights=weights + 1e-30))
            psf = Psf(kernel=mean_kernel, fwhm=fwhm)
        wcs = warps[0].wcs.deepcopy()
        shift = np.array([warps[0].bbox.x0 - box.x0, warps[0].bbox.y0 - box.y0], dtype=float)
        wcs.wcs.crpix = np.asarray(wcs.wcs.crpix) + shift
        wcs.wcs.set()
        coadd = Exposure(
            image=np.where(missing, 0.0, image),
            mask=mask,
            variance=np.where(missing, np.inf, variance),
            wcs=wcs,
            psf=psf,
            photo_calib=PhotoCalib(1.0),
            bbox=box,
            filter=warps[0].filter,
        )
        return Struct(coadd=coadd, n_image=count.astype(np.int32))
