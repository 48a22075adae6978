"""``dpzero pipeline validate``: the pipeline's Object table against the simulation's truth.

What it measures, on the primary objects (``detect_isPrimary``) of every
``objectTable_tract`` of a run, matched to the truth within ``match_radius``:

- astrometry: rms separation (mas) of bright isolated stars (PSF S/N > 100 in a band,
  no masked pixel within 12 pixels: edges of the data and saturated stars are left out;
  no other true source within 3″ (about four PSF widths) holding a tenth of the star's
  flux or more in the reference band: a blend the deblender cannot split measures the
  blend, not the star, which is why validation metrics select isolated stars);
- photometry: PSF magnitude minus true magnitude of stars per band, median and
  robust scatter (1.4826·MAD) in bins of true magnitude, and for the bright isolated
  stars;
- completeness: fraction of true stars (and of all true objects) in the coadds'
  footprint with a matched object, per magnitude bin of the reference band, its 50 %
  magnitude, and the truth depth: the 5σ point-source magnitude of the coadds actually
  made (see `visit_psf_flux_noise`);
- star/galaxy separation: ``refExtendedness`` against the true type.

The truth is the simulator's universe (`dpzero.sim.load_truth`) or any Parquet file
with ``ra``, ``dec`` (degrees), ``truth_type`` (1 galaxy, 2 star) and ``flux_<band>``
(nJy). Results print as a table, and go to ``validation.json`` and PNG plots.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from dpzero.errors import InvalidInputError

__all__ = [
    "GOALS",
    "ValidationReport",
    "VisitConditions",
    "load_truth_table",
    "validate_run",
    "visit_psf_flux_noise",
]

GOALS = {"astrometry_mas": 20.0, "photometry_percent": 1.0, "completeness_mag": 0.3}
"""Issue 7's goals: bright-star astrometry rms, bright-star photometric offset,
distance of the 50 % completeness magnitude from the truth depth."""

AB_NJY = 31.4
BRIGHT_SNR = 100.0
ISOLATION_ARCSEC = 3.0
"""A bright star is isolated when no other true source within this radius has …"""
ISOLATION_FLUX_FRACTION = 0.1
"""… this fraction of its reference-band flux or more."""


@dataclass
class BandResult:
    """One band's photometry and depth."""

    band: str
    depth_m5: float
    depth_source: str
    bright_stars: int
    bright_offset_percent: float
    bright_scatter_percent: float
    bins: list[dict[str, float]] = field(default_factory=list)


