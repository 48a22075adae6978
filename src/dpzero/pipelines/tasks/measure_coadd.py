"""Detection and measurement on a coadd: ``deepCoadd`` → ``deepCoadd_meas``.

Sources are detected with `sep.extract` above ``detectionThreshold`` σ of the
coadd's variance (``deepCoadd_det`` is the detection list), centroided with
`sep.winpos`, and measured with a 12-pixel circular aperture (`sep`) and a PSF fit
at fixed position with the coadd's PSF (`photutils.psf.PSFPhotometry`),
aperture-corrected on the brightest point-like sources. Fluxes are nJy (coadds
are calibrated), positions in degrees and tract-frame pixels. ``detect_isPrimary``
is true for sources whose centre lies in the patch's inner region.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table
from lsst.pex.config import Field
from lsst.pipe.base import (
    NoWorkFound,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)
from lsst.pipe.base import connectionTypes as cT

from dpzero.pipelines.tasks.calibrate import psf_photometry
from dpzero.repo.exposure import Exposure, mask_bits

__all__ = ["MeasureCoaddConfig", "MeasureCoaddConnections", "MeasureCoaddTask"]


class MeasureCoaddConnections(
    PipelineTaskConnections, dimensions=("tract", "patch", "skymap", "band")
):
    """Input and outputs of `MeasureCoaddTask`."""

    coadd = cT.Input(
        name="deepCoadd",
        doc="The coadd, nJy.",
        storageClass="DpzeroExposure",
        dimensions=("tract", "patch", "skymap", "band"),
    )
    sky_map = cT.Input(
        name="skyMap",
        doc="The sky map (patch inner regions).",
        storageClass="DpzeroSkyMap",
        dimensions=("skymap",),
    )
    detections = cT.Output(
        name="deepCoadd_det",
        doc="Detections on the coadd.",
        storageClass="ArrowAstropy",
        dimensions=("tract", "patch", "skymap", "band"),
    )
    measurements = cT.Output(
        name="deepCoadd_meas",
        doc="Measurements of the detections.",
        storageClass="ArrowAstropy",
        dimensions=("tract", "patch", "skymap", "band"),
    )


class MeasureCoaddConfig(PipelineTaskConfig, pipelineConnections=MeasureCoaddConnections):
    """Configuration of `MeasureCoaddTask`."""

    detectionThreshold = Field[float](doc="Detection threshold, σ.", default=5.0)  # noqa: N815
    minArea = Field[int](doc="Least pixels of a detection.", default=5)  # noqa: N815
    apertureRadius = Field[float](doc="Aperture radius, pixels.", default=12.0)  # noqa: N815


class MeasureCoaddTask(PipelineTask):
    """Detect and measure sources on one band's coadd of a patch."""

    ConfigClass = MeasureCoaddConfig
    _DefaultName = "measureCoadd"
    config: MeasureCoaddConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the coadd, run with the quantum's tract and patch, write."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        result = self.run(
            inputs["coadd"], inputs["sky_map"], int(data_id["tract"]), int(data_id["patch"])
        )
        butlerQC.put(result, outputRefs)

    def run(self, coadd: Exposure, sky_map: Any, tract: int, patch: int) -> Struct:
        """Detect and measure.

        Returns
        -------
        lsst.pipe.base.Struct
            ``detections`` and ``measurements`` (astropy tables).

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If nothing is detected.
        """
        import sep

        cfg = self.config
        image = np.ascontiguousarray(coadd.image, dtype=np.float64)
        bad = (coadd.mask & mask_bits("NO_DATA", "SAT", "BAD")) != 0
        variance = np.where(bad | ~np.isfinite(coadd.variance), np.inf, coadd.variance)
        err = np.ascontiguousarray(np.sqrt(np.where(np.isfinite(variance), variance, 1e30)))
        objects = sep.extract(image, cfg.detectionThreshold, err=err, mask=bad, minarea=cfg.minArea)
        if len(objects) == 0:
            raise NoWorkFound(f"nothing detected on patch {patch} of tract {tract}")
        n = len(objects)
        x, y, wflag = sep.winpos(
            image, objects["x"], objects["y"], np.clip(np.sqrt(objects["a"] * objects["b"]), 1, 5)
        )
        moved = (wflag != 0) | ~np.isfinite(x) | (np.hypot(x - objects["x"], y - objects["y"]) > 2)
        x = np.where(moved, objects["x"], x)
        y = np.where(moved, objects["y"], y)
        ap, ap_err, ap_flag = sep.sum_circle(image, x, y, cfg.apertureRadius, err=err, mask=bad)
        psf_flux, psf_err, psf_flag = psf_photometry(image, err, bad, coadd.psf, x, y)
        snr = ap / np.where(ap_err > 0, ap_err, np.inf)
        size = np.sqrt(objects["a"] * objects["b"])
        # Aperture correction from bright, clean, point-like sources whose aperture
        # holds no masked pixel (a hole would bias the ratio).
        bright = (snr > 50) & (objects["flag"] == 0) & (ap_flag == 0) & ~psf_flag
        ap_corr = 1.0
        if bright.sum() >= 3:
            point = bright & (
                size < 1.15 * np.median(np.sort(size[bright])[: max(3, bright.sum() // 2)])
            )
            ratio = ap[point] / psf_flux[point]
            ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
            if ratio.size:
                ap_corr = float(np.median(ratio))
        psf_flux, psf_err = psf_flux * ap_corr, psf_err * ap_corr
        ra, dec = coadd.wcs.all_pix2world(x, y, 0)
        tx, ty = x + coadd.bbox.x0, y + coadd.bbox.y0
        inner = sky_map.patch_inner
        n_side = sky_map.patches_per_side
        px, py = patch % n_side, patch // n_side
        primary = (
            (tx >= px * inner - 0.5)
            & (tx < (px + 1) * inner - 0.5)
            & (ty >= py * inner - 0.5)
            & (ty < (py + 1) * inner - 0.5)
        )
        ids = ((tract * 49 + patch) << 43) + np.arange(1, n + 1, dtype=np.int64)
        detections = Table(
            {"id": ids, "x": tx, "y": ty, "coord_ra": ra, "coord_dec": dec, "npix": objects["npix"]}
        )
        measurements = Table(
            {
                "id": ids,
                "coord_ra": ra,
                "coord_dec": dec,
                "base_SdssCentroid_x": tx,
                "base_SdssCentroid_y": ty,
                "base_PsfFlux_flux": psf_flux,
                "base_PsfFlux_fluxErr": psf_err,
                "base_PsfFlux_flag": psf_flag,
                "base_PsfFlux_apCorr": np.full(n, ap_corr),
                "base_CircularApertureFlux_12_0_flux": ap,
                "base_CircularApertureFlux_12_0_fluxErr": ap_err,
                "base_CircularApertureFlux_12_0_flag": ap_flag != 0,
                "base_SdssShape_xx": objects["x2"],
                "base_SdssShape_yy": objects["y2"],
                "base_SdssShape_xy": objects["xy"],
                "detect_isPrimary": primary,
            }
        )
        self.log.info("%d sources on patch %d (%d primary)", n, patch, int(primary.sum()))
        return Struct(detections=detections, measurements=measurements)
