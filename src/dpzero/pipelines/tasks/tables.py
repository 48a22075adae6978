"""DP0.2 catalog tables, forced photometry on calexps, and the visit tables.

Each table is an Arrow table (storage class ``ArrowTable``, Parquet in the datastore)
whose columns are the ones of the Felis schema ``dp02_dc2`` these measurements fill,
with the schema's exact names, Arrow types and units (field metadata), in schema
order; columns nothing here measures are left out. The dataset types:

============================ ====================================== ==================
dataset type                 dimensions                             schema table
============================ ====================================== ==================
``objectTable_tract``        skymap, tract                          ``Object``
``sourceTable_visit``        instrument, visit                      ``Source``
``forcedSourceTable_tract``  skymap, tract                          ``ForcedSource``
``visitTable``               instrument                             ``Visit``
``ccdVisitTable``            instrument                             ``CcdVisit``
``forced_src``               instrument, visit, detector, skymap,   (intermediate,
                             tract                                  ``ArrowAstropy``)
============================ ====================================== ==================

Ids: ``objectId`` as DP0.2, ``((tract·49 + patch) << 43) + n``; ``ccdVisitId =
visit·200 + detector`` (`ccd_visit_id`, the packing of calibrate's source ids);
``sourceId = (ccdVisitId << 20) + n`` as written by calibrate; ``forcedSourceId =
(ccdVisitId << 24) + n``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from astropy.table import Table, vstack
from astropy.time import Time
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

from dpzero.pipelines.tasks.calibrate import psf_photometry
from dpzero.pipelines.tasks.coadd_sources import APERTURE_RADII
from dpzero.repo.exposure import Exposure, mask_bits
from dpzero.schema import load_schema

__all__ = [
    "ALL_BANDS",
    "ForcedPhotCcdTask",
    "MakeVisitTablesTask",
    "WriteForcedSourceTableTask",
    "WriteObjectTableTask",
    "WriteSourceTableTask",
    "ccd_visit_id",
    "schema_table",
]

ALL_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
SKYMAP_NAME = "DC2"
_TRACT = ("skymap", "tract")
_PATCH = ("skymap", "tract", "patch")
_BAND = ("skymap", "tract", "patch", "band")
_CCD = ("instrument", "visit", "detector")
_FORCED_CCD = ("instrument", "visit", "detector", "skymap", "tract")


def ccd_visit_id(visit: Any, detector: Any) -> Any:
    """``visit·200 + detector`` (imSim detectors are 0–188)."""
    return np.asarray(visit, np.int64) * 200 + np.asarray(detector, np.int64)


def schema_table(table_name: str, columns: dict[str, Any], n: int) -> pa.Table:
    """An Arrow table of ``dp02_dc2.<table_name>`` holding ``columns``, in schema order.

    Scalars are repeated ``n`` times; ``None`` values become nulls.

    Raises
    ------
    KeyError
        If a column is not in the schema table (a typo here must not reach users).
    """
    spec = load_schema("dp02_dc2").table(table_name)
    known = set(spec.column_names)
    unknown = sorted(set(columns) - known)
    if unknown:
        raise KeyError(f"not columns of {table_name}: {', '.join(unknown)}")
    fields, arrays = [], []
    for col in spec.columns:
        if col.name not in columns:
            continue
        value = columns[col.name]
        if value is None:
            array = pa.nulls(n, col.arrow_type)
        elif np.isscalar(value) or isinstance(value, datetime):
            array = pa.array([value] * n).cast(col.arrow_type)
        else:
            values = value if isinstance(value, list) else np.asarray(value)
            array = pa.array(values)
            if pa.types.is_floating(array.type) and not pa.types.is_floating(col.arrow_type):
                raise TypeError(f"{table_name}.{col.name} is {col.datatype}, got floats")
            array = array.cast(col.arrow_type)
        fields.append(col.arrow_field())
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# ---------------------------------------------------------------------------- objects


class WriteObjectTableConnections(PipelineTaskConnections, dimensions=_TRACT):
    """Inputs and output of `WriteObjectTableTask`."""

    references = cT.Input(
        name="deepCoadd_ref",
        doc="Objects of each patch.",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
        multiple=True,
    )
    measurements = cT.Input(
        name="deepCoadd_meas",
        doc="Unforced measurements, per patch and band.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
        multiple=True,
    )
    forced = cT.Input(
        name="deepCoadd_forced_src",
        doc="Forced measurements, per patch and band.",
        storageClass="ArrowAstropy",
        dimensions=_BAND,
        multiple=True,
    )
    table = cT.Output(
        name="objectTable_tract",
        doc="The DP0.2 Object table of the tract.",
        storageClass="ArrowTable",
        dimensions=_TRACT,
    )


class WriteObjectTableConfig(PipelineTaskConfig, pipelineConnections=WriteObjectTableConnections):
    """Configuration of `WriteObjectTableTask`."""


class WriteObjectTableTask(PipelineTask):
    """Join a tract's reference, unforced and forced coadd catalogs into the Object table."""

    ConfigClass = WriteObjectTableConfig
    _DefaultName = "writeObjectTable"
    config: WriteObjectTableConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Group the inputs by patch and band, run, write."""
        inputs = butlerQC.get(inputRefs)
        refs = {
            int(r.dataId["patch"]): t
            for t, r in zip(inputs["references"], inputRefs.references, strict=True)
        }

        def by_patch_band(name: str) -> dict[tuple[int, str], Table]:
            return {
                (int(r.dataId["patch"]), str(r.dataId["band"])): t
                for t, r in zip(inputs[name], getattr(inputRefs, name), strict=True)
            }

        tract = int(butlerQC.quantum.dataId["tract"])
        result = self.run(tract, refs, by_patch_band("measurements"), by_patch_band("forced"))
        butlerQC.put(result, outputRefs)

    def run(
        self,
        tract: int,
        references: dict[int, Table],
        measurements: dict[tuple[int, str], Table],
        forced: dict[tuple[int, str], Table],
    ) -> Struct:
        """Build the Object table.

        Returns
        -------
        lsst.pipe.base.Struct
            ``table``: `pyarrow.Table` with the ``dp02_dc2.Object`` columns filled.
        """
        parts = []
        for patch in sorted(references):
            ref = references[patch]
            n = len(ref)
            parent = np.asarray(ref["parentObjectId"], np.int64)
            n_child = np.asarray(ref["deblend_nChild"], np.int32)
            cols: dict[str, Any] = {
                "objectId": np.asarray(ref["id"], np.int64),
                "coord_ra": ref["coord_ra"],
                "coord_dec": ref["coord_dec"],
                "deblend_nChild": n_child,
                "deblend_skipped": np.zeros(n, bool),
                "detect_fromBlend": parent != 0,
                "detect_isDeblendedSource": n_child == 0,
                "detect_isIsolated": (parent == 0) & (n_child == 0),
                "detect_isPatchInner": ref["detect_isPatchInner"],
                "detect_isPrimary": ref["detect_isPrimary"],
                "detect_isTractInner": ref["detect_isTractInner"],
                "footprintArea": ref["footprintArea"],
                "parentObjectId": parent,
                "patch": np.full(n, patch, np.int64),
                "refBand": list(np.asarray(ref["refBand"], str)),
                "refExtendedness": ref["refExtendedness"],
                "shape_xx": ref["shape_xx"],
                "shape_xy": ref["shape_xy"],
                "shape_yy": ref["shape_yy"],
                "sky_object": np.zeros(n, bool),
                "skymap": SKYMAP_NAME,
                "tract": np.full(n, tract, np.int64),
                "x": ref["x"],
                "y": ref["y"],
            }
            for band in ALL_BANDS:
                cols.update(
                    _object_band_columns(
                        band, measurements.get((patch, band)), forced.get((patch, band)), ref
                    )
                )
            parts.append(schema_table("Object", cols, n))
        if not parts:
            raise NoWorkFound(f"no object catalog in tract {tract}")
        table = pa.concat_tables(parts)
        self.log.info("Object table of tract %d: %d rows", tract, table.num_rows)
        return Struct(table=table)


def _object_band_columns(
    band: str, meas: Table | None, forced: Table | None, ref: Table
) -> dict[str, Any]:
    """``<band>_…`` columns from the band's unforced and forced measurements (null if absent)."""
    names = [
        "psfFlux", "psfFluxErr", "psfFlux_flag", "calibFlux", "calibFluxErr", "calibFlux_flag",
        "extendedness", "blendedness", "inputCount", "free_psfFlux", "free_psfFluxErr",
        "free_psfFlux_flag", "centroid_x", "centroid_y", "centroid_flag", "ra", "decl",
        "ixxPSF", "iyyPSF", "ixyPSF",
        *[f"ap{r:02d}{s}" for r in APERTURE_RADII for s in ("Flux", "FluxErr", "Flux_flag")],
    ]  # fmt: skip
    if meas is None or forced is None:
        return {f"{band}_{name}": None for name in names}
    for t in (meas, forced):
        if not np.array_equal(np.asarray(t["id"]), np.asarray(ref["id"])):
            raise ValueError(f"band {band} measurements do not follow deepCoadd_ref")
    out = {
        f"{band}_psfFlux": forced["psfFlux"],
        f"{band}_psfFluxErr": forced["psfFluxErr"],
        f"{band}_psfFlux_flag": forced["psfFlux_flag"],
        f"{band}_calibFlux": forced["ap12Flux"],
        f"{band}_calibFluxErr": forced["ap12FluxErr"],
        f"{band}_calibFlux_flag": forced["ap12Flux_flag"],
        f"{band}_extendedness": forced["extendedness"],
        f"{band}_blendedness": forced["blendedness"],
        f"{band}_inputCount": forced["inputCount"],
        f"{band}_free_psfFlux": meas["psfFlux"],
        f"{band}_free_psfFluxErr": meas["psfFluxErr"],
        f"{band}_free_psfFlux_flag": meas["psfFlux_flag"],
        f"{band}_centroid_x": meas["centroid_x"],
        f"{band}_centroid_y": meas["centroid_y"],
        f"{band}_centroid_flag": meas["centroid_flag"],
        f"{band}_ra": meas["coord_ra"],
        f"{band}_decl": meas["coord_dec"],
        f"{band}_ixxPSF": meas["ixxPSF"],
        f"{band}_iyyPSF": meas["iyyPSF"],
        f"{band}_ixyPSF": meas["ixyPSF"],
    }
    for r in APERTURE_RADII:
        for s in ("Flux", "FluxErr", "Flux_flag"):
            out[f"{band}_ap{r:02d}{s}"] = forced[f"ap{r:02d}{s}"]
    return out


