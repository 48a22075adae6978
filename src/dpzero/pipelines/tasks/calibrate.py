"""Single-frame calibration: ``postISRCCD`` → ``calexp``, ``src``, ``calexpBackground``.

The steps, each done by a library:

1. background: `photutils.background.Background2D` on a mesh (sources masked by a
   first `sep` detection pass), kept as a `Background` and subtracted;
2. detection: `sep.extract` above ``detectionThreshold`` σ of the variance plane;
3. PSF model: a circular Gaussian of the FWHM fitted (`photutils.psf.fit_fwhm`) to
   bright, isolated, unflagged point-like sources (an effective PSF needs more stars
   than a small detector holds);
4. measurement: windowed centroids and circular-aperture fluxes (`sep`), second
   moments, and PSF fluxes by fitting the PSF model at fixed positions
   (`photutils.psf.PSFPhotometry`), aperture-corrected to the 12-pixel aperture by
   the PSF stars' median ratio (so a Gaussian model of a wider-winged PSF still
   gives total fluxes);
5. astrometry: sources matched to ``cal_ref_cat`` stars projected through the
   starting WCS, then a TAN WCS fitted (`astropy.wcs.utils.fit_wcs_from_points`);
6. photometry: the zero point as the sigma-clipped mean ratio of reference flux
   (nJy) to PSF instrumental flux (electrons).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from lsst.pex.config import Field
from lsst.pipe.base import (
    AlgorithmError,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
    UnprocessableDataError,
)
from lsst.pipe.base import connectionTypes as cT
from numpy.typing import NDArray

from dpzero.repo.exposure import Exposure, PhotoCalib, Psf, mask_bits
from dpzero.sim.images.background import Background

__all__ = [
    "CalibrateConfig",
    "CalibrateConnections",
    "CalibrateTask",
    "CalibrationFailedError",
    "NoReferenceStarsError",
    "ReferenceMatch",
    "fit_astrometry",
    "match_reference",
    "psf_photometry",
]

_BAD = mask_bits("BAD", "SAT", "CR", "NO_DATA", "EDGE")


class CalibrationFailedError(AlgorithmError):
    """Too few sources or reference matches to calibrate an exposure."""

    @property
    def metadata(self) -> dict[str, Any]:
        """No extra metadata."""
        return {}


class NoReferenceStarsError(UnprocessableDataError):
    """No reference star falls on the exposure: it cannot be calibrated at all.

    Not an algorithmic failure (nothing would calibrate it without other data), so
    the quantum ends without outputs instead of failing: the calexps of the visit's
    other detectors go on into the warps and coadds, as Rubin's executors treat
    `~lsst.pipe.base.UnprocessableDataError`. ``pipetask report`` lists such quanta
    with the caveat ``U``.
    """


@dataclass(frozen=True)
class ReferenceMatch:
    """Sources matched to reference stars.

    Attributes
    ----------
    source
        Index of each matched source.
    reference
        Index of its reference star.
    separation
        Distance between them through the WCS used, pixels.
    """

    source: NDArray[np.int64]
    reference: NDArray[np.int64]
    separation: NDArray[np.float64]


def match_reference(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    ref_x: NDArray[np.float64],
    ref_y: NDArray[np.float64],
    radius: float,
) -> ReferenceMatch:
    """Nearest source of each reference star within ``radius`` pixels, one to one.

    A first match with 4× the radius measures the median offset (a pointing error),
    which the final match removes.
    """
    from scipy.spatial import cKDTree

    empty = ReferenceMatch(np.array([], np.int64), np.array([], np.int64), np.array([]))
    if len(x) == 0 or len(ref_x) == 0:
        return empty
    tree = cKDTree(np.column_stack([x, y]))
    dist, idx = tree.query(np.column_stack([ref_x, ref_y]), distance_upper_bound=4 * radius)
    ok = np.isfinite(dist)
    dx = dy = 0.0
    if ok.sum() >= 2:
        dx = float(np.median(x[idx[ok]] - ref_x[ok]))
        dy = float(np.median(y[idx[ok]] - ref_y[ok]))
    dist, idx = tree.query(np.column_stack([ref_x + dx, ref_y + dy]), distance_upper_bound=radius)
    ok = np.nonzero(np.isfinite(dist))[0]
    # One to one: a source claimed by two stars keeps the nearer.
    order = ok[np.argsort(dist[ok])]
    _, first = np.unique(idx[order], return_index=True)
    keep = np.sort(order[first])
    sep = np.hypot(x[idx[keep]] - ref_x[keep], y[idx[keep]] - ref_y[keep])
    return ReferenceMatch(idx[keep].astype(np.int64), keep.astype(np.int64), sep)


def fit_astrometry(
    wcs: WCS,
    x: NDArray,
    y: NDArray,
    ra: NDArray,
    dec: NDArray,
    min_matches: int,
    *,
    clip_sigma: float = 4.0,
    floor_arcsec: float = 0.05,
) -> tuple[WCS, float, NDArray[np.bool_]]:
    """A TAN WCS through matched pixel and sky positions, its rms residual (arcsec) and
    the pairs it kept.

    With fewer than ``min_matches`` pairs only the reference point is shifted (the
    median offset), keeping scale and rotation of ``wcs``. Otherwise pairs whose
    residual exceeds ``clip_sigma`` robust σ (and ``floor_arcsec``) are dropped and
    the fit repeated, at most three times: one wrong pair (a blend, a star matched to
    its neighbour) would otherwise tilt the whole solution.
    """
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points

    sky = SkyCoord(ra, dec, unit="deg")
    x, y = np.asarray(x, float), np.asarray(y, float)
    kept = np.ones(len(x), bool)
    if len(x) >= min_matches:
        for _ in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = fit_wcs_from_points((x[kept], y[kept]), sky[kept], projection=wcs)
            residual = fitted.pixel_to_world(x, y).separation(sky).arcsec
            sigma = 1.4826 * float(np.median(np.abs(residual[kept])))
            keep = residual <= max(clip_sigma * sigma, floor_arcsec)
            if keep.sum() < min_matches or np.array_equal(keep, kept):
                break
            kept = keep
    else:
        fitted = wcs.deepcopy()
        if len(x):
            px, py = wcs.world_to_pixel(sky)
            fitted.wcs.crpix = np.asarray(fitted.wcs.crpix) + np.array(
                [np.median(x - px), np.median(y - py)]
            )
            fitted.wcs.set()
    if not kept.any():
        return fitted, math.nan, kept
    back = fitted.pixel_to_world(x[kept], y[kept])
    rms = float(np.sqrt(np.mean(back.separation(sky[kept]).arcsec ** 2)))
    return fitted, rms, kept


class CalibrateConnections(PipelineTaskConnections, dimensions=("instrument", "visit", "detector")):
    """Inputs and outputs of `CalibrateTask`."""

    exposures = cT.Input(
        name="postISRCCD",
        doc="Exposures of the visit on this detector (one per snap; LSSTCam-imSim has one).",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "exposure", "detector"),
        multiple=True,
    )
    reference = cT.PrerequisiteInput(
        name="cal_ref_cat",
        doc="Reference stars (positions in radians, fluxes in nJy).",
        storageClass="ArrowAstropy",
        dimensions=("htm7",),
        multiple=True,
        deferLoad=True,
    )
    calexp = cT.Output(
        name="calexp",
        doc="Calibrated, background-subtracted exposure.",
        storageClass="DpzeroExposure",
        dimensions=("instrument", "visit", "detector"),
    )
    background = cT.Output(
        name="calexpBackground",
        doc="The background model subtracted.",
        storageClass="DpzeroBackground",
        dimensions=("instrument", "visit", "detector"),
    )
    sources = cT.Output(
        name="src",
        doc="Sources detected and measured on the calexp.",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )


class CalibrateConfig(PipelineTaskConfig, pipelineConnections=CalibrateConnections):
    """Configuration of `CalibrateTask`."""

    backgroundBinSize = Field[int](doc="Background mesh cell side, pixels.", default=64)  # noqa: N815
    detectionThreshold = Field[float](doc="Detection threshold, σ.", default=5.0)  # noqa: N815
    minArea = Field[int](doc="Minimum pixels of a detection.", default=5)  # noqa: N815
    apertureRadius = Field[float](doc="Aperture flux radius, pixels.", default=12.0)  # noqa: N815
    psfCandidateSnr = Field[float](doc="Least S/N of a PSF star.", default=50.0)  # noqa: N815
    psfSize = Field[int](doc="Side of the PSF model image, pixels (odd).", default=25)  # noqa: N815
    matchRadius = Field[float](doc="Reference match radius, pixels.", default=5.0)  # noqa: N815
    minAstrometryMatches = Field[int](doc="Matches needed to fit a full WCS.", default=4)  # noqa: N815
    minPhotometryMatches = Field[int](doc="Matches needed for a zero point.", default=1)  # noqa: N815
    edgeWidth = Field[int](doc="Pixels along the border masked EDGE.", default=8)  # noqa: N815


class CalibrateTask(PipelineTask):
    """Background, detection, PSF, measurement, astrometry and photometry of one detector."""

    ConfigClass = CalibrateConfig
    _DefaultName = "calibrate"
    config: CalibrateConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the exposure and the reference shards overlapping it, run, write."""
        inputs = butlerQC.get(inputRefs)
        exposure = inputs["exposures"][0]
        tables = [handle.get() for handle in inputs["reference"]]
        reference = _stack(tables)
        data_id = butlerQC.quantum.dataId
        id_base = (int(data_id["visit"]) * 200 + int(data_id["detector"])) << 20
        butlerQC.put(self.run(exposure, reference, id_base=id_base), outputRefs)

    def run(self, exposure: Exposure, reference: Table, id_base: int = 0) -> Struct:
        """Calibrate one exposure.

        Parameters
        ----------
        exposure
            ``postISRCCD``: electrons with sky, nominal WCS.
        reference
            Reference stars: ``coord_ra``, ``coord_dec`` (radians), ``<band>_flux`` (nJy).
        id_base
            First source id.

        Returns
        -------
        lsst.pipe.base.Struct
            ``calexp``, ``background``, ``sources``.

        Raises
        ------
        CalibrationFailedError
            If nothing usable is detected, or no reference star matches.
        NoReferenceStarsError
            If not one reference star lies on the exposure.
        """
        import sep

        cfg = self.config
        image = np.ascontiguousarray(exposure.image, dtype=np.float64)
        mask = exposure.mask.copy()
        height, width = image.shape
        e = cfg.edgeWidth
        mask[:e, :] |= mask_bits("EDGE")
        mask[-e:, :] |= mask_bits("EDGE")
        mask[:, :e] |= mask_bits("EDGE")
        mask[:, -e:] |= mask_bits("EDGE")
        bad = (mask & mask_bits("BAD", "SAT", "NO_DATA")) != 0
        variance = np.ascontiguousarray(exposure.variance, dtype=np.float64)

        background = _background(image, bad, cfg.backgroundBinSize)
        image = image - background.image()
        err = np.sqrt(np.clip(variance, 1e-12, None))

        objects, segmap = sep.extract(
            image,
            cfg.detectionThreshold,
            err=err,
            mask=bad,
            minarea=cfg.minArea,
            segmentation_map=True,
        )
        if len(objects) == 0:
            raise CalibrationFailedError("no sources detected")
        mask[segmap > 0] |= mask_bits("DETECTED")
        n = len(objects)
        x0, y0 = objects["x"], objects["y"]
        sigma_guess = np.clip(np.sqrt(objects["a"] * objects["b"]), 1.0, 5.0)
        x, y, wflag = sep.winpos(image, x0, y0, sigma_guess, mask=bad)
        bad_win = (wflag != 0) | ~np.isfinite(x) | (np.hypot(x - x0, y - y0) > 2.0)
        x = np.where(bad_win, x0, x)
        y = np.where(bad_win, y0, y)
        ap_flux, ap_err, ap_flag = sep.sum_circle(
            image, x, y, cfg.apertureRadius, err=err, mask=bad, subpix=5
        )
        # Sources near the edge or with bad pixels in the core.
        xi = np.clip(np.round(x).astype(int), 0, width - 1)
        yi = np.clip(np.round(y).astype(int), 0, height - 1)
        center_mask = mask[yi, xi]
        edge = (x < e) | (y < e) | (x > width - 1 - e) | (y > height - 1 - e)
        sat_center = (center_mask & mask_bits("SAT")) != 0
        cr_center = (center_mask & mask_bits("CR")) != 0

        snr = ap_flux / np.where(ap_err > 0, ap_err, np.inf)
        psf, candidates, used = _psf_model(
            image, objects, x, y, snr, edge | sat_center | (objects["flag"] != 0), cfg
        )
        psf_flux, psf_err, psf_flag = psf_photometry(image, err, bad, psf, x, y)
        # From the PSF stars only: a galaxy among mere candidates would bias every flux.
        ap_corr = _aperture_correction(ap_flux, psf_flux, used)
        psf_flux, psf_err = psf_flux * ap_corr, psf_err * ap_corr

        sky_ref = _reference_sky(reference)
        band = exposure.filter.band if exposure.filter is not None else "r"
        wcs = exposure.wcs
        ref_x, ref_y = wcs.all_world2pix(sky_ref[0], sky_ref[1], 0)
        inside = (ref_x > -10) & (ref_x < width + 10) & (ref_y > -10) & (ref_y < height + 10)
        ref_idx = np.nonzero(inside)[0]
        if ref_idx.size == 0:
            message = (
                f"none of the {len(sky_ref[0])} reference stars loaded for this detector "
                "falls on it, so it has no astrometric or photometric calibration; it is "
                "left out of the coadds"
            )
            self.log.warning("%s", message)
            raise NoReferenceStarsError(message)
        usable = ~(edge | sat_center | (objects["flag"] > 1)) & (snr > 10)
        pool = np.nonzero(usable)[0]
        match = match_reference(x[pool], y[pool], ref_x[ref_idx], ref_y[ref_idx], cfg.matchRadius)
        src_i = pool[match.source]
        ref_i = ref_idx[match.reference]
        if len(src_i) < cfg.minPhotometryMatches:
            raise CalibrationFailedError(
                f"{len(src_i)} reference matches; {cfg.minPhotometryMatches} needed"
            )
        fitted, astro_rms, fit_kept = fit_astrometry(
            wcs, x[src_i], y[src_i], sky_ref[0][ref_i], sky_ref[1][ref_i], cfg.minAstrometryMatches
        )
        photo_calib = _zero_point(reference[f"{band}_flux"][ref_i], psf_flux[src_i])
        self.log.info(
            "%d sources, PSF FWHM %.2f px from %d stars, %d reference matches (%d kept in "
            "the astrometric fit), astrometric rms %.1f mas, zero point %.3f",
            n, psf.fwhm, int(used.sum()), len(src_i), int(fit_kept.sum()), astro_rms * 1000,
            photo_calib.zero_point,
        )  # fmt: skip
        ra, dec = fitted.all_pix2world(x, y, 0)
        astro_used = np.zeros(n, bool)
        astro_used[src_i[fit_kept]] = True
        photo_used = np.zeros(n, bool)
        photo_used[src_i] = True
        sources = Table(
            {
                "id": id_base + np.arange(n, dtype=np.int64),
                "coord_ra": ra,
                "coord_dec": dec,
                "parent": np.zeros(n, np.int64),
                "base_SdssCentroid_x": x,
                "base_SdssCentroid_y": y,
                "base_SdssCentroid_flag": bad_win,
                "base_PsfFlux_instFlux": psf_flux,
                "base_PsfFlux_instFluxErr": psf_err,
                "base_PsfFlux_flag": psf_flag,
                "base_PsfFlux_apCorr": np.full(n, ap_corr),
                "base_PsfFlux_flux": photo_calib.to_njy(psf_flux),
                "base_PsfFlux_fluxErr": photo_calib.to_njy(psf_err),
                "base_CircularApertureFlux_12_0_instFlux": ap_flux,
                "base_CircularApertureFlux_12_0_instFluxErr": ap_err,
                "base_CircularApertureFlux_12_0_flag": ap_flag != 0,
                "base_SdssShape_xx": objects["x2"],
                "base_SdssShape_yy": objects["y2"],
                "base_SdssShape_xy": objects["xy"],
                "base_PixelFlags_flag_edge": edge,
                "base_PixelFlags_flag_saturatedCenter": sat_center,
                "base_PixelFlags_flag_crCenter": cr_center,
                "calib_psf_candidate": candidates,
                "calib_psf_used": used,
                "calib_astrometry_used": astro_used,
                "calib_photometry_used": photo_used,
                "sky_source": np.zeros(n, bool),
            }
        )
        sources.meta["ASTRMS"] = astro_rms
        calexp = Exposure(
            image=image,
            mask=mask,
            variance=variance,
            wcs=fitted,
            psf=psf,
            photo_calib=photo_calib,
            visit_info=exposure.visit_info,
            bbox=exposure.bbox,
            filter=exposure.filter,
        )
        return Struct(calexp=calexp, background=background, sources=sources)


