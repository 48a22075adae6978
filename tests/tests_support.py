"""Helpers shared by tests: brute-force reference computations."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def angular_separation_deg(
    ra: ArrayLike, dec: ArrayLike, ra0: float, dec0: float
) -> NDArray[np.float64]:
    """Great-circle distance (degrees) by the haversine formula."""
    r1, d1 = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    r0, d0 = np.radians(ra0), np.radians(dec0)
    h = np.sin((d1 - d0) / 2) ** 2 + np.cos(d1) * np.cos(d0) * np.sin((r1 - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))
