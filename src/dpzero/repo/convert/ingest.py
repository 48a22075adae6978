"""Convert a legacy release into a Butler repository, as DP0.1 converted Gen2 to Gen3.

`convert_legacy` checks the whole legacy tree before it writes anything (every file
matches a rule and is a FITS or Parquet file, every visit is described by a raw or
calexp whose metadata agrees with its path), then registers dimension records and
ingests the files run by run. It is idempotent: a second run ingests only what is
missing, so a convert that failed half-way is finished by running it again, and the
repository stays readable in between.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning
from lsst.daf.butler import (
    Butler,
    CollectionType,
    DataCoordinate,
    DatasetIdGenEnum,
    DatasetRef,
    FileDataset,
    Timespan,
)

from dpzero.errors import InvalidInputError
from dpzero.repo.convert.scan import LegacyFile, scan_legacy
from dpzero.repo.dataset_types import dataset_type_spec
from dpzero.repo.dimensions import (
    INSTRUMENT,
    PHYSICAL_FILTERS,
    RELEASE_COLLECTION,
    SKYMAP_NAME,
    band_of,
    physical_filter_of,
)
from dpzero.repo.exposure import FilterLabel, VisitInfo, read_exposure
from dpzero.repo.instrument import LsstCamImSim
from dpzero.repo.records import DetectorObservation, tracts_touching, visit_records
from dpzero.repo.repository import (
    CALIB_CERTIFIED,
    CALIB_CHAIN,
    CALIB_RUN,
    CALIB_UNBOUNDED_RUN,
    RAW_RUN,
    REFCAT_RUN,
    SKYMAP_RUN,
    RepoSpec,
    create_repo,
    insert_records,
    processing_run,
    put_once,
    register_skymap,
)
from dpzero.sim.skymap import DC2_SKYMAP

__all__ = ["TRANSFER_MODES", "ConvertReport", "LegacyLayoutError", "convert_legacy"]

TRANSFER_MODES = ("copy", "symlink", "relsymlink", "hardlink", "direct", "move", "auto")
"""How files reach the datastore (``direct`` leaves them where they are)."""

_FORMATTERS = {
    "DpzeroExposure": "dpzero.repo.formatters.ExposureFormatter",
    "DpzeroRaw": "dpzero.repo.formatters.RawFormatter",
    "DpzeroBackground": "dpzero.repo.formatters.BackgroundFormatter",
    "DpzeroImage": "dpzero.repo.formatters.FitsImageFormatter",
    "StructuredDataDict": "lsst.daf.butler.formatters.yaml.YamlFormatter",
    ("ArrowAstropy", ".fits"): "dpzero.repo.formatters.FitsTableFormatter",
    ("ArrowAstropy", ".parquet"): "dpzero.repo.formatters.ParquetTableFormatter",
    ("ArrowAstropy", ".parq"): "dpzero.repo.formatters.ParquetTableFormatter",
}
_MAGIC = {".fits": b"SIMPLE", ".parquet": b"PAR1", ".parq": b"PAR1"}
_CALIBRATIONS = ("bias", "dark", "flat")


class LegacyLayoutError(InvalidInputError):
    """The legacy tree cannot be converted; nothing was changed in the repository."""

    code = "legacy_layout"


@dataclass(frozen=True)
class ConvertReport:
    """What a conversion did.

    Attributes
    ----------
    repo
        Repository root.
    ingested
        Newly ingested datasets per dataset type.
    already_present
        Datasets found in the repository already (skipped).
    ignored
        Legacy files no layout rule matched (left out).
    visits
        Visits registered.
    tracts
        Tracts registered with their patches.
    collections
        Children of the release's CHAINED collection, in search order.
    seconds
        Wall-clock time.
    """

    repo: str
    ingested: dict[str, int]
    already_present: int
    ignored: tuple[str, ...]
    visits: int
    tracts: tuple[int, ...]
    collections: tuple[str, ...]
    seconds: float = field(default=0.0, compare=False)

    def summary(self) -> str:
        """A few lines for the terminal."""
        total = sum(self.ingested.values())
        lines = [
            f"repository {self.repo}: {total} datasets ingested, "
            f"{self.already_present} already present, {self.visits} visits, "
            f"tracts {', '.join(map(str, self.tracts)) or 'none'} ({self.seconds:.1f} s)",
        ]
        for name, count in sorted(self.ingested.items()):
            if count:
                lines.append(f"  {name}: {count}")
        lines.append(f"collection {RELEASE_COLLECTION} = {' → '.join(self.collections)}")
        if self.ignored:
            lines.append(
                f"{len(self.ignored)} files matched no layout rule, e.g. {self.ignored[0]}"
            )
        return "\n".join(lines)


def _run_of(file: LegacyFile) -> str:
    if file.rerun is not None:
        return processing_run(file.rerun)
    if file.dataset_type == "raw":
        return RAW_RUN
    if file.dataset_type in _CALIBRATIONS:
        return f"{CALIB_RUN}/{file.values['calib_date']}"
    if file.dataset_type == "camera":
        return CALIB_UNBOUNDED_RUN
    return REFCAT_RUN


def _check_files(files: Iterable[LegacyFile]) -> None:
    """Every FITS and Parquet file starts as one should; YAML files parse."""
    bad: list[str] = []
    for file in files:
        suffix = file.path.suffix
        if suffix in _MAGIC:
            with file.path.open("rb") as handle:
                ok = handle.read(8).startswith(_MAGIC[suffix])
        else:
            try:
                ok = isinstance(yaml.safe_load(file.path.read_text()), dict)
            except (yaml.YAMLError, UnicodeDecodeError):
                ok = False
        if not ok:
            bad.append(str(file.path))
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise LegacyLayoutError(
            f"not a valid FITS, Parquet or YAML file: {', '.join(bad[:3])}{more}; "
            "nothing was converted"
        )


def _header_float(header: fits.Header, *keys: str) -> float:
    for key in keys:
        if key in header:
            return float(header[key])
    return math.nan


def _read_raw_metadata(path: Path) -> tuple[VisitInfo | None, WCS | None, int, int]:
    """Visit info, WCS and detector size from a raw file's primary header.

    Understands imSim's keys (``RUNNUM`` or ``VISIT``; ``FILTNAME`` or ``FILTER``;
    ``MJD`` mid-exposure, or ``MJD-OBS`` at the start; ``EXPTIME``, ``AIRMASS``,
    ``SEEING``, ``RATEL``, ``DECTEL``, ``ROTANGLE``; ``DETSIZE``) and those of
    `Exposure` files. The region of a visit known only from raws needs a celestial
    WCS of the assembled detector in the primary header.
    """
    header = fits.getheader(path, 0)
    physical = header.get("FILTNAME") or header.get("FILTER")
    info = None
    if physical:
        physical = str(physical)
        if physical in PHYSICAL_FILTERS.values():
            physical = physical_filter_of(physical)
        exposure_time = _header_float(header, "EXPTIME")
        mjd = _header_float(header, "MJD-AVG", "MJD")
        if math.isnan(mjd) and "MJD-OBS" in header:
            mjd = float(header["MJD-OBS"]) + exposure_time / 2.0 / 86400.0
        visit = header.get("VISIT", header.get("RUNNUM"))
        info = VisitInfo(
            exposure_time=exposure_time,
            mjd=mjd,
            airmass=_header_float(header, "AIRMASS"),
            seeing_fwhm=_header_float(header, "SEEING"),
            boresight_ra=_header_float(header, "BORE-RA", "RATEL"),
            boresight_dec=_header_float(header, "BORE-DEC", "DECTEL"),
            rotation_angle=_header_float(header, "ROTANG", "ROTANGLE"),
            filter=FilterLabel(band_of(physical), physical),
            id=None if visit is None else int(visit),
        )
    wcs = None
    if "CTYPE1" in header:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    nx = ny = 0
    if "DETSIZE" in header:
        (x0, x1), (y0, y1) = (
            map(int, part.split(":")) for part in header["DETSIZE"].strip("[]").split(",")
        )
        nx, ny = x1 - x0 + 1, y1 - y0 + 1
    return info, wcs, nx, ny


def nominal_wcs(
    camera: dict[str, Any], detector: int, info: VisitInfo, width: int, height: int
) -> WCS | None:
    """Undistorted TAN WCS of a detector from the camera description and the pointing.

    The boresight lies at the focal-plane origin; a detector's centre is
    ``focal_plane_offset_pixels`` from it; x points west at rotation angle 0 and the
    axes turn by the rotation angle. ``None`` when the camera does not place the
    detector or the pointing is unknown.
    """
    placed = {int(d["id"]): d for d in camera.get("detectors", []) if "id" in d}
    entry = placed.get(detector)
    pointing = (info.boresight_ra, info.boresight_dec, info.rotation_angle)
    if entry is None or "focal_plane_offset_pixels" not in entry:
        return None
    if not all(math.isfinite(v) for v in pointing):
        return None
    focal_x, focal_y = (float(v) for v in entry["focal_plane_offset_pixels"])
    scale = float(camera.get("pixel_scale_arcsec", 0.2)) / 3600.0
    theta = math.radians(info.rotation_angle)
    c, n = math.cos(theta), math.sin(theta)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [info.boresight_ra, info.boresight_dec]
    wcs.wcs.crpix = [(width - 1) / 2.0 - focal_x + 1.0, (height - 1) / 2.0 - focal_y + 1.0]
    wcs.wcs.cd = scale * np.array([[-c, -n], [-n, c]])
    return wcs


def _observe(file: LegacyFile, camera: dict[str, Any]) -> DetectorObservation:
    values = file.values
    try:
        if file.dataset_type == "raw":
            info, wcs, w, h = _read_raw_metadata(file.path)
            if wcs is None and info is not None and w > 0:
                wcs = nominal_wcs(camera, int(values["detector"]), info, w, h)
        else:
            info = read_exposure(file.path, component="visitInfo")
            wcs = read_exposure(file.path, component="wcs")
            bbox = read_exposure(file.path, component="bbox")
            w, h = bbox.width, bbox.height
    except Exception as exc:  # any unreadable file is a problem of the user's data
        raise LegacyLayoutError(f"cannot read {file.path}: {exc}") from exc
    if info is None or wcs is None or w == 0:
        raise LegacyLayoutError(
            f"{file.path} lacks the visit info, WCS or size that describe visit "
            f"{values['visit']} (a calexp of the visit is needed, or a raw with a WCS, or "
            "a raw with its pointing and a camera.yaml placing its detector)"
        )
    if info.id is not None and info.id != values["visit"]:
        raise LegacyLayoutError(
            f"{file.path} holds visit {info.id} but its path says {values['visit']}"
        )
    if info.filter.band != values["band"]:
        raise LegacyLayoutError(
            f"{file.path} was taken in band {info.filter.band} but its path says {values['band']}"
        )
    ra, dec = wcs.all_pix2world(
        np.array([-0.5, w - 0.5, w - 0.5, -0.5]), np.array([-0.5, -0.5, h - 0.5, h - 0.5]), 0
    )
    return DetectorObservation(
        visit=int(values["visit"]),
        detector=int(values["detector"]),
        physical_filter=info.filter.physical_filter,
        visit_info=info,
        corners=tuple(zip(ra.tolist(), dec.tolist(), strict=True)),
    )


def _observations(files: list[LegacyFile]) -> list[DetectorObservation]:
    """One observation per (visit, detector), from its calexp, else its raw."""
    sources: dict[tuple[int, int], LegacyFile] = {}
    for file in files:
        if file.dataset_type in ("calexp", "raw"):
            key = (int(file.values["visit"]), int(file.values["detector"]))
            if key not in sources or file.dataset_type == "calexp":
                sources[key] = file
    cameras = [f for f in files if f.dataset_type == "camera"]
    camera = yaml.safe_load(cameras[0].path.read_text()) if cameras else {}
    observations = [_observe(sources[key], camera) for key in sorted(sources)]
    bands = {o.visit: o.visit_info.filter.band for o in observations}
    for file in files:
        values = file.values
        if "visit" not in values:
            continue
        visit = int(values["visit"])
        if visit not in bands:
            raise LegacyLayoutError(
                f"{file.path}: visit {visit} has no raw or calexp to describe it"
            )
        if bands[visit] != values["band"]:
            raise LegacyLayoutError(
                f"{file.path}: visit {visit} was taken in band {bands[visit]}, not {values['band']}"
            )
    return observations


def _data_id(file: LegacyFile) -> dict[str, Any]:
    values = file.values
    dims = dataset_type_spec(file.dataset_type).dimensions
    data_id: dict[str, Any] = {}
    if "instrument" in dims:
        data_id["instrument"] = INSTRUMENT
    if "skymap" in dims:
        data_id["skymap"] = SKYMAP_NAME
    for key in ("visit", "detector", "tract", "band", "htm7", "physical_filter"):
        if key in dims:
            data_id[key] = values[key]
    if "exposure" in dims:
        data_id["exposure"] = values["visit"]
    if "patch" in dims:
        x, y = (int(v) for v in str(values["patch"]).split(","))
        data_id["patch"] = x + DC2_SKYMAP.patches_per_side * y
    return data_id


def _formatter(file: LegacyFile) -> str:
    storage_class = dataset_type_spec(file.dataset_type).storage_class
    if storage_class == "ArrowAstropy":
        return _FORMATTERS[(storage_class, file.path.suffix)]
    return _FORMATTERS[storage_class]


def _validity(files: list[LegacyFile]) -> dict[Path, Timespan]:
    """Validity of each master calibration: from its date to the next one's.

    The earliest calibration of each detector (and filter) is valid since forever,
    the latest until forever.
    """
    series: dict[tuple, list[tuple[str, Path]]] = defaultdict(list)
    for file in files:
        values = file.values
        key = (file.dataset_type, values["detector"], values.get("physical_filter"))
        series[key].append((str(values["calib_date"]), file.path))
    validity: dict[Path, Timespan] = {}
    for dated in series.values():
        dated.sort()
        starts = [Time(d, scale="tai") for d, _ in dated]
        for i, (_, path) in enumerate(dated):
            begin = starts[i] if i > 0 else None
            end = starts[i + 1] if i + 1 < len(dated) else None
            validity[path] = Timespan(begin, end)
    return validity


def _ingest_run(
    butler: Butler, run: str, dataset_type: str, files: list[LegacyFile], transfer: str
) -> tuple[list[tuple[LegacyFile, DatasetRef]], int]:
    """Ingest the files of one dataset type into one run; skip those already there."""
    butler.registry.registerRun(run)
    dt = butler.get_dataset_type(dataset_type)
    existing = {
        ref.dataId.required_values
        for ref in butler.query_datasets(dt, collections=run, explain=False, limit=None)
    }
    datasets: list[FileDataset] = []
    new: list[tuple[LegacyFile, DatasetRef]] = []
    for file in files:
        data_id = DataCoordinate.standardize(_data_id(file), dimensions=dt.dimensions)
        if data_id.required_values in existing:
            continue
        ref = DatasetRef(dt, data_id, run=run, id_generation_mode=DatasetIdGenEnum.DATAID_TYPE_RUN)
        new.append((file, ref))
        datasets.append(FileDataset(path=str(file.path), refs=[ref], formatter=_formatter(file)))
    if datasets:
        butler.ingest(*datasets, transfer=transfer, skip_existing=True)
    return new, len(files) - len(datasets)


def convert_legacy(legacy: Path | str, spec: RepoSpec, *, transfer: str = "copy") -> ConvertReport:
    """Convert a legacy release folder into a (new or existing) Butler repository.

    Parameters
    ----------
    legacy
        Root of the legacy layout (`dpzero.sim.images.layout`).
    spec
        Where the repository is (created when absent).
    transfer
        One of `TRANSFER_MODES`.

    Returns
    -------
    ConvertReport
        What was registered and ingested.

    Raises
    ------
    LegacyLayoutError
        If the legacy tree is missing, empty, or inconsistent; raised before the
        repository is touched.
    InvalidInputError
        If ``transfer`` or the repository location is not acceptable.
    """
    start = time.monotonic()
    if transfer not in TRANSFER_MODES:
        raise InvalidInputError(f"transfer must be one of {', '.join(TRANSFER_MODES)}")
    root = Path(legacy).resolve()
    if not root.is_dir():
        raise LegacyLayoutError(f"legacy release folder {legacy} does not exist")
    files, _, ignored = scan_legacy(root)
    if not files:
        raise LegacyLayoutError(
            f"no dataset files under {legacy}: expected raw/, CALIB/, ref_cats/ or "
            "rerun/<name>/ folders of the legacy layout"
        )
    _check_files(files)
    observations = _observations(files)

    with create_repo(spec) as butler:
        return _convert_into(butler, spec, root, files, ignored, observations, transfer, start)


def _convert_into(
    butler: Butler,
    spec: RepoSpec,
    root: Path,
    files: list[LegacyFile],
    ignored: list[Path],
    observations: list[DetectorObservation],
    transfer: str,
    start: float,
) -> ConvertReport:
    """Register and ingest everything `convert_legacy` has checked."""
    validity = _validity([f for f in files if f.dataset_type in _CALIBRATIONS])
    insert_records(butler, visit_records(observations))
    tracts = {int(f.values["tract"]) for f in files if "tract" in f.values}
    tracts |= tracts_touching(DC2_SKYMAP, (o.region for o in observations))
    register_skymap(butler, tracts)

    groups: dict[tuple[str, str], list[LegacyFile]] = defaultdict(list)
    for file in files:
        groups[(_run_of(file), file.dataset_type)].append(file)
    ingested: Counter[str] = Counter()
    present = 0
    for (run, dataset_type), group in sorted(groups.items()):
        new, skipped = _ingest_run(butler, run, dataset_type, group, transfer)
        ingested[dataset_type] += len(new)
        present += skipped
        if new and dataset_type in _CALIBRATIONS:
            butler.registry.registerCollection(CALIB_CERTIFIED, CollectionType.CALIBRATION)
            summary = butler.collections.get_info(CALIB_CERTIFIED, include_summary=True)
            certified_before = dataset_type in summary.dataset_types
            for file, ref in new:
                span = validity[file.path]
                if certified_before:
                    # Make room: a calibration converted earlier may have been valid
                    # "until forever" before this newer one arrived.
                    butler.registry.decertify(
                        CALIB_CERTIFIED, ref.datasetType, span, dataIds=[ref.dataId]
                    )
                butler.registry.certify(CALIB_CERTIFIED, [ref], span)
    if not any(f.dataset_type == "camera" for f in files):
        _put_default_camera(butler)

    children = _release_children(butler, sorted({_run_of(f) for f in files}))
    return ConvertReport(
        repo=spec.root,
        ingested=dict(ingested),
        already_present=present,
        ignored=tuple(str(p.relative_to(root)) for p in ignored),
        visits=len({o.visit for o in observations}),
        tracts=tuple(sorted(tracts)),
        collections=tuple(children),
        seconds=time.monotonic() - start,
    )


def _put_default_camera(butler: Butler) -> None:
    """Store the nominal camera description when the release brings none."""
    butler.registry.registerRun(CALIB_UNBOUNDED_RUN)
    if butler.find_dataset("camera", instrument=INSTRUMENT, collections=CALIB_UNBOUNDED_RUN):
        return
    put_once(
        butler,
        LsstCamImSim.camera_description(),
        "camera",
        {"instrument": INSTRUMENT},
        CALIB_UNBOUNDED_RUN,
    )


def _release_children(butler: Butler, runs: list[str]) -> list[str]:
    """Set the calibration and release chains, keeping the children of earlier converts.

    The release searches the processing runs first (sorted), then raws, calibrations
    (certified, then unbounded), the reference catalog and the sky map.
    """
    registry = butler.registry
    registry.registerCollection(CALIB_CERTIFIED, CollectionType.CALIBRATION)
    registry.registerCollection(CALIB_CHAIN, CollectionType.CHAINED)
    registry.setCollectionChain(CALIB_CHAIN, [CALIB_CERTIFIED, CALIB_UNBOUNDED_RUN])
    registry.registerCollection(RELEASE_COLLECTION, CollectionType.CHAINED)
    known = {*registry.getCollectionChain(RELEASE_COLLECTION), *runs}
    processing = sorted(r for r in known if r.startswith(f"{RELEASE_COLLECTION}/"))
    tail = [RAW_RUN] if RAW_RUN in known else []
    tail.append(CALIB_CHAIN)
    if REFCAT_RUN in known:
        tail.append(REFCAT_RUN)
    tail.append(SKYMAP_RUN)
    children = processing + tail
    registry.setCollectionChain(RELEASE_COLLECTION, children)
    return children