# -------------------------------------------------------------------- forced on calexps


class ForcedPhotCcdConnections(PipelineTaskConnections, dimensions=_FORCED_CCD):
    """Inputs and output of `ForcedPhotCcdTask`."""

    calexp = cT.Input(
        name="calexp", doc="The calexp.", storageClass="DpzeroExposure", dimensions=_CCD
    )
    src = cT.Input(
        name="src",
        doc="The calexp's sources (for the aperture correction).",
        storageClass="ArrowAstropy",
        dimensions=_CCD,
    )
    objects = cT.Input(
        name="objectTable_tract",
        doc="The tract's objects.",
        storageClass="ArrowTable",
        dimensions=_TRACT,
    )
    forced = cT.Output(
        name="forced_src",
        doc="PSF fluxes at the objects' positions.",
        storageClass="ArrowAstropy",
        dimensions=_FORCED_CCD,
    )


class ForcedPhotCcdConfig(PipelineTaskConfig, pipelineConnections=ForcedPhotCcdConnections):
    """Configuration of `ForcedPhotCcdTask`."""

    edgeMargin = Field[int](doc="Skip objects closer than this to the edge, px.", default=3)  # noqa: N815


class ForcedPhotCcdTask(PipelineTask):
    """PSF photometry of a tract's primary objects on a calexp."""

    ConfigClass = ForcedPhotCcdConfig
    _DefaultName = "forcedPhotCcd"
    config: ForcedPhotCcdConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read, run, write."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        ccd = int(ccd_visit_id(data_id["visit"], data_id["detector"]))
        result = self.run(inputs["calexp"], inputs["src"], inputs["objects"], ccd)
        butlerQC.put(result, outputRefs)

    def run(self, calexp: Exposure, src: Table, objects: pa.Table, ccd_visit: int) -> Struct:
        """Measure.

        Returns
        -------
        lsst.pipe.base.Struct
            ``forced``: ``objectId``, ``psfFlux``, ``psfFluxErr`` (nJy), flags.

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If no object falls on the calexp.
        """
        # Primary objects only: deblended children and isolated objects, each once (an
        # object of the patches' overlaps would otherwise be fitted twice, degenerately).
        leaf = objects.column("detect_isPrimary").to_numpy(zero_copy_only=False)
        ra = objects.column("coord_ra").to_numpy()[leaf]
        dec = objects.column("coord_dec").to_numpy()[leaf]
        ids = objects.column("objectId").to_numpy()[leaf]
        x, y = calexp.wcs.all_world2pix(ra, dec, 0)
        h, w = calexp.image.shape
        m = self.config.edgeMargin
        on = (x >= m) & (y >= m) & (x < w - 1 - m) & (y < h - 1 - m)
        if not on.any():
            raise NoWorkFound("no object on this calexp")
        x, y, ids = x[on], y[on], ids[on]
        bad = (calexp.mask & mask_bits("BAD", "SAT", "NO_DATA")) != 0
        image = np.ascontiguousarray(calexp.image, dtype=np.float64)
        err = np.sqrt(np.clip(np.asarray(calexp.variance, np.float64), 1e-12, None))
        fwhm = calexp.psf.fwhm
        flux, flux_err, flag = psf_photometry(
            image, err, bad, calexp.psf, x, y, group_separation=2.5 * fwhm
        )
        ap_corr = float(np.median(src["base_PsfFlux_apCorr"])) if len(src) else 1.0
        scale = calexp.photo_calib.njy_per_count
        xi, yi = np.round(x).astype(int), np.round(y).astype(int)
        centre = calexp.mask[yi, xi]
        table = Table(
            {
                "forcedSourceId": (np.int64(ccd_visit) << np.int64(24))
                + np.arange(1, len(ids) + 1, dtype=np.int64),
                "objectId": ids,
                "ccdVisitId": np.full(len(ids), ccd_visit, np.int64),
                "x": x,
                "y": y,
                "psfFlux": flux * ap_corr * scale,
                "psfFluxErr": flux_err * ap_corr * scale,
                "psfFlux_flag": flag,
                "localPhotoCalib": np.full(len(ids), scale),
                "pixelFlags_saturatedCenter": (centre & mask_bits("SAT")) != 0,
                "pixelFlags_crCenter": (centre & mask_bits("CR")) != 0,
                "pixelFlags_edge": (centre & mask_bits("EDGE")) != 0,
            }
        )
        self.log.info("%d objects measured on ccdVisit %d", len(table), ccd_visit)
        return Struct(forced=table)


