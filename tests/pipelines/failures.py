"""Injected failures for execution tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lsst.daf.butler import Butler


@contextmanager
def corrupt_raw(repo: Path, *, visit: int, detector: int) -> Iterator[Path]:
    """Truncate one raw file in the datastore (its ISR fails), restored on exit."""
    with Butler.from_config(str(repo)) as butler:
        (ref,) = butler.query_datasets(
            "raw",
            collections="2.2i/raw/all",
            data_id={"instrument": "LSSTCam-imSim", "exposure": visit, "detector": detector},
        )
        path = Path(butler.getURI(ref).ospath)
    backup = path.with_suffix(".good")
    shutil.copyfile(path, backup)
    path.write_bytes(backup.read_bytes()[:5000])
    try:
        yield path
    finally:
        backup.replace(path)
