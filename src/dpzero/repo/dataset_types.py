"""The DP0.1 dataset types: names, dimensions and storage classes.

Names and dimensions follow DP0.1's Gen3 repository, so ``butler.get("calexp",
visit=…, detector=…)`` and ``butler.get("deepCoadd", tract=…, patch=…, band=…)``
work as in the DP0 tutorials. Storage classes are dpzero's own where the LSST ones
name C++ types (``DpzeroExposure`` for ``ExposureF``, ``DpzeroRaw`` — the raw
amplifier HDUs as an astropy ``HDUList`` — for raws, ``DpzeroBackground`` for
``Background``); catalogs are ``ArrowAstropy`` (astropy tables, convertible to
Arrow, pandas and numpy on read); the camera is a ``StructuredDataDict``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DP01_DATASET_TYPES", "DatasetTypeSpec", "dataset_type_spec"]


@dataclass(frozen=True)
class DatasetTypeSpec:
    """One dataset type to register.

    Attributes
    ----------
    name
        Dataset type name.
    dimensions
        Its dimensions.
    storage_class
        Storage class name.
    is_calibration
        True for calibrations, found through a CALIBRATION collection by validity.
    """

    name: str
    dimensions: tuple[str, ...]
    storage_class: str
    is_calibration: bool = False


_VISIT = ("instrument", "visit", "detector")
_COADD = ("skymap", "tract", "patch", "band")
_MERGED = ("skymap", "tract", "patch")

DP01_DATASET_TYPES: tuple[DatasetTypeSpec, ...] = (
    DatasetTypeSpec("raw", ("instrument", "exposure", "detector"), "DpzeroRaw"),
    DatasetTypeSpec("calexp", _VISIT, "DpzeroExposure"),
    DatasetTypeSpec("calexpBackground", _VISIT, "DpzeroBackground"),
    DatasetTypeSpec("src", _VISIT, "ArrowAstropy"),
    DatasetTypeSpec("icSrc", _VISIT, "ArrowAstropy"),
    DatasetTypeSpec("srcMatch", _VISIT, "ArrowAstropy"),
    DatasetTypeSpec("skyCorr", _VISIT, "DpzeroBackground"),
    DatasetTypeSpec("deepCoadd", _COADD, "DpzeroExposure"),
    DatasetTypeSpec("deepCoadd_calexp", _COADD, "DpzeroExposure"),
    DatasetTypeSpec("deepCoadd_calexp_background", _COADD, "DpzeroBackground"),
    DatasetTypeSpec("deepCoadd_det", _COADD, "ArrowAstropy"),
    DatasetTypeSpec("deepCoadd_meas", _COADD, "ArrowAstropy"),
    DatasetTypeSpec("deepCoadd_forced_src", _COADD, "ArrowAstropy"),
    DatasetTypeSpec("deepCoadd_measMatch", _COADD, "ArrowAstropy"),
    DatasetTypeSpec("deepCoadd_nImage", _COADD, "DpzeroImage"),
    DatasetTypeSpec("deepCoadd_ref", _MERGED, "ArrowAstropy"),
    DatasetTypeSpec("deepCoadd_mergeDet", _MERGED, "ArrowAstropy"),
    DatasetTypeSpec("bias", ("instrument", "detector"), "DpzeroExposure", True),
    DatasetTypeSpec("dark", ("instrument", "detector"), "DpzeroExposure", True),
    DatasetTypeSpec("flat", ("instrument", "detector", "physical_filter"), "DpzeroExposure", True),
    DatasetTypeSpec("camera", ("instrument",), "StructuredDataDict"),
    DatasetTypeSpec("skyMap", ("skymap",), "DpzeroSkyMap"),
    DatasetTypeSpec("cal_ref_cat", ("htm7",), "ArrowAstropy"),
)
"""Every dataset type of a converted DP0.1 release."""

_BY_NAME = {spec.name: spec for spec in DP01_DATASET_TYPES}


def dataset_type_spec(name: str) -> DatasetTypeSpec:
    """The spec of a DP0.1 dataset type by name.

    Raises
    ------
    KeyError
        If ``name`` is not a DP0.1 dataset type.
    """
    return _BY_NAME[name]