def _stack(tables: list[Table]) -> Table:
    from astropy.table import vstack

    if not tables:
        return Table({"coord_ra": np.array([]), "coord_dec": np.array([])})
    return vstack(tables) if len(tables) > 1 else tables[0]


def _reference_sky(reference: Table) -> tuple[NDArray, NDArray]:
    return np.degrees(np.asarray(reference["coord_ra"], float)), np.degrees(
        np.asarray(reference["coord_dec"], float)
    )


def _background(image: NDArray, bad: NDArray, bin_size: int) -> Background:
    """Mesh background with sources masked by a first 3σ detection pass."""
    import sep
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    rough = sep.Background(image, mask=bad, bw=bin_size, bh=bin_size)
    sub = image - rough.back()
    _, segmap = sep.extract(
        sub, 3.0, err=rough.globalrms, mask=bad, minarea=5, segmentation_map=True
    )
    from scipy import ndimage

    masked = bad | ndimage.binary_dilation(segmap > 0, iterations=3)
    bkg = Background2D(
        image,
        bin_size,
        mask=masked,
        filter_size=1,
        sigma_clip=SigmaClip(sigma=3.0),
        bkg_estimator=MedianBackground(),
        exclude_percentile=50.0,
    )
    height, width = image.shape
    mesh = np.asarray(bkg.background_mesh, dtype=np.float32)
    return Background(mesh=mesh, bin_size=bin_size, width=width, height=height)


