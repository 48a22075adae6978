"""The five DP0.1 tables built from one observed patch.

Columns come from the Felis schema (`dpzero.schema`), never from a list of our own:
each column name is resolved by a rule that says what the measurement means, from
the shared measured state in `ObservedPatch`. A column that no rule explains raises
`UnexplainedColumnError`, so a new schema version cannot slip junk into the output.

Conventions (DC2/DP0.1):
- object fluxes are calibrated nJy (the schema's "nmgy" label notwithstanding);
  ``mag = 31.4 − 2.5 log10(flux)``, ``magerr = 1.0857 σ/f``, NaN for f ≤ 0;
- ``*_instFlux`` of reference and forced_photometry are coadd counts, zero point 27:
  nJy = 57.54 × instFlux;
- moments are in tract-frame pixels² (0.2″ pixels), x toward lower RA, y north.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from dpzero.schema import TableSpec, load_schema
from dpzero.sim.observe import (
    MATCH_RADIUS_ARCSEC,
    PIXEL_SCALE,
    REFERENCE_BAND,
    ObservedPatch,
    unit_vectors,
)
from dpzero.sim.survey import BANDS, COADD_INSTFLUX_NJY

__all__ = [
    "UnexplainedColumnError",
    "build_tables",
    "good_flags",
]

# LSST's merge priority: the reference band is the first of these the object was
# detected in.
_REFERENCE_PRIORITY = ("i", "r", "z", "y", "g", "u")
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_GOOD_FLAGS = (
    "edge",
    "interpolatedCenter",
    "saturatedCenter",
    "crCenter",
    "bad",
    "suspectCenter",
    "clippedCenter",
)


class UnexplainedColumnError(RuntimeError):
    """A schema column has no rule saying how to simulate it (a dpzero bug)."""


def good_flags(obs: ObservedPatch) -> NDArray[np.bool_]:
    """DC2's ``good``: none of the pixel flags that spoil a measurement."""
    bad = np.zeros(obs.size, dtype=bool)
    for name in _GOOD_FLAGS:
        bad |= obs.pixel_flags[name]
    return ~bad


def _mag(flux: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 31.4 - 2.5 * np.log10(flux), np.nan)


def _magerr(flux: NDArray, err: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 2.5 / math.log(10) * err / flux, np.nan)


def _inst(njy: NDArray) -> NDArray:
    return njy / COADD_INSTFLUX_NJY


