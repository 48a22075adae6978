"""The instrument class named by the ``instrument`` record, and its default camera.

`LsstCamImSim` is an ``lsst.pipe.base.Instrument``, so ``pipetask`` and
``Instrument.from_string("LSSTCam-imSim", registry)`` find it from the record's
``class_name``. The ``camera`` dataset is a plain description (a dictionary, stored
as YAML): the simulator's ``camera/camera.yaml`` when the legacy release has one,
else the nominal ``LSSTCam-imSim`` description given here.
"""

from __future__ import annotations

from typing import Any

from lsst.daf.butler import Formatter, FormatterV2
from lsst.daf.butler.registry import Registry
from lsst.pipe.base import Instrument

from dpzero.repo.dimensions import (
    BANDS,
    DETECTOR_COLUMNS,
    DETECTOR_ROWS,
    DETECTORS,
    INSTRUMENT,
    physical_filter_of,
)

__all__ = ["LsstCamImSim"]


class LsstCamImSim(Instrument):
    """``LSSTCam-imSim`` as dpzero knows it (there is no obs package).

    Parameters
    ----------
    collection_prefix
        Prefix of the instrument's default collection names; DP0.1's is ``2.2i``.
    """

    def __init__(self, collection_prefix: str | None = "2.2i") -> None:
        super().__init__(collection_prefix=collection_prefix)

    @classmethod
    def getName(cls) -> str:  # noqa: N802 (pipe_base's name)
        """The instrument's name, ``LSSTCam-imSim``."""
        return INSTRUMENT

    def register(self, registry: Registry, *, update: bool = False) -> None:
        """Insert the instrument, physical filter, detector and visit system records."""
        from dpzero.repo.records import instrument_records

        for element, rows in instrument_records().items():
            for row in rows:
                registry.syncDimensionData(element, row, update=update)

    def getRawFormatter(self, dataId: Any) -> type[Formatter | FormatterV2]:  # noqa: N802, N803
        """Raws are read by `dpzero.repo.formatters.RawFormatter`."""
        from dpzero.repo.formatters import RawFormatter

        return RawFormatter

    @staticmethod
    def camera_description() -> dict[str, Any]:
        """Nominal camera: all 189 detectors at full size, 0.2″ pixels, six filters."""
        return {
            "name": INSTRUMENT,
            "pixel_scale_arcsec": 0.2,
            "filters": [{"band": b, "physical_filter": physical_filter_of(b)} for b in BANDS],
            "detectors": [
                {
                    "id": d.id,
                    "name": d.full_name,
                    "raft": d.raft,
                    "sensor": d.sensor,
                    "purpose": "SCIENCE",
                    "bbox": [0, 0, DETECTOR_COLUMNS, DETECTOR_ROWS],
                }
                for d in DETECTORS
            ],
        }