def _psf_model(
    image: NDArray,
    objects: NDArray,
    x: NDArray,
    y: NDArray,
    snr: NDArray,
    flagged: NDArray,
    cfg: CalibrateConfig,
) -> tuple[Psf, NDArray, NDArray]:
    """A circular Gaussian PSF of the FWHM fitted to bright, isolated point-like sources.

    Each candidate's FWHM is fitted (`photutils.psf.fit_fwhm`); the stars are those
    within 20 % of the smallest, the model takes their median.
    """
    from photutils.psf import fit_fwhm
    from scipy.spatial import cKDTree

    n = len(x)
    half = cfg.psfSize // 2
    height, width = image.shape
    inside = (x > half + 1) & (x < width - half - 2) & (y > half + 1) & (y < height - half - 2)
    candidates = (snr > cfg.psfCandidateSnr) & ~flagged & inside & (objects["flag"] == 0)
    if n > 1:
        tree = cKDTree(np.column_stack([x, y]))
        neighbours = tree.query_ball_point(np.column_stack([x, y]), r=float(half))
        candidates &= np.array([len(nb) == 1 for nb in neighbours])
    used = np.zeros(n, bool)
    if not candidates.any():
        fwhm = 2.3548 * float(np.median(np.sqrt(objects["a"] * objects["b"]))) if n else 3.5
        return Psf.gaussian(fwhm, cfg.psfSize), candidates, used
    index = np.nonzero(candidates)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fwhms = np.atleast_1d(
            fit_fwhm(image, xypos=np.column_stack([x[index], y[index]]), fit_shape=11)
        )
    ok = np.isfinite(fwhms) & (fwhms > 1.0)
    if not ok.any():
        return Psf.gaussian(3.5, cfg.psfSize), candidates, used
    stars = ok & (fwhms < 1.2 * fwhms[ok].min())
    used[index[stars]] = True
    return Psf.gaussian(float(np.median(fwhms[stars])), cfg.psfSize), candidates, used


