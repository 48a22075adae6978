"""The truth universe: galaxies, stars and supernovae, one sky-map patch at a time.

Each patch interior is simulated from its own random stream, seeded by (seed,
tract, patch), so the universe is the same whatever order or subset of patches is
made, and memory stays bounded by one patch (≈10⁵ truth sources).

The model is deliberately simple but shaped like the sky DC2 simulated:
- galaxy i-band number counts following deep-survey counts (log₁₀ dN/dm rising from
  3.0 at i = 20 to 5.2 at i = 26 per deg² per mag), extended to i = 28;
- redshifts growing with magnitude, red-sequence and blue-cloud colours that redden
  with redshift, bulge + disk Sérsic components (n = 4 and 1) whose half-light radii
  shrink with magnitude, shape noise σ_e ≈ 0.26, and 15 % of galaxies in groups;
- stars on the SDSS stellar locus (Davenport 2014), with M dwarfs on a discrete
  colour grid as DC2's SED library gave them, 10 % variable;
- a few type Ia-like supernovae in galaxies, with their five-year mean flux as
  static flux and their peak date;
- Milky Way extinction from a smooth E(B−V) field (≈0.01–0.05 mag, as at b ≈ −48°).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from dpzero.sim.skymap import DC2_SKYMAP, RingsSkyMap
from dpzero.sim.survey import BAND_FACTS, BANDS, SurveyRegion, mag_to_flux

__all__ = [
    "TRUTH_SCHEMA",
    "PatchCell",
    "extinction_bv",
    "patches_in_region",
    "simulate_truth",
]

MJD_START, MJD_END = 59582.0, 61406.0
"""Five years of the simulated WFD survey."""

# i-band galaxy counts, log10 dN/dm per deg² per mag, at the magnitudes given.
_GALAXY_COUNT_MAGS = np.array([14.0, 16.0, 18.0, 20.0, 21, 22, 23, 24, 25, 26, 27, 28.0])
_GALAXY_COUNT_LOGN = np.array([0.6, 1.3, 2.15, 3.0, 3.45, 3.9, 4.3, 4.65, 4.95, 5.2, 5.43, 5.64])
GALAXY_MAG_RANGE = (14.0, 28.0)

# r-band star counts at high galactic latitude (b ≈ −48°).
_STAR_COUNT_MAGS = np.array([12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0])
_STAR_COUNT_LOGN = np.array([1.2, 1.9, 2.4, 2.6, 2.75, 2.95, 3.15, 3.2, 3.2])
STAR_MAG_RANGE = (12.0, 28.0)

# SDSS stellar locus (Davenport 2014) as functions of g − i.
_LOCUS_GI = np.array([0.20, 0.82, 1.54, 2.50, 3.20])
_LOCUS_GR = np.array([0.27, 0.62, 1.12, 1.42, 1.57])
_LOCUS_RI = np.array([0.08, 0.21, 0.41, 1.15, 1.63])
_LOCUS_UG = np.array([1.09, 1.69, 2.53, 2.63, 2.70])
_LOCUS_IZ = np.array([-0.01, 0.09, 0.20, 0.61, 0.88])

SN_DENSITY_PER_DEG2 = 25.0
GROUP_FRACTION = 0.15
GROUP_SCATTER_ARCSEC = 20.0

_TRUTH_TYPE_GALAXY, _TRUTH_TYPE_STAR, _TRUTH_TYPE_SN = 1, 2, 3

TRUTH_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("truth_type", pa.int64()),
        ("ra", pa.float64()),
        ("dec", pa.float64()),
        ("redshift", pa.float32()),
        ("host_galaxy", pa.int64()),
        ("is_variable", pa.int32()),
        ("is_pointsource", pa.int32()),
        *[(f"flux_{b}", pa.float32()) for b in BANDS],
        *[(f"flux_{b}_noMW", pa.float32()) for b in BANDS],
        ("mag_r", pa.float32()),
        ("tract", pa.int64()),
        ("patch", pa.string()),
        ("cosmodc2_hp", pa.int64()),
        ("cosmodc2_id", pa.int64()),
        ("size_bulge_true", pa.float32()),
        ("size_disk_true", pa.float32()),
        ("sersic_bulge", pa.float32()),
        ("sersic_disk", pa.float32()),
        ("bulge_to_total_ratio_i", pa.float32()),
        ("ellipticity_1_bulge_true", pa.float32()),
        ("ellipticity_2_bulge_true", pa.float32()),
        ("ellipticity_1_disk_true", pa.float32()),
        ("ellipticity_2_disk_true", pa.float32()),
        ("variability_amplitude_mag", pa.float32()),
        ("variability_period_days", pa.float32()),
        ("variability_phase", pa.float32()),
        ("sn_peak_mjd", pa.float64()),
        ("extinction_bv", pa.float32()),
    ]
)
"""Columns of the truth catalog (the universe before observation)."""


@dataclass(frozen=True, order=True)
class PatchCell:
    """One patch interior of the sky map: the unit of simulation and of output order."""

    tract: int
    patch_x: int
    patch_y: int

    @property
    def patch_string(self) -> str:
        """Gen2/DP0.1 patch name, ``"x,y"``."""
        return f"{self.patch_x},{self.patch_y}"

    @property
    def patch_id(self) -> int:
        """Gen3 integer patch id."""
        return self.patch_x + 7 * self.patch_y

    def rng(self, seed: int, stream: int) -> np.random.Generator:
        """Independent random stream ``stream`` of this patch for ``seed``."""
        return np.random.default_rng([seed, self.tract, self.patch_id, stream])


def patches_in_region(region: SurveyRegion, skymap: RingsSkyMap = DC2_SKYMAP) -> list[PatchCell]:
    """Every patch whose interior overlaps the region, in (tract, patch) order."""
    _ra0, _ra1, dec0, dec1 = region.bounding_box()
    # A grid much finer than a patch (13.3′) finds every overlapping patch; points on
    # the region's boundary are included so that thin slivers are not missed.
    step = 0.02
    n_dec = max(math.ceil((dec1 - dec0) / step), 1) + 1
    decs = np.linspace(dec0, dec1, n_dec)
    ras_all, decs_all = [], []
    for d in decs:
        half = region.half_width / max(math.cos(math.radians(d)), 1e-9)
        n_ra = max(math.ceil(2 * half * math.cos(math.radians(d)) / step), 1) + 1
        ras_all.append(np.linspace(region.ra_center - half, region.ra_center + half, n_ra))
        decs_all.append(np.full(n_ra, d))
    ra = np.concatenate(ras_all) % 360.0
    dec = np.concatenate(decs_all)
    loc = skymap.locate(ra, dec)
    keys = np.unique(np.column_stack([loc.tract, loc.patch_x, loc.patch_y]), axis=0)
    return [PatchCell(int(t), int(x), int(y)) for t, x, y in keys]


def extinction_bv(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.float64]:
    """A smooth Milky Way E(B−V) field, 0.01–0.05 mag over the DC2 area."""
    r, d = np.radians(ra), np.radians(dec)
    wave = np.sin(3.1 * r + 1.0) * np.cos(4.3 * d - 0.5) + 0.5 * np.sin(7.7 * r - 5.1 * d)
    return 0.03 + 0.012 * wave


def _sample_counts(
    rng: np.random.Generator,
    mags: NDArray[np.float64],
    log_n: NDArray[np.float64],
    lo: float,
    hi: float,
    area_deg2: float,
) -> NDArray[np.float64]:
    """Draw magnitudes from a piecewise log-linear dN/dm for an area."""
    grid = np.linspace(lo, hi, 1401)
    density = np.power(10.0, np.interp(grid, mags, log_n))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    n = rng.poisson(cdf[-1] * area_deg2)
    return np.interp(rng.uniform(0.0, cdf[-1], n), cdf, grid)


def _uniform_positions(
    rng: np.random.Generator, n: int, box: tuple[float, float, float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """n positions uniform on the sphere inside an RA/Dec box."""
    ra0, ra1, dec0, dec1 = box
    ra = rng.uniform(ra0, ra1, n) % 360.0
    s0, s1 = math.sin(math.radians(dec0)), math.sin(math.radians(dec1))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n)))
    return ra, dec


def _box_area(box: tuple[float, float, float, float]) -> float:
    ra0, ra1, dec0, dec1 = box
    return (
        math.radians(ra1 - ra0)
        * (math.sin(math.radians(dec1)) - math.sin(math.radians(dec0)))
        * (180.0 / math.pi) ** 2
    )


def _patch_box(
    cell: PatchCell, skymap: RingsSkyMap, pad_deg: float
) -> tuple[float, float, float, float]:
    corners = skymap.patch_corners(cell.tract, cell.patch_x, cell.patch_y)
    ra = corners[:, 0]
    ref = ra[0]
    ra = ref + (ra - ref + 180.0) % 360.0 - 180.0  # unwrap around the first corner
    dec = corners[:, 1]
    pad_ra = pad_deg / max(math.cos(math.radians(float(np.max(np.abs(dec))))), 1e-6)
    return (
        float(ra.min() - pad_ra),
        float(ra.max() + pad_ra),
        float(dec.min() - pad_deg),
        float(dec.max() + pad_deg),
    )


def _galaxies(
    rng: np.random.Generator, box: tuple[float, float, float, float]
) -> dict[str, NDArray]:
    mag_i = _sample_counts(
        rng, _GALAXY_COUNT_MAGS, _GALAXY_COUNT_LOGN, *GALAXY_MAG_RANGE, _box_area(box)
    )
    n = mag_i.size
    ra, dec = _uniform_positions(rng, n, box)
    # Groups: a share of galaxies sits around group centres, which clusters the sky.
    in_group = rng.random(n) < GROUP_FRACTION
    n_groups = max(int(in_group.sum() // 12), 1)
    g_ra, g_dec = _uniform_positions(rng, n_groups, box)
    which = rng.integers(0, n_groups, int(in_group.sum()))
    scatter = GROUP_SCATTER_ARCSEC / 3600.0
    g_off_dec = rng.normal(0.0, scatter, which.size)
    g_off_ra = rng.normal(0.0, scatter, which.size) / np.cos(np.radians(g_dec[which]))
    ra[in_group] = (g_ra[which] + g_off_ra) % 360.0
    dec[in_group] = g_dec[which] + g_off_dec

    # Redshift grows with magnitude (median ≈ 0.35 at i = 20, ≈ 1 at i = 25).
    z_median = np.interp(
        mag_i, [14, 18, 20, 22, 24, 25, 26, 28], [0.03, 0.15, 0.35, 0.6, 0.85, 1.0, 1.15, 1.4]
    )
    redshift = np.clip(z_median * np.exp(rng.normal(0.0, 0.35, n)), 0.01, 3.0)

    red_fraction = np.interp(mag_i, [16, 20, 24, 28], [0.55, 0.4, 0.2, 0.1])
    is_red = rng.random(n) < red_fraction
    z = redshift
    ug = np.where(is_red, np.minimum(1.6 + 0.6 * z, 2.4), 0.6 + 0.3 * z)
    gr = np.where(is_red, np.minimum(0.75 + 1.1 * z, 1.85), np.minimum(0.35 + 0.45 * z, 1.0))
    ri = np.where(is_red, np.minimum(0.38 + 0.75 * np.maximum(z - 0.2, 0), 1.25), 0.18 + 0.25 * z)
    iz = np.where(is_red, 0.2 + 0.35 * np.minimum(z, 1.5), 0.08 + 0.2 * np.minimum(z, 1.5))
    zy = np.where(is_red, 0.1 + 0.15 * z, 0.04 + 0.08 * z)
    colour_noise = rng.normal(0.0, 0.06, (5, n))
    ug, gr, ri, iz, zy = (c + e for c, e in zip((ug, gr, ri, iz, zy), colour_noise, strict=True))
    mags = {
        "i": mag_i,
        "r": mag_i + ri,
        "g": mag_i + ri + gr,
        "u": mag_i + ri + gr + ug,
        "z": mag_i - iz,
        "y": mag_i - iz - zy,
    }

    # Sizes: disk half-light radius ≈ 1″ at i = 20 shrinking to 0.25″ at i = 26.
    disk_hlr = np.power(10.0, -0.1 * (mag_i - 20.0) + rng.normal(0.0, 0.2, n))
    disk_hlr = np.clip(disk_hlr, 0.05, 15.0)
    bulge_hlr = np.clip(0.45 * disk_hlr * np.power(10.0, rng.normal(0.0, 0.1, n)), 0.03, 8.0)
    bt = np.where(is_red, rng.beta(6.0, 2.5, n), rng.beta(1.2, 8.0, n))
    angle = rng.uniform(0.0, math.pi, n)
    e_disk = np.clip(np.abs(rng.normal(0.0, 0.26, n)), 0.0, 0.8)
    e_bulge = np.clip(np.abs(rng.normal(0.0, 0.14, n)), 0.0, 0.6)
    return {
        "ra": ra,
        "dec": dec,
        "redshift": redshift,
        "mags": mags,
        "size_bulge_true": bulge_hlr,
        "size_disk_true": disk_hlr,
        "bulge_to_total_ratio_i": bt,
        "ellipticity_1_bulge_true": e_bulge * np.cos(2 * angle),
        "ellipticity_2_bulge_true": e_bulge * np.sin(2 * angle),
        "ellipticity_1_disk_true": e_disk * np.cos(2 * angle),
        "ellipticity_2_disk_true": e_disk * np.sin(2 * angle),
    }


def _stars(rng: np.random.Generator, box: tuple[float, float, float, float]) -> dict[str, NDArray]:
    mag_r = _sample_counts(rng, _STAR_COUNT_MAGS, _STAR_COUNT_LOGN, *STAR_MAG_RANGE, _box_area(box))
    n = mag_r.size
    ra, dec = _uniform_positions(rng, n, box)
    # Halo turn-off stars dominate the blue peak; disk M dwarfs the red one, more so faint.
    red_share = np.interp(mag_r, [14, 20, 24, 28], [0.25, 0.4, 0.55, 0.6])
    is_dwarf = rng.random(n) < red_share
    gi = np.where(
        is_dwarf,
        np.clip(rng.normal(2.4, 0.45, n), 1.2, 3.2),
        np.clip(rng.normal(0.78, 0.22, n), 0.2, 1.6),
    )
    # DC2's M dwarf SEDs came from a finite grid: their colours fall on islands.
    gi = np.where(gi > 2.0, np.round(gi / 0.15) * 0.15, gi)
    scatter = rng.normal(0.0, 0.025, (4, n))
    gr = np.interp(gi, _LOCUS_GI, _LOCUS_GR) + scatter[0]
    ri = gi - gr
    ug = np.interp(gi, _LOCUS_GI, _LOCUS_UG) + scatter[1]
    iz = np.interp(gi, _LOCUS_GI, _LOCUS_IZ) + scatter[2]
    zy = 0.45 * iz + 0.02 + scatter[3]
    mags = {
        "r": mag_r,
        "g": mag_r + gr,
        "u": mag_r + gr + ug,
        "i": mag_r - ri,
        "z": mag_r - ri - iz,
        "y": mag_r - ri - iz - zy,
    }
    is_variable = rng.random(n) < 0.10
    amplitude = np.where(
        is_variable, np.clip(rng.lognormal(math.log(0.08), 0.8, n), 0.01, 1.5), 0.0
    )
    period = np.where(is_variable, np.power(10.0, rng.uniform(-0.7, 1.7, n)), 0.0)
    phase = np.where(is_variable, rng.uniform(0.0, 1.0, n), 0.0)
    return {
        "ra": ra,
        "dec": dec,
        "mags": mags,
        "is_variable": is_variable,
        "variability_amplitude_mag": amplitude,
        "variability_period_days": period,
        "variability_phase": phase,
    }


def _supernovae(
    rng: np.random.Generator, galaxies: dict[str, NDArray], box: tuple[float, float, float, float]
) -> dict[str, NDArray]:
    n_gal = galaxies["ra"].size
    n = min(int(rng.poisson(SN_DENSITY_PER_DEG2 * _box_area(box))), n_gal)
    host = rng.choice(n_gal, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
    host = np.sort(host)
    z = galaxies["redshift"][host]
    # A type Ia peaks near M_B ≈ −19.3; a crude distance modulus is enough here.
    dist_mod = 5.0 * np.log10(np.maximum(4283.0 * z * (1.0 + 0.5 * z), 1.0) * 1e5)
    peak_r = -19.3 + dist_mod + rng.normal(0.0, 0.15, n)
    offset = galaxies["size_disk_true"][host] / 3600.0 * rng.normal(0.0, 0.7, (2, n))
    ra = (galaxies["ra"][host] + offset[0] / np.cos(np.radians(galaxies["dec"][host]))) % 360
    dec = galaxies["dec"][host] + offset[1]
    colours = {"u": 0.6, "g": 0.1, "r": 0.0, "i": 0.2, "z": 0.4, "y": 0.6}
    # Static flux: the light curve's mean over the five years (≈ 45 d of peak flux).
    duty = 45.0 / (MJD_END - MJD_START)
    mags = {b: peak_r + c + 0.3 * z - 2.5 * math.log10(duty) for b, c in colours.items()}
    return {
        "ra": ra,
        "dec": dec,
        "redshift": z,
        "host_index": host,
        "mags": mags,
        "sn_peak_mjd": rng.uniform(MJD_START, MJD_END, n),
    }


def simulate_truth(
    cell: PatchCell, region: SurveyRegion, seed: int, skymap: RingsSkyMap = DC2_SKYMAP
) -> pa.Table:
    """The truth sources whose positions fall in one patch interior and in the region.

    The result has the columns of `TRUTH_SCHEMA`, rows sorted by truth type then id.
    """
    rng = cell.rng(seed, stream=0)
    box = _patch_box(cell, skymap, pad_deg=0.01)
    gal = _galaxies(rng, box)
    star = _stars(rng, box)
    sn = _supernovae(rng, gal, box)
    n_gal, n_star, n_sn = gal["ra"].size, star["ra"].size, sn["ra"].size
    n = n_gal + n_star + n_sn

    ra = np.concatenate([gal["ra"], star["ra"], sn["ra"]])
    dec = np.concatenate([gal["dec"], star["dec"], sn["dec"]])
    truth_type = np.concatenate(
        [
            np.full(n_gal, _TRUTH_TYPE_GALAXY),
            np.full(n_star, _TRUTH_TYPE_STAR),
            np.full(n_sn, _TRUTH_TYPE_SN),
        ]
    ).astype(np.int64)
    # Ids: unique over the whole sky map, stable for a patch whatever else is simulated.
    cell_key = cell.tract * 49 + cell.patch_id
    ids = (np.int64(cell_key) << np.int64(22)) + np.arange(1, n + 1, dtype=np.int64)
    host_galaxy = np.full(n, -1, dtype=np.int64)
    host_galaxy[n_gal + n_star :] = ids[sn["host_index"]]

    ebv = extinction_bv(ra, dec)
    columns: dict[str, NDArray] = {}
    for b in BANDS:
        mag_nomw = np.concatenate([gal["mags"][b], star["mags"][b], sn["mags"][b]])
        flux_nomw = mag_to_flux(mag_nomw)
        columns[f"flux_{b}_noMW"] = flux_nomw
        columns[f"flux_{b}"] = flux_nomw * np.power(
            10.0, -0.4 * BAND_FACTS[b].extinction_coeff * ebv
        )

    zeros_star_sn = np.zeros(n_star + n_sn)
    columns.update(
        {
            "id": ids,
            "truth_type": truth_type,
            "ra": ra,
            "dec": dec,
            "redshift": np.concatenate([gal["redshift"], np.zeros(n_star), sn["redshift"]]),
            "host_galaxy": host_galaxy,
            "is_variable": np.concatenate(
                [np.zeros(n_gal), star["is_variable"], np.ones(n_sn)]
            ).astype(np.int32),
            "is_pointsource": np.concatenate([np.zeros(n_gal), np.ones(n_star + n_sn)]).astype(
                np.int32
            ),
            "size_bulge_true": np.concatenate([gal["size_bulge_true"], zeros_star_sn]),
            "size_disk_true": np.concatenate([gal["size_disk_true"], zeros_star_sn]),
            "sersic_bulge": np.full(n, 4.0),
            "sersic_disk": np.full(n, 1.0),
            "bulge_to_total_ratio_i": np.concatenate(
                [gal["bulge_to_total_ratio_i"], zeros_star_sn]
            ),
            "variability_amplitude_mag": np.concatenate(
                [np.zeros(n_gal), star["variability_amplitude_mag"], np.zeros(n_sn)]
            ),
            "variability_period_days": np.concatenate(
                [np.zeros(n_gal), star["variability_period_days"], np.zeros(n_sn)]
            ),
            "variability_phase": np.concatenate(
                [np.zeros(n_gal), star["variability_phase"], np.zeros(n_sn)]
            ),
            "sn_peak_mjd": np.concatenate([np.full(n_gal + n_star, np.nan), sn["sn_peak_mjd"]]),
            "extinction_bv": ebv,
        }
    )
    for comp in ("bulge", "disk"):
        for k in (1, 2):
            name = f"ellipticity_{k}_{comp}_true"
            columns[name] = np.concatenate([gal[name], zeros_star_sn])
    columns["mag_r"] = 31.4 - 2.5 * np.log10(columns["flux_r"])

    # Keep only what falls in this patch interior and in the survey region: the
    # patches then tile the sky exactly, with no source made twice.
    loc = skymap.locate(ra, dec)
    keep = (
        (loc.tract == cell.tract)
        & (loc.patch_x == cell.patch_x)
        & (loc.patch_y == cell.patch_y)
        & region.contains(ra, dec)
    )
    # A supernova whose host was cut stays: its host id still names a real galaxy.
    columns = {k: v[keep] for k, v in columns.items()}
    m = int(keep.sum())
    columns["tract"] = np.full(m, cell.tract, dtype=np.int64)
    columns["patch"] = np.full(m, cell.patch_string, dtype=object)
    galaxy = columns["truth_type"] == _TRUTH_TYPE_GALAXY
    columns["cosmodc2_id"] = np.where(galaxy, columns["id"], -1)
    columns["cosmodc2_hp"] = np.where(galaxy, _healpix_nside32(columns["ra"], columns["dec"]), -1)
    return pa.Table.from_pydict(
        {f.name: pa.array(columns[f.name], type=f.type) for f in TRUTH_SCHEMA},
        schema=TRUTH_SCHEMA,
    )


def _healpix_nside32(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.int64]:
    """cosmoDC2's healpix cell (nside 32, RING order) of each position."""
    import cdshealpix.ring
    from astropy import units as u

    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(
        cdshealpix.ring.lonlat_to_healpix(ra * u.deg, dec * u.deg, nside=32), dtype=np.int64
    )