class WriteForcedSourceTableConnections(PipelineTaskConnections, dimensions=_TRACT):
    """Inputs and output of `WriteForcedSourceTableTask`."""

    forced = cT.Input(
        name="forced_src",
        doc="Forced photometry of each calexp.",
        storageClass="ArrowAstropy",
        dimensions=_FORCED_CCD,
        multiple=True,
    )
    objects = cT.Input(
        name="objectTable_tract",
        doc="The tract's objects.",
        storageClass="ArrowTable",
        dimensions=_TRACT,
    )
    table = cT.Output(
        name="forcedSourceTable_tract",
        doc="The DP0.2 ForcedSource table of the tract.",
        storageClass="ArrowTable",
        dimensions=_TRACT,
    )


class WriteForcedSourceTableConfig(
    PipelineTaskConfig, pipelineConnections=WriteForcedSourceTableConnections
):
    """Configuration of `WriteForcedSourceTableTask`."""


class WriteForcedSourceTableTask(PipelineTask):
    """Stack the tract's forced photometry into the ForcedSource table."""

    ConfigClass = WriteForcedSourceTableConfig
    _DefaultName = "writeForcedSourceTable"
    config: WriteForcedSourceTableConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read, run, write."""
        inputs = butlerQC.get(inputRefs)
        bands = [str(r.dataId["band"]) for r in inputRefs.forced]
        tract = int(butlerQC.quantum.dataId["tract"])
        result = self.run(tract, inputs["forced"], bands, inputs["objects"])
        butlerQC.put(result, outputRefs)

    def run(self, tract: int, forced: list[Table], bands: list[str], objects: pa.Table) -> Struct:
        """Stack and join the object columns.

        Returns
        -------
        lsst.pipe.base.Struct
            ``table``: `pyarrow.Table` with the ``dp02_dc2.ForcedSource`` columns filled.
        """
        if not forced:
            raise NoWorkFound(f"no forced photometry in tract {tract}")
        for table, band in zip(forced, bands, strict=True):
            table["band"] = np.full(len(table), band)
        rows = vstack(forced) if len(forced) > 1 else forced[0]
        obj_ids = objects.column("objectId").to_numpy()
        order = np.argsort(obj_ids)
        pos = order[np.searchsorted(obj_ids, np.asarray(rows["objectId"]), sorter=order)]

        def obj(name: str) -> NDArray:
            return objects.column(name).to_numpy(zero_copy_only=False)[pos]

        cols = {
            "forcedSourceId": rows["forcedSourceId"],
            "objectId": rows["objectId"],
            "parentObjectId": obj("parentObjectId"),
            "coord_ra": obj("coord_ra"),
            "coord_dec": obj("coord_dec"),
            "skymap": SKYMAP_NAME,
            "tract": np.full(len(rows), tract, np.int64),
            "patch": obj("patch"),
            "band": list(np.asarray(rows["band"], str)),
            "ccdVisitId": rows["ccdVisitId"],
            "detect_isPatchInner": obj("detect_isPatchInner"),
            "detect_isPrimary": obj("detect_isPrimary"),
            "detect_isTractInner": obj("detect_isTractInner"),
            "localPhotoCalib": rows["localPhotoCalib"],
            "pixelFlags_crCenter": rows["pixelFlags_crCenter"],
            "pixelFlags_edge": rows["pixelFlags_edge"],
            "pixelFlags_saturatedCenter": rows["pixelFlags_saturatedCenter"],
            "psfFlux": rows["psfFlux"],
            "psfFluxErr": rows["psfFluxErr"],
            "psfFlux_flag": rows["psfFlux_flag"],
        }
        table = schema_table("ForcedSource", cols, len(rows))
        self.log.info("ForcedSource table of tract %d: %d rows", tract, table.num_rows)
        return Struct(table=table)


# ---------------------------------------------------------------------------- sources


class WriteSourceTableConnections(PipelineTaskConnections, dimensions=("instrument", "visit")):
    """Inputs and output of `WriteSourceTableTask`."""

    sources = cT.Input(
        name="src",
        doc="Each detector's sources.",
        storageClass="ArrowAstropy",
        dimensions=_CCD,
        multiple=True,
    )
    table = cT.Output(
        name="sourceTable_visit",
        doc="The DP0.2 Source table of the visit.",
        storageClass="ArrowTable",
        dimensions=("instrument", "visit"),
    )


class WriteSourceTableConfig(PipelineTaskConfig, pipelineConnections=WriteSourceTableConnections):
    """Configuration of `WriteSourceTableTask`."""


class WriteSourceTableTask(PipelineTask):
    """Turn a visit's ``src`` catalogs into the Source table."""

    ConfigClass = WriteSourceTableConfig
    _DefaultName = "writeSourceTable"
    config: WriteSourceTableConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read, run, write."""
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        detectors = [int(r.dataId["detector"]) for r in inputRefs.sources]
        result = self.run(
            inputs["sources"],
            detectors,
            int(data_id["visit"]),
            str(data_id["band"]),
            str(data_id["physical_filter"]),
            str(data_id["instrument"]),
        )
        butlerQC.put(result, outputRefs)

    def run(
        self,
        sources: list[Table],
        detectors: list[int],
        visit: int,
        band: str,
        physical_filter: str,
        instrument: str,
    ) -> Struct:
        """Build the Source table.

        Returns
        -------
        lsst.pipe.base.Struct
            ``table``: `pyarrow.Table` with the ``dp02_dc2.Source`` columns filled.
        """
        parts = []
        for src, det in zip(sources, detectors, strict=True):
            n = len(src)
            with np.errstate(invalid="ignore", divide="ignore"):
                local = np.asarray(src["base_PsfFlux_flux"]) / np.asarray(
                    src["base_PsfFlux_instFlux"]
                )
            # One calibration per calexp: take it where the ratio is defined.
            scale = float(np.nanmedian(local)) if np.isfinite(local).any() else np.nan
            ap = np.asarray(src["base_CircularApertureFlux_12_0_instFlux"])
            ap_err = np.asarray(src["base_CircularApertureFlux_12_0_instFluxErr"])
            ap_flag = src["base_CircularApertureFlux_12_0_flag"]
            cols = {
                "sourceId": src["id"],
                "coord_ra": src["coord_ra"],
                "coord_dec": src["coord_dec"],
                "ccdVisitId": np.full(n, ccd_visit_id(visit, det), np.int64),
                "parentSourceId": src["parent"],
                "x": src["base_SdssCentroid_x"],
                "y": src["base_SdssCentroid_y"],
                "ra": src["coord_ra"],
                "decl": src["coord_dec"],
                "calibFlux": ap * scale,
                "calibFluxErr": ap_err * scale,
                "ap12Flux": ap * scale,
                "ap12FluxErr": ap_err * scale,
                "ap12Flux_flag": ap_flag,
                "psfFlux": src["base_PsfFlux_flux"],
                "psfFluxErr": src["base_PsfFlux_fluxErr"],
                "ixx": src["base_SdssShape_xx"],
                "iyy": src["base_SdssShape_yy"],
                "ixy": src["base_SdssShape_xy"],
                "localPhotoCalib": np.full(n, scale),
                "apFlux_12_0_flag": ap_flag,
                "apFlux_12_0_instFlux": ap,
                "apFlux_12_0_instFluxErr": ap_err,
                "pixelFlags_crCenter": src["base_PixelFlags_flag_crCenter"],
                "pixelFlags_edge": src["base_PixelFlags_flag_edge"],
                "pixelFlags_saturatedCenter": src["base_PixelFlags_flag_saturatedCenter"],
                "psfFlux_apCorr": src["base_PsfFlux_apCorr"],
                "psfFlux_flag": src["base_PsfFlux_flag"],
                "centroid_flag": src["base_SdssCentroid_flag"],
                "calib_astrometry_used": src["calib_astrometry_used"],
                "calib_photometry_used": src["calib_photometry_used"],
                "calib_psf_candidate": src["calib_psf_candidate"],
                "calib_psf_used": src["calib_psf_used"],
                "sky_source": src["sky_source"],
                "detect_isPrimary": np.ones(n, bool),
                "band": band,
                "instrument": instrument,
                "detector": np.full(n, det, np.int64),
                "physical_filter": physical_filter,
                "visit": np.full(n, visit, np.int64),
            }
            parts.append(schema_table("Source", cols, n))
        if not parts:
            raise NoWorkFound(f"no src catalog for visit {visit}")
        table = pa.concat_tables(parts)
        self.log.info("Source table of visit %d: %d rows", visit, table.num_rows)
        return Struct(table=table)


# ----------------------------------------------------------------------------- visits


class MakeVisitTablesConnections(PipelineTaskConnections, dimensions=("instrument",)):
    """Inputs and outputs of `MakeVisitTablesTask`."""

    calexps = cT.Input(
        name="calexp",
        doc="Every calexp (only metadata is read).",
        storageClass="DpzeroExposure",
        dimensions=_CCD,
        multiple=True,
        deferLoad=True,
    )
    backgrounds = cT.Input(
        name="calexpBackground",
        doc="Every calexp's background model.",
        storageClass="DpzeroBackground",
        dimensions=_CCD,
        multiple=True,
    )
    visit_table = cT.Output(
        name="visitTable",
        doc="The DP0.2 Visit table.",
        storageClass="ArrowTable",
        dimensions=("instrument",),
    )
    ccd_visit_table = cT.Output(
        name="ccdVisitTable",
        doc="The DP0.2 CcdVisit table.",
        storageClass="ArrowTable",
        dimensions=("instrument",),
    )


class MakeVisitTablesConfig(PipelineTaskConfig, pipelineConnections=MakeVisitTablesConnections):
    """Configuration of `MakeVisitTablesTask`."""


class MakeVisitTablesTask(PipelineTask):
    """The Visit and CcdVisit tables from the calexps' metadata and backgrounds."""

    ConfigClass = MakeVisitTablesConfig
    _DefaultName = "makeVisitTable"
    config: MakeVisitTablesConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:  # noqa: N802, N803
        """Read the metadata (not the pixels), run, write."""
        inputs = butlerQC.get(inputRefs)
        backgrounds = {
            (int(r.dataId["visit"]), int(r.dataId["detector"])): b
            for b, r in zip(inputs["backgrounds"], inputRefs.backgrounds, strict=True)
        }
        ccds = []
        for handle, ref in zip(inputs["calexps"], inputRefs.calexps, strict=True):
            key = (int(ref.dataId["visit"]), int(ref.dataId["detector"]))
            ccds.append(
                {
                    "visit": key[0],
                    "detector": key[1],
                    "band": str(ref.dataId["band"]),
                    "physical_filter": str(ref.dataId["physical_filter"]),
                    "visit_info": handle.get(component="visitInfo"),
                    "wcs": handle.get(component="wcs"),
                    "psf": handle.get(component="psf"),
                    "photo_calib": handle.get(component="photoCalib"),
                    "bbox": handle.get(component="bbox"),
                    "background": backgrounds.get(key),
                }
            )
        butlerQC.put(self.run(ccds), outputRefs)

    def run(self, ccds: list[dict[str, Any]]) -> Struct:
        """Build both tables.

        Parameters
        ----------
        ccds
            One dict per calexp: ``visit``, ``detector``, ``band``,
            ``physical_filter``, ``visit_info``, ``wcs``, ``psf``, ``photo_calib``,
            ``bbox``, ``background`` (or None).

        Returns
        -------
        lsst.pipe.base.Struct
            ``visit_table`` and ``ccd_visit_table`` (`pyarrow.Table`).
        """
        if not ccds:
            raise NoWorkFound("no calexp")
        ccds = sorted(ccds, key=lambda c: (c["visit"], c["detector"]))
        visits: dict[int, dict[str, Any]] = {}
        ccd_cols: dict[str, list] = {}
        for c in ccds:
            info = c["visit_info"]
            start = info.mjd - info.exposure_time / 2 / 86400.0
            zenith = math.degrees(math.acos(min(1.0, 1.0 / info.airmass)))
            times = {
                "expMidpt": _utc(info.mjd),
                "expMidptMJD": info.mjd,
                "expTime": info.exposure_time,
                "obsStart": _utc(start),
                "obsStartMJD": start,
            }
            visits.setdefault(
                c["visit"],
                {
                    "visit": c["visit"],
                    "physical_filter": c["physical_filter"],
                    "band": c["band"],
                    "ra": info.boresight_ra,
                    "decl": info.boresight_dec,
                    "skyRotation": info.rotation_angle,
                    "altitude": 90.0 - zenith,
                    "zenithDistance": zenith,
                    "airmass": info.airmass,
                    **times,
                },
            )
            box = c["bbox"]
            w, h = box.width, box.height
            corners_x = [-0.5, -0.5, w - 0.5, w - 0.5]
            corners_y = [-0.5, h - 0.5, h - 0.5, -0.5]  # ll, ul, ur, lr
            cra, cdec = c["wcs"].all_pix2world(corners_x, corners_y, 0)
            mra, mdec = c["wcs"].all_pix2world([(w - 1) / 2], [(h - 1) / 2], 0)
            bkg = c["background"]
            sky = float(np.median(bkg.mesh)) if bkg is not None else None
            psf_sigma = c["psf"].fwhm / 2.3548 if c["psf"] is not None else None
            scale = c["photo_calib"].njy_per_count if c["photo_calib"] is not None else None
            row = {
                "ccdVisitId": int(ccd_visit_id(c["visit"], c["detector"])),
                "visitId": c["visit"],
                "physical_filter": c["physical_filter"],
                "band": c["band"],
                "ra": float(mra[0]),
                "decl": float(mdec[0]),
                "zenithDistance": zenith,
                "zeroPoint": 31.4 - 2.5 * math.log10(scale) if scale else None,
                "psfSigma": psf_sigma,
                "skyBg": sky,
                "skyNoise": math.sqrt(sky) if sky is not None and sky > 0 else None,
                "detector": c["detector"],
                "seeing": c["psf"].fwhm * _pixel_scale(c["wcs"]) if c["psf"] else None,
                "skyRotation": info.rotation_angle,
                **times,
                "darkTime": info.exposure_time,
                "xSize": w,
                "ySize": h,
            }
            for name, i in (("ll", 0), ("ul", 1), ("ur", 2), ("lr", 3)):
                row[f"{name}cra"] = float(cra[i])
                row[f"{name}cdec"] = float(cdec[i])
            for k, v in row.items():
                ccd_cols.setdefault(k, []).append(v)
        visit_rows = [visits[v] for v in sorted(visits)]
        visit_cols = {k: [r[k] for r in visit_rows] for k in visit_rows[0]}
        return Struct(
            visit_table=schema_table("Visit", visit_cols, len(visit_rows)),
            ccd_visit_table=schema_table("CcdVisit", ccd_cols, len(ccds)),
        )


def _utc(mjd_tai: float) -> datetime:
    return Time(mjd_tai, format="mjd", scale="tai").utc.to_datetime(timezone=UTC)


def _pixel_scale(wcs: Any) -> float:
    """Arcseconds per pixel of a celestial WCS."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0