def psf_photometry(
    image: NDArray,
    err: NDArray,
    bad: NDArray,
    psf: Psf,
    x: NDArray,
    y: NDArray,
    *,
    group_separation: float | None = None,
) -> tuple[NDArray, NDArray, NDArray]:
    """PSF fluxes fitted at fixed positions (`photutils.psf.PSFPhotometry`).

    With ``group_separation`` (pixels), sources closer than that are fitted together
    (`photutils.psf.SourceGrouper`), so neighbours share the light of their overlap.

    Returns
    -------
    flux, flux_err, flag
        Fitted fluxes in the image's units, their errors and photutils' flags.
    """
    from photutils.psf import ImagePSF, PSFPhotometry, SourceGrouper

    model = ImagePSF(psf.kernel, x_0=0.0, y_0=0.0, flux=1.0)
    model.x_0.fixed = True
    model.y_0.fixed = True
    fit_shape = (min(psf.kernel.shape[0], 11) | 1,) * 2
    grouper = SourceGrouper(group_separation) if group_separation else None
    phot = PSFPhotometry(model, fit_shape, grouper=grouper, aperture_radius=max(psf.fwhm, 2.0))
    init = Table({"x": x, "y": y})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = phot(image, error=err, mask=bad, init_params=init)
    flux = np.asarray(result["flux_fit"], dtype=np.float64)
    flux_err = (
        np.asarray(result["flux_err"], dtype=np.float64)
        if "flux_err" in result.colnames
        else np.full(len(x), np.nan)
    )
    flag = np.asarray(result["flags"]) != 0
    return flux, flux_err, flag


def _aperture_correction(ap_flux: NDArray, psf_flux: NDArray, stars: NDArray) -> float:
    """Aperture over PSF flux of the PSF stars (sigma-clipped median); 1 without stars."""
    from astropy.stats import sigma_clipped_stats

    ratio = ap_flux[stars] / psf_flux[stars]
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size == 0:
        return 1.0
    _, median, _ = sigma_clipped_stats(ratio, sigma=3.0)
    return float(median)


def _zero_point(ref_flux: NDArray, inst_flux: NDArray) -> PhotoCalib:
    """nJy per electron: sigma-clipped mean of reference over instrumental flux."""
    from astropy.stats import sigma_clipped_stats

    ratio = np.asarray(ref_flux, float) / np.asarray(inst_flux, float)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size == 0:
        raise CalibrationFailedError("no reference match with a positive PSF flux")
    mean, _, std = sigma_clipped_stats(ratio, sigma=3.0)
    error = std / math.sqrt(ratio.size) if ratio.size > 1 else 0.01 * mean
    return PhotoCalib(float(mean), float(error))
