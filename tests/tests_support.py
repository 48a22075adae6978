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


def points_near(
    ra: float, dec: float, radius: float, n: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points scattered uniformly within ``radius`` degrees of a position (any dec)."""
    from dpzero.adql._geometry import unit_vectors

    centre = unit_vectors(ra, dec)
    axis = np.cross(centre, [0.0, 0.0, 1.0] if abs(dec) < 89 else [1.0, 0.0, 0.0])
    axis /= np.linalg.norm(axis)
    other = np.cross(centre, axis)
    rho = np.radians(radius) * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    v = np.cos(rho)[:, None] * centre + np.sin(rho)[:, None] * (
        np.cos(phi)[:, None] * axis + np.sin(phi)[:, None] * other
    )
    return np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360, np.degrees(np.arcsin(v[:, 2]))