class _Context:
    """Shared arrays and deterministic random draws for one patch's tables."""

    def __init__(self, obs: ObservedPatch, stream: str) -> None:
        self.obs = obs
        self.n = obs.size
        self.stream = stream
        self.good = good_flags(obs)
        self.point_like = obs.size_sigma_arcsec < 0.05
        self.is_parent = ~obs.is_primary | (obs.n_child > 0)
        self.is_child = obs.parent_id != 0

    def rng(self, name: str) -> np.random.Generator:
        """A random stream for one column, stable whatever other columns exist."""
        key = zlib.crc32(f"{self.stream}:{name}".encode())
        return np.random.default_rng([*self.obs.rng_seed, key])

    def subset(self, mask: NDArray[np.bool_], fraction: float, name: str) -> NDArray[np.bool_]:
        """A random share of the rows in ``mask`` (a flag explaining part of a failure)."""
        return mask & (self.rng(name).random(self.n) < fraction)

    def noise(self, name: str, scale: float = 1.0) -> NDArray:
        return self.rng(name).normal(0.0, scale, self.n)

    def snr(self, band: str) -> NDArray:
        o = self.obs
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(o.cmodel_flux[band]) / o.cmodel_flux_err[band]

    def extendedness(self, band: str) -> NDArray:
        o = self.obs
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = o.psf_flux[band] / o.cmodel_flux[band]
        ext = np.where(ratio < 0.985, 1.0, 0.0)
        return np.where(np.isfinite(ratio) & (o.cmodel_flux[band] > 0), ext, np.nan)

    def psf_moments(self, band: str) -> tuple[NDArray, NDArray, NDArray]:
        o = self.obs
        s2 = o.psf_sigma_pix[band] ** 2
        return s2 * (1 + o.psf_e1[band]), s2 * (1 - o.psf_e1[band]), -s2 * o.psf_e2[band]

    def ellipse(self, scale: float) -> tuple[NDArray, NDArray, NDArray]:
        """Half-light ellipse of the intrinsic profile, pixels², times ``scale``."""
        o = self.obs
        r2 = (o.size_sigma_arcsec / PIXEL_SCALE) ** 2 * 1.386 * scale
        e = np.hypot(o.e1, o.e2)
        q = (1 - e) / (1 + e)
        chi = (1 - q**2) / (1 + q**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            c1 = np.where(e > 0, o.e1 / e * chi, 0.0)
            c2 = np.where(e > 0, o.e2 / e * chi, 0.0)
        floor = 0.01
        return r2 * (1 + c1) + floor, r2 * (1 - c1) + floor, -r2 * c2


def _measurement_rules() -> list[tuple[re.Pattern[str], Callable[[_Context, str, str], NDArray]]]:
    """Rules for the per-band measurement columns of reference and forced_photometry.

    Each rule gets the context, the band and the column's base name (band prefix
    removed) and returns the column's values.
    """
    o = lambda c: c.obs  # noqa: E731

    def centroid_fail(c: _Context, b: str) -> NDArray:
        return c.obs.failures["centroid_" + b]

    def shape_fail(c: _Context, b: str) -> NDArray:
        return c.obs.failures["shape_" + b]

    def cmodel_fail(c: _Context, b: str) -> NDArray:
        return c.obs.failures["cmodel_" + b]

    def cm(c: _Context, b: str, factor: float | NDArray = 1.0) -> NDArray:
        return _inst(c.obs.cmodel_flux[b] * factor)

    def cm_err(c: _Context, b: str, factor: float | NDArray = 1.0) -> NDArray:
        return _inst(c.obs.cmodel_flux_err[b] * factor)

    def moments(c: _Context, b: str, k: int) -> NDArray:
        return c.obs.moments[b][k]

    def moments_err(c: _Context, b: str, k: int) -> NDArray:
        snr = np.maximum(c.snr(b), 0.5)
        return np.abs(c.obs.moments[b][min(k, 1)]) * 2.0 / snr

    def sub(cause: Callable[[_Context, str], NDArray], share: float):
        return lambda c, b, n: c.subset(cause(c, b), share, b + n)

    def none(c: _Context, b: str, n: str) -> NDArray:
        return np.zeros(c.n, dtype=bool)

    def apcorr(c: _Context, b: str, n: str) -> NDArray:
        base = 1.0 + 0.01 * np.sin(3 * c.obs.ra + BANDS.index(b))
        return base + c.noise(b + n, 0.001)

    def apcorr_err(c: _Context, b: str, n: str) -> NDArray:
        return np.abs(0.003 + c.noise(b + n, 0.0005))

    def stage_factor(stage: str) -> Callable[[_Context], NDArray | float]:
        fd = lambda c: c.obs.frac_dev  # noqa: E731
        return {
            "": lambda c: 1.0,
            "initial_": lambda c: 0.985,
            "exp_": lambda c: 1.0 - 0.03 * fd(c),
            "dev_": lambda c: 1.0 + 0.05 * (fd(c) - 0.3),
        }[stage]

    def ellipse_scale(stage: str) -> float:
        return {"": 1.0, "initial_": 1.2, "exp_": 0.95, "dev_": 1.6}[stage]

    def pixel_count(c: _Context, b: str) -> NDArray:
        s2 = c.obs.psf_sigma_pix[b] ** 2 + (c.obs.size_sigma_arcsec / PIXEL_SCALE) ** 2
        return 4 * math.pi * s2

    rules: list[tuple[str, Callable[[_Context, str, str], NDArray]]] = [
        # centroids
        (r"base_SdssCentroid_x|ext_shapeHSM_Hsm\w+_x|base_SdssShape_x", lambda c, b, n: o(c).x),
        (r"base_SdssCentroid_y|ext_shapeHSM_Hsm\w+_y|base_SdssShape_y", lambda c, b, n: o(c).y),
        (r"base_SdssCentroid_[xy]Err", lambda c, b, n: o(c).pos_err_arcsec / PIXEL_SCALE),
        (r"base_SdssCentroid_flag", lambda c, b, n: centroid_fail(c, b)),
        (r"base_SdssCentroid_flag_edge", lambda c, b, n: o(c).pixel_flags["edge"]),
        (
            r"base_SdssCentroid_flag_(noSecondDerivative|notAtMaximum|badInitialCentroid)",
            sub(centroid_fail, 0.3),
        ),
        (r"base_SdssCentroid_flag_(almostNoSecondDerivative|resetToPeak)", sub(centroid_fail, 0.5)),
        # PSF flux
        (r"base_PsfFlux_instFlux", lambda c, b, n: _inst(o(c).psf_flux[b])),
        (r"base_PsfFlux_instFluxErr", lambda c, b, n: _inst(o(c).psf_flux_err[b])),
        (r"base_PsfFlux_area", lambda c, b, n: 4 * math.pi * o(c).psf_sigma_pix[b] ** 2),
        (r"\w+_flag_apCorr", none),
        (r"\w+_apCorr", apcorr),
        (r"\w+_apCorrErr", apcorr_err),
        (r"base_PsfFlux_flag", lambda c, b, n: o(c).failures["psf_" + b]),
        (r"base_PsfFlux_flag_edge", lambda c, b, n: o(c).pixel_flags["edge"]),
        (
            r"base_PsfFlux_flag_noGoodPixels",
            lambda c, b, n: o(c).pixel_flags["edge"] & ~np.isfinite(o(c).psf_flux[b]),
        ),
        (r"\w+_flag_badCentroid", lambda c, b, n: centroid_fail(c, b)),
        # blendedness (reference band only)
        (r"base_Blendedness_(abs|raw)_instFlux", lambda c, b, n: o(c).blendedness),
        (r"base_Blendedness_abs", lambda c, b, n: o(c).blendedness),
        (r"base_Blendedness_old", lambda c, b, n: 0.9 * o(c).blendedness),
        (
            r"base_Blendedness_(abs|raw)_instFlux_child",
            lambda c, b, n: _inst(o(c).psf_flux[b]) * 0.5,
        ),
        (
            r"base_Blendedness_(abs|raw)_instFlux_parent",
            lambda c, b, n: _inst(o(c).psf_flux[b]) * 0.5 / np.maximum(1 - o(c).blendedness, 0.05),
        ),
        (
            r"base_Blendedness_(abs|raw)_child_(xx|yy|xy)",
            lambda c, b, n: moments(c, b, ("xx", "yy", "xy").index(n[-2:])),
        ),
        (
            r"base_Blendedness_(abs|raw)_parent_(xx|yy|xy)",
            lambda c, b, n: (
                moments(c, b, ("xx", "yy", "xy").index(n[-2:])) * (1 + 2 * o(c).blendedness)
            ),
        ),
        (r"base_Blendedness_flag", lambda c, b, n: shape_fail(c, b) & centroid_fail(c, b)),
        (r"base_Blendedness_flag_noCentroid", lambda c, b, n: centroid_fail(c, b)),
        (r"base_Blendedness_flag_noShape", lambda c, b, n: shape_fail(c, b)),
        # classification
        (r"base_ClassificationExtendedness_value", lambda c, b, n: c.extendedness(b)),
        (r"base_ClassificationExtendedness_flag", lambda c, b, n: ~np.isfinite(c.extendedness(b))),
        # pixel flags
        (
            r"base_PixelFlags_flag",
            lambda c, b, n: o(c).pixel_flags["edge"] | o(c).pixel_flags["offimage"],
        ),
        (
            r"base_PixelFlags_flag_(\w+)",
            lambda c, b, n: o(c).pixel_flags[n.removeprefix("base_PixelFlags_flag_")],
        ),
        (r"good", lambda c, b, n: c.good),
        # HSM moments and shapes
        (
            r"ext_shapeHSM_HsmSourceMoments_(xx|yy|xy)",
            lambda c, b, n: moments(c, b, ("xx", "yy", "xy").index(n[-2:])),
        ),
        (
            r"ext_shapeHSM_HsmPsfMoments_(xx|yy|xy)",
            lambda c, b, n: c.psf_moments(b)[("xx", "yy", "xy").index(n[-2:])],
        ),
        (
            r"ext_shapeHSM_HsmSourceMomentsRound_(xx|yy)",
            lambda c, b, n: 0.5 * (moments(c, b, 0) + moments(c, b, 1)),
        ),
        (r"ext_shapeHSM_HsmSourceMomentsRound_xy", lambda c, b, n: np.zeros(c.n)),
        (r"ext_shapeHSM_HsmSourceMomentsRound_Flux", lambda c, b, n: cm(c, b, 0.95)),
        (r"ext_shapeHSM_HsmShapeRegauss_e1", lambda c, b, n: _regauss(c, b, 0, n)),
        (r"ext_shapeHSM_HsmShapeRegauss_e2", lambda c, b, n: _regauss(c, b, 1, n)),
        (
            r"ext_shapeHSM_HsmShapeRegauss_sigma",
            lambda c, b, n: np.clip(2.0 / np.maximum(c.snr(b), 0.5), 0.005, 2.0),
        ),
        (r"ext_shapeHSM_HsmShapeRegauss_resolution", lambda c, b, n: _resolution(c, b)),
        (r"ext_shapeHSM_Hsm\w+_flag", lambda c, b, n: shape_fail(c, b)),
        (r"ext_shapeHSM_Hsm\w+_flag_(no_pixels|not_contained)", none),
        (r"ext_shapeHSM_Hsm\w+_flag_parent_source", lambda c, b, n: c.is_parent),
        (r"ext_shapeHSM_HsmShapeRegauss_flag_galsim", sub(shape_fail, 0.2)),
        # SDSS adaptive moments
        (
            r"base_SdssShape_(xx|yy|xy)",
            lambda c, b, n: moments(c, b, ("xx", "yy", "xy").index(n[-2:])),
        ),
        (
            r"base_SdssShape_(xx|yy|xy)Err",
            lambda c, b, n: moments_err(c, b, ("xx", "yy", "xy").index(n[-5:-3])),
        ),
        (
            r"base_SdssShape_psf_(xx|yy|xy)",
            lambda c, b, n: c.psf_moments(b)[("xx", "yy", "xy").index(n[-2:])],
        ),
        (r"base_SdssShape_instFlux", lambda c, b, n: cm(c, b, 0.93)),
        (r"base_SdssShape_instFluxErr", lambda c, b, n: cm_err(c, b, 1.05)),
        (
            r"base_SdssShape_instFlux_(xx|yy|xy)_Cov",
            lambda c, b, n: (
                -0.3 * cm_err(c, b) * moments_err(c, b, 0) * (0.0 if n[-6:-4] == "xy" else 1.0)
            ),
        ),
        (r"base_SdssShape_flag", lambda c, b, n: shape_fail(c, b)),
        (r"base_SdssShape_flag_(unweighted|unweightedBad|shift|maxIter)", sub(shape_fail, 0.3)),
        (r"base_SdssShape_flag_psf", sub(shape_fail, 0.05)),
        # deblender
        (r"deblend_psfCenter_x", lambda c, b, n: np.where(_as_psf(c), o(c).x, np.nan)),
        (r"deblend_psfCenter_y", lambda c, b, n: np.where(_as_psf(c), o(c).y, np.nan)),
        (
            r"deblend_psf_instFlux|deblend_psfflux",
            lambda c, b, n: np.where(_as_psf(c), _inst(o(c).psf_flux[b]), np.nan),
        ),
        (r"deblend_deblendedAsPsf", lambda c, b, n: _as_psf(c)),
        (r"deblend_tooManyPeaks|deblend_skipped", lambda c, b, n: o(c).deblend_skipped),
        (r"deblend_parentTooBig", lambda c, b, n: c.subset(o(c).deblend_skipped, 0.3, n)),
        (r"deblend_masked|deblend_patchedTemplate", none),
        (r"deblend_rampedTemplate", lambda c, b, n: c.is_child & o(c).pixel_flags["edge"]),
        (r"deblend_hasStrayFlux", lambda c, b, n: c.subset(c.is_child, 0.3, n)),
        # cModel and its stages
        (
            r"modelfit_CModel_(initial_|exp_|dev_|)instFlux",
            lambda c, b, n: cm(c, b, stage_factor(_stage(n))(c)),
        ),
        (
            r"modelfit_CModel_(initial_|exp_|dev_|)instFluxErr",
            lambda c, b, n: cm_err(c, b, 1.0 if _stage(n) == "" else 0.97),
        ),
        (
            r"modelfit_CModel_(initial_|exp_|dev_)flux_inner|modelfit_CModel_instFlux_inner",
            lambda c, b, n: cm(c, b, 0.93 * stage_factor(_stage(n))(c)),
        ),
        (
            r"modelfit_CModel_fracDev",
            lambda c, b, n: np.where(cmodel_fail(c, b), np.nan, o(c).frac_dev),
        ),
        (
            r"modelfit_CModel_(initial_|exp_|dev_|)objective",
            lambda c, b, n: np.where(
                cmodel_fail(c, b), np.nan, pixel_count(c, b) * (1 + np.abs(c.noise(b + n, 0.1)))
            ),
        ),
        (
            r"modelfit_CModel_(initial_|exp_|dev_|)ellipse_(xx|yy|xy)",
            lambda c, b, n: c.ellipse(ellipse_scale(_stage(n)))[("xx", "yy", "xy").index(n[-2:])],
        ),
        (
            r"modelfit_CModel_region_initial_ellipse_(xx|yy|xy)",
            lambda c, b, n: 4.0 * moments(c, b, ("xx", "yy", "xy").index(n[-2:])),
        ),
        (
            r"modelfit_CModel_region_final_ellipse_(xx|yy|xy)",
            lambda c, b, n: 6.0 * moments(c, b, ("xx", "yy", "xy").index(n[-2:])),
        ),
        (
            r"modelfit_CModel_(initial|exp|dev)_nonlinear_[01]",
            lambda c, b, n: _conformal_shear(c)[int(n[-1])],
        ),
        (
            r"modelfit_CModel_(initial|exp|dev)_nonlinear_2",
            lambda c, b, n: np.log(np.maximum(o(c).size_sigma_arcsec / PIXEL_SCALE, 0.05)),
        ),
        (r"modelfit_CModel_(initial|exp|dev)_fixed_0", lambda c, b, n: o(c).x),
        (r"modelfit_CModel_(initial|exp|dev)_fixed_1", lambda c, b, n: o(c).y),
        (
            r"modelfit_CModel_(initial|exp|dev)_nIter",
            lambda c, b, n: np.clip(
                8
                + 40 / np.maximum(np.nan_to_num(c.snr(b), nan=1.0), 1)
                + np.abs(c.noise(b + n, 4)),
                3,
                200,
            ).astype(np.int32),
        ),
        (
            r"modelfit_CModel_(initial|exp|dev)_time",
            lambda c, b, n: 0.004 + 0.002 * np.abs(c.noise(b + n)) + 1e-4 * pixel_count(c, b),
        ),
        (r"modelfit_CModel_(initial_|exp_|dev_|)flag", lambda c, b, n: cmodel_fail(c, b)),
        (
            r"modelfit_CModel_(initial_|exp_|dev_)flag_(trSmall|maxIter|numericError)",
            sub(cmodel_fail, 0.2),
        ),
        (
            r"modelfit_CModel_(initial_|exp_|dev_|)flag_badReference",
            lambda c, b, n: o(c).failures["cmodel_" + REFERENCE_BAND] & (b != REFERENCE_BAND),
        ),
        (r"modelfit_CModel_flag_region_maxArea", lambda c, b, n: o(c).size_sigma_arcsec > 4.0),
        (
            r"modelfit_CModel_flag_region_maxBadPixelFraction",
            lambda c, b, n: o(c).pixel_flags["bad"] | o(c).pixel_flags["edge"],
        ),
        (
            r"modelfit_CModel_flags_region_usedFootprintArea",
            lambda c, b, n: c.subset(~c.point_like, 0.1, n),
        ),
        (
            r"modelfit_CModel_flags_region_usedPsfArea",
            lambda c, b, n: c.subset(c.point_like, 0.6, n),
        ),
        (
            r"modelfit_CModel_flags_region_usedInitialEllipseMin",
            lambda c, b, n: o(c).size_sigma_arcsec < 0.1,
        ),
        (
            r"modelfit_CModel_flags_region_usedInitialEllipseMax",
            lambda c, b, n: o(c).size_sigma_arcsec > 3.0,
        ),
        (r"modelfit_CModel_flag_noShape", lambda c, b, n: shape_fail(c, b) & cmodel_fail(c, b)),
        (r"modelfit_CModel_flags_smallShape", lambda c, b, n: c.subset(c.point_like, 0.05, n)),
        (r"modelfit_CModel_flag_noShapeletPsf", none),
        # coadd inputs, local background, variance
        (r"base_InputCount_value", lambda c, b, n: o(c).input_count[b]),
        (
            r"base_InputCount_flag|base_InputCount_flag_noInputs",
            lambda c, b, n: o(c).input_count[b] == 0,
        ),
        (r"base_LocalBackground_instFlux", lambda c, b, n: c.noise(b + n, 0.02)),
        (r"base_LocalBackground_instFluxErr", lambda c, b, n: 0.05 + np.abs(c.noise(b + n, 0.005))),
        (r"base_LocalBackground_flag|base_Variance_flag", lambda c, b, n: o(c).pixel_flags["edge"]),
        (r"base_LocalBackground_flag_(noGoodPixels|noPsf)|base_Variance_flag_emptyFootprint", none),
        (r"base_Variance_value", lambda c, b, n: _pixel_variance(c, b)),
    ]
    return [(re.compile(p + r"\Z"), f) for p, f in rules]


_RULES = _measurement_rules()


def _stage(name: str) -> str:
    for stage in ("initial_", "exp_", "dev_"):
        if name.startswith("modelfit_CModel_" + stage):
            return stage
    return ""


def _as_psf(c: _Context) -> NDArray[np.bool_]:
    return c.subset(c.is_child & c.point_like, 0.7, "deblendedAsPsf")


def _conformal_shear(c: _Context) -> tuple[NDArray, NDArray]:
    e = np.hypot(c.obs.e1, c.obs.e2)
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.where(e > 0, np.arctanh(np.minimum(e, 0.95)) * 2 / np.maximum(e, 1e-12), 0.0)
    return c.obs.e1 * eta, -c.obs.e2 * eta


def _regauss(c: _Context, band: str, k: int, name: str) -> NDArray:
    e1, e2 = c.obs.e1, -c.obs.e2
    sigma = np.clip(2.0 / np.maximum(c.snr(band), 0.5), 0.005, 2.0)
    value = (e1 if k == 0 else e2) + c.noise(band + name) * sigma
    return np.where(c.obs.failures["shape_" + band], np.nan, value)


def _resolution(c: _Context, band: str) -> NDArray:
    t_psf = 2 * c.obs.psf_sigma_pix[band] ** 2
    t_gal = 2 * (c.obs.size_sigma_arcsec / PIXEL_SCALE) ** 2
    return np.clip(t_gal / (t_gal + t_psf), 0.0, 1.0)


def _pixel_variance(c: _Context, band: str) -> NDArray:
    """Per-pixel variance (counts²) that gives the band's 5σ depth for a point source."""
    from dpzero.sim.survey import BAND_FACTS, mag_to_flux

    f5 = mag_to_flux(BAND_FACTS[band].coadd_m5) / COADD_INSTFLUX_NJY
    n_eff = 4 * math.pi * c.obs.psf_sigma_pix[band] ** 2
    return (f5 / 5.0) ** 2 / n_eff * (1 + 0.05 * c.noise(band + "var"))


def _measurement_column(ctx: _Context, band: str, base_name: str, table: str) -> NDArray:
    for pattern, rule in _RULES:
        if pattern.match(base_name):
            return rule(ctx, band, base_name)
    raise UnexplainedColumnError(f"no simulation rule for column {base_name!r} of table {table}")


def _reference_band(obs: ObservedPatch) -> NDArray[np.str_]:
    ref = np.full(obs.size, "", dtype="<U1")
    for b in reversed(_REFERENCE_PRIORITY):
        ref = np.where(obs.detected_in[b], b, ref)
    return np.where(ref == "", REFERENCE_BAND, ref)


# Columns kept at full double precision; other measurement doubles carry float32
# precision, as the measurement framework computed them, which also lets them compress.
_FULL_PRECISION = {"coord_ra", "coord_dec", "ra", "dec"}


def _to_arrow(
    spec: TableSpec, columns: dict[str, NDArray], single_precision: bool = False
) -> pa.Table:
    arrays = []
    for col in spec.columns:
        values = columns[col.name]
        if pa.types.is_string(col.arrow_type):
            arrays.append(pa.array(values, type=pa.string()))
            continue
        values = np.asarray(values)
        if single_precision and col.arrow_type == pa.float64() and col.name not in _FULL_PRECISION:
            values = values.astype(np.float32)
        arrays.append(pa.array(values.astype(col.arrow_type.to_pandas_dtype())))
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema())


