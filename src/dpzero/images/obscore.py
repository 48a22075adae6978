"""The ObsCore table (``ivoa.ObsCore``) of a Butler repository's images, as DP0.2 has it.

One row per calexp (calib_level 2), deepCoadd_calexp (3) and raw (1) of the release
collection, with the columns of the Felis schema ``dp02_obscore`` of lsst-sdm-schemas.
Each row names its dataset ``butler://<repo-label>/<UUID>`` (`dataset_id_uri`) and
points at this service's DataLink (``/api/datalink/links?ID=...``). ``s_region`` is
the dataset's sky polygon as STC-S text (``POLYGON ICRS ra1 dec1 ...``), which ADQL's
CONTAINS and INTERSECTS take as a region.

Footprints of calexps and coadds come from each image's own WCS and pixel box (read
as components, not the pixels); raws, which carry no calibrated WCS, take their
visit/detector region from the registry. The table is small (one row per image) and
is written once to a Parquet file that the TAP service publishes
(`build_obscore`); a file built for the same datasets and URL is reused.

lsst-dax-obscore was not used: it is not installed with dpzero, it is configured
through a YAML of format strings over dimension records, and its regions come from
the registry only (patch regions for coadds, not the coadd's pixels).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.catalog import ColumnMetadata, TableMetadata
from dpzero.errors import InvalidInputError
from dpzero.images.ids import DEFAULT_REPO_LABEL, dataset_id_uri
from dpzero.schema import load_schema

__all__ = [
    "BAND_EDGES_M",
    "OBSCORE_SCHEMA",
    "OBSCORE_TABLE",
    "ObsCoreBuild",
    "build_obscore",
    "obscore_metadata",
    "obscore_rows",
    "read_obscore",
]

OBSCORE_SCHEMA = "dp02_obscore"
"""Key of the Felis schema (`dpzero.schema.load_schema`) the table follows."""

OBSCORE_TABLE = "ObsCore"
"""Table name; the schema's name makes it ``ivoa.ObsCore``."""

BAND_EDGES_M: dict[str, tuple[float, float]] = {
    "u": (330e-9, 400e-9),
    "g": (402e-9, 552e-9),
    "r": (552e-9, 691e-9),
    "i": (691e-9, 818e-9),
    "z": (818e-9, 922e-9),
    "y": (970e-9, 1060e-9),
}
"""Wavelength range of each band in metres (em_min, em_max), as DP0.2's ObsCore has it."""

FACILITY = "Rubin:Simonyi"
ACCESS_FORMAT = "application/x-votable+xml;content=datalink"
_KEY_META = b"dpzero.obscore.key"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Product:
    """How one dataset type becomes ObsCore rows."""

    dataset_type: str
    subtype: str
    calib_level: int
    where: dict[str, str]


def _products() -> tuple[_Product, ...]:
    from dpzero.repo import INSTRUMENT, SKYMAP_NAME

    return (
        _Product("calexp", "lsst.calexp", 2, {"instrument": INSTRUMENT}),
        _Product("deepCoadd_calexp", "lsst.deepCoadd_calexp", 3, {"skymap": SKYMAP_NAME}),
        _Product("raw", "lsst.raw", 1, {"instrument": INSTRUMENT}),
    )


