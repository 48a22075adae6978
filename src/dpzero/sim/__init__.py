"""The DC2-like simulated survey: sky map, truth universe and the DP0.1 catalogs.

Names are imported on first use: ``dpzero.sim.images`` needs the sky map and the
truth, not the catalog writer and its Felis schemas (a second of start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpzero.sim.catalogs import CATALOG_TABLES, CatalogManifest, simulate_catalogs
    from dpzero.sim.skymap import DC2_SKYMAP, RingsSkyMap
    from dpzero.sim.survey import BANDS, SurveyRegion, survey_region
    from dpzero.sim.truth import load_truth

__all__ = [
    "BANDS",
    "CATALOG_TABLES",
    "DC2_SKYMAP",
    "CatalogManifest",
    "RingsSkyMap",
    "SurveyRegion",
    "load_truth",
    "simulate_catalogs",
    "survey_region",
]

_MODULES = {
    "BANDS": "dpzero.sim.survey",
    "CATALOG_TABLES": "dpzero.sim.catalogs",
    "DC2_SKYMAP": "dpzero.sim.skymap",
    "CatalogManifest": "dpzero.sim.catalogs",
    "RingsSkyMap": "dpzero.sim.skymap",
    "SurveyRegion": "dpzero.sim.survey",
    "load_truth": "dpzero.sim.truth",
    "simulate_catalogs": "dpzero.sim.catalogs",
    "survey_region": "dpzero.sim.survey",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'dpzero.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
