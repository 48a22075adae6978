"""``dpzero sim images``: render the survey's images and write the legacy layout.

One call renders, from the truth universe, everything the earlier processing left
behind: the raws of every visit and detector with their master calibrations and the
reference catalog, the processed visit images (calexp, background, sky correction,
source tables) and the coadds of every patch the visits touch with their catalogs,
plus the camera and sky-map descriptions — all in the layout of `LegacyLayout`.

The calexps are the raws passed through instrument signature removal
(`dpzero.sim.images.instrument.isr`) and background subtraction, so raw and calexp
share one noise realisation. Coadds are rendered directly at five-year depth.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import galsim
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from astropy.io import fits
from scipy import ndimage

from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.repo import Box, Exposure, FilterLabel, PhotoCalib, Psf, VisitInfo, mask_bits
from dpzero.sim.images.background import Background, estimate_background
from dpzero.sim.images.camera import BANDS, FILTERS, FULL_WELL, CameraSpec, DetectorSpec
from dpzero.sim.images.camera import make_camera as _make_camera
from dpzero.sim.images.catalogs import (
    CoaddMeasurements,
    ImageNoise,
    coadd_catalogs,
    visit_catalogs,
)
from dpzero.sim.images.coadd import COADD_NJY_PER_COUNT, coadd_noise, coadd_psf, coverage
from dpzero.sim.images.geometry import (
    detector_corners,
    detector_wcs,
    focal_plane_corners,
    local_jacobian,
    patch_box,
    patch_wcs,
)
from dpzero.sim.images.instrument import (
    MasterCalibs,
    assemble_raw,
    isr,
    make_calibs,
    read_out,
)
from dpzero.sim.images.layout import MANIFEST, MAPPER, LegacyLayout
from dpzero.sim.images.observing import ImageSize, Visit, image_size, plan_visits
from dpzero.sim.images.raw import raw_hdulist
from dpzero.sim.images.refcat import reference_catalog
from dpzero.sim.images.scene import SceneObjects, flux_at, mean_flux, psf_fwhm, render
from dpzero.sim.skymap import DC2_SKYMAP

__all__ = ["ImagesManifest", "pointing_centre", "simulate_images"]

CALIB_DATE = "2022-01-01"
"""Validity start of the master calibrations (the night before the survey)."""

SURVEY_CENTRE = (62.0, -37.0)
"""Centre of the simulated survey (RA, Dec degrees) at every size below ``large``."""

_PSF_KERNEL = 31

EXACT_SNR = 50.0
"""Objects brighter than this S/N in a visit get exact profiles, fainter ones Gaussians."""

EXACT_SNR_COADD = 100.0
"""The same for coadds, where many more objects are well detected."""


@dataclass(frozen=True)
class ImagesManifest:
    """What `simulate_images` wrote.

    Attributes
    ----------
    out
        The legacy layout's root.
    size, seed
        As asked.
    visits
        Visit ids.
    detectors
        Detector ids.
    patches
        ``(tract, "x,y")`` of the coadds.
    files
        Number of files written.
    seconds
        Wall time.
    """

    out: Path
    size: str
    seed: int
    visits: tuple[int, ...]
    detectors: tuple[int, ...]
    patches: tuple[tuple[int, str], ...]
    files: int
    seconds: float = field(compare=False)

    def summary(self) -> str:
        """A few lines for a terminal."""
        patches = ", ".join(f"{t} {p}" for t, p in self.patches)
        return (
            f"wrote {self.files} files to {self.out} in {self.seconds:.1f} s: "
            f"{len(self.visits)} visits × {len(self.detectors)} detectors, "
            f"coadds of patches {patches}"
        )


def pointing_centre(size: ImageSize) -> tuple[float, float]:
    """Where the visits point: the survey centre, or the centre of its patch."""
    if not size.on_patch_centre:
        return SURVEY_CENTRE
    loc = DC2_SKYMAP.locate([SURVEY_CENTRE[0]], [SURVEY_CENTRE[1]])
    tract = int(loc.tract[0])
    inner = DC2_SKYMAP.patch_inner
    x = (int(loc.patch_x[0]) + 0.5) * inner - 0.5
    y = (int(loc.patch_y[0]) + 0.5) * inner - 0.5
    ra, dec = DC2_SKYMAP.pixel_to_sky(tract, x, y)
    return float(ra), float(dec)


def simulate_images(
    size: str,
    seed: int,
    out: Path,
    *,
    truth: pa.Table | None = None,
    progress: bool = True,
    rerun: str = "dp01",
    bands: tuple[str, ...] | None = None,
    detectors: tuple[int, ...] | None = None,
) -> ImagesManifest:
    """Render the images of a simulated survey into a legacy directory layout.

    Parameters
    ----------
    size
        ``tiny``, ``small`` or ``medium`` (`dpzero.sim.images.observing.IMAGE_SIZES`).
    seed
        Seed of the truth universe and of the images; same seed, same bytes.
    out
        Output directory; it must not exist or be empty.
    truth
        The truth universe; by default ``dpzero.sim.load_truth(size, seed)``.
    progress
        Show a progress bar.
    rerun
        Name of the processing rerun.
    bands, detectors
        Render only these bands and detectors (a quick look); visits, ids and every
        pixel rendered are the same as in the full simulation.

    Returns
    -------
    ImagesManifest
        What was written.

    Raises
    ------
    InvalidInputError
        If ``size`` is unknown, a band or detector is not simulated, or the truth lacks
        columns.
    OutputExistsError
        If ``out`` exists and is not empty.
    """
    started = time.monotonic()
    _reuse_freed_memory()
    spec = image_size(size)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists and is not empty; choose a new folder")
    camera = _make_camera(spec.detector_width, spec.detector_height, spec.detector_gap)
    bands = _subset("band", bands, BANDS)
    chosen = _subset("detector", detectors, tuple(d.id for d in camera.detectors))
    if truth is None:
        from dpzero.sim import load_truth

        truth = load_truth(size, seed)
    _check_truth(truth)
    ra0, dec0 = pointing_centre(spec)
    visits = tuple(v for v in plan_visits(spec, ra0, dec0, seed) if v.band in bands)
    dets = tuple(d for d in camera.detectors if d.id in chosen)
    radius = (
        camera.focal_plane_extent * camera.pixel_scale + spec.dither_arcsec * 1.5 + 60.0
    ) / 3600.0
    truth = _near(truth, ra0, dec0, radius)
    layout = LegacyLayout(out, rerun)
    writer = _Writer(layout)
    writer.yaml("camera", camera.to_dict())
    writer.yaml("skyMap", _skymap_description())
    (out / MAPPER).write_text("lsst.obs.lsst.imsim.ImsimMapper\n")
    writer.count += 1

    calibs = {}
    for det in dets:
        calibs[det.id] = make_calibs(det, BANDS, camera.focal_plane_extent, seed)
        writer.calibs(det, calibs[det.id])
    shards = reference_catalog(truth)
    reference_ids = set()
    for htm, shard in shards.items():
        writer.table("cal_ref_cat", shard, htm7=htm)
        reference_ids.update(shard.column("id").to_pylist())

    tasks = [(v, d) for v in visits for d in dets]
    bar = _progress(len(tasks), progress, f"sim images {size}")
    quads: dict[str, list[np.ndarray]] = {band: [] for band in bands}
    for visit, det in tasks:
        _process_detector(
            visit, det, camera, calibs[det.id], truth, writer, spec, seed, reference_ids
        )
        quads[visit.band].append(detector_corners(det, visit, camera))
        bar.update(1)
    bar.close()

    outlines = [focal_plane_corners(camera, v) for v in visits]
    patches = list(_patches(outlines, spec.min_patch_coverage))
    bar = _progress(len(patches) * len(bands), progress, "coadds")
    for tract, px, py, box in patches:
        _process_patch(
            tract, (px, py), box, quads, outlines, truth, writer, seed, reference_ids, bands, bar
        )
    bar.close()

    manifest = ImagesManifest(
        out=out,
        size=size,
        seed=seed,
        visits=tuple(v.id for v in visits),
        detectors=tuple(d.id for d in dets),
        patches=tuple((t, f"{px},{py}") for t, px, py, _ in patches),
        files=writer.count + 1,
        seconds=time.monotonic() - started,
    )
    _write_manifest(out / MANIFEST, manifest, visits, camera, rerun)
    return manifest


def _reuse_freed_memory() -> None:
    """Let glibc keep freed image-sized arrays for reuse instead of unmapping them.

    Rendering allocates and frees thousands of arrays of a few MB. By default glibc
    maps each one afresh and returns it on free, so every page is faulted in again:
    a quarter of the tiny simulation's CPU time went to the kernel. Raising the mmap
    and trim thresholds keeps that memory in the heap (the peak size is unchanged).
    Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 << 20)
    except (OSError, AttributeError):
        return


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter numbers (malloc.h)."""


_REQUIRED = (
    "id", "truth_type", "ra", "dec", "is_variable", "is_pointsource",
    *[f"flux_{b}" for b in BANDS],
    "size_bulge_true", "size_disk_true", "bulge_to_total_ratio_i",
    "ellipticity_1_bulge_true", "ellipticity_2_bulge_true",
    "ellipticity_1_disk_true", "ellipticity_2_disk_true",
    "variability_amplitude_mag", "variability_period_days", "variability_phase",
    "sn_peak_mjd",
)  # fmt: skip


def _subset[T](what: str, chosen: tuple[T, ...] | None, known: tuple[T, ...]) -> tuple[T, ...]:
    if chosen is None:
        return known
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise InvalidInputError(
            f"{what} {', '.join(map(str, unknown)) or '(none)'} not simulated; "
            f"choose from {', '.join(map(str, known))}"
        )
    return tuple(c for c in known if c in chosen)


def _check_truth(truth: pa.Table) -> None:
    missing = [c for c in _REQUIRED if c not in truth.column_names]
    if missing:
        raise InvalidInputError(f"the truth table lacks columns: {', '.join(missing)}")


def _near(truth: pa.Table, ra0: float, dec0: float, radius: float) -> pa.Table:
    ra = np.radians(truth.column("ra").to_numpy(zero_copy_only=False))
    dec = np.radians(truth.column("dec").to_numpy(zero_copy_only=False))
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_sep = np.sin(dec) * math.sin(d0) + np.cos(dec) * math.cos(d0) * np.cos(ra - a0)
    return truth.filter(pa.array(cos_sep >= math.cos(math.radians(radius))))


def _progress(total: int, enabled: bool, label: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=label, unit="image")


def _skymap_description() -> dict:
    s = DC2_SKYMAP
    return {
        "name": s.name,
        "class": "RingsSkyMap",
        "num_rings": s.num_rings,
        "projection": "TAN",
        "pixel_scale_arcsec": s.pixel_scale_arcsec,
        "patch_inner_dimensions": [s.patch_inner, s.patch_inner],
        "patch_border": s.patch_border,
        "patches_per_tract": [s.patches_per_side, s.patches_per_side],
        "tract_overlap_deg": 1.0 / 60.0,
        "ra_start_deg": s.ra_start,
    }


class _Writer:
    """Writes datasets at their layout paths and counts the files."""

    def __init__(self, layout: LegacyLayout) -> None:
        self.layout = layout
        self.count = 0

    def _path(self, dataset_type: str, **data_id: object) -> Path:
        path = self.layout.path(dataset_type, **data_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.count += 1
        return path

    def exposure(self, dataset_type: str, exposure: Exposure, **data_id: object) -> None:
        exposure.write_fits(self._path(dataset_type, **data_id))

    def table(self, dataset_type: str, table: pa.Table, **data_id: object) -> None:
        pq.write_table(table, self._path(dataset_type, **data_id), compression="zstd")

    def background(self, dataset_type: str, background: Background, **data_id: object) -> None:
        background.write_fits(self._path(dataset_type, **data_id))

    def hdulist(self, dataset_type: str, hdulist: fits.HDUList, **data_id: object) -> None:
        # Headers built by the simulation itself: skip astropy's card-by-card check.
        hdulist.writeto(self._path(dataset_type, **data_id), output_verify="ignore")

    def yaml(self, dataset_type: str, content: dict, **data_id: object) -> None:
        with self._path(dataset_type, **data_id).open("w") as stream:
            yaml.safe_dump(content, stream, sort_keys=False)

    def calibs(self, det: DetectorSpec, calibs: MasterCalibs) -> None:
        ids = {"detector": det.id, "calib_date": CALIB_DATE}
        shape = calibs.bias.shape
        zero = np.zeros(shape, dtype=np.int32)
        tiny = np.full(shape, 1e-4, dtype=np.float32)
        self.exposure("bias", Exposure(calibs.bias, zero, tiny), **ids)
        self.exposure("dark", Exposure(calibs.dark, zero, tiny), **ids)
        for band, flat in calibs.flats.items():
            f = FILTERS[band]
            label = FilterLabel(band=band, physical_filter=f.physical_filter)
            self.exposure(
                "flat",
                Exposure(flat, zero, tiny, filter=label),
                physical_filter=f.physical_filter,
                **ids,
            )


def _psf_kernel(psf: galsim.GSObject, jacobian: tuple[float, float, float, float]) -> Psf:
    wcs = galsim.JacobianWCS(*jacobian)
    image = psf.drawImage(nx=_PSF_KERNEL, ny=_PSF_KERNEL, wcs=wcs)
    scale = math.sqrt(abs(jacobian[0] * jacobian[3] - jacobian[1] * jacobian[2]))
    return Psf(kernel=image.array, fwhm=psf_fwhm(psf) / scale)


def _detection_mask(image: np.ndarray, variance: np.ndarray, psf_sigma: float) -> np.ndarray:
    """``DETECTED``: the PSF-smoothed image 5σ above zero, and the pixels next to it."""
    finite = np.isfinite(image)
    # Single precision: the threshold is a few σ, far above float32's rounding.
    smoothed = ndimage.gaussian_filter(np.where(finite, image, 0.0).astype(np.float32), psf_sigma)
    typical = float(np.nanmedian(variance[::4, ::4]))
    noise = math.sqrt(typical) / (2.0 * math.sqrt(math.pi) * psf_sigma)
    detected = _grow(smoothed > 5.0 * noise) & finite
    out = np.zeros(image.shape, dtype=np.int32)
    out[detected] = mask_bits("DETECTED")
    return out


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in all eight directions (a 3×3 dilation).

    Shifted ORs give what ``scipy.ndimage.maximum_filter(size=3)`` gives, ~10× faster.
    """
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _edge_mask(shape: tuple[int, int], width: int) -> np.ndarray:
    edge = np.zeros(shape, dtype=np.int32)
    bit = mask_bits("EDGE")
    edge[:width, :] = bit
    edge[-width:, :] = bit
    edge[:, :width] = bit
    edge[:, -width:] = bit
    return edge