@dataclass(frozen=True)
class ObsCoreBuild:
    """What `build_obscore` did.

    Attributes
    ----------
    path
        The Parquet file the service publishes.
    rows
        Rows of the table, by ``dataproduct_subtype``.
    reused
        True when the file already described the same datasets and was kept.
    """

    path: Path
    rows: dict[str, int]
    reused: bool

    def summary(self) -> str:
        """One line for the terminal."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.rows.items())) or "no images"
        verb = "kept" if self.reused else "wrote"
        return f"ivoa.ObsCore: {counts} ({verb} {self.path})"


def obscore_metadata(rows: int = 0) -> TableMetadata:
    """The table as the TAP service describes it (columns, units, UCDs from Felis)."""
    schema = load_schema(OBSCORE_SCHEMA)
    spec = schema.table(OBSCORE_TABLE)
    return TableMetadata(
        database=schema.name,
        table=spec.name,
        schema=OBSCORE_SCHEMA,
        schema_version=schema.version,
        description=spec.description or schema.description,
        rows=rows,
        ra_column="s_ra",
        dec_column="s_dec",
        key_column=None,
        columns=tuple(ColumnMetadata.from_spec(c) for c in spec.columns),
    )


def _stcs(vertices: Iterable[tuple[float, float]]) -> str:
    return "POLYGON ICRS " + " ".join(f"{ra:.10f} {dec:.10f}" for ra, dec in vertices)


def _footprint(ra: np.ndarray, dec: np.ndarray) -> tuple[list[tuple[float, float]], float, float]:
    """Convex hull of corners: vertices (counter-clockwise) and centre, in degrees."""
    from lsst.sphgeom import LonLat

    from dpzero.repo.records import polygon

    hull = polygon(ra, dec)
    vertices = [_lonlat(LonLat(v)) for v in hull.getVertices()]
    centre = _lonlat(LonLat(hull.getCentroid()))
    return vertices, centre[0], centre[1]


def _lonlat(lonlat: Any) -> tuple[float, float]:
    return lonlat.getLon().asDegrees() % 360.0, lonlat.getLat().asDegrees()


def _separation(ra1: float, dec1: float, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distances in degrees."""
    from astropy.coordinates import angular_separation

    return np.degrees(
        angular_separation(np.radians(ra1), np.radians(dec1), np.radians(ra2), np.radians(dec2))
    )


@dataclass
class _Pixels:
    """What the image itself says: footprint corners, size and PSF width."""

    corners_ra: np.ndarray
    corners_dec: np.ndarray
    centre: tuple[float, float]
    width: int
    height: int
    fwhm_arcsec: float | None


def _read_pixels(butler: Any, ref: Any) -> _Pixels | None:
    """Footprint from the WCS and box components; PSF FWHM from the PSF component."""
    try:
        box = butler.get(ref.makeComponentRef("bbox"))
        wcs = butler.get(ref.makeComponentRef("wcs"))
        psf = butler.get(ref.makeComponentRef("psf"))
    except Exception as exc:  # an unreadable image still gets its registry row
        _log.warning("ObsCore: cannot read %s (%s); using its registry region", ref, exc)
        return None
    if wcs is None:
        return None
    # The WCS maps the pixel array's indices (centres 0 … width - 1); the footprint is
    # the outer edge of the pixels.
    x = np.array([-0.5, box.width - 0.5, box.width - 0.5, -0.5])
    y = np.array([-0.5, -0.5, box.height - 0.5, box.height - 0.5])
    world = wcs.pixel_to_world_values(x, y)
    centre = wcs.pixel_to_world_values((box.width - 1) / 2.0, (box.height - 1) / 2.0)
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0
    fwhm = psf.fwhm * scale if psf is not None else None
    return _Pixels(
        np.asarray(world[0], dtype=float) % 360.0,
        np.asarray(world[1], dtype=float),
        (float(centre[0]) % 360.0, float(centre[1])),
        int(box.width),
        int(box.height),
        fwhm,
    )


def _region_corners(region: Any) -> tuple[np.ndarray, np.ndarray] | None:
    from lsst.sphgeom import LonLat

    if region is None:
        return None
    points = [_lonlat(LonLat(v)) for v in region.getVertices()]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def _mjd(timespan: Any) -> tuple[float | None, float | None]:
    if timespan is None or timespan.begin is None or timespan.end is None:
        return None, None
    return float(timespan.begin.tai.mjd), float(timespan.end.tai.mjd)


def _empty_row(columns: Iterable[str]) -> dict[str, Any]:
    return dict.fromkeys(columns)


