"""Detection, merge, deblending, measurement and forced photometry on a patch's coadds.

The chain of Rubin's DRP step3 after coaddition, one task each:

- ``detection`` (`DetectCoaddTask`, per band): `sep.extract` with the PSF as matched
  filter above ``detectionThreshold`` σ (a PSF S/N) → ``deepCoadd_det``;
- ``mergeDetections`` (`MergeDetectionsTask`, per patch): the bands' peaks merged
  within ``mergeRadius`` pixels, bands in priority order i, r, z, y, g, u →
  ``deepCoadd_mergeDet`` (``merge_peak_<band>`` flags);
- ``deblend`` (`DeblendCoaddTask`, per patch): on the patch's significance image
  (per pixel the highest of the bands' PSF-matched S/N, so a footprint is the union
  of the bands' own footprints), footprints (parents) from `sep.extract` without
  deblending, split into children by sep's multi-threshold deblending; parents
  holding no merged peak are dropped. A parent with one child is an isolated object
  (``parentObjectId`` 0, ``deblend_nChild`` 0); otherwise the parent gets a row with
  ``deblend_nChild`` children whose ``parentObjectId`` is its id, as in Rubin's Object
  table →
  ``deepCoadd_deblendedCatalog`` and ``deepCoadd_deblendedFootprints`` (parent and
  child labels on the patch's common frame). Ids are DP0.2's
  ``((tract·49 + patch) << 43) + n``;
- ``measure`` (`MeasureCoaddTask`, per band): windowed centroid, PSF flux fitted
  with neighbours (photutils), aperture fluxes with the other children masked,
  blendedness, extendedness → ``deepCoadd_meas``;
- ``mergeMeasurements`` (`MergeMeasurementsTask`, per patch): the reference band of
  each object (the first band in priority order where its PSF S/N passes
  ``minSnr``) and its position there → ``deepCoadd_ref``;
- ``forcedPhotCoadd`` (`ForcedPhotCoaddTask`, per band): the same measurements at
  the reference positions → ``deepCoadd_forced_src``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.table import Table
from lsst.pex.config import Field
from lsst.pipe.base import (
    NoWorkFound,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)
from lsst.pipe.base import connectionTypes as cT
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from dpzero.pipelines.tasks.coadd_sources import (
    BAND_PRIORITY,
    BandImage,
    band_image,
    detect,
    matched_kernel,
    measure_band,
    union_box,
)
from dpzero.repo.exposure import Box, Exposure, Psf
from dpzero.sim.skymap import RingsSkyMap

__all__ = [
    "DeblendCoaddTask",
    "DetectCoaddTask",
    "ForcedPhotCoaddTask",
    "MeasureCoaddTask",
    "MergeDetectionsTask",
    "MergeMeasurementsTask",
    "object_id",
]

_PATCH = ("tract", "patch", "skymap")
_BAND = ("tract", "patch", "skymap", "band")


def object_id(tract: int, patch: int, n: NDArray) -> NDArray[np.int64]:
    """DP0.2 object ids: ``((tract·49 + patch) << 43) + n``."""
    return (np.int64(tract * 49 + patch) << np.int64(43)) + np.asarray(n, np.int64)


def _inner_flags(
    sky_map: RingsSkyMap, tract: int, patch: int, x: NDArray, y: NDArray
) -> tuple[NDArray, NDArray]:
    """``detect_isPatchInner`` and ``detect_isTractInner`` of tract-frame positions."""
    inner = sky_map.patch_inner
    n_side = sky_map.patches_per_side
    px, py = patch % n_side, patch // n_side
    patch_inner = (
        (x >= px * inner - 0.5)
        & (x < (px + 1) * inner - 0.5)
        & (y >= py * inner - 0.5)
        & (y < (py + 1) * inner - 0.5)
    )
    ra, dec = sky_map.pixel_to_sky(tract, x, y)
    tract_inner = np.asarray(sky_map.find_tract(ra, dec)) == tract
    return patch_inner, tract_inner


def _by_band(handles: list[Any], refs: list[Any]) -> dict[str, Any]:
    return {str(ref.dataId["band"]): h for h, ref in zip(handles, refs, strict=True)}


# --------------------------------------------------------------------------- detection


class DetectCoaddConnections(PipelineTaskConnections, dimensions=_BAND):
    """Input and output of `DetectCoaddTask`."""

    coadd = cT.Input(
        name="deepCoadd", doc="The coadd, nJy.", storageClass="DpzeroExposure", dimensions=_BAND
    )
    sky_map = cT.Input(
        name="skyMap", doc="The sky map.", storageClass="DpzeroSkyMap", dimensions=("skymap",)
    )
    detections = cT.Output(
        name="deepCoadd_det",
        doc="Peaks detected on the coadd.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
    )


class DetectCoaddConfig(PipelineTaskConfig, pipelineConnections=DetectCoaddConnections):
    """Configuration of `DetectCoaddTask`."""

    detectionThreshold = Field[float](doc="Threshold, PSF S/N.", default=5.0)  # noqa: N815
    minArea = Field[int](doc="Least pixels of a detection.", default=5)  # noqa: N815


class DetectCoaddTask(PipelineTask):
    """Detect peaks on one band's coadd of a patch."""

    ConfigClass = DetectCoaddConfig
    _DefaultName = "detection"
    config: DetectCoaddConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read, run for the quantum's tract, write."""
        inputs = butlerQC.get(inputRefs)
        tract = int(butlerQC.quantum.dataId["tract"])
        butlerQC.put(self.run(inputs["coadd"], inputs["sky_map"], tract), outputRefs)

    def run(self, coadd: Exposure, sky_map: RingsSkyMap, tract: int) -> Struct:
        """Detect.

        Returns
        -------
        lsst.pipe.base.Struct
            ``detections``: ``x``, ``y`` (tract pixels), ``coord_ra``, ``coord_dec``,
            ``npix``, ``flux`` (nJy, isophotal).

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If nothing is detected.
        """
        band = band_image(coadd, coadd.bbox)
        objects, _ = detect(
            band, self.config.detectionThreshold, self.config.minArea, deblend_cont=0.005
        )
        if len(objects) == 0:
            raise NoWorkFound("nothing detected on the coadd")
        x = objects["x"] + coadd.bbox.x0
        y = objects["y"] + coadd.bbox.y0
        ra, dec = sky_map.pixel_to_sky(tract, x, y)
        self.log.info("%d peaks detected", len(objects))
        table = Table(
            {
                "id": np.arange(1, len(objects) + 1, dtype=np.int64),
                "x": x,
                "y": y,
                "coord_ra": ra,
                "coord_dec": dec,
                "npix": objects["npix"],
                "flux": objects["flux"],
            }
        )
        return Struct(detections=table)