def _process_detector(
    visit: Visit,
    det: DetectorSpec,
    camera: CameraSpec,
    calibs: MasterCalibs,
    truth: pa.Table,
    writer: _Writer,
    spec: ImageSize,
    seed: int,
    reference_ids: set[int],
) -> None:
    """Raw, calexp, backgrounds and source tables of one visit and detector."""
    wcs = detector_wcs(det, visit, camera.pixel_scale)
    ra = truth.column("ra").to_numpy(zero_copy_only=False)
    dec = truth.column("dec").to_numpy(zero_copy_only=False)
    x, y = wcs.all_world2pix(ra, dec, 0)
    margin = 40
    near = (x > -margin) & (x < det.width + margin) & (y > -margin) & (y < det.height + margin)
    sub = truth.filter(pa.array(near))
    x, y, ra, dec = x[near], y[near], ra[near], dec[near]
    flux_njy = flux_at(sub, visit.band, visit.mjd)
    e_per_njy = visit.electrons_per_njy
    psf = galsim.Kolmogorov(fwhm=visit.seeing).shear(g1=visit.psf_e1, g2=visit.psf_e2)
    jacobian = local_jacobian(wcs)
    amp = det.amplifiers[0]
    read_var = (amp.read_noise * amp.gain) ** 2
    sky = visit.sky_electrons
    n_eff = 2.266 * (1.04 * visit.seeing / camera.pixel_scale) ** 2
    threshold = EXACT_SNR * math.sqrt((sky + read_var) * n_eff)
    objects = SceneObjects.from_truth(sub, x, y, flux_njy * e_per_njy)
    model = render(objects, (det.height, det.width), psf, jacobian, threshold)
    rng = np.random.default_rng([seed, visit.id, det.id])
    amps, rays = read_out(model + sky, det, calibs, visit.band, visit.exposure_time, rng)
    raw = raw_hdulist(amps, visit, det, camera, wcs)
    data_id = {"visit": visit.id, "band": visit.band, "detector": det.id}
    writer.hdulist("raw", raw, **data_id)

    adu, saturated = assemble_raw(raw, det)
    image, variance, mask = isr(adu, saturated, det, calibs, visit.band, visit.exposure_time, rays)
    background = estimate_background(image, spec.background_bin, bad=mask != 0)
    image = image - background.image()
    psf_sigma = visit.seeing / camera.pixel_scale / 2.3548
    mask |= _detection_mask(image, variance, psf_sigma) | _edge_mask(image.shape, 8)
    f = visit.filter
    label = FilterLabel(band=visit.band, physical_filter=f.physical_filter)
    calexp = Exposure(
        image=image,
        mask=mask,
        variance=variance,
        wcs=wcs,
        psf=_psf_kernel(psf, jacobian),
        photo_calib=PhotoCalib(1.0 / e_per_njy, 0.005 / e_per_njy),
        visit_info=VisitInfo(
            exposure_time=visit.exposure_time,
            mjd=visit.mjd,
            airmass=visit.airmass,
            seeing_fwhm=visit.seeing,
            boresight_ra=visit.ra,
            boresight_dec=visit.dec,
            rotation_angle=visit.rotation,
            filter=label,
            id=visit.id,
        ),
        filter=label,
    )
    writer.exposure("calexp", calexp, **data_id)
    writer.background("calexpBackground", background, **data_id)
    # The sky correction fits what the per-detector background left, on a coarser mesh.
    residual = np.where(mask & mask_bits("DETECTED", "SAT", "CR"), np.nan, image)
    writer.background("skyCorr", estimate_background(residual, spec.background_bin * 2), **data_id)
    noise = ImageNoise(
        psf_fwhm=visit.seeing / camera.pixel_scale,
        sky_variance=sky + read_var,
        counts_per_njy=e_per_njy,
        gain=1.0,
        saturation=FULL_WELL,
    )
    src, ic_src, match = visit_catalogs(
        sub, x, y, flux_njy, ra, dec, image.shape, noise, camera.pixel_scale,
        id_base=(visit.id * 200 + det.id) << 20,
        reference_ids=reference_ids,
        rng=np.random.default_rng([seed, visit.id, det.id, 1]),
        mask=mask,
    )  # fmt: skip
    writer.table("src", src, **data_id)
    writer.table("icSrc", ic_src, **data_id)
    writer.table("srcMatch", match, **data_id)