@dataclass
class ValidationReport:
    """Everything `validate_run` measured."""

    collection: str
    objects: int
    primary: int
    truth_in_footprint: int
    reference_band: str
    astrometry_stars: int
    astrometry_rms_mas: float
    bands: list[BandResult]
    completeness_bins: list[dict[str, float]]
    completeness_50_mag: float
    completeness_all_bins: list[dict[str, float]]
    completeness_all_50_mag: float
    depth_m5: float
    star_as_point_fraction: float
    galaxy_as_extended_fraction: float
    classified: int
    plots: list[str] = field(default_factory=list)

    @property
    def completeness_offset(self) -> float:
        """50 % completeness magnitude minus the truth depth."""
        return self.completeness_50_mag - self.depth_m5

    def goals_met(self) -> dict[str, bool]:
        """Each goal of the issue: met or not (NaN counts as not met)."""
        bright = [abs(b.bright_offset_percent) for b in self.bands if b.bright_stars]
        return {
            "astrometry": self.astrometry_rms_mas <= GOALS["astrometry_mas"],
            "photometry": bool(bright) and max(bright) <= GOALS["photometry_percent"],
            "completeness": abs(self.completeness_offset) <= GOALS["completeness_mag"],
        }

    def table(self) -> str:
        """A readable summary for a terminal."""
        met = self.goals_met()

        def ok(key: str) -> str:
            return "met" if met[key] else "NOT met"

        lines = [
            f"validation of {self.collection}: {self.primary} primary objects "
            f"({self.objects} rows), {self.truth_in_footprint} true stars in the footprint",
            "",
            f"{'measure':<44} {'value':>10}  goal",
            f"{'astrometry rms, bright isolated stars (mas)':<44} "
            f"{self.astrometry_rms_mas:>10.1f}  "
            f"≤ {GOALS['astrometry_mas']:.0f} ({ok('astrometry')}; {self.astrometry_stars} stars)",
        ]
        for b in self.bands:
            lines.append(
                f"{f'{b.band} photometry offset, bright stars (%)':<44} "
                f"{b.bright_offset_percent:>10.2f}  ≤ {GOALS['photometry_percent']:.0f} "
                f"({b.bright_stars} stars)"
            )
            lines.append(
                f"{f'{b.band} photometry scatter, bright stars (%)':<44} "
                f"{b.bright_scatter_percent:>10.2f}"
            )
            lines.append(
                f"{f'{b.band} coadd 5σ depth (truth)':<44} {b.depth_m5:>10.2f}  ({b.depth_source})"
            )
        lines += [
            f"{f'{self.reference_band} 50% completeness, stars (mag)':<44} "
            f"{self.completeness_50_mag:>10.2f}  within {GOALS['completeness_mag']} of "
            f"{self.depth_m5:.2f} ({ok('completeness')}; Δ {self.completeness_offset:+.2f})",
            f"{f'{self.reference_band} 50% completeness, all objects (mag)':<44} "
            f"{self.completeness_all_50_mag:>10.2f}",
            f"{'stars classified point-like (%)':<44} {100 * self.star_as_point_fraction:>10.1f}",
            f"{'galaxies classified extended (%)':<44} "
            f"{100 * self.galaxy_as_extended_fraction:>10.1f}  ({self.classified} objects S/N>20)",
        ]
        lines.append(f"photometry bins ({self.bands[0].band if self.bands else ''}):")
        if self.bands:
            lines.append(f"  {'mag':>6} {'n':>5} {'median Δm':>10} {'σ Δm':>8}")
            for row in self.bands[0].bins:
                lines.append(
                    f"  {row['mag']:>6.2f} {int(row['n']):>5} {row['median']:>10.4f} "
                    f"{row['scatter']:>8.4f}"
                )
        lines.append("completeness bins (stars; all objects):")
        for rows in (self.completeness_bins, self.completeness_all_bins):
            for row in rows:
                lines.append(f"  {row['mag']:>6.2f} {int(row['n']):>5} {row['fraction']:>6.2f}")
            lines.append("  --")
        if self.plots:
            lines.append("plots: " + ", ".join(self.plots))
        return "\n".join(lines)


def load_truth_table(path: str | None, size: str | None, seed: int) -> pa.Table:
    """The truth: a Parquet file, or the simulator's universe of ``size`` and ``seed``.

    Raises
    ------
    InvalidInputError
        If neither or both are given, the file is unreadable or lacks columns.
    """
    if (path is None) == (size is None):
        raise InvalidInputError("give the truth as either --truth FILE or --truth-size SIZE")
    if path is not None:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InvalidInputError(f"cannot read the truth file {path}: {exc}") from None
    else:
        from dpzero.sim import load_truth

        table = load_truth(size, seed)
    missing = [c for c in ("ra", "dec", "truth_type") if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"the truth lacks columns: {', '.join(missing)}")
    return table


