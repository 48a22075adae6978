"""The instrument signature: master calibrations, raw readout and its removal (ISR).

A raw is what the camera writes: per amplifier, the detected electrons (the scene
times the pixel response, plus dark current and cosmic rays, clipped at the full
well) divided by the gain, on top of the amplifier's bias level and fixed bias
pattern, with read noise, laid out in readout order with prescan and overscan
pixels. Instrument signature removal undoes that with the master calibrations:
overscan and bias subtraction, gain, dark and flat correction, saturation and
cosmic-ray masking.

Master calibrations (per detector): ``bias`` (ADU left after overscan subtraction,
a small fixed pattern), ``dark`` (electrons per second, with hot pixels) and one
``flat`` per filter (relative pixel response, mean 1, with vignetting toward the
focal plane's edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from scipy import ndimage

from dpzero.repo import mask_bits
from dpzero.sim.images.camera import (
    FULL_WELL,
    PRESCAN,
    SERIAL_OVERSCAN,
    AmplifierSpec,
    DetectorSpec,
)

__all__ = [
    "CosmicRays",
    "MasterCalibs",
    "assemble_raw",
    "isr",
    "make_calibs",
    "read_out",
]

DARK_CURRENT = 0.02
"""Electrons per second per pixel."""

COSMIC_RAY_RATE = 0.2
"""Cosmic rays per second on a full-size (4072×4000) detector."""

_FULL_DETECTOR_PIXELS = 4072 * 4000

_WELL_DEPTH = 1.05 * FULL_WELL
"""Where a pixel's charge really stops growing: a little above the flagged saturation."""


@dataclass(frozen=True)
class MasterCalibs:
    """Master calibrations of one detector (arrays on the assembled detector frame).

    Attributes
    ----------
    bias
        ADU remaining after overscan subtraction.
    dark
        Dark current, electrons per second.
    flats
        Relative response per band (mean 1).
    """

    bias: NDArray[np.float32]
    dark: NDArray[np.float32]
    flats: dict[str, NDArray[np.float32]]


