"""The image services over a read-only Butler repository: links, files and cutouts.

`ImageService` holds one read-only Butler for the process; each call works on a
clone of it (Butler instances are not thread-safe; clones share the connection pool
and caches), so handlers can call it from worker threads.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pyarrow as pa
from astropy.io import fits
from astropy.wcs import WCS
from lsst.daf.butler import Butler, DatasetRef
from lsst.resources import ResourcePath

from dpzero.errors import DpzeroUserError
from dpzero.images.cutout import SkyRegion, cutout_box
from dpzero.images.datalink import LinkRow, SodaDescriptor, links_votable
from dpzero.images.faults import ImageServiceError, NotFoundFault, UsageFault
from dpzero.images.fits_template import ExposureFitsTemplate
from dpzero.images.ids import (
    DEFAULT_REPO_LABEL,
    DatasetIdError,
    dataset_id_uri,
    parse_dataset_id,
)
from dpzero.images.objects import OBJECT_CUTOUT_RADIUS_ARCSEC, ObjectId, parse_object_id
from dpzero.repo.exposure import Box

__all__ = [
    "CUTOUT_STORAGE_CLASSES",
    "OBJECT_IMAGE_SUBTYPES",
    "CatalogQuery",
    "Cutout",
    "DatasetFile",
    "ImageService",
]

CUTOUT_STORAGE_CLASSES = frozenset({"DpzeroExposure"})
"""Storage classes of the datasets a cutout can be made of (images with a WCS)."""

OBJECT_IMAGE_SUBTYPES = ("lsst.calexp", "lsst.deepCoadd_calexp")
"""ObsCore ``dataproduct_subtype`` of the images an object's DataLink lists."""

CatalogQuery = Callable[[str], pa.Table]
"""Runs an ADQL query on the service's catalogs and ``ivoa.ObsCore`` (the TAP engine)."""

