"""The image services over a read-only Butler repository: links, files and cutouts.

`ImageService` holds one read-only Butler for the process; each call works on a
clone of it (Butler instances are not thread-safe; clones share the connection pool
and caches), so handlers can call it from worker threads.
"""

from __future__ import annotations

import functools
import io
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from astropy.io import fits
from astropy.wcs import WCS
from lsst.daf.butler import Butler, DatasetRef
from lsst.resources import ResourcePath

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
from dpzero.repo.exposure import Box

__all__ = ["CUTOUT_STORAGE_CLASSES", "Cutout", "DatasetFile", "ImageService"]

CUTOUT_STORAGE_CLASSES = frozenset({"DpzeroExposure"})
"""Storage classes of the datasets a cutout can be made of (images with a WCS)."""

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
        self, dataset_ids: Sequence[str], base_url: str, *, auth_required: bool = False
    ) -> bytes:
        """The DataLink document of datasets (errors become rows, as DataLink says).

        Parameters
        ----------
        dataset_ids
            Public IDs, as the client sent them.
        base_url
            Public URL of the platform (no trailing slash).
        auth_required
            Whether the links need credentials (the platform has logins).

        Returns
        -------
        bytes
            The VOTable.
        """
        from urllib.parse import quote

        auth = "required" if auth_required else "false"
        rows: list[LinkRow] = []
        descriptors: list[SodaDescriptor] = []
        for dataset_id in dataset_ids:
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
            resource_id = "cutout-sync" if not descriptors else f"cutout-sync-{len(descriptors)}"
            descriptors.append(
                SodaDescriptor(resource_id, f"{base_url}/api/cutout/sync", dataset_id.strip())
            )
            rows.append(
                LinkRow(
                    dataset_id,
                    "#cutout",
                    service_def=resource_id,
                    description=f"Cutout of the {_describe(ref)} holding a sky region (SODA)",
                    content_type="application/fits",
                    content_qualifier="image",
                    link_auth=auth,
                    link_authorized=True,
                )
            )
            rows.extend(self._auxiliary_rows(dataset_id, ref, base_url, auth))
        return links_votable(rows, descriptors)

    def _auxiliary_rows(
        self, dataset_id: str, ref: DatasetRef, base_url: str, auth: str
    ) -> list[LinkRow]:
        """``#auxiliary`` links to the other products of the same data ID and run."""
        from urllib.parse import quote

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


def _with_provenance(data: bytes, cards: tuple[tuple[str, str], ...]) -> bytes:
    """Record in the primary header what the cutout was cut from, and how."""
    with fits.open(io.BytesIO(data)) as hdul:
        # No comments: long values continue on CONTINUE cards, comments would be cut.
        for key, text in cards:
            hdul[0].header[key] = text
        out = io.BytesIO()
        hdul.writeto(out)
    return out.getvalue()