def make_calibs(
    detector: DetectorSpec, bands: tuple[str, ...], focal_radius: float, seed: int
) -> MasterCalibs:
    """Master calibrations of a detector (noise-free: as averaged from many frames).

    Parameters
    ----------
    detector
        The detector.
    bands
        Bands that need a flat.
    focal_radius
        Focal-plane radius in pixels at which vignetting reaches its full 4 %.
    seed
        Random seed.
    """
    rng = np.random.default_rng([seed, 7_001, detector.id])
    shape = (detector.height, detector.width)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    # Bias: a gentle gradient away from the readout plus faint column structure.
    bias = 0.8 * (y / shape[0]) + rng.normal(0.0, 0.6, shape[1]).astype(np.float32)[None, :]
    bias = bias.astype(np.float32)
    dark = np.full(shape, DARK_CURRENT, dtype=np.float32)
    n_hot = max(2, shape[0] * shape[1] // 20_000)
    hot = rng.integers(0, shape[0] * shape[1], n_hot)
    dark.flat[hot] = rng.uniform(0.5, 20.0, n_hot).astype(np.float32)
    fx = x - (detector.width - 1) / 2 + detector.focal_x
    fy = y - (detector.height - 1) / 2 + detector.focal_y
    r2 = (fx * fx + fy * fy) / max(focal_radius, 1.0) ** 2
    pixel_response = rng.normal(1.0, 0.008, shape).astype(np.float32)
    flats = {}
    for i, band in enumerate(bands):
        depth = 0.04 * (1.0 + 0.1 * i)
        flat = pixel_response * (1.0 - depth * r2) * (1.0 + 0.002 * (i - 2.5))
        flats[band] = (flat / flat.mean()).astype(np.float32)
    return MasterCalibs(bias=bias, dark=dark, flats=flats)


@dataclass(frozen=True)
class CosmicRays:
    """Pixels hit by cosmic rays in an exposure (flat indices and deposited electrons)."""

    index: NDArray[np.int64]
    electrons: NDArray[np.float64]


def _cosmic_rays(
    shape: tuple[int, int], exposure_time: float, rng: np.random.Generator
) -> CosmicRays:
    """Short straight tracks, at least two per exposure."""
    rate = COSMIC_RAY_RATE * exposure_time * shape[0] * shape[1] / _FULL_DETECTOR_PIXELS
    n = max(2, int(rng.poisson(rate)))
    index, electrons = [], []
    for _ in range(n):
        length = int(rng.integers(2, 12))
        angle = rng.uniform(0, np.pi)
        x0 = rng.uniform(0, shape[1])
        y0 = rng.uniform(0, shape[0])
        t = np.arange(length)
        xs = np.clip(np.round(x0 + t * np.cos(angle)), 0, shape[1] - 1).astype(np.int64)
        ys = np.clip(np.round(y0 + t * np.sin(angle)), 0, shape[0] - 1).astype(np.int64)
        flat = np.unique(ys * shape[1] + xs)
        index.append(flat)
        electrons.append(rng.uniform(800.0, 8000.0, flat.size))
    return CosmicRays(np.concatenate(index), np.concatenate(electrons))


def _bleed(electrons: NDArray[np.float64], well: float) -> None:
    """Spill charge above the well depth along its column, half up and half down.

    Saturated stars grow the bleed trails of real CCDs; charge is conserved except
    what runs off the ends of the column.
    """
    rows, cols = np.nonzero(electrons > well)
    for col in np.unique(cols):
        column = electrons[:, col]
        for row in rows[cols == col]:
            excess = column[row] - well
            if excess <= 0:
                continue
            column[row] = well
            for step, share in ((1, 0.5 * excess), (-1, 0.5 * excess)):
                r = row + step
                while share > 0 and 0 <= r < column.size:
                    room = well - column[r]
                    if room > 0:
                        moved = min(room, share)
                        column[r] += moved
                        share -= moved
                    r += step
        electrons[:, col] = column


def _amp_slices(amp: AmplifierSpec) -> tuple[slice, slice]:
    b = amp.data_box
    return slice(b.y0, b.y1), slice(b.x0, b.x1)


def _to_readout(data: NDArray, amp: AmplifierSpec) -> NDArray:
    """Detector-frame amplifier pixels in readout order (and back: it is an involution)."""
    return data[:: -1 if amp.flip_y else 1, :: -1 if amp.flip_x else 1]


def read_out(
    scene: NDArray[np.float64],
    detector: DetectorSpec,
    calibs: MasterCalibs,
    band: str,
    exposure_time: float,
    rng: np.random.Generator,
) -> tuple[list[tuple[AmplifierSpec, NDArray[np.int32]]], CosmicRays]:
    """Raw amplifier images of a scene.

    Parameters
    ----------
    scene
        Expected electrons per pixel from the sky and the sources (detector frame).
    detector
        The detector.
    calibs
        Its master calibrations (the true bias, dark and response).
    band
        Band of the exposure (chooses the response).
    exposure_time
        Seconds (dark current).
    rng
        Random generator for photon, dark and read noise and cosmic rays.

    Returns
    -------
    list of (AmplifierSpec, numpy.ndarray), CosmicRays
        Each amplifier's raw int32 image in readout order, and the cosmic rays added.
    """
    expected = np.clip(scene, 0.0, None) * calibs.flats[band]
    expected = expected + calibs.dark * exposure_time
    electrons = rng.poisson(expected).astype(np.float64)
    rays = _cosmic_rays(scene.shape, exposure_time, rng)
    electrons.flat[rays.index] += rays.electrons
    _bleed(electrons, _WELL_DEPTH)
    amps = []
    for amp in detector.amplifiers:
        rows, cols = _amp_slices(amp)
        data = electrons[rows, cols] / amp.gain + calibs.bias[rows, cols]
        raw = rng.normal(amp.bias_level, amp.read_noise, amp.raw_shape)
        raw[: amp.data_box.height, PRESCAN : PRESCAN + amp.data_box.width] += _to_readout(data, amp)
        amps.append((amp, np.round(raw).astype(np.int32)))
    return amps, rays


def assemble_raw(
    hdus: fits.HDUList | list[fits.ImageHDU], detector: DetectorSpec
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Overscan-subtracted ADU on the detector frame from a raw file's amplifier HDUs.

    Returns
    -------
    numpy.ndarray, numpy.ndarray
        The image in ADU above bias, and where pixels reached saturation.
    """
    image = np.zeros((detector.height, detector.width), dtype=np.float64)
    saturated = np.zeros(image.shape, dtype=bool)
    by_name = {hdu.header.get("EXTNAME", "").upper(): hdu for hdu in hdus}
    for amp in detector.amplifiers:
        hdu = by_name[amp.segment.upper()]
        raw = np.asarray(hdu.data, dtype=np.float64)
        height, width = amp.data_box.height, amp.data_box.width
        # Skip the first overscan columns, where charge left behind would bias the level.
        overscan = raw[:height, PRESCAN + width + 2 : PRESCAN + width + SERIAL_OVERSCAN]
        level = np.median(overscan, axis=1)
        data = raw[:height, PRESCAN : PRESCAN + width] - level[:, None]
        rows, cols = _amp_slices(amp)
        image[rows, cols] = _to_readout(data, amp)
        saturated[rows, cols] = _to_readout(data >= float(hdu.header["SATURATE"]), amp)
    return image, saturated


def isr(
    adu: NDArray[np.float64],
    saturated: NDArray[np.bool_],
    detector: DetectorSpec,
    calibs: MasterCalibs,
    band: str,
    exposure_time: float,
    rays: CosmicRays,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int32]]:
    """Instrument signature removal of an assembled raw.

    Cosmic rays are taken as found (their pixels are given); they are masked and
    interpolated over from their neighbours, as the processing's repair step does.

    Returns
    -------
    image, variance, mask
        Electrons per pixel (sky included), their variance, and mask bits.
    """
    gain = detector.amplifiers[0].gain
    read_noise_e = detector.amplifiers[0].read_noise * gain
    flat = calibs.flats[band]
    electrons = (adu - calibs.bias) * gain - calibs.dark * exposure_time
    image = electrons / flat
    variance = (np.clip(electrons, 0.0, None) + read_noise_e**2) / flat**2
    mask = np.zeros(image.shape, dtype=np.int32)
    sat = ndimage.binary_dilation(saturated, iterations=1)
    mask[sat] |= mask_bits("SAT")
    cr = np.zeros(image.shape, dtype=bool)
    cr.flat[rays.index] = True
    cr &= ~saturated
    if cr.any():
        grown = ndimage.binary_dilation(cr, iterations=1)
        good = np.where(grown, np.nan, image)
        # Median of the 5×5 neighbourhood of clean pixels replaces the hit ones.
        for r, c in zip(*np.nonzero(cr), strict=True):
            window = good[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3]
            finite = window[np.isfinite(window)]
            if finite.size:
                image[r, c] = float(np.median(finite))
        mask[cr] |= mask_bits("CR", "INTRP")
    return image, variance, mask
