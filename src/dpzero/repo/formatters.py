"""Butler formatters for dpzero's files: exposures, plain images and FITS tables.

Each formatter reads straight from the dataset's URI (a local path or an S3 object
through lsst-resources), so a component or a ``bbox`` read of an exposure fetches
only the bytes it needs, even from S3.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from lsst.daf.butler import FormatterV2
from lsst.daf.butler.formatters.parquet import ParquetFormatter
from lsst.resources import ResourcePath

from dpzero.repo.exposure import Box, Exposure, read_exposure

__all__ = [
    "BackgroundFormatter",
    "ExposureFormatter",
    "FitsImageFormatter",
    "FitsTableFormatter",
    "JsonDataFormatter",
    "ParquetTableFormatter",
    "RawFormatter",
]


class ExposureFormatter(FormatterV2):
    """Reads and writes `Exposure` as multi-extension FITS (`Exposure.write_fits`).

    Understands the ``bbox`` read parameter (a `Box` in the parent frame) and every
    component of `dpzero.repo.exposure.COMPONENTS`, reading only what they need.
    """

    default_extension = ".fits"
    # Uncompressed only: a bbox read seeks to the rows it needs.
    supported_extensions = frozenset({".fits", ".fit"})
    unsupported_parameters = frozenset()
    can_read_from_uri = True

    def read_from_uri(
        self, uri: ResourcePath, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the exposure, a box of it, or one component, from ``uri``."""
        bbox = self._bbox()
        if uri.isLocal:
            return read_exposure(uri.ospath, bbox=bbox, component=component)
        with uri.open("rb") as handle:
            return read_exposure(handle, bbox=bbox, component=component)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write an `Exposure` to a local file."""
        if not isinstance(in_memory_dataset, Exposure):
            raise TypeError(f"expected a dpzero Exposure, got {type(in_memory_dataset)}")
        in_memory_dataset.write_fits(uri.ospath, overwrite=True)

    def _bbox(self) -> Box | None:
        parameters = self.file_descriptor.parameters or {}
        bbox = parameters.get("bbox")
        if bbox is not None and not isinstance(bbox, Box):
            raise TypeError(f"the bbox parameter must be a dpzero Box, not {type(bbox)}")
        return bbox


class FitsImageFormatter(FormatterV2):
    """Reads and writes one 2-D numpy array as the first image HDU of a FITS file.

    Used for backgrounds, sky corrections and number-of-images maps.
    """

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fit", ".fits.gz"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the first HDU holding pixels."""
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    return np.asarray(hdu.data).astype(hdu.data.dtype.newbyteorder("="))
        raise ValueError(f"{path} holds no image")

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the array as a primary HDU."""
        fits.PrimaryHDU(np.asarray(in_memory_dataset)).writeto(uri.ospath, overwrite=True)


class FitsTableFormatter(FormatterV2):
    """Reads and writes an astropy `Table` as a FITS binary table.

    Understands the ``columns`` read parameter of the ``ArrowAstropy`` storage class.
    """

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fit", ".fits.gz"})
    unsupported_parameters = frozenset({"filters", "strip_astropy_meta_yaml"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the first table HDU (only the asked columns, with ``columns``)."""
        table = Table.read(path, format="fits", hdu=1, memmap=False)
        if component == "rowcount":
            return len(table)
        if component == "columns":
            return list(table.colnames)
        columns = (self.file_descriptor.parameters or {}).get("columns")
        if columns is not None:
            names = [columns] if isinstance(columns, str) else list(columns)
            missing = [c for c in names if c not in table.colnames]
            if missing:
                raise ValueError(f"columns not in the table: {', '.join(missing)}")
            table = table[names]
        return table

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write an astropy `Table` as a FITS binary table."""
        Table(in_memory_dataset).write(uri.ospath, format="fits", overwrite=True)


class ParquetTableFormatter(ParquetFormatter):
    """The Butler's Parquet formatter, also accepting the ``.parquet`` extension.

    Legacy catalogs are named ``*.parquet``; the Butler's own writes use ``.parq``.
    """

    supported_extensions = frozenset({".parq", ".parquet"})


class JsonDataFormatter(FormatterV2):
    """Reads and writes small objects as JSON: the sky map and the camera.

    The storage class's Python type either provides ``to_json_dict`` and
    ``from_json_dict``, or is a dataclass of plain fields.
    """

    default_extension = ".json"
    supported_extensions = frozenset({".json"})
    can_read_from_uri = True

    def read_from_uri(
        self, uri: ResourcePath, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the JSON document and build the storage class's type."""
        pytype = self.file_descriptor.storageClass.pytype
        data = json.loads(uri.read())
        if hasattr(pytype, "from_json_dict"):
            return pytype.from_json_dict(data)
        return pytype(**data)

    def to_bytes(self, in_memory_dataset: Any) -> bytes:
        """Serialise as indented JSON."""
        if hasattr(in_memory_dataset, "to_json_dict"):
            data = in_memory_dataset.to_json_dict()
        elif dataclasses.is_dataclass(in_memory_dataset):
            data = {
                f.name: getattr(in_memory_dataset, f.name)
                for f in dataclasses.fields(in_memory_dataset)
            }
        else:
            raise TypeError(f"cannot write {type(in_memory_dataset)} as JSON")
        return json.dumps(data, indent=1, sort_keys=True).encode()


class BackgroundFormatter(FormatterV2):
    """Reads and writes background models (``Background.read_fits``/``write_fits``)."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fit"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read a background model."""
        from dpzero.sim.images.background import Background

        return Background.read_fits(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write a background model."""
        if uri.exists():
            uri.remove()
        in_memory_dataset.write_fits(uri.ospath)


class RawFormatter(FormatterV2):
    """Reads and writes raw images: the amplifier HDUs of one detector, in memory.

    The raw file is read whole into an astropy `HDUList` detached from the file
    (``SEGMENT…`` image HDUs after a primary HDU of observation metadata).
    """

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fit"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read every HDU into memory."""
        with fits.open(path, memmap=False) as hdul:
            return fits.HDUList([hdu.copy() for hdu in hdul])

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the HDUs."""
        fits.HDUList(list(in_memory_dataset)).writeto(uri.ospath, overwrite=True)
