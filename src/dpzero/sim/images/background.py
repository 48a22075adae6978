"""Background models: a coarse mesh of sky levels, interpolated to every pixel.

This is what ``calexpBackground``, ``skyCorr`` and ``deepCoadd_calexp_background``
hold: the sigma-clipped median of the image in square cells, stored as a small
image, and evaluated at full resolution by bilinear interpolation between cell
centres. On disk a background is a FITS file whose primary HDU is the mesh, with
the cell size and the full image size in its header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray

__all__ = ["Background", "estimate_background"]


@dataclass(frozen=True)
class Background:
    """A background model on a mesh.

    Attributes
    ----------
    mesh
        Background level at the centre of each cell (rows, columns of cells).
    bin_size
        Pixels per cell side.
    width, height
        Size of the image the model covers.
    """

    mesh: NDArray[np.float32]
    bin_size: int
    width: int
    height: int

    def image(self) -> NDArray[np.float64]:
        """The model evaluated at every pixel (bilinear between cell centres)."""
        rows, cols = self.mesh.shape
        mesh = self.mesh.astype(np.float64)
        y0, y1, wy = _bilinear_weights(self.height, rows, self.bin_size)
        x0, x1, wx = _bilinear_weights(self.width, cols, self.bin_size)
        along_x = mesh[:, x0] * (1.0 - wx) + mesh[:, x1] * wx
        return along_x[y0, :] * (1.0 - wy)[:, None] + along_x[y1, :] * wy[:, None]

    def write_fits(self, path: str | os.PathLike[str]) -> None:
        """Write the model as a FITS file."""
        hdu = fits.PrimaryHDU(self.mesh.astype(np.float32))
        hdu.header["BKGBIN"] = (self.bin_size, "pixels per mesh cell side")
        hdu.header["BKGNX"] = (self.width, "columns of the modelled image")
        hdu.header["BKGNY"] = (self.height, "rows of the modelled image")
        hdu.header["BKGINTRP"] = ("BILINEAR", "interpolation between cell centres")
        hdu.writeto(path, output_verify="ignore")  # four cards written just above

    @classmethod
    def read_fits(cls, path: str | os.PathLike[str]) -> Background:
        """Read a model written by `write_fits`."""
        with fits.open(path) as hdul:
            header = hdul[0].header
            return cls(
                mesh=np.asarray(hdul[0].data, dtype=np.float32),
                bin_size=int(header["BKGBIN"]),
                width=int(header["BKGNX"]),
                height=int(header["BKGNY"]),
            )


def _bilinear_weights(
    n: int, cells: int, bin_size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Neighbouring cell indices and weight of the upper one for each of ``n`` pixels."""
    # Cell k is centred on pixel (k + 0.5) bin − 0.5; beyond the outer centres, hold.
    t = np.clip((np.arange(n) + 0.5) / bin_size - 0.5, 0.0, cells - 1)
    lower = np.floor(t).astype(np.int64)
    upper = np.minimum(lower + 1, cells - 1)
    return lower, upper, t - lower


def estimate_background(
    image: NDArray[np.float64], bin_size: int, bad: NDArray[np.bool_] | None = None
) -> Background:
    """Sigma-clipped median sky level per cell (sources and ``bad`` pixels ignored).

    Parameters
    ----------
    image
        The image.
    bin_size
        Cell side in pixels; the last row and column of cells may be partly outside.
    bad
        Pixels to leave out (saturated, no data).
    """
    height, width = image.shape
    rows = -(-height // bin_size)
    cols = -(-width // bin_size)
    # Cells of equal size by padding with NaN to a whole number of cells. Single
    # precision (7 digits) is ample for a sky level and halves the sorting's cost.
    cell_h = cell_w = bin_size
    padded = np.full((rows * cell_h, cols * cell_w), np.nan, dtype=np.float32)
    values = padded[:height, :width]
    values[...] = image
    if bad is not None:
        values[bad] = np.nan
    cells = padded.reshape(rows, cell_h, cols, cell_w).transpose(0, 2, 1, 3)
    cells = cells.reshape(rows, cols, cell_h * cell_w)
    # A few thousand pixels per cell pin the sky level down well enough; more just costs.
    stride = max(1, cells.shape[-1] // 8192)
    cells = cells[..., ::stride]
    mesh = _clipped_median(cells)
    if np.isnan(mesh).any():
        fill = np.nanmedian(mesh) if np.isfinite(mesh).any() else 0.0
        mesh = np.where(np.isnan(mesh), fill, mesh)
    return Background(mesh=mesh.astype(np.float32), bin_size=bin_size, width=width, height=height)


def _nanmedian(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median along the last axis ignoring NaN (NaN where a row has no value)."""
    ordered = np.sort(values, axis=-1)  # NaN sort last
    count = np.sum(~np.isnan(values), axis=-1, keepdims=True)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0), axis=-1)
    hi = np.take_along_axis(ordered, np.maximum(count // 2, 0), axis=-1)
    median = 0.5 * (lo + hi)
    return np.where(count > 0, median, np.nan)


def _clipped_median(cells: NDArray[np.float64]) -> NDArray[np.float64]:
    """3σ-clipped median along the last axis (NaN ignored), three iterations."""
    keep = cells
    for _ in range(3):
        med = _nanmedian(keep)
        with np.errstate(invalid="ignore"):
            mad = 1.4826 * _nanmedian(np.abs(keep - med))
            keep = np.where(np.abs(keep - med) < 3.0 * np.maximum(mad, 1e-12), keep, np.nan)
    return _nanmedian(keep)[..., 0]