def obscore_rows(
    butler: Any,
    service_url: str,
    repo_label: str = DEFAULT_REPO_LABEL,
    collections: str | None = None,
    read_pixels: bool = True,
) -> pa.Table:
    """The ObsCore rows of every calexp, deepCoadd_calexp and raw of a repository.

    Parameters
    ----------
    butler
        A (read-only) `lsst.daf.butler.Butler` on the repository.
    service_url
        Public base URL of this service; ``access_url`` is its DataLink endpoint.
    repo_label
        Repository label in the dataset IDs.
    collections
        Collection to search (default: the release's CHAINED collection).
    read_pixels
        Read each image's WCS, box and PSF for its exact footprint, size and
        resolution; otherwise take footprints from the registry only.

    Returns
    -------
    pyarrow.Table
        Columns and types of the Felis schema, rows sorted by dataset type and data ID.
    """
    from dpzero.repo import RELEASE_COLLECTION, band_of

    schema = load_schema(OBSCORE_SCHEMA).table(OBSCORE_TABLE).arrow_schema()
    collection = collections or RELEASE_COLLECTION
    link = service_url.rstrip("/") + "/api/datalink/links?ID="
    regions = {
        (r.dataId["visit"], r.dataId["detector"]): r.region
        for r in _records(butler, "visit_detector_region")
    }
    rows: list[dict[str, Any]] = []
    for product in _products():
        refs = _refs(butler, product, collection, with_dimension_records=True)
        for ref in sorted(refs, key=lambda r: tuple(r.dataId.required.values())):
            row = _empty_row(schema.names)
            did = dataset_id_uri(ref, repo_label)
            data_id = ref.dataId
            records = data_id.records
            physical_filter = data_id.get("physical_filter")
            band = data_id.get("band") or (band_of(physical_filter) if physical_filter else None)
            row.update(
                dataproduct_type="image",
                dataproduct_subtype=product.subtype,
                calib_level=product.calib_level,
                facility_name=FACILITY,
                instrument_name=data_id.get("instrument") or "LSSTCam-imSim",
                obs_collection=f"LSST.{repo_label.upper()}",
                obs_publisher_did=did,
                access_url=link + quote(did, safe=""),
                access_format=ACCESS_FORMAT,
                o_ucd="phot.count",
                lsst_band=band,
                lsst_filter=physical_filter,
                em_min=BAND_EDGES_M[band][0] if band in BAND_EDGES_M else None,
                em_max=BAND_EDGES_M[band][1] if band in BAND_EDGES_M else None,
                t_xel=1,
                em_xel=1,
                pol_xel=0,
            )
            region = None
            if product.dataset_type == "deepCoadd_calexp":
                tract, patch = int(data_id["tract"]), int(data_id["patch"])
                row.update(
                    obs_id=f"{data_id['skymap']}-{tract}-{patch}",
                    obs_title=f"deepCoadd_calexp {band} tract {tract} patch {patch}",
                    lsst_tract=tract,
                    lsst_patch=patch,
                )
                region = records["patch"].region if records["patch"] is not None else None
            else:
                visit_key = "visit" if "visit" in data_id.dimensions.names else "exposure"
                visit, detector = int(data_id[visit_key]), int(data_id["detector"])
                record = records[visit_key]
                t_min, t_max = _mjd(getattr(record, "timespan", None))
                row.update(
                    obs_id=str(getattr(record, "obs_id", None) or visit),
                    obs_title=f"{product.dataset_type} {band} visit {visit} detector {detector}",
                    lsst_visit=visit,
                    lsst_detector=detector,
                    lsst_ccdvisitid=visit * 200 + detector,
                    t_min=t_min,
                    t_max=t_max,
                    t_exptime=getattr(record, "exposure_time", None),
                )
                region = regions.get((visit, detector))
            pixels = _read_pixels(butler, ref) if read_pixels and product.calib_level > 1 else None
            if pixels is not None:
                ra, dec = pixels.corners_ra, pixels.corners_dec
                row.update(
                    s_xel1=pixels.width, s_xel2=pixels.height, s_resolution=pixels.fwhm_arcsec
                )
            else:
                corners = _region_corners(region)
                ra, dec = corners if corners is not None else (None, None)
            if ra is not None and dec is not None:
                vertices, c_ra, c_dec = _footprint(ra, dec)
                if pixels is not None:
                    c_ra, c_dec = pixels.centre
                distances = _separation(c_ra, c_dec, ra, dec)
                row.update(
                    s_region=_stcs(vertices),
                    s_ra=c_ra,
                    s_dec=c_dec,
                    s_fov=2.0 * float(np.max(distances)),
                )
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)


