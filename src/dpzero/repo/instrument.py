"""The instrument class named by the ``instrument`` record, and its default camera.

The ``camera`` dataset is a plain description (a dictionary, stored as YAML): the
simulator's ``camera/camera.yaml`` when the legacy release has one, else the
nominal ``LSSTCam-imSim`` description given here.
"""

from __future__ import annotations

from typing import Any

from dpzero.repo.dimensions import (
    BANDS,
    DETECTOR_COLUMNS,
    DETECTOR_ROWS,
    DETECTORS,
    INSTRUMENT,
    physical_filter_of,
)

__all__ = ["LsstCamImSim"]


class LsstCamImSim:
    """``LSSTCam-imSim`` as dpzero knows it (there is no obs package)."""

    name = INSTRUMENT

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
