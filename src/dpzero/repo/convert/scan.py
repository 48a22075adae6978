"""Find the datasets of a legacy release, with the simulator's path rules.

The path rules live once, in `dpzero.sim.images.layout`; this module only walks
them over every rerun of a release folder and notes the files no rule claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpzero.sim.images.layout import DATASET_TYPES, MANIFEST, MAPPER, LegacyLayout

__all__ = ["LegacyFile", "scan_legacy"]

_NOT_INGESTED = frozenset({"skyMap"})  # the sky map is registered from its definition


@dataclass(frozen=True)
class LegacyFile:
    """One dataset file of the legacy release.

    Attributes
    ----------
    path
        Absolute path.
    dataset_type
        Its dataset type.
    fields
        Data id parsed from the path (``visit``, ``band``, ``detector``, ``tract``,
        ``patch`` as ``"x,y"``, ``physical_filter``, ``calib_date``, ``htm7``), sorted.
    rerun
        The rerun holding it, or ``None`` for raws, calibrations, reference
        catalogs and the camera.
    """

    path: Path
    dataset_type: str
    fields: tuple[tuple[str, Any], ...]
    rerun: str | None

    @property
    def values(self) -> dict[str, Any]:
        """`fields` as a dictionary."""
        return dict(self.fields)


def reruns_of(root: Path) -> list[str]:
    """Names of the reruns (folders under ``rerun/``)."""
    folder = root / "rerun"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def scan_legacy(root: Path) -> tuple[list[LegacyFile], list[Path], list[Path]]:
    """Every dataset file under a legacy release folder.

    Returns
    -------
    files, skipped, ignored
        Dataset files (by dataset type, then path); files of the layout that are not
        ingested (the sky map, registered from its definition instead, and the
        release's ``_mapper`` and manifest); files no rule matched.
    """
    files: list[LegacyFile] = []
    skipped: list[Path] = []
    for name, layout in DATASET_TYPES.items():
        in_rerun = "{rerun}" in layout.template
        for rerun in reruns_of(root) if in_rerun else [None]:
            legacy = LegacyLayout(root, rerun) if rerun is not None else LegacyLayout(root)
            for data_id, path in legacy.find(name):
                if name in _NOT_INGESTED:
                    skipped.append(path)
                    continue
                fields = tuple(sorted(data_id.items()))
                files.append(LegacyFile(path.resolve(), name, fields, rerun))
    skipped.extend(p for p in (root / MAPPER, root / MANIFEST) if p.is_file())
    claimed = {f.path for f in files} | {p.resolve() for p in skipped}
    ignored = sorted(p for p in root.rglob("*") if p.is_file() and p.resolve() not in claimed)
    return files, skipped, ignored
