"""The reference catalog: bright stars of the truth, sharded by HTM level-7 triangle.

Like DC2's simulated ``cal_ref_cat``, it holds the truth's stars brighter than
r = 22 with their true positions and fluxes (tiny, realistic errors), in the LSST
reference-catalog format: ``coord_ra``/``coord_dec`` in radians, ``<band>_flux``
and ``<band>_fluxErr`` in nJy, one Parquet file per HTM level-7 triangle named by the
triangle's index.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from dpzero.sim.images.camera import BANDS

__all__ = ["HTM_LEVEL", "REFCAT_MAG_LIMIT", "htm_index", "reference_catalog"]

HTM_LEVEL = 7
"""HTM level of the shards."""

REFCAT_MAG_LIMIT = 22.0
"""Stars brighter than this in r are in the reference catalog."""

_EPOCH_MJD = 60_000.0


def htm_index(ra: NDArray[np.float64], dec: NDArray[np.float64]) -> NDArray[np.int64]:
    """HTM level-7 triangle index of each position (degrees)."""
    from lsst.sphgeom import HtmPixelization, LonLat, UnitVector3d

    pixelization = HtmPixelization(HTM_LEVEL)
    return np.array(
        [
            pixelization.index(UnitVector3d(LonLat.fromDegrees(float(a), float(d))))
            for a, d in zip(ra, dec, strict=True)
        ],
        dtype=np.int64,
    )


def reference_catalog(truth: pa.Table) -> dict[int, pa.Table]:
    """Reference-catalog shards from the truth's bright stars.

    Returns
    -------
    dict of int to pyarrow.Table
        HTM level-7 index → shard (rows sorted by id).
    """
    kind = truth.column("truth_type").to_numpy(zero_copy_only=False)
    flux_r = truth.column("flux_r").to_numpy(zero_copy_only=False).astype(np.float64)
    limit = 10.0 ** (-0.4 * (REFCAT_MAG_LIMIT - 31.4))
    stars = truth.filter(pa.array((kind == 2) & (flux_r >= limit)))
    order = np.argsort(stars.column("id").to_numpy(zero_copy_only=False), kind="stable")
    stars = stars.take(pa.array(order))
    n = stars.num_rows
    ra = stars.column("ra").to_numpy(zero_copy_only=False)
    dec = stars.column("dec").to_numpy(zero_copy_only=False)
    pos_err = math.radians(0.005 / 3600.0)
    columns: dict[str, NDArray] = {
        "id": stars.column("id").to_numpy(zero_copy_only=False).astype(np.int64),
        "coord_ra": np.radians(ra),
        "coord_dec": np.radians(dec),
        "coord_raErr": np.full(n, pos_err, dtype=np.float32),
        "coord_decErr": np.full(n, pos_err, dtype=np.float32),
    }
    for band in BANDS:
        flux = stars.column(f"flux_{band}").to_numpy(zero_copy_only=False).astype(np.float64)
        columns[f"{band}_flux"] = flux
        columns[f"{band}_fluxErr"] = np.abs(flux) * 0.005
    variable = stars.column("is_variable").to_numpy(zero_copy_only=False) == 1
    columns["resolved"] = np.zeros(n, dtype=bool)
    columns["variable"] = variable
    columns["photometric"] = ~variable
    columns["epoch"] = np.full(n, _EPOCH_MJD)
    table = pa.table(columns)
    shard = htm_index(ra, dec)
    return {int(h): table.filter(pa.array(shard == h)) for h in np.unique(shard)}