# ------------------------------------------------------------------------------- merge


class MergeDetectionsConnections(PipelineTaskConnections, dimensions=_PATCH):
    """Inputs and output of `MergeDetectionsTask`."""

    detections = cT.Input(
        name="deepCoadd_det",
        doc="Each band's peaks.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
        multiple=True,
    )
    merged = cT.Output(
        name="deepCoadd_mergeDet",
        doc="Peaks merged across bands.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )


class MergeDetectionsConfig(PipelineTaskConfig, pipelineConnections=MergeDetectionsConnections):
    """Configuration of `MergeDetectionsTask`."""

    mergeRadius = Field[float](doc="Peaks closer than this (pixels) are one.", default=2.0)  # noqa: N815


class MergeDetectionsTask(PipelineTask):
    """Merge the bands' peaks into one list."""

    ConfigClass = MergeDetectionsConfig
    _DefaultName = "mergeDetections"
    config: MergeDetectionsConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read every band's detections, merge, write."""
        inputs = butlerQC.get(inputRefs)
        butlerQC.put(self.run(_by_band(inputs["detections"], inputRefs.detections)), outputRefs)

    def run(self, detections: dict[str, Table]) -> Struct:
        """Merge: each band's peaks join the nearest merged peak within the radius.

        Returns
        -------
        lsst.pipe.base.Struct
            ``merged``: ``x``, ``y``, ``coord_ra``, ``coord_dec``, ``merge_peak_<band>``.
        """
        bands = sorted(detections, key=_priority)
        xs: list[float] = []
        ys: list[float] = []
        ras: list[float] = []
        decs: list[float] = []
        seen: dict[str, list[bool]] = {b: [] for b in bands}
        for band in bands:
            det = detections[band]
            x, y = np.asarray(det["x"], float), np.asarray(det["y"], float)
            joined = np.full(len(det), -1)
            if xs and len(det):
                tree = cKDTree(np.column_stack([xs, ys]))
                dist, idx = tree.query(
                    np.column_stack([x, y]), distance_upper_bound=self.config.mergeRadius
                )
                joined = np.where(np.isfinite(dist), idx, -1)
            for b in bands:
                seen[b].extend([False] * int((joined < 0).sum()))
            for i in np.nonzero(joined >= 0)[0]:
                seen[band][joined[i]] = True
            new = joined < 0
            start = len(xs)
            xs.extend(x[new])
            ys.extend(y[new])
            ras.extend(np.asarray(det["coord_ra"])[new])
            decs.extend(np.asarray(det["coord_dec"])[new])
            for k in range(start, len(xs)):
                seen[band][k] = True
        merged = Table(
            {
                "id": np.arange(1, len(xs) + 1, dtype=np.int64),
                "x": np.array(xs),
                "y": np.array(ys),
                "coord_ra": np.array(ras),
                "coord_dec": np.array(decs),
                **{f"merge_peak_{b}": np.array(seen[b], bool) for b in bands},
            }
        )
        self.log.info("%d peaks from %d bands", len(merged), len(bands))
        return Struct(merged=merged)


def _priority(band: str) -> int:
    return BAND_PRIORITY.index(band) if band in BAND_PRIORITY else len(BAND_PRIORITY)


# ----------------------------------------------------------------------------- deblend


class DeblendCoaddConnections(PipelineTaskConnections, dimensions=_PATCH):
    """Inputs and outputs of `DeblendCoaddTask`."""

    coadds = cT.Input(
        name="deepCoadd",
        doc="The patch's coadds, every band.",
        storageClass="DpzeroExposure",
        dimensions=_BAND,
        multiple=True,
    )
    merged = cT.Input(
        name="deepCoadd_mergeDet",
        doc="Merged peaks.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )
    sky_map = cT.Input(
        name="skyMap", doc="The sky map.", storageClass="DpzeroSkyMap", dimensions=("skymap",)
    )
    catalog = cT.Output(
        name="deepCoadd_deblendedCatalog",
        doc="Parents and their deblended children.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )
    footprints = cT.Output(
        name="deepCoadd_deblendedFootprints",
        doc="Parent and child labels on the patch's common frame (2 planes).",
        storageClass="DpzeroImage",
        dimensions=_PATCH,
    )


class DeblendCoaddConfig(PipelineTaskConfig, pipelineConnections=DeblendCoaddConnections):
    """Configuration of `DeblendCoaddTask`."""

    detectionThreshold = Field[float](doc="Footprint threshold, PSF S/N.", default=5.0)  # noqa: N815
    minArea = Field[int](doc="Least pixels of a footprint.", default=5)  # noqa: N815
    deblendContrast = Field[float](  # noqa: N815
        doc="Least flux fraction of a child (sep deblend_cont).", default=0.005
    )


class DeblendCoaddTask(PipelineTask):
    """Footprints on the bands' significance image, split into children."""

    ConfigClass = DeblendCoaddConfig
    _DefaultName = "deblend"
    config: DeblendCoaddConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the bands' coadds and merged peaks, deblend, write."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        result = self.run(
            _by_band(inputs["coadds"], inputRefs.coadds),
            inputs["merged"],
            inputs["sky_map"],
            int(data_id["tract"]),
            int(data_id["patch"]),
        )
        butlerQC.put(result, outputRefs)

    def run(
        self,
        coadds: dict[str, Exposure],
        merged: Table,
        sky_map: RingsSkyMap,
        tract: int,
        patch: int,
    ) -> Struct:
        """Deblend.

        Returns
        -------
        lsst.pipe.base.Struct
            ``catalog`` (one row per parent with children and per child or isolated
            object) and ``footprints`` (int32, ``(2, rows, cols)`` starting at the
            catalog's ``frame_x0``, ``frame_y0``).

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If no footprint holds a merged peak.
        """
        cfg = self.config
        box = union_box(list(coadds.values()))
        bands = [band_image(c, box) for c in coadds.values()]
        significance = _significance_image(bands)
        parents, parent_seg = detect(
            significance, cfg.detectionThreshold, cfg.minArea, matched_filter=False
        )
        leaves, leaf_seg = detect(
            significance,
            cfg.detectionThreshold,
            cfg.minArea,
            deblend_cont=cfg.deblendContrast,
            matched_filter=False,
        )
        # Shapes from the light itself, not from the PSF-smoothed significance.
        mean = _mean_image(bands).image
        parents = _with_moments(parents, parent_seg, mean)
        leaves = _with_moments(leaves, leaf_seg, mean)
        # Each child's parent: the parent label under its pixels (they nest, as both
        # passes share the threshold and cleaning is off).
        on = leaf_seg > 0
        leaf_parent = np.zeros(len(leaves) + 1, np.int64)
        leaf_parent[leaf_seg[on]] = parent_seg[on]
        # Parents holding a merged peak.
        mx = np.round(np.asarray(merged["x"], float) - box.x0).astype(int)
        my = np.round(np.asarray(merged["y"], float) - box.y0).astype(int)
        inside = (mx >= 0) & (my >= 0) & (mx < box.width) & (my < box.height)
        kept = np.zeros(len(parents) + 1, bool)
        kept[parent_seg[my[inside], mx[inside]]] = True
        kept[0] = False
        area_parent = np.bincount(parent_seg.ravel(), minlength=len(parents) + 1)
        area_leaf = np.bincount(leaf_seg.ravel(), minlength=len(leaves) + 1)
        children_of: dict[int, list[int]] = {}
        for label in range(1, len(leaves) + 1):
            p = int(leaf_parent[label])
            if p and kept[p]:
                children_of.setdefault(p, []).append(label)
        rows: dict[str, list] = {
            k: []
            for k in (
                "n", "parent_n", "deblend_nChild", "footprint", "parent_footprint",
                "x", "y", "shape_xx", "shape_yy", "shape_xy", "footprintArea",
            )
        }  # fmt: skip
        n = 0
        for p in sorted(children_of):
            labels = children_of[p]
            parent_n = 0
            if len(labels) > 1:
                n += 1
                parent_n = n
                src = parents[p - 1]
                _append(rows, n, 0, len(labels), 0, p, src, int(area_parent[p]))
            for label in labels:
                n += 1
                _append(rows, n, parent_n, 0, label, p, leaves[label - 1], int(area_leaf[label]))
        if n == 0:
            raise NoWorkFound("no footprint holds a merged peak")
        x = np.array(rows["x"]) + box.x0
        y = np.array(rows["y"]) + box.y0
        ra, dec = sky_map.pixel_to_sky(tract, x, y)
        patch_inner, tract_inner = _inner_flags(sky_map, tract, patch, x, y)
        n_child = np.array(rows["deblend_nChild"], np.int32)
        parent_id = np.where(
            np.array(rows["parent_n"]) > 0, object_id(tract, patch, np.array(rows["parent_n"])), 0
        )
        catalog = Table(
            {
                "id": object_id(tract, patch, np.array(rows["n"])),
                "parentObjectId": parent_id.astype(np.int64),
                "deblend_nChild": n_child,
                "footprint": np.array(rows["footprint"], np.int32),
                "parent_footprint": np.array(rows["parent_footprint"], np.int32),
                "x": x,
                "y": y,
                "coord_ra": ra,
                "coord_dec": dec,
                "footprintArea": np.array(rows["footprintArea"], np.int32),
                "shape_xx": np.array(rows["shape_xx"]),
                "shape_yy": np.array(rows["shape_yy"]),
                "shape_xy": np.array(rows["shape_xy"]),
                "detect_isPatchInner": patch_inner,
                "detect_isTractInner": tract_inner,
                "detect_isPrimary": patch_inner & tract_inner & (n_child == 0),
            }
        )
        # The footprints' origin (Butler's Parquet keeps no table metadata).
        catalog["frame_x0"] = np.full(len(catalog), box.x0, np.int64)
        catalog["frame_y0"] = np.full(len(catalog), box.y0, np.int64)
        footprints = np.stack([parent_seg, leaf_seg]).astype(np.int32)
        self.log.info(
            "%d parents, %d blended into %d children, %d isolated",
            len(children_of), int((n_child > 0).sum()),
            int((parent_id != 0).sum()), int(((n_child == 0) & (parent_id == 0)).sum()),
        )  # fmt: skip
        return Struct(catalog=catalog, footprints=footprints)


def _append(
    rows: dict[str, list], n: int, parent_n: int, n_child: int, label: int, parent: int,
    src: Any, area: int,
) -> None:  # fmt: skip
    rows["n"].append(n)
    rows["parent_n"].append(parent_n)
    rows["deblend_nChild"].append(n_child)
    rows["footprint"].append(label)
    rows["parent_footprint"].append(parent)
    rows["x"].append(float(src["x"]))
    rows["y"].append(float(src["y"]))
    rows["shape_xx"].append(float(src["x2"]))
    rows["shape_yy"].append(float(src["y2"]))
    rows["shape_xy"].append(float(src["xy"]))
    rows["footprintArea"].append(area)


def _significance_image(bands: list[BandImage]) -> BandImage:
    """Per pixel, the highest of the bands' matched-filter S/N (err 1).

    Above a threshold it is the union of the footprints each band's own detection
    finds at that threshold (`DetectCoaddTask`), so an object seen in one band only (a
    red star in i) keeps its footprint; an inverse-variance mean of the bands would
    dilute it with the other bands' noise.
    """
    from scipy import ndimage

    best = np.full(bands[0].image.shape, -np.inf)
    for band in bands:
        kernel = matched_kernel(band.psf).astype(np.float64)
        weight = np.where(band.bad, 0.0, 1.0 / band.err**2)
        signal = ndimage.correlate(band.image * weight, kernel, mode="constant")
        noise = np.sqrt(ndimage.correlate(weight, kernel**2, mode="constant"))
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = np.where(noise > 0, signal / noise, -np.inf)
        best = np.maximum(best, snr)
    bad = ~np.isfinite(best)
    return BandImage(
        np.ascontiguousarray(np.where(bad, 0.0, best)),
        np.ones(best.shape),
        bad,
        bands[0].psf,
        bands[0].box,
    )


def _mean_image(bands: list[BandImage]) -> BandImage:
    """Inverse-variance weighted mean of the bands, with its noise and a mean PSF."""
    weights = [np.where(b.bad, 0.0, 1.0 / b.err**2) for b in bands]
    total = np.sum(weights, axis=0)
    image = np.sum([w * b.image for w, b in zip(weights, bands, strict=True)], axis=0)
    bad = total <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(bad, 0.0, image / total)
        err = np.where(bad, 1e30, 1.0 / np.sqrt(total))
    fwhm = float(np.mean([b.psf.fwhm for b in bands]))
    return BandImage(
        np.ascontiguousarray(image),
        np.ascontiguousarray(err),
        bad,
        Psf.gaussian(fwhm),
        bands[0].box,
    )


def _with_moments(objects: NDArray, segmap: NDArray[np.int32], image: NDArray) -> NDArray:
    """``objects`` with ``x2``, ``y2``, ``xy``: second moments of ``image``'s positive
    light on each object's segment, about the segment's light-weighted centre."""
    from scipy import ndimage

    out = objects.copy()
    if len(out) == 0:
        return out
    labels = np.arange(1, len(out) + 1)
    light = np.clip(image, 0.0, None)
    yy, xx = np.indices(image.shape, dtype=np.float64)
    total = ndimage.sum_labels(light, segmap, labels)
    ok = total > 0
    safe = np.where(ok, total, 1.0)

    def mean(values: NDArray) -> NDArray:
        return ndimage.sum_labels(light * values, segmap, labels) / safe

    cx, cy = mean(xx), mean(yy)
    x2 = mean(xx**2) - cx**2
    y2 = mean(yy**2) - cy**2
    xy = mean(xx * yy) - cx * cy
    out["x2"] = np.where(ok, x2, out["x2"])
    out["y2"] = np.where(ok, y2, out["y2"])
    out["xy"] = np.where(ok, xy, out["xy"])
    return out


def _footprint_box(catalog: Table, footprints: NDArray) -> Box:
    _, height, width = footprints.shape
    return Box(int(catalog["frame_x0"][0]), int(catalog["frame_y0"][0]), width, height)


# ----------------------------------------------------------------------------- measure


class MeasureCoaddConnections(PipelineTaskConnections, dimensions=_BAND):
    """Inputs and output of `MeasureCoaddTask`."""

    coadd = cT.Input(
        name="deepCoadd", doc="The coadd, nJy.", storageClass="DpzeroExposure", dimensions=_BAND
    )
    n_image = cT.Input(
        name="deepCoadd_nImage",
        doc="Inputs per pixel.",
        storageClass="DpzeroImage",
        dimensions=_BAND,
    )
    catalog = cT.Input(
        name="deepCoadd_deblendedCatalog",
        doc="Deblended objects.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )
    footprints = cT.Input(
        name="deepCoadd_deblendedFootprints",
        doc="Parent and child labels.",
        storageClass="DpzeroImage",
        dimensions=_PATCH,
    )
    sky_map = cT.Input(
        name="skyMap", doc="The sky map.", storageClass="DpzeroSkyMap", dimensions=("skymap",)
    )
    measurements = cT.Output(
        name="deepCoadd_meas",
        doc="Measurements of the deblended objects in this band.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
    )


class MeasureCoaddConfig(PipelineTaskConfig, pipelineConnections=MeasureCoaddConnections):
    """Configuration of `MeasureCoaddTask`."""


class MeasureCoaddTask(PipelineTask):
    """Measure the deblended objects on one band's coadd, centroids free."""

    ConfigClass = MeasureCoaddConfig
    _DefaultName = "measure"
    config: MeasureCoaddConfig
    free_centroid = True

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read, run for the quantum's tract, write."""
        inputs = butlerQC.get(inputRefs)
        result = self.run(
            inputs["coadd"],
            inputs["n_image"],
            inputs[self._catalog_input],
            inputs["footprints"],
            inputs["sky_map"],
            int(butlerQC.quantum.dataId["tract"]),
        )
        butlerQC.put(result, outputRefs)

    _catalog_input = "catalog"

    def run(
        self,
        coadd: Exposure,
        n_image: NDArray,
        catalog: Table,
        footprints: NDArray,
        sky_map: RingsSkyMap,
        tract: int,
    ) -> Struct:
        """Measure.

        Returns
        -------
        lsst.pipe.base.Struct
            ``measurements``: one row per catalog row (same order and ``id``).
        """
        box = _footprint_box(catalog, np.asarray(footprints))
        band = band_image(coadd, box)
        table = measure_band(
            band, catalog, np.asarray(footprints), free_centroid=self.free_centroid
        )
        ra, dec = sky_map.pixel_to_sky(tract, table["centroid_x"], table["centroid_y"])
        table["coord_ra"], table["coord_dec"] = ra, dec
        ix = np.round(np.asarray(table["centroid_x"]) - coadd.bbox.x0).astype(int)
        iy = np.round(np.asarray(table["centroid_y"]) - coadd.bbox.y0).astype(int)
        on = (ix >= 0) & (iy >= 0) & (ix < coadd.bbox.width) & (iy < coadd.bbox.height)
        count = np.zeros(len(table), np.int32)
        count[on] = np.asarray(n_image)[iy[on], ix[on]]
        table["inputCount"] = count
        sigma2 = (band.psf.fwhm / 2.3548) ** 2
        table["ixxPSF"] = np.full(len(table), sigma2)
        table["iyyPSF"] = np.full(len(table), sigma2)
        table["ixyPSF"] = np.zeros(len(table))
        self.log.info(
            "%d objects measured, aperture correction %.3f", len(table), table.meta["APCORR"]
        )
        return Struct(measurements=table)


# ---------------------------------------------------------------------------- reference


class MergeMeasurementsConnections(PipelineTaskConnections, dimensions=_PATCH):
    """Inputs and output of `MergeMeasurementsTask`."""

    measurements = cT.Input(
        name="deepCoadd_meas",
        doc="Each band's measurements.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
        multiple=True,
    )
    catalog = cT.Input(
        name="deepCoadd_deblendedCatalog",
        doc="Deblended objects.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )
    sky_map = cT.Input(
        name="skyMap", doc="The sky map.", storageClass="DpzeroSkyMap", dimensions=("skymap",)
    )
    reference = cT.Output(
        name="deepCoadd_ref",
        doc="Objects with their reference band and position.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )


class MergeMeasurementsConfig(PipelineTaskConfig, pipelineConnections=MergeMeasurementsConnections):
    """Configuration of `MergeMeasurementsTask`."""

    minSnr = Field[float](doc="Least PSF S/N for a reference band.", default=10.0)  # noqa: N815


class MergeMeasurementsTask(PipelineTask):
    """Choose each object's reference band (i, r, z, y, g, u: the first measured well)."""

    ConfigClass = MergeMeasurementsConfig
    _DefaultName = "mergeMeasurements"
    config: MergeMeasurementsConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read every band's measurements, merge, write."""
        inputs = butlerQC.get(inputRefs)
        meas = _by_band(inputs["measurements"], inputRefs.measurements)
        tract = int(butlerQC.quantum.dataId["tract"])
        butlerQC.put(self.run(meas, inputs["catalog"], inputs["sky_map"], tract), outputRefs)

    def run(
        self, measurements: dict[str, Table], catalog: Table, sky_map: RingsSkyMap, tract: int
    ) -> Struct:
        """Merge.

        Returns
        -------
        lsst.pipe.base.Struct
            ``reference``: the deblended catalog with ``refBand``, ``refExtendedness``
            and the reference band's centroid as ``x``, ``y``, ``coord_ra``,
            ``coord_dec`` (blended parents keep the detection's).
        """
        bands = sorted(measurements, key=_priority)
        n = len(catalog)
        ref_band = np.array([bands[0]] * n, dtype=object)
        chosen = np.zeros(n, bool)
        for band in bands:
            m = measurements[band]
            if not np.array_equal(np.asarray(m["id"]), np.asarray(catalog["id"])):
                raise ValueError(f"deepCoadd_meas of band {band} does not follow the catalog")
            with np.errstate(invalid="ignore", divide="ignore"):
                snr = np.asarray(m["psfFlux"]) / np.asarray(m["psfFluxErr"])
            good = ~chosen & (snr > self.config.minSnr) & ~np.asarray(m["psfFlux_flag"])
            ref_band[good] = band
            chosen |= good
        ref = catalog.copy()
        x, y = np.asarray(ref["x"], float), np.asarray(ref["y"], float)
        ext = np.full(n, np.nan)
        leaf = np.asarray(ref["deblend_nChild"]) == 0
        for band in bands:
            m = measurements[band]
            pick = ref_band == band
            ext[pick] = np.asarray(m["extendedness"])[pick]
            use = pick & leaf & ~np.asarray(m["centroid_flag"])
            x[use] = np.asarray(m["centroid_x"])[use]
            y[use] = np.asarray(m["centroid_y"])[use]
        ra, dec = sky_map.pixel_to_sky(tract, x, y)
        ref["x"], ref["y"], ref["coord_ra"], ref["coord_dec"] = x, y, ra, dec
        ref["refBand"] = ref_band.astype(str)
        ref["refExtendedness"] = ext
        self.log.info(
            "reference bands: %s",
            ", ".join(f"{b} {int((ref_band == b).sum())}" for b in bands),
        )
        return Struct(reference=ref)


# ------------------------------------------------------------------------------ forced


class ForcedPhotCoaddConnections(PipelineTaskConnections, dimensions=_BAND):
    """Inputs and output of `ForcedPhotCoaddTask`."""

    coadd = cT.Input(
        name="deepCoadd", doc="The coadd, nJy.", storageClass="DpzeroExposure", dimensions=_BAND
    )
    n_image = cT.Input(
        name="deepCoadd_nImage",
        doc="Inputs per pixel.",
        storageClass="DpzeroImage",
        dimensions=_BAND,
    )
    reference = cT.Input(
        name="deepCoadd_ref",
        doc="Objects at their reference positions.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )
    footprints = cT.Input(
        name="deepCoadd_deblendedFootprints",
        doc="Parent and child labels.",
        storageClass="DpzeroImage",
        dimensions=_PATCH,
    )
    sky_map = cT.Input(
        name="skyMap", doc="The sky map.", storageClass="DpzeroSkyMap", dimensions=("skymap",)
    )
    measurements = cT.Output(
        name="deepCoadd_forced_src",
        doc="Forced measurements at the reference positions.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
    )


class ForcedPhotCoaddConfig(PipelineTaskConfig, pipelineConnections=ForcedPhotCoaddConnections):
    """Configuration of `ForcedPhotCoaddTask`."""


class ForcedPhotCoaddTask(MeasureCoaddTask):
    """Measure every object at its reference position on one band's coadd."""

    ConfigClass = ForcedPhotCoaddConfig  # type: ignore[assignment]
    _DefaultName = "forcedPhotCoadd"
    free_centroid = False
    _catalog_input = "reference"