def _object_table(obs: ObservedPatch, spec: TableSpec) -> pa.Table:
    ctx = _Context(obs, "object")
    keep = obs.is_primary
    out: dict[str, NDArray] = {
        "objectId": obs.object_id,
        "parentObjectId": obs.parent_id,
        "ra": obs.ra,
        "dec": obs.dec,
        "x": obs.x,
        "y": obs.y,
        "xErr": obs.pos_err_arcsec / PIXEL_SCALE,
        "yErr": obs.pos_err_arcsec / PIXEL_SCALE,
        "xy_flag": obs.failures["centroid_" + REFERENCE_BAND],
        "psNdata": np.round(
            4
            * math.pi
            * (obs.psf_sigma_pix[REFERENCE_BAND] ** 2)
            * (1 + 0.1 * np.abs(ctx.noise("psNdata")))
        ),
        "extendedness": obs.extendedness(),
        "blendedness": obs.blendedness,
        "tract": np.full(obs.size, obs.cell.tract, dtype=np.int64),
        "patch": np.full(obs.size, obs.cell.patch_string, dtype=object),
        "good": ctx.good,
        "clean": ctx.good & ~obs.deblend_skipped,
    }
    for b in BANDS:
        psf, psf_err = obs.psf_flux[b], obs.psf_flux_err[b]
        cmf, cm_err = obs.cmodel_flux[b], obs.cmodel_flux_err[b]
        out[f"psFlux_{b}"] = psf
        out[f"psFluxErr_{b}"] = psf_err
        out[f"psFlux_flag_{b}"] = obs.failures["psf_" + b]
        out[f"mag_{b}"] = _mag(psf)
        out[f"magerr_{b}"] = _magerr(psf, psf_err)
        out[f"cModelFlux_{b}"] = cmf
        out[f"cModelFluxErr_{b}"] = cm_err
        out[f"cModelFlux_flag_{b}"] = obs.failures["cmodel_" + b]
        out[f"mag_{b}_cModel"] = _mag(cmf)
        out[f"magerr_{b}_cModel"] = _magerr(cmf, cm_err)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"snr_{b}_cModel"] = cmf / cm_err
        ixx, iyy, ixy = obs.moments[b]
        pxx, pyy, pxy = ctx.psf_moments(b)
        shape_fail = obs.failures["shape_" + b]
        out[f"Ixx_pixel_{b}"] = np.where(shape_fail, np.nan, ixx)
        out[f"Iyy_pixel_{b}"] = np.where(shape_fail, np.nan, iyy)
        out[f"Ixy_pixel_{b}"] = np.where(shape_fail, np.nan, ixy)
        out[f"IxxPSF_pixel_{b}"] = pxx
        out[f"IyyPSF_pixel_{b}"] = pyy
        out[f"IxyPSF_pixel_{b}"] = pxy
        out[f"I_flag_{b}"] = shape_fail
        out[f"psf_fwhm_{b}"] = PIXEL_SCALE * 2.3548200450309493 * np.power(pxx * pyy - pxy**2, 0.25)
    for name in (
        "Ixx_pixel",
        "Iyy_pixel",
        "Ixy_pixel",
        "IxxPSF_pixel",
        "IyyPSF_pixel",
        "IxyPSF_pixel",
        "I_flag",
    ):
        out[name] = out[f"{name}_{REFERENCE_BAND}"]
    missing = [c for c in spec.column_names if c not in out]
    if missing:
        raise UnexplainedColumnError(f"no simulation rule for object columns {missing}")
    return _to_arrow(spec, {k: np.asarray(v)[keep] for k, v in out.items()})