_CONTENT_TYPES = {
    ".fits": "application/fits",
    ".fit": "application/fits",
    ".fits.gz": "application/fits",
    ".parq": "application/vnd.apache.parquet",
    ".parquet": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".yaml": "application/yaml",
}
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DatasetFile:
    """The file holding a dataset in the datastore.

    Attributes
    ----------
    uri
        Where it is (a local path or an S3 object).
    size
        Bytes.
    content_type
        MIME type.
    filename
        A name for the download.
    """

    uri: ResourcePath
    size: int
    content_type: str
    filename: str

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, a megabyte at a time."""
        with self.uri.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                yield chunk


@dataclass(frozen=True)
class Cutout:
    """A cutout: its FITS bytes, a file name and the parent-frame box it covers."""

    data: bytes
    filename: str
    box: Box


def _data_id_words(ref: DatasetRef) -> list[str]:
    required = ref.dataId.required
    return [f"{value}" for key, value in required.items() if key != "instrument"]


def _describe(ref: DatasetRef) -> str:
    required = ref.dataId.required
    where = ", ".join(f"{key} {value}" for key, value in required.items() if key != "instrument")
    return f"{ref.datasetType.name} of {where}" if where else ref.datasetType.name


class ImageService:
    """Finds datasets by public ID and serves their links, files and cutouts.

    Parameters
    ----------
    butler
        A read-only Butler on the repository.
    repo_label
        Label of this repository in dataset IDs (``butler://<label>/<uuid>``).
    """

    def __init__(self, butler: Butler, repo_label: str = DEFAULT_REPO_LABEL) -> None:
        self._butler = butler
        self.repo_label = repo_label
        self._lock = threading.Lock()
        # Header cards of each image's cutouts (None: written by astropy every time).
        self._templates: dict[uuid.UUID, ExposureFitsTemplate | None] = {}

    @classmethod
    def open(cls, repo: str, repo_label: str = DEFAULT_REPO_LABEL) -> ImageService:
        """Open the repository at ``repo`` read-only.

        Raises
        ------
        InvalidInputError
            If there is no repository there.
        """
        from dpzero.repo.repository import open_repo

        return cls(open_repo(repo, writeable=False), repo_label)

    def close(self) -> None:
        """Release the repository's connections."""
        self._butler.close()

    def butler(self) -> Butler:
        """A Butler of this repository for the calling thread (a cheap clone)."""
        with self._lock:
            return self._butler.clone()

    def find(self, dataset_id: str) -> DatasetRef:
        """The dataset a public ID names.

        Raises
        ------
        UsageFault
            If the ID is malformed.
        NotFoundFault
            If it names another repository or no dataset of this one.
        """
        try:
            parsed = parse_dataset_id(dataset_id)
        except DatasetIdError as exc:
            raise UsageFault(exc.message) from None
        if parsed.repo_label != self.repo_label:
            raise NotFoundFault(
                f"{dataset_id.strip()} names repository {parsed.repo_label!r}; "
                f"this service holds butler://{self.repo_label}/"
            )
        return self._find_uuid(parsed.uuid, dataset_id.strip())

    @functools.lru_cache(maxsize=4096)  # noqa: B019  (one service per process; refs are immutable)
    def _find_uuid(self, dataset_uuid: uuid.UUID, text: str) -> DatasetRef:
        # With its datastore records, later reads skip the registry's file lookup.
        ref = self.butler().get_dataset(dataset_uuid, datastore_records=True)
        if ref is None:
            raise NotFoundFault(f"no dataset {text} in this repository")
        return ref

    def dataset_file(self, dataset_id: str) -> DatasetFile:
        """The file of the dataset a public ID names.

        Raises
        ------
        UsageFault
            If the ID is malformed.
        NotFoundFault
            If there is no such dataset, or its file is gone from the datastore.
        """
        ref = self.find(dataset_id)
        return self._dataset_file(ref, dataset_id.strip())

    @functools.lru_cache(maxsize=4096)  # noqa: B019
    def _dataset_file(self, ref: DatasetRef, text: str) -> DatasetFile:
        try:
            uri = self.butler().getURI(ref)
            size = uri.size()
        except FileNotFoundError:
            raise NotFoundFault(f"the file of dataset {text} is missing") from None
        extension = uri.getExtension().lower()
        name = "_".join([ref.datasetType.name, *_data_id_words(ref)]) + extension
        return DatasetFile(
            uri, size, _CONTENT_TYPES.get(extension, "application/octet-stream"), name
        )

    def links(
        self,
        dataset_ids: Sequence[str],
        base_url: str,
        *,
        auth_required: bool = False,
        catalog: CatalogQuery | None = None,
    ) -> bytes:
        """The DataLink document of datasets and catalog objects.

        A dataset ID that is malformed or unknown becomes an error row, as DataLink
        says; an object ID (`dpzero.images.objects`) that is malformed or unknown
        fails the whole request, so a client never mistakes a typo for an object
        outside the images.

        Parameters
        ----------
        dataset_ids
            Public IDs, as the client sent them: dataset IDs
            (``butler://<label>/<uuid>``) or object IDs (``<db>.<table>?<objectId>``).
        base_url
            Public URL of the platform (no trailing slash).
        auth_required
            Whether the links need credentials (the platform has logins).
        catalog
            Runs ADQL on the catalogs and ``ivoa.ObsCore``; needed for object IDs.

        Returns
        -------
        bytes
            The VOTable.

        Raises
        ------
        UsageFault
            If an object ID is malformed, or object IDs are given without a catalog.
        NotFoundFault
            If an object ID names no object of the catalogs.
        """
        auth = "required" if auth_required else "false"
        rows: list[LinkRow] = []
        descriptors: list[SodaDescriptor] = []
        for dataset_id in dataset_ids:
            target = parse_object_id(dataset_id)
            if target is not None:
                if catalog is None:
                    raise UsageFault("object IDs need the service's catalogs, not served here")
                rows.extend(
                    self.object_links(dataset_id, target, catalog, base_url, auth, descriptors)
                )
                continue
            try:
                ref = self.find(dataset_id)
                file = self._dataset_file(ref, dataset_id.strip())
            except ImageServiceError as exc:
                rows.append(LinkRow(dataset_id, "#this", error_message=exc.message))
                continue
            quoted = quote(dataset_id.strip(), safe="")
            rows.append(
                LinkRow(
                    dataset_id,
                    "#this",
                    access_url=f"{base_url}/api/datalink/file?ID={quoted}",
                    description=f"The file of the {_describe(ref)}",
                    content_type=file.content_type,
                    content_length=file.size,
                    content_qualifier="image"
                    if ref.datasetType.storageClass_name in CUTOUT_STORAGE_CLASSES
                    else None,
                    link_auth=auth,
                    link_authorized=True,
                )
            )
            if ref.datasetType.storageClass_name not in CUTOUT_STORAGE_CLASSES:
                rows.extend(self._auxiliary_rows(dataset_id, ref, base_url, auth))
                continue
            rows.append(_soda_row(dataset_id, ref, dataset_id.strip(), base_url, auth, descriptors))
            rows.extend(self._auxiliary_rows(dataset_id, ref, base_url, auth))
        return links_votable(rows, descriptors)

    def object_position(self, target: ObjectId, catalog: CatalogQuery) -> tuple[float, float]:
        """Where a catalog object is (ra, dec degrees), from its table.

        Raises
        ------
        NotFoundFault
            If the catalogs hold no such table or no such object.
        """
        table = target.table
        adql = (
            f"SELECT {table.ra}, {table.dec} FROM {table.name} "
            f"WHERE {table.key} = {target.object_id}"
        )
        try:
            found = catalog(adql)
        except DpzeroUserError:
            raise NotFoundFault(f"this service has no table {table.name}") from None
        if found.num_rows == 0:
            raise NotFoundFault(f"no object {target.object_id} in {table.name}")
        ra, dec = found.column(0)[0].as_py(), found.column(1)[0].as_py()
        return (math.nan if ra is None else float(ra)), (math.nan if dec is None else float(dec))

    def images_at(self, ra: float, dec: float, catalog: CatalogQuery) -> list[DatasetRef]:
        """The calexps and coadds whose footprint holds a position, coadds last.

        The footprints are ObsCore's ``s_region`` (each image's pixel corners through
        its WCS), tested by the ADQL layer's exact spherical CONTAINS.
        """
        if not (math.isfinite(ra) and math.isfinite(dec)):
            return []
        subtypes = ", ".join(f"'{subtype}'" for subtype in OBJECT_IMAGE_SUBTYPES)
        found = catalog(
            "SELECT obs_publisher_did FROM ivoa.ObsCore "
            f"WHERE dataproduct_subtype IN ({subtypes}) "
            f"AND CONTAINS(POINT('ICRS', {ra:.12f}, {dec:.12f}), s_region) = 1"
        )
        refs = []
        for dataset_id in found.column(0).to_pylist():
            try:
                refs.append(self.find(dataset_id))
            except ImageServiceError:
                continue  # an ObsCore row of another repository state: no image here
        order = {
            subtype.removeprefix("lsst."): i for i, subtype in enumerate(OBJECT_IMAGE_SUBTYPES)
        }
        return sorted(
            refs,
            key=lambda ref: (order.get(ref.datasetType.name, 99), _data_id_words(ref)),
        )

    def object_links(
        self,
        text: str,
        target: ObjectId,
        catalog: CatalogQuery,
        base_url: str,
        auth: str,
        descriptors: list[SodaDescriptor],
    ) -> list[LinkRow]:
        """Links of a catalog object: for each image holding it, the file and cutouts.

        Each image gets ``#this`` (its file), a ``#cutout`` ready to fetch (a circle of
        `OBJECT_CUTOUT_RADIUS_ARCSEC` around the object) and a ``#cutout`` naming the
        SODA service descriptor (appended to ``descriptors``) for any other region.
        No image holding the object gives no rows.

        Raises
        ------
        NotFoundFault
            If the catalogs hold no such object.
        """
        ra, dec = self.object_position(target, catalog)
        radius = OBJECT_CUTOUT_RADIUS_ARCSEC / 3600.0
        circle = f"{ra:.10f} {dec:.10f} {radius:.10f}"
        rows = []
        for ref in self.images_at(ra, dec, catalog):
            dataset_id = dataset_id_uri(ref, self.repo_label)
            try:
                file = self._dataset_file(ref, dataset_id)
            except ImageServiceError:
                continue  # a missing file is no link
            rows.append(
                LinkRow(
                    text,
                    "#this",
                    access_url=f"{base_url}/api/datalink/file?ID={quote(dataset_id, safe='')}",
                    description=f"The file of the {_describe(ref)} ({dataset_id})",
                    content_type=file.content_type,
                    content_length=file.size,
                    content_qualifier="image",
                    link_auth=auth,
                    link_authorized=True,
                )
            )
            query = urlencode({"ID": dataset_id, "CIRCLE": circle}, quote_via=quote)
            rows.append(
                LinkRow(
                    text,
                    "#cutout",
                    access_url=f"{base_url}/api/cutout/sync?{query}",
                    description=(
                        f"Cutout of the {_describe(ref)}: {OBJECT_CUTOUT_RADIUS_ARCSEC:g}″ "
                        f"around object {target.object_id}"
                    ),
                    content_type="application/fits",
                    content_qualifier="image",
                    link_auth=auth,
                    link_authorized=True,
                )
            )
            rows.append(_soda_row(text, ref, dataset_id, base_url, auth, descriptors))
        return rows

    def _auxiliary_rows(
        self, dataset_id: str, ref: DatasetRef, base_url: str, auth: str
    ) -> list[LinkRow]:
        """``#auxiliary`` links to the other products of the same data ID and run."""
        rows = []
        for other in self._related(ref):
            other_id = dataset_id_uri(other, self.repo_label)
            try:
                file = self._dataset_file(other, other_id)
            except ImageServiceError:
                continue  # a missing file is no link
            rows.append(
                LinkRow(
                    dataset_id,
                    "#auxiliary",
                    access_url=f"{base_url}/api/datalink/file?ID={quote(other_id, safe='')}",
                    description=f"The {_describe(other)} ({other_id})",
                    content_type=file.content_type,
                    content_length=file.size,
                    link_auth=auth,
                    link_authorized=True,
                )
            )
        return rows

    @functools.lru_cache(maxsize=1024)  # noqa: B019  (a read-only repository)
    def _related(self, ref: DatasetRef) -> tuple[DatasetRef, ...]:
        """Datasets of the same run and data ID (a calexp's src and background…)."""
        if ref.datasetType.isCalibration() or not ref.dataId.required:
            return ()
        butler = self.butler()
        names = [
            dataset_type.name
            for dataset_type in butler.registry.queryDatasetTypes()
            if dataset_type.dimensions == ref.datasetType.dimensions
            and dataset_type.name != ref.datasetType.name
            and not dataset_type.isCalibration()
            and not dataset_type.isComponent()
        ]
        if not names:
            return ()
        found = butler.registry.queryDatasets(
            names, collections=ref.run, dataId=ref.dataId, findFirst=True
        )
        return tuple(sorted(found, key=lambda other: other.datasetType.name))

    @functools.lru_cache(maxsize=1024)  # noqa: B019
    def _geometry(self, ref: DatasetRef) -> tuple[WCS | None, Box]:
        butler = self.butler()
        return butler.get(ref.makeComponentRef("wcs")), butler.get(ref.makeComponentRef("bbox"))

    def cutout(self, dataset_id: str, region: SkyRegion) -> Cutout:
        """Cut the smallest box of pixels holding ``region`` out of an image.

        Only the rows of that box are read from the datastore (the Butler's ``bbox``
        parameter). The file holds the image, mask and variance of the box, with the
        WCS shifted to it, as the repository's exposure files are written.

        Raises
        ------
        UsageFault
            If the ID is malformed, the dataset is not an image, or the region does
            not overlap it.
        NotFoundFault
            If there is no such dataset.
        """
        ref = self.find(dataset_id)
        storage_class = ref.datasetType.storageClass_name
        if storage_class not in CUTOUT_STORAGE_CLASSES:
            raise UsageFault(
                f"{dataset_id.strip()} is a {ref.datasetType.name} ({storage_class}), "
                "not an image: cutouts are made of images"
            )
        try:
            wcs, image_box = self._geometry(ref)
        except FileNotFoundError:
            raise NotFoundFault(f"the file of dataset {dataset_id.strip()} is missing") from None
        if wcs is None:
            raise UsageFault(f"{dataset_id.strip()} has no WCS: no sky region can be cut out")
        box = cutout_box(region, wcs, image_box)
        try:
            exposure = self.butler().get(ref, parameters={"bbox": box})
        except FileNotFoundError:
            raise NotFoundFault(f"the file of dataset {dataset_id.strip()} is missing") from None
        provenance = (
            ("SODAID", dataset_id.strip()),
            ("SODAPOS", region.describe()),
            ("SODABBOX", f"{box.x0} {box.y0} {box.width} {box.height}"),
        )
        with self._lock:
            known = ref.id in self._templates
            template = self._templates.get(ref.id)
        if template is None:
            template, data = ExposureFitsTemplate.from_exposure(exposure)
            if not known:
                with self._lock:
                    self._templates[ref.id] = template
        data = (
            template.write(exposure, provenance)
            if template is not None
            else _with_provenance(data, provenance)
        )
        name = "_".join([ref.datasetType.name, *_data_id_words(ref), "cutout"]) + ".fits"
        return Cutout(data, name, box)


def _soda_row(
    text: str,
    ref: DatasetRef,
    dataset_id: str,
    base_url: str,
    auth: str,
    descriptors: list[SodaDescriptor],
) -> LinkRow:
    """A ``#cutout`` row naming a new SODA descriptor for the image (appended)."""
    resource_id = "cutout-sync" if not descriptors else f"cutout-sync-{len(descriptors)}"
    descriptors.append(SodaDescriptor(resource_id, f"{base_url}/api/cutout/sync", dataset_id))
    return LinkRow(
        text,
        "#cutout",
        service_def=resource_id,
        description=f"Cutout of the {_describe(ref)} holding a sky region (SODA)",
        content_type="application/fits",
        content_qualifier="image",
        link_auth=auth,
        link_authorized=True,
    )


def _with_provenance(data: bytes, cards: tuple[tuple[str, str], ...]) -> bytes:
    """Record in the primary header what the cutout was cut from, and how."""
    with fits.open(io.BytesIO(data)) as hdul:
        # No comments: long values continue on CONTINUE cards, comments would be cut.
        for key, text in cards:
            hdul[0].header[key] = text
        out = io.BytesIO()
        hdul.writeto(out)
    return out.getvalue()
