"""The DC2-like simulated survey: sky map, truth universe and the DP0.1 catalogs."""

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