def validate_run(
    repo: str,
    collection: str,
    truth: pa.Table,
    *,
    out: Path | None = None,
    match_radius_arcsec: float = 0.5,
) -> ValidationReport:
    """Compare a run's Object tables to the truth.

    Raises
    ------
    InvalidInputError
        If ``repo`` is not a Butler repository or the collection holds no Object table.
    """
    objects, coadds, conditions = _read_run(repo, collection)
    primary = objects.filter(objects.column("detect_isPrimary").fill_null(False))
    bands = sorted(coadds, key=lambda b: "irzygu".index(b) if b in "irzygu" else 9)
    ref_band = bands[0]
    ra = primary.column("coord_ra").to_numpy()
    dec = primary.column("coord_dec").to_numpy()

    t_ra = truth.column("ra").to_numpy(zero_copy_only=False).astype(float)
    t_dec = truth.column("dec").to_numpy(zero_copy_only=False).astype(float)
    t_type = truth.column("truth_type").to_numpy(zero_copy_only=False)
    inside = _in_footprint(coadds[ref_band], t_ra, t_dec)
    t_idx = np.nonzero(inside)[0]
    depth = {b: _depth(coadds[b], conditions) for b in bands}

    # Each object's nearest truth, and each true object's nearest object.
    obj_truth, obj_sep = _nearest(ra, dec, t_ra[t_idx], t_dec[t_idx])
    obj_truth = np.where(obj_sep <= match_radius_arcsec, t_idx[obj_truth], -1)
    _, truth_sep = _nearest(t_ra[t_idx], t_dec[t_idx], ra, dec)
    matched_truth = truth_sep <= match_radius_arcsec
    matched = obj_truth >= 0
    star = np.zeros(len(ra), bool)
    star[matched] = t_type[obj_truth[matched]] == 2
    isolated = np.zeros(len(ra), bool)
    isolated[star] = _isolated(t_ra, t_dec, _truth_flux(truth, ref_band), obj_truth[star])

    band_results = []
    bright_any = np.zeros(len(ra), bool)
    for band in bands:
        flux = _column(primary, f"{band}_psfFlux")
        err = _column(primary, f"{band}_psfFluxErr")
        tflux = np.full(len(ra), np.nan)
        tflux[matched] = _truth_flux(truth, band)[obj_truth[matched]]
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = flux / err
            dm = -2.5 * np.log10(flux / tflux)
        tmag = AB_NJY - 2.5 * np.log10(np.where(tflux > 0, tflux, np.nan))
        # Clean measurements: no masked pixel (no data, saturation) within 12 pixels.
        clean = (_column(primary, f"{band}_psfFlux_flag") == 0) & (
            _column(primary, f"{band}_calibFlux_flag") == 0
        )
        use = star & clean & np.isfinite(dm) & np.isfinite(tmag)
        bright = use & isolated & (snr > BRIGHT_SNR)
        bright_any |= bright
        ratio = flux[bright] / tflux[bright] - 1.0
        band_results.append(
            BandResult(
                band=band,
                depth_m5=depth[band][0],
                depth_source=depth[band][1],
                bright_stars=int(bright.sum()),
                bright_offset_percent=100 * float(np.median(ratio)) if ratio.size else math.nan,
                bright_scatter_percent=100 * _robust_sigma(ratio) if ratio.size else math.nan,
                bins=_binned(tmag[use], dm[use]),
            )
        )
    # Astrometry of bright stars (S/N > 100 in any band).
    sep_mas = obj_sep[bright_any] * 1000.0
    astro_rms = float(np.sqrt(np.mean(sep_mas**2))) if sep_mas.size else math.nan

    # Completeness of stars in the reference band.
    t_mag = AB_NJY - 2.5 * np.log10(np.clip(_truth_flux(truth, ref_band)[t_idx], 1e-3, None))
    t_star = t_type[t_idx] == 2
    comp_bins = _completeness(t_mag[t_star], matched_truth[t_star])
    m50 = _fifty_percent(comp_bins)
    # Galaxies too (their 50 % lies brighter than a point source's depth).
    comp_all = _completeness(t_mag, matched_truth)

    # Star/galaxy separation on objects measured well in the reference band.
    ext = _column(primary, "refExtendedness")
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_snr = _column(primary, f"{ref_band}_psfFlux") / _column(
            primary, f"{ref_band}_psfFluxErr"
        )
    sure = matched & np.isfinite(ext) & (ref_snr > 20)
    galaxy = np.zeros(len(ra), bool)
    galaxy[matched] = t_type[obj_truth[matched]] == 1
    stars_ok = _fraction(ext[sure & star] == 0)
    galaxies_ok = _fraction(ext[sure & galaxy] == 1)

    report = ValidationReport(
        collection=collection,
        objects=objects.num_rows,
        primary=primary.num_rows,
        truth_in_footprint=int(t_star.sum()),
        reference_band=ref_band,
        astrometry_stars=int(sep_mas.size),
        astrometry_rms_mas=astro_rms,
        bands=band_results,
        completeness_bins=comp_bins,
        completeness_50_mag=m50,
        completeness_all_bins=comp_all,
        completeness_all_50_mag=_fifty_percent(comp_all),
        depth_m5=depth[ref_band][0],
        star_as_point_fraction=stars_ok,
        galaxy_as_extended_fraction=galaxies_ok,
        classified=int(sure.sum()),
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        report.plots = _plots(out, report, obj_sep, bright_any, primary, obj_truth, truth, star)
        (out / "validation.json").write_text(json.dumps(asdict(report), indent=1, default=float))
    return report


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VisitConditions:
    """A visit's observing conditions, as its raws' headers record them.

    Attributes
    ----------
    band
        Band letter.
    exposure_time
        Seconds.
    airmass
        Airmass at the boresight.
    seeing
        Delivered PSF FWHM (arcsec): the FWHM of the Kolmogorov PSF the simulator draws.
    sky_mag
        Sky brightness, AB mag per arcsec².
    """

    band: str
    exposure_time: float
    airmass: float
    seeing: float
    sky_mag: float


def visit_psf_flux_noise(conditions: VisitConditions) -> float:
    """1σ noise (nJy) of a point source's optimal PSF flux in one simulated visit.

    From the simulator's own numbers, not from the pipeline's products: sky electrons
    per pixel (sky brightness through the band's zero point at the visit's airmass),
    dark current and read noise per pixel, over the noise-equivalent area
    ``1 / Σ p²`` of the pixelised Kolmogorov PSF the simulator renders (about 40 %
    larger than a Gaussian's ``4πσ²`` of the same FWHM, whose wings it lacks).
    """
    import galsim

    from dpzero.sim.images.camera import GAIN, PIXEL_SCALE_ARCSEC, READ_NOISE_ADU
    from dpzero.sim.images.instrument import DARK_CURRENT
    from dpzero.sim.images.observing import Visit

    visit = Visit(
        id=0,
        band=conditions.band,
        mjd=0.0,
        exposure_time=conditions.exposure_time,
        airmass=conditions.airmass,
        seeing=conditions.seeing,
        psf_e1=0.0,
        psf_e2=0.0,
        sky_mag=conditions.sky_mag,
        ra=0.0,
        dec=0.0,
        rotation=0.0,
    )
    per_pixel = (
        visit.sky_electrons + DARK_CURRENT * conditions.exposure_time + (READ_NOISE_ADU * GAIN) ** 2
    )
    kernel = galsim.Kolmogorov(fwhm=conditions.seeing).drawImage(
        nx=101, ny=101, scale=PIXEL_SCALE_ARCSEC
    )
    psf = kernel.array / kernel.array.sum()
    area = 1.0 / float(np.sum(psf**2))
    return math.sqrt(per_pixel * area) / visit.electrons_per_njy


@dataclass
class _Coadd:
    wcs: object
    shape: tuple[int, int]
    n_image: NDArray
    variance: float
    psf_kernel: NDArray | None
    visits: list[int]


def _read_run(
    repo: str, collection: str
) -> tuple[pa.Table, dict[str, list[_Coadd]], dict[int, VisitConditions]]:
    from lsst.daf.butler import Butler, MissingCollectionError

    try:
        butler = Butler.from_config(repo, writeable=False)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{repo} is not a Butler repository: {exc}") from None
    with butler:
        try:
            refs = butler.query_datasets("objectTable_tract", collections=collection, explain=False)
        except MissingCollectionError:
            raise InvalidInputError(f"no collection {collection!r} in {repo}") from None
        if not refs:
            raise InvalidInputError(
                f"collection {collection!r} holds no objectTable_tract: run the pipeline's "
                "step3 first"
            )
        objects = pa.concat_tables([butler.get(ref) for ref in refs])
        # The visits each coadd was made of: its warps.
        warps: dict[tuple[int, int, str], list[int]] = {}
        instruments: dict[int, str] = {}
        for ref in butler.query_datasets(
            "deepCoadd_directWarp", collections=collection, explain=False
        ):
            key = (int(ref.dataId["tract"]), int(ref.dataId["patch"]), str(ref.dataId["band"]))
            warps.setdefault(key, []).append(int(ref.dataId["visit"]))
            instruments[int(ref.dataId["visit"])] = str(ref.dataId["instrument"])
        conditions = _visit_conditions(butler, collection, instruments)
        coadds: dict[str, list[_Coadd]] = {}
        for ref in butler.query_datasets("deepCoadd", collections=collection, explain=False):
            exposure = butler.get(ref)
            n_image = butler.get("deepCoadd_nImage", dataId=ref.dataId, collections=collection)
            good = n_image > 0
            band = str(ref.dataId["band"])
            coadds.setdefault(band, []).append(
                _Coadd(
                    wcs=exposure.wcs,
                    shape=exposure.image.shape,
                    n_image=n_image,
                    variance=float(np.median(exposure.variance[good])) if good.any() else math.nan,
                    psf_kernel=exposure.psf.kernel if exposure.psf is not None else None,
                    visits=warps.get(
                        (int(ref.dataId["tract"]), int(ref.dataId["patch"]), band), []
                    ),
                )
            )
    return objects, coadds, conditions


def _visit_conditions(
    butler: Any, collection: str, instruments: dict[int, str]
) -> dict[int, VisitConditions]:
    """Each visit's conditions from one of its raws' primary header, where recorded.

    ``instruments`` maps each visit to its instrument (a visit is also an exposure).
    """
    found: dict[int, VisitConditions] = {}
    for visit, instrument in sorted(instruments.items()):
        refs = butler.query_datasets(
            "raw",
            collections=collection,
            data_id={"instrument": instrument, "exposure": visit},
            limit=1,
            explain=False,
        )
        if not refs:
            continue
        header = butler.get(refs[0])[0].header
        values = [header.get(k) for k in ("EXPTIME", "AIRMASS", "SEEING", "SKYBRITE")]
        band = refs[0].dataId["band"]
        if all(isinstance(v, int | float) for v in values):
            found[visit] = VisitConditions(str(band), *(float(v) for v in values))
    return found


def _column(table: pa.Table, name: str) -> NDArray[np.float64]:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(name).to_numpy(zero_copy_only=False).astype(float)


def _truth_flux(truth: pa.Table, band: str) -> NDArray[np.float64]:
    name = f"flux_{band}"
    if name not in truth.column_names:
        raise InvalidInputError(f"the truth has no {name} column")
    return truth.column(name).to_numpy(zero_copy_only=False).astype(float)


def _in_footprint(coadds: list[_Coadd], ra: NDArray, dec: NDArray, margin: int = 10) -> NDArray:
    """True positions on coadd pixels with data, away from the data's edge."""
    from scipy import ndimage

    inside = np.zeros(len(ra), bool)
    for c in coadds:
        good = ndimage.binary_erosion(c.n_image > 0, iterations=margin)
        x, y = c.wcs.all_world2pix(ra, dec, 0)
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        on = (ix >= 0) & (iy >= 0) & (ix < c.shape[1]) & (iy < c.shape[0])
        inside[on] |= good[iy[on], ix[on]]
    return inside


def _depth(coadds: list[_Coadd], conditions: dict[int, VisitConditions]) -> tuple[float, str]:
    """5σ point-source magnitude of a band's coadds (median over patches), and its source.

    Where every input visit's conditions are known (a simulated survey), from the
    simulator's numbers (`visit_psf_flux_noise`), the visits combined with inverse
    variance weights as many times as the coadd's median pixel has inputs; otherwise
    from the coadd itself: its median variance over its PSF's noise-equivalent area.
    """
    values = []
    sources = set()
    for c in coadds:
        covered = c.n_image[c.n_image > 0]
        if c.visits and all(v in conditions for v in c.visits) and covered.size:
            inverse = [visit_psf_flux_noise(conditions[v]) ** -2 for v in c.visits]
            noise = (float(np.median(covered)) * float(np.mean(inverse))) ** -0.5
            sources.add("simulated visits")
        elif c.psf_kernel is not None:
            psf = c.psf_kernel / c.psf_kernel.sum()
            noise = math.sqrt(c.variance / float(np.sum(psf**2)))
            sources.add("coadd variance")
        else:
            continue
        values.append(AB_NJY - 2.5 * math.log10(5 * noise))
    if not values:
        return math.nan, "unknown"
    return float(np.median(values)), " + ".join(sorted(sources))


def _nearest(ra: NDArray, dec: NDArray, ra2: NDArray, dec2: NDArray) -> tuple[NDArray, NDArray]:
    """Index in the second list of each position's nearest, and its distance (arcsec)."""
    from astropy.coordinates import SkyCoord

    if len(ra2) == 0 or len(ra) == 0:
        return np.zeros(len(ra), int), np.full(len(ra), np.inf)
    idx, sep, _ = SkyCoord(ra, dec, unit="deg").match_to_catalog_sky(
        SkyCoord(ra2, dec2, unit="deg")
    )
    return np.asarray(idx), np.asarray(sep.arcsec)


def _isolated(ra: NDArray, dec: NDArray, flux: NDArray, which: NDArray) -> NDArray[np.bool_]:
    """Whether each true source ``which`` (indices) has no other true source within
    `ISOLATION_ARCSEC` holding `ISOLATION_FLUX_FRACTION` of its flux or more."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    if len(which) == 0:
        return np.zeros(0, bool)
    centres = SkyCoord(ra[which], dec[which], unit="deg")
    everything = SkyCoord(ra, dec, unit="deg")
    i, j, _, _ = search_around_sky(centres, everything, ISOLATION_ARCSEC * u.arcsec)
    blending = (j != which[i]) & (flux[j] >= ISOLATION_FLUX_FRACTION * flux[which[i]])
    isolated = np.ones(len(which), bool)
    isolated[i[blending]] = False
    return isolated


def _robust_sigma(values: NDArray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _fraction(flags: NDArray) -> float:
    return float(np.mean(flags)) if flags.size else math.nan


def _magnitude_bins(mag: NDArray, width: float) -> Iterator[tuple[float, NDArray]]:
    """Centre and row selection of each ``width``-wide magnitude bin holding ≥ 3 rows."""
    if mag.size == 0:
        return
    edges = np.arange(math.floor(mag.min()), math.ceil(mag.max()) + width, width)
    for lo, hi in itertools.pairwise(edges):
        sel = (mag >= lo) & (mag < hi)
        if sel.sum() >= 3:
            yield float((lo + hi) / 2), sel


def _binned(mag: NDArray, dm: NDArray, width: float = 0.5) -> list[dict[str, float]]:
    return [
        {
            "mag": centre,
            "n": float(sel.sum()),
            "median": float(np.median(dm[sel])),
            "scatter": _robust_sigma(dm[sel]),
        }
        for centre, sel in _magnitude_bins(mag, width)
    ]


def _completeness(mag: NDArray, found: NDArray, width: float = 0.25) -> list[dict[str, float]]:
    return [
        {"mag": centre, "n": float(sel.sum()), "fraction": float(found[sel].mean())}
        for centre, sel in _magnitude_bins(mag, width)
    ]


def _fifty_percent(bins: list[dict[str, float]]) -> float:
    """Faintest magnitude where the completeness curve crosses 50 % (interpolated)."""
    for a, b in zip(bins[::-1][1:], bins[::-1][:-1], strict=True):
        # Walking from faint to bright: b fainter than a.
        if a["fraction"] >= 0.5 > b["fraction"]:
            t = (a["fraction"] - 0.5) / (a["fraction"] - b["fraction"])
            return a["mag"] + t * (b["mag"] - a["mag"])
    return math.nan


# ------------------------------------------------------------------------------- plots


def _plots(
    out: Path,
    report: ValidationReport,
    obj_sep: NDArray,
    bright: NDArray,
    primary: pa.Table,
    obj_truth: NDArray,
    truth: pa.Table,
    star: NDArray,
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ra = primary.column("coord_ra").to_numpy()
    dec = primary.column("coord_dec").to_numpy()
    matched = obj_truth >= 0
    t_ra = truth.column("ra").to_numpy(zero_copy_only=False)
    t_dec = truth.column("dec").to_numpy(zero_copy_only=False)
    d_ra = np.full(len(ra), np.nan)
    d_dec = np.full(len(ra), np.nan)
    d_ra[matched] = (ra[matched] - t_ra[obj_truth[matched]]) * np.cos(np.radians(dec[matched]))
    d_dec[matched] = dec[matched] - t_dec[obj_truth[matched]]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(d_ra[bright] * 3.6e6, d_dec[bright] * 3.6e6, s=6)
    ax.set_xlabel("ΔRA cos δ (mas)")
    ax.set_ylabel("ΔDec (mas)")
    ax.set_title(f"bright stars: rms {report.astrometry_rms_mas:.1f} mas")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    written.append(_save(fig, out / "astrometry.png"))

    fig, axes = plt.subplots(
        1, len(report.bands), figsize=(5 * len(report.bands), 4), squeeze=False
    )
    for ax, band in zip(axes[0], report.bands, strict=True):
        flux = _column(primary, f"{band.band}_psfFlux")
        tflux = np.full(len(ra), np.nan)
        tflux[matched] = _truth_flux(truth, band.band)[obj_truth[matched]]
        with np.errstate(invalid="ignore", divide="ignore"):
            tmag = AB_NJY - 2.5 * np.log10(tflux)
            dm = -2.5 * np.log10(flux / tflux)
        ax.scatter(tmag[star], dm[star], s=4, alpha=0.6)
        if band.bins:
            mags = [b["mag"] for b in band.bins]
            ax.plot(mags, [b["median"] for b in band.bins], "k-")
            ax.plot(mags, [b["median"] + b["scatter"] for b in band.bins], "k:")
            ax.plot(mags, [b["median"] - b["scatter"] for b in band.bins], "k:")
        ax.set_ylim(-0.5, 0.5)
        ax.axvline(band.depth_m5, color="red", lw=0.8)
        ax.set_xlabel(f"true {band.band} (mag)")
        ax.set_ylabel("PSF − true (mag)")
        ax.set_title(f"{band.band}: stars")
    written.append(_save(fig, out / "photometry.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = report.completeness_bins
    ax.plot([b["mag"] for b in bins], [b["fraction"] for b in bins], "o-", label="stars")
    every = report.completeness_all_bins
    ax.plot([b["mag"] for b in every], [b["fraction"] for b in every], "s--", label="all")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.axvline(report.depth_m5, color="red", lw=0.8, label="5σ depth")
    ax.set_xlabel(f"true {report.reference_band} (mag)")
    ax.set_ylabel("completeness")
    ax.set_title(f"50 % at {report.completeness_50_mag:.2f}")
    ax.legend()
    written.append(_save(fig, out / "completeness.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    ext = _column(primary, "refExtendedness")
    ref = report.reference_band
    tflux = np.full(len(ra), np.nan)
    tflux[matched] = _truth_flux(truth, ref)[obj_truth[matched]]
    with np.errstate(invalid="ignore", divide="ignore"):
        tmag = AB_NJY - 2.5 * np.log10(tflux)
    t_type = truth.column("truth_type").to_numpy(zero_copy_only=False)
    galaxy = np.zeros(len(ra), bool)
    galaxy[matched] = t_type[obj_truth[matched]] == 1
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(ra))
    ax.scatter(tmag[star], ext[star] + jitter[star], s=4, label="true stars")
    ax.scatter(tmag[galaxy], ext[galaxy] + jitter[galaxy], s=4, label="true galaxies")
    ax.set_xlabel(f"true {ref} (mag)")
    ax.set_ylabel("refExtendedness")
    ax.legend()
    written.append(_save(fig, out / "extendedness.png"))
    return written


def _save(fig: object, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return str(path)