def _position_table(obs: ObservedPatch, spec: TableSpec) -> pa.Table:
    ref = _reference_band(obs)
    out: dict[str, NDArray] = {
        "objectId": obs.object_id,
        "coord_ra": obs.ra,
        "coord_dec": obs.dec,
        "parent": obs.parent_id,
        "deblend_nChild": obs.n_child,
        "detect_isPrimary": obs.is_primary,
        "extinction_bv": obs.extinction_bv,
        "detect_isPatchInner": np.ones(obs.size, dtype=bool),
        "detect_isTractInner": np.ones(obs.size, dtype=bool),
    }
    for b in (*BANDS, "sky"):
        if b == "sky":
            none = np.zeros(obs.size, dtype=bool)
            out["merge_footprint_sky"] = out["merge_peak_sky"] = none
            continue
        snr = np.abs(obs.psf_flux[b]) / obs.psf_flux_err[b]
        out[f"merge_footprint_{b}"] = np.nan_to_num(snr) > 3.0
        out[f"merge_peak_{b}"] = obs.detected_in[b]
        out[f"merge_measurement_{b}"] = ref == b
    missing = [c for c in spec.column_names if c not in out]
    if missing:
        raise UnexplainedColumnError(f"no simulation rule for position columns {missing}")
    return _to_arrow(spec, out)