def _patches(quads: list[np.ndarray], min_coverage: float) -> Iterator[tuple[int, int, int, Box]]:
    """Patches the visits cover enough, with the box of each that they cover."""
    corners = np.concatenate(quads)
    tracts = np.unique(DC2_SKYMAP.find_tract(corners[:, 0], corners[:, 1]))
    inner = DC2_SKYMAP.patch_inner
    last = DC2_SKYMAP.patches_per_side - 1
    for tract in tracts:
        x, y = DC2_SKYMAP.sky_to_pixel(int(tract), corners[:, 0], corners[:, 1])
        x0, x1 = math.floor(x.min()), math.ceil(x.max()) + 1
        y0, y1 = math.floor(y.min()), math.ceil(y.max()) + 1
        covered = Box(x0, y0, x1 - x0, y1 - y0)
        for py in range(max(0, y0 // inner - 1), min(last, y1 // inner + 1) + 1):
            for px in range(max(0, x0 // inner - 1), min(last, x1 // inner + 1) + 1):
                box = patch_box(int(tract), px, py).intersection(covered)
                if box.is_empty or not _touches_inner(box, px, py):
                    continue
                inner_box = Box(px * inner, py * inner, inner, inner)
                seen = coverage(inner_box, _in_tract(int(tract), quads), block=50) > 0
                if seen.any() and seen.mean() >= min_coverage:
                    yield int(tract), px, py, box


def _in_tract(tract: int, quads: list[np.ndarray]) -> list[np.ndarray]:
    """Sky quadrilaterals in a tract's pixel frame."""
    out = []
    for quad in quads:
        qx, qy = DC2_SKYMAP.sky_to_pixel(tract, quad[:, 0], quad[:, 1])
        out.append(np.column_stack([qx, qy]))
    return out


def _touches_inner(box: Box, px: int, py: int) -> bool:
    inner = DC2_SKYMAP.patch_inner
    return not box.intersection(Box(px * inner, py * inner, inner, inner)).is_empty


def _process_patch(
    tract: int,
    patch: tuple[int, int],
    box: Box,
    quads: dict[str, list[np.ndarray]],
    outlines: list[np.ndarray],
    truth: pa.Table,
    writer: _Writer,
    seed: int,
    reference_ids: set[int],
    bands: tuple[str, ...],
    bar,
) -> None:
    """Coadds of every band of a patch, and the patch's coadd catalogs."""
    patch_str = f"{patch[0]},{patch[1]}"
    # Five years of dithered visits fill the gaps between detectors: pixels inside any
    # visit's focal-plane outline have data at the coadd's depth.
    no_data = coverage(box, _in_tract(tract, outlines)) == 0
    ra = truth.column("ra").to_numpy(zero_copy_only=False)
    dec = truth.column("dec").to_numpy(zero_copy_only=False)
    tx, ty = DC2_SKYMAP.sky_to_pixel(tract, ra, dec)
    col = np.floor(tx - box.x0 + 0.5).astype(np.int64)
    row = np.floor(ty - box.y0 + 0.5).astype(np.int64)
    on_box = (col >= 0) & (col < box.width) & (row >= 0) & (row < box.height)
    covered = np.zeros(on_box.shape, dtype=bool)
    covered[on_box] = ~no_data[row[on_box], col[on_box]]
    margin = 40
    near = (
        (tx > box.x0 - margin) & (tx < box.x1 + margin)
        & (ty > box.y0 - margin) & (ty < box.y1 + margin)
    )  # fmt: skip
    sub = truth.filter(pa.array(near))
    wcs = patch_wcs(tract, box)
    jacobian = local_jacobian(wcs)
    inner = DC2_SKYMAP.patch_inner
    in_patch = (
        (np.floor(tx / inner) == patch[0]) & (np.floor(ty / inner) == patch[1])
        & (DC2_SKYMAP.find_tract(ra, dec) == tract)
    )  # fmt: skip
    rng = np.random.default_rng([seed, tract, patch[0], patch[1]])
    noises: dict[str, ImageNoise] = {}
    fluxes: dict[str, np.ndarray] = {}
    # A residual sky gradient the background model must take out (scaled per band).
    yy, xx = np.mgrid[0 : box.height, 0 : box.width]
    sky_ramp = xx / box.width - 0.5 + 0.5 * (yy / box.height)
    del yy, xx
    for band in bands:
        noise = coadd_noise(band)
        n_image = coverage(box, _in_tract(tract, quads[band]))
        flux = mean_flux(sub, band)
        psf = coadd_psf(band)
        n_eff = 2.266 * (1.04 * noise.psf_fwhm / 0.2) ** 2
        counts = flux / COADD_NJY_PER_COUNT
        objects = SceneObjects.from_truth(sub, tx[near] - box.x0, ty[near] - box.y0, counts)
        model = render(
            objects, box.shape, psf, jacobian, EXACT_SNR_COADD * noise.sigma * math.sqrt(n_eff)
        )
        variance = noise.sigma**2 + np.clip(model, 0.0, None) / noise.gain
        image = model + rng.normal(0.0, 1.0, box.shape) * np.sqrt(variance)
        image = np.where(no_data, np.nan, image + noise.sigma * 0.3 * sky_ramp)
        variance = np.where(no_data, np.nan, variance)
        label = FilterLabel(band=band, physical_filter=FILTERS[band].physical_filter)
        mask = np.where(no_data, mask_bits("NO_DATA"), 0).astype(np.int32)
        kernel = _psf_kernel(psf, jacobian)
        common = {
            "wcs": wcs,
            "psf": kernel,
            "photo_calib": PhotoCalib(COADD_NJY_PER_COUNT, 0.0),
            "bbox": box,
            "filter": label,
        }
        ids = {"band": band, "tract": tract, "patch": patch_str}
        writer.exposure("deepCoadd", Exposure(image, mask, variance, **common), **ids)
        background = estimate_background(image, 256, bad=no_data)
        calexp = image - background.image()
        psf_sigma = noise.psf_fwhm / 0.2 / 2.3548
        cmask = mask | _detection_mask(calexp, variance, psf_sigma)
        writer.exposure("deepCoadd_calexp", Exposure(calexp, cmask, variance, **common), **ids)
        writer.background("deepCoadd_calexp_background", background, **ids)
        hdu = fits.PrimaryHDU(n_image, header=wcs.to_header())
        hdu.header["LTV1"] = -box.x0
        hdu.header["LTV2"] = -box.y0
        writer.hdulist("deepCoadd_nImage", fits.HDUList([hdu]), **ids)
        noises[band] = ImageNoise(
            psf_fwhm=noise.psf_fwhm / 0.2,
            sky_variance=noise.sigma**2,
            counts_per_njy=1.0 / COADD_NJY_PER_COUNT,
            gain=noise.gain,
        )
        fluxes[band] = flux[covered[near]]
        bar.update(1)
    keep = covered[near]
    inputs = CoaddMeasurements(
        truth=sub.filter(pa.array(keep)),
        x=tx[near][keep],
        y=ty[near][keep],
        ra=ra[near][keep],
        dec=dec[near][keep],
        flux=fluxes,
        noise=noises,
        inner=in_patch[near][keep],
    )
    tables = coadd_catalogs(inputs, tract, patch, 0.2, reference_ids, rng)
    ids = {"tract": tract, "patch": patch_str}
    writer.table("deepCoadd_mergeDet", tables["deepCoadd_mergeDet"], **ids)
    writer.table("deepCoadd_ref", tables["deepCoadd_ref"], **ids)
    for name in ("deepCoadd_det", "deepCoadd_meas", "deepCoadd_forced_src", "deepCoadd_measMatch"):
        for band, table in tables[name].items():
            writer.table(name, table, band=band, **ids)


def _write_manifest(
    path: Path, manifest: ImagesManifest, visits: tuple[Visit, ...], camera: CameraSpec,
    rerun: str,
) -> None:  # fmt: skip
    content = {
        "instrument": camera.name,
        "size": manifest.size,
        "seed": manifest.seed,
        "rerun": rerun,
        "calib_date": CALIB_DATE,
        "detectors": list(manifest.detectors),
        "patches": [{"tract": t, "patch": p} for t, p in manifest.patches],
        "visits": [
            {
                "id": v.id,
                "band": v.band,
                "physical_filter": v.filter.physical_filter,
                "day_obs": v.day_obs,
                "mjd": v.mjd,
                "exposure_time": v.exposure_time,
                "airmass": v.airmass,
                "seeing": v.seeing,
                "sky_mag": v.sky_mag,
                "m5": v.m5,
                "ra": v.ra,
                "dec": v.dec,
                "rotation": v.rotation,
            }
            for v in visits
        ],
    }
    with path.open("w") as stream:
        yaml.safe_dump(content, stream, sort_keys=False)
