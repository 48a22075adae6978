"""The legacy directory layout: where each dataset of the simulated release lives.

The processed release arrives the way the earlier (Gen2-style) processing wrote it:
one file per dataset, raws and calibrations at the root, the processing outputs
in a rerun, per-visit/detector and per-tract/patch/band paths. Every path rule is
here, once: `LegacyLayout.path` builds a path from a data id and `LegacyLayout.find`
lists the datasets of a type present on disk with their data ids, so the converter
into a Butler repository never needs to know the templates.

Data id keys: ``visit`` (int), ``band`` (``u``…``y``), ``physical_filter``,
``detector`` (int; ``raft`` and ``sensor`` are derived from it), ``tract`` (int),
``patch`` (Gen2 string ``"x,y"``), ``calib_date`` (``YYYY-MM-DD``) and ``htm7``
(reference catalog shard).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any

from dpzero.errors import InvalidInputError
from dpzero.repo import detector_facts

__all__ = [
    "DATASET_TYPES",
    "MANIFEST",
    "MAPPER",
    "DatasetLayout",
    "LegacyLayout",
]

MANIFEST = "images.yaml"
"""File at the root describing the simulation: size, seed, rerun, visits, detectors."""

MAPPER = "_mapper"
"""File at the root naming the data's mapper, as Gen2 repositories had."""


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset type is stored.

    Attributes
    ----------
    name
        Dataset type name (DP0.1's).
    template
        Path below the layout root; ``{rerun}`` is the processing rerun.
    kind
        What the file holds: ``raw`` (multi-extension amplifier FITS), ``exposure``
        (`dpzero.repo.Exposure` FITS), ``image`` (a single-HDU image), ``background``
        (`dpzero.sim.images.background.Background` FITS), ``catalog`` (Parquet table
        with afw column names), ``refcat`` (Parquet reference-catalog shard), ``yaml``.
    dimensions
        Data id keys that identify one dataset.
    """

    name: str
    template: str
    kind: str
    dimensions: tuple[str, ...]


_VD = ("visit", "band", "detector")
_PATCH_BAND = ("band", "tract", "patch")
_PATCH = ("tract", "patch")
_CALEXP_DIR = "rerun/{rerun}/{dataset}/{visit:08d}/{band}"
_COADD_DIR = "rerun/{rerun}/deepCoadd-results/{band}/{tract}/{patch}"
_MERGED_DIR = "rerun/{rerun}/deepCoadd-results/merged/{tract}/{patch}"


def _suffix(kind: str) -> str:
    return ".parq" if kind in ("catalog", "refcat") else ".fits"


def _visit_detector(dataset: str, prefix: str, kind: str) -> DatasetLayout:
    template = _CALEXP_DIR.replace("{dataset}", dataset)
    name = f"{prefix}_{{visit:08d}}-{{band}}-{{detector:03d}}{_suffix(kind)}"
    return DatasetLayout(dataset, f"{template}/{name}", kind, _VD)


def _coadd(dataset: str, prefix: str, kind: str) -> DatasetLayout:
    name = f"{prefix}-{{band}}-{{tract}}-{{patch}}{_suffix(kind)}"
    return DatasetLayout(dataset, f"{_COADD_DIR}/{name}", kind, _PATCH_BAND)


def _merged(dataset: str, prefix: str) -> DatasetLayout:
    return DatasetLayout(
        dataset, f"{_MERGED_DIR}/{prefix}-{{tract}}-{{patch}}.parq", "catalog", _PATCH
    )


_LAYOUTS: tuple[DatasetLayout, ...] = (
    DatasetLayout(
        "raw",
        "raw/{visit:08d}/{raft}/lsst_a_{visit}_{raft}_{sensor}_{band}.fits",
        "raw",
        _VD,
    ),
    DatasetLayout(
        "bias",
        "CALIB/bias/{calib_date}/bias-{raft}-{sensor}-det{detector:03d}_{calib_date}.fits",
        "exposure",
        ("detector", "calib_date"),
    ),
    DatasetLayout(
        "dark",
        "CALIB/dark/{calib_date}/dark-{raft}-{sensor}-det{detector:03d}_{calib_date}.fits",
        "exposure",
        ("detector", "calib_date"),
    ),
    DatasetLayout(
        "flat",
        "CALIB/flat/{physical_filter}/{calib_date}/"
        "flat_{physical_filter}-{raft}-{sensor}-det{detector:03d}_{calib_date}.fits",
        "exposure",
        ("detector", "physical_filter", "calib_date"),
    ),
    DatasetLayout("cal_ref_cat", "ref_cats/cal_ref_cat/{htm7}.parq", "refcat", ("htm7",)),
    DatasetLayout("camera", "camera/camera.yaml", "yaml", ()),
    _visit_detector("calexp", "calexp", "exposure"),
    _visit_detector("calexpBackground", "bkgd", "background"),
    _visit_detector("src", "src", "catalog"),
    _visit_detector("icSrc", "icSrc", "catalog"),
    _visit_detector("srcMatch", "srcMatch", "catalog"),
    _visit_detector("skyCorr", "skyCorr", "background"),
    DatasetLayout(
        "deepCoadd",
        "rerun/{rerun}/deepCoadd/{band}/{tract}/{patch}.fits",
        "exposure",
        _PATCH_BAND,
    ),
    DatasetLayout(
        "deepCoadd_nImage",
        "rerun/{rerun}/deepCoadd/{band}/{tract}/{patch}_nImage.fits",
        "image",
        _PATCH_BAND,
    ),
    _coadd("deepCoadd_calexp", "calexp", "exposure"),
    _coadd("deepCoadd_calexp_background", "bkgd", "background"),
    _coadd("deepCoadd_det", "det", "catalog"),
    _coadd("deepCoadd_meas", "meas", "catalog"),
    _coadd("deepCoadd_forced_src", "forced_src", "catalog"),
    _coadd("deepCoadd_measMatch", "measMatch", "catalog"),
    _merged("deepCoadd_mergeDet", "mergeDet"),
    _merged("deepCoadd_ref", "ref"),
    DatasetLayout("skyMap", "rerun/{rerun}/deepCoadd/skyMap.yaml", "yaml", ()),
)

DATASET_TYPES: Mapping[str, DatasetLayout] = {d.name: d for d in _LAYOUTS}
"""Every dataset type of the legacy layout, by name."""

_PATTERNS = {
    "visit": r"\d+",
    "detector": r"\d+",
    "tract": r"\d+",
    "htm7": r"\d+",
    "band": r"[ugrizy]",
    "raft": r"R\d\d",
    "sensor": r"S\d\d",
    "patch": r"\d+,\d+",
    "calib_date": r"\d{4}-\d\d-\d\d",
    "physical_filter": r"[ugrizy]_sim_1\.4",
    "rerun": r"[^/]+",
}
_INT_KEYS = frozenset({"visit", "detector", "tract", "htm7"})


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in Formatter().parse(template) if name]


def _regex(template: str) -> re.Pattern[str]:
    out, seen = [], set()
    for literal, name, _, _ in Formatter().parse(template):
        out.append(re.escape(literal))
        if name is None:
            continue
        # A key written twice (in the folder and the file name) must agree; checked later.
        group = f"{name}__again" if name in seen else name
        seen.add(name)
        out.append(f"(?P<{group}>{_PATTERNS[name]})")
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class LegacyLayout:
    """Path rules of a legacy data directory.

    Parameters
    ----------
    root
        The directory.
    rerun
        Name of the processing rerun under ``rerun/``.
    """

    root: Path
    rerun: str = "dp01"

    def relative_path(self, dataset_type: str, **data_id: Any) -> str:
        """Path of a dataset below the root.

        Raises
        ------
        InvalidInputError
            If the dataset type is unknown or the data id lacks a key.
        """
        layout = _layout(dataset_type)
        values = dict(data_id)
        if "detector" in values:
            facts = detector_facts(int(values["detector"]))
            values.setdefault("raft", facts.raft)
            values.setdefault("sensor", facts.sensor)
        values.setdefault("rerun", self.rerun)
        missing = [k for k in _fields(layout.template) if k not in values]
        if missing:
            raise InvalidInputError(
                f"data id for {dataset_type} lacks {', '.join(sorted(set(missing)))}"
            )
        return layout.template.format(**values)

    def path(self, dataset_type: str, **data_id: Any) -> Path:
        """Absolute path of a dataset (see `relative_path`)."""
        return self.root / self.relative_path(dataset_type, **data_id)

    def parse(self, dataset_type: str, relative: str) -> dict[str, Any] | None:
        """Data id of a relative path, or ``None`` if it is not of that type."""
        layout = _layout(dataset_type)
        match = _regex(layout.template).match(relative)
        if match is None or match.groupdict().get("rerun", self.rerun) != self.rerun:
            return None
        found = match.groupdict()
        found.pop("rerun", None)
        data_id: dict[str, Any] = {}
        for key, value in found.items():
            data_id[key] = int(value) if key.removesuffix("__again") in _INT_KEYS else value
        for key in [k for k in data_id if k.endswith("__again")]:
            if data_id.pop(key) != data_id[key.removesuffix("__again")]:
                return None
        if "raft" in data_id:
            data_id["detector"] = _detector_of(data_id.pop("raft"), data_id.pop("sensor"))
        return data_id

    def find(self, dataset_type: str) -> Iterator[tuple[dict[str, Any], Path]]:
        """Datasets of a type present under the root: ``(data_id, path)``, sorted by path."""
        layout = _layout(dataset_type)
        pattern = re.sub(r"\{[^}]*\}", "*", layout.template.replace("{rerun}", self.rerun))
        for path in sorted(self.root.glob(pattern)):
            data_id = self.parse(dataset_type, path.relative_to(self.root).as_posix())
            if data_id is not None:
                yield data_id, path


def _layout(dataset_type: str) -> DatasetLayout:
    try:
        return DATASET_TYPES[dataset_type]
    except KeyError:
        raise InvalidInputError(
            f"unknown dataset type {dataset_type!r}; known: {', '.join(DATASET_TYPES)}"
        ) from None


def _detector_of(raft: str, sensor: str) -> int:
    from dpzero.repo import DETECTORS

    for facts in DETECTORS:
        if facts.raft == raft and facts.sensor == sensor:
            return facts.id
    raise InvalidInputError(f"no detector {raft}_{sensor}")
