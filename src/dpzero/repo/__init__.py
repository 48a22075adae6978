"""The Butler repository: image container, dimensions, storage classes, conversion.

Importing this package is cheap (numpy and astropy only); the Butler-facing modules
(`dpzero.repo.formatters`, `dpzero.repo.convert`, …) import ``lsst.daf.butler`` when
they are imported themselves.
"""

from dpzero.repo.dimensions import (
    BANDS,
    DETECTORS,
    INSTRUMENT,
    PHYSICAL_FILTERS,
    RELEASE_COLLECTION,
    SKYMAP_NAME,
    band_of,
    detector_facts,
    physical_filter_of,
)
from dpzero.repo.exposure import (
    MASK_PLANES,
    Box,
    Exposure,
    FilterLabel,
    PhotoCalib,
    Psf,
    VisitInfo,
    mask_bits,
    read_exposure,
)

__all__ = [
    "BANDS",
    "DETECTORS",
    "INSTRUMENT",
    "MASK_PLANES",
    "PHYSICAL_FILTERS",
    "RELEASE_COLLECTION",
    "SKYMAP_NAME",
    "Box",
    "Exposure",
    "FilterLabel",
    "PhotoCalib",
    "Psf",
    "VisitInfo",
    "band_of",
    "detector_facts",
    "mask_bits",
    "physical_filter_of",
    "read_exposure",
]