def _reference_table(obs: ObservedPatch, spec: TableSpec) -> pa.Table:
    ctx = _Context(obs, "reference")
    out: dict[str, NDArray] = {"objectId": obs.object_id, "coord_ra": obs.ra, "coord_dec": obs.dec}
    for col in spec.column_names:
        if col not in out:
            out[col] = _measurement_column(ctx, REFERENCE_BAND, col, spec.name)
    return _to_arrow(spec, out, single_precision=True)


def _forced_table(obs: ObservedPatch, spec: TableSpec) -> pa.Table:
    ctx = _Context(obs, "forced")
    out: dict[str, NDArray] = {"objectId": obs.object_id, "coord_ra": obs.ra, "coord_dec": obs.dec}
    for col in spec.column_names:
        if col in out:
            continue
        band, _, base = col.partition("_")
        if band not in BANDS:
            raise UnexplainedColumnError(f"no simulation rule for column {col!r} of {spec.name}")
        out[col] = _measurement_column(ctx, band, base, spec.name)
    return _to_arrow(spec, out, single_precision=True)


def _truth_match_table(obs: ObservedPatch, truth: pa.Table, spec: TableSpec) -> pa.Table:
    """DESC's truth_match: one row per object (its best truth) + one per unmatched truth."""
    prim = np.flatnonzero(obs.is_primary)
    o_ra, o_dec = obs.ra[prim], obs.dec[prim]
    t_ra, t_dec = truth["ra"].to_numpy(), truth["dec"].to_numpy()
    n_obj, n_truth = prim.size, t_ra.size
    t_type = truth["truth_type"].to_numpy()
    t_mag_r = _mag(truth["flux_r"].to_numpy().astype(np.float64))

    match = np.full(n_obj, -1, dtype=np.int64)
    sep = np.full(n_obj, np.nan)
    nearest = np.full(n_obj, -1, dtype=np.int64)
    dmag = np.full(n_obj, np.nan)
    if n_obj and n_truth:
        from scipy.spatial import cKDTree

        t_xyz = unit_vectors(t_ra, t_dec)
        o_xyz = unit_vectors(o_ra, o_dec)
        tree = cKDTree(t_xyz)
        _chord, nearest = tree.query(o_xyz, k=1)
        # Objects' r magnitude: cModel for extended objects where finite, else PSF.
        ext = obs.extendedness()[prim]
        o_mag = np.where(
            (ext == 1) & np.isfinite(_mag(obs.cmodel_flux["r"][prim])),
            _mag(obs.cmodel_flux["r"][prim]),
            _mag(obs.psf_flux["r"][prim]),
        )
        radius = 2 * math.sin(math.radians(MATCH_RADIUS_ARCSEC / 3600) / 2)
        candidates = tree.query_ball_point(o_xyz, radius)
        match = nearest.astype(np.int64).copy()
        for i, cands in enumerate(candidates):
            if len(cands) > 1:
                d = np.abs(t_mag_r[cands] - o_mag[i])
                d = np.where(np.isfinite(d), d, np.inf)
                best = int(np.argmin(d))
                if d[best] < 1.0:
                    match[i] = cands[best]
        diff = t_xyz[match] - o_xyz
        sep = np.degrees(2 * np.arcsin(np.linalg.norm(diff, axis=1) / 2)) * 3600
        dmag = np.abs(t_mag_r[match] - o_mag)

    good = (sep < MATCH_RADIUS_ARCSEC) & (np.nan_to_num(dmag, nan=np.inf) < 1.0)
    seen = np.zeros(n_truth, dtype=bool)
    unique = np.zeros(n_obj, dtype=bool)
    for i, t in enumerate(match):
        if t >= 0 and not seen[t]:
            unique[i] = True
            seen[t] = True
    unmatched = np.flatnonzero(~seen)
    rows = np.concatenate([match, unmatched]).astype(np.int64)

    out: dict[str, NDArray] = {}
    for name in (
        "ra",
        "dec",
        "redshift",
        "host_galaxy",
        "is_variable",
        "is_pointsource",
        "mag_r",
        "tract",
        "patch",
        "cosmodc2_hp",
        "cosmodc2_id",
        "truth_type",
    ):
        out[name] = truth[name].to_numpy(zero_copy_only=False)[rows]
    for b in BANDS:
        out[f"flux_{b}"] = truth[f"flux_{b}"].to_numpy()[rows]
        out[f"flux_{b}_noMW"] = truth[f"flux_{b}_noMW"].to_numpy()[rows]
    out["id"] = truth["id"].to_numpy().astype(str)[rows]
    n_un = unmatched.size
    out["match_objectId"] = np.concatenate([obs.object_id[prim], np.full(n_un, -1, dtype=np.int64)])
    out["match_sep"] = np.concatenate([sep, np.full(n_un, -1.0)])
    out["is_good_match"] = np.concatenate([good, np.zeros(n_un, dtype=bool)])
    out["is_nearest_neighbor"] = np.concatenate([match == nearest, np.zeros(n_un, dtype=bool)])
    out["is_unique_truth_entry"] = np.concatenate([unique, np.ones(n_un, dtype=bool)])
    del t_type
    missing = [c for c in spec.column_names if c not in out]
    if missing:
        raise UnexplainedColumnError(f"no simulation rule for truth_match columns {missing}")
    return _to_arrow(spec, out)


def build_tables(obs: ObservedPatch, truth: pa.Table) -> dict[str, pa.Table]:
    """The five DP0.1 tables of one patch, keyed by table name, in schema column order."""
    schema = load_schema("dp01_dc2")
    return {
        "object": _object_table(obs, schema.table("object")),
        "truth_match": _truth_match_table(obs, truth, schema.table("truth_match")),
        "position": _position_table(obs, schema.table("position")),
        "reference": _reference_table(obs, schema.table("reference")),
        "forced_photometry": _forced_table(obs, schema.table("forced_photometry")),
    }
