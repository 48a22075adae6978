"""The Butler repository: image container, dimensions, storage classes, conversion.

A converted release reads with plain Butler code::

    from lsst.daf.butler import Butler
    from dpzero.repo import Box

    butler = Butler("REPO", collections="2.2i/runs/DP0.1")
    calexp = butler.get("calexp", visit=19268, detector=94)          # an Exposure
    cutout = butler.get("calexp", visit=19268, detector=94,
                        parameters={"bbox": Box(100, 100, 64, 64)})  # reads 64 rows
    psf = butler.get("calexp.psf", visit=19268, detector=94)
    refs = butler.query_datasets(
        "calexp", where="visit_detector_region.region OVERLAPS POINT(62.0, -37.0)")

Importing this package is cheap (numpy and astropy only); the Butler-facing modules
(`dpzero.repo.formatters`, `dpzero.repo.convert`, `dpzero.repo.merge`, …) import
``lsst.daf.butler`` when they are imported themselves.
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
