"""The truth universe of a survey size, in memory (for tiny and small surveys)."""

from __future__ import annotations

import pyarrow as pa

from dpzero.sim.survey import survey_region
from dpzero.sim.universe import TRUTH_SCHEMA, patches_in_region, simulate_truth

__all__ = ["load_truth"]


def load_truth(size: str, seed: int) -> pa.Table:
    """Every truth source of the ``size`` survey for ``seed`` (the same as the catalogs').

    Memory grows with the area: about 1 M rows per deg² (use it for tiny and small).
    """
    region = survey_region(size)
    tables = [simulate_truth(cell, region, seed) for cell in patches_in_region(region)]
    return pa.concat_tables(tables) if tables else TRUTH_SCHEMA.empty_table()