def _refs(
    butler: Any, product: _Product, collection: str, with_dimension_records: bool = False
) -> list[Any]:
    """Datasets of one product; none when the repository lacks its type or collection."""
    from lsst.daf.butler import MissingCollectionError, MissingDatasetTypeError

    try:
        return butler.query_datasets(
            product.dataset_type,
            collections=collection,
            find_first=True,
            with_dimension_records=with_dimension_records,
            limit=None,
            explain=False,
            **product.where,
        )
    except (MissingDatasetTypeError, MissingCollectionError) as exc:
        _log.info("ObsCore: no %s (%s)", product.dataset_type, exc)
        return []


def _records(butler: Any, element: str) -> list[Any]:
    from dpzero.repo import INSTRUMENT

    try:
        return list(butler.query_dimension_records(element, instrument=INSTRUMENT, explain=False))
    except Exception as exc:  # no instrument registered: no visits either
        _log.info("ObsCore: no %s records (%s)", element, exc)
        return []


def _cache_key(butler: Any, service_url: str, repo_label: str, collections: str | None) -> str:
    """Identity of what the table would hold: dataset IDs, URL, label and code version."""
    from dpzero.repo import RELEASE_COLLECTION

    digest = hashlib.sha256()
    digest.update(f"v1|{service_url}|{repo_label}|{collections or RELEASE_COLLECTION}".encode())
    for product in _products():
        refs = _refs(butler, product, collections or RELEASE_COLLECTION)
        for dataset_id in sorted(str(r.id) for r in refs):
            digest.update(dataset_id.encode())
    return digest.hexdigest()


def build_obscore(
    repo: str,
    out: Path,
    service_url: str,
    repo_label: str = DEFAULT_REPO_LABEL,
    collections: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ObsCoreBuild:
    """Write the ObsCore table of the repository ``repo`` to the Parquet file ``out``.

    Parameters
    ----------
    repo
        Butler repository root or URI.
    out
        Parquet file to write (atomically); kept as it is when it already holds the
        table of the same datasets for the same URL and label.
    service_url
        Public base URL of the service (for ``access_url``).
    repo_label
        Repository label in the dataset IDs.
    collections
        Collection to search (default: the release's CHAINED collection).
    progress
        Called with a line of text when the table is (re)built.

    Raises
    ------
    InvalidInputError
        If there is no repository at ``repo``.
    """
    from dpzero.repo.repository import open_repo

    butler = open_repo(repo)
    try:
        key = _cache_key(butler, service_url, repo_label, collections)
        if out.exists():
            try:
                existing = pq.read_metadata(out).metadata or {}
            except (OSError, pa.ArrowInvalid):
                existing = {}
            if existing.get(_KEY_META) == key.encode():
                table = pq.read_table(out, columns=["dataproduct_subtype"])
                return ObsCoreBuild(out, _counts(table), reused=True)
        if progress is not None:
            progress(f"building ivoa.ObsCore from {repo} ...")
        table = obscore_rows(butler, service_url, repo_label, collections)
    finally:
        butler.close()
    from dpzero.tap.attached import write_attached_table

    write_attached_table(out, obscore_metadata(table.num_rows), table, {_KEY_META: key.encode()})
    return ObsCoreBuild(out, _counts(table), reused=False)


def _counts(table: pa.Table) -> dict[str, int]:
    values = table.column("dataproduct_subtype").to_pylist()
    return {k: values.count(k) for k in sorted(set(values))}


def read_obscore(path: Path) -> tuple[TableMetadata, pa.Table]:
    """The table written by `build_obscore` and its TAP metadata.

    Raises
    ------
    InvalidInputError
        If ``path`` is not such a file.
    """
    from dpzero.tap.attached import read_attached_table

    metadata, table = read_attached_table(path)
    if (metadata.database, metadata.table) != ("ivoa", OBSCORE_TABLE):
        raise InvalidInputError(f"{path} does not hold ivoa.ObsCore")
    return metadata, table
