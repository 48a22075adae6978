"""A tiny legacy release (a few 40×30-pixel images and small tables) and backends."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from lsst.sphgeom import HtmPixelization, LonLat, UnitVector3d

from dpzero.repo.dimensions import physical_filter_of
from dpzero.repo.exposure import Box, Exposure, FilterLabel, PhotoCalib, Psf, VisitInfo
from dpzero.repo.repository import RepoSpec
from dpzero.sim.images.background import Background
from dpzero.sim.images.layout import LegacyLayout
from dpzero.sim.skymap import DC2_SKYMAP

from .seaweed import S3Server, seaweed_s3

RA, DEC = 62.0, -37.0
SCALE = 0.2 / 3600
SHAPE = (30, 40)  # rows, columns


@dataclass(frozen=True)
class LegacyFacts:
    """What the tiny legacy tree holds, for the tests to check against."""

    root: Path
    visits: dict[int, str]  # visit -> band
    detectors: tuple[int, ...]
    calexp_visits: tuple[int, ...]
    tract: int
    patch: tuple[int, int]
    htm7: int
    rerun: str


def detector_wcs(visit: int, detector: int) -> WCS:
    """Each detector 60″ east of the previous; each visit dithered 2″ north."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    dec = DEC + (visit % 10) * 2.0 / 3600
    wcs.wcs.crval = [RA + (detector - 94) * 60.0 / 3600 / np.cos(np.radians(DEC)), dec]
    wcs.wcs.crpix = [20.5, 15.5]
    wcs.wcs.cd = [[-SCALE, 0.0], [0.0, SCALE]]
    return wcs


def exposure_for(visit: int, band: str, detector: int, value: float) -> Exposure:
    label = FilterLabel(band, physical_filter_of(band))
    info = VisitInfo(30.0, 59853.2 + visit % 10, 1.15, 0.7, RA, DEC, 10.0, label, id=visit)
    image = np.full(SHAPE, value, dtype=np.float32)
    image[:, :] += np.arange(SHAPE[1], dtype=np.float32)  # columns differ: bbox reads check
    return Exposure.from_image(
        image,
        variance=np.full(SHAPE, 2.0, dtype=np.float32),
        wcs=detector_wcs(visit, detector),
        psf=Psf.gaussian(3.5),
        photo_calib=PhotoCalib(57.5, 0.2),
        visit_info=info,
        filter=label,
    )


def catalog(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    return Table(
        {
            "id": np.arange(n, dtype=np.int64) + 1000 * seed,
            "coord_ra": RA + rng.uniform(-0.001, 0.001, n),
            "coord_dec": DEC + rng.uniform(-0.001, 0.001, n),
            "base_PsfFlux_instFlux": rng.uniform(100, 1000, n).astype(np.float32),
        }
    )


def write_table(table: Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".parq", ".parquet"):
        pq.write_table(pa.table({c: np.asarray(table[c]) for c in table.colnames}), path)
    else:
        table.write(path, format="fits")


def write_exposure(exposure: Exposure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    exposure.write_fits(path)


def write_raw(visit: int, band: str, detector: int, path: Path) -> None:
    """A raw file: observation keys and the detector WCS in the primary header, 2 amps."""
    header = detector_wcs(visit, detector).to_header()
    header["RUNNUM"] = visit
    header["FILTER"] = band
    header["FILTNAME"] = physical_filter_of(band)
    header["EXPTIME"] = 30.0
    header["MJD-OBS"] = 59853.2 + visit % 10 - 15.0 / 86400
    header["AIRMASS"] = 1.15
    header["RATEL"] = RA
    header["DECTEL"] = DEC
    header["ROTANGLE"] = 10.0
    header["DETSIZE"] = f"[1:{SHAPE[1]},1:{SHAPE[0]}]"
    amps = [
        fits.ImageHDU(
            np.full((SHAPE[0], SHAPE[1] // 2 + 5), 1000 + i, dtype=np.int32), name=f"SEGMENT1{i}"
        )
        for i in range(2)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(header=header), *amps]).writeto(path)


def build_legacy(root: Path) -> LegacyFacts:
    """Write the tiny legacy release under ``root``."""
    rerun = "dp01"
    layout = LegacyLayout(root, rerun)
    visits = {512055: "i", 512056: "r"}
    detectors = (94, 95)
    calexp_visits = (512055,)
    for visit, band in visits.items():
        for det in detectors:
            ids = {"visit": visit, "band": band, "detector": det}
            write_raw(visit, band, det, layout.path("raw", **ids))
            if visit not in calexp_visits:
                continue
            write_exposure(exposure_for(visit, band, det, float(det)), layout.path("calexp", **ids))
            background = Background(np.full((2, 2), 5.0, dtype=np.float32), 20, SHAPE[1], SHAPE[0])
            path = layout.path("calexpBackground", **ids)
            path.parent.mkdir(parents=True, exist_ok=True)
            background.write_fits(path)
            write_table(catalog(5, det), layout.path("src", **ids))
            write_table(catalog(3, det), layout.path("icSrc", **ids))
    for det in detectors:
        for date in ("2022-01-01", "2022-10-07"):
            bias = exposure_for(0, "i", det, 1.0 if date < "2022-06" else 2.0)
            write_exposure(bias, layout.path("bias", detector=det, calib_date=date))
        flat = exposure_for(0, "i", det, 1.0)
        write_exposure(
            flat,
            layout.path("flat", detector=det, physical_filter="i_sim_1.4", calib_date="2022-01-01"),
        )
    htm7 = HtmPixelization(7).index(UnitVector3d(LonLat.fromDegrees(RA, DEC)))
    write_table(catalog(8, 7), layout.path("cal_ref_cat", htm7=htm7))
    camera = layout.path("camera")
    camera.parent.mkdir(parents=True, exist_ok=True)
    camera.write_text("name: LSSTCam-imSim\ndetectors: [{id: 94, name: R22_S11}]\n")

    loc = DC2_SKYMAP.locate([RA], [DEC])
    tract, patch = int(loc.tract[0]), (int(loc.patch_x[0]), int(loc.patch_y[0]))
    x0, y0 = int(loc.x[0]) - 20, int(loc.y[0]) - 15
    info = DC2_SKYMAP.tract_info(tract)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [info.ra, info.dec]
    wcs.wcs.crpix = [info.crpix + 1 - x0, info.crpix + 1 - y0]
    wcs.wcs.cd = [[-SCALE, 0.0], [0.0, SCALE]]
    coadd = Exposure.from_image(
        np.full(SHAPE, 7.0),
        wcs=wcs,
        psf=Psf.gaussian(4.1),
        photo_calib=PhotoCalib(57.54),
        bbox=Box(x0, y0, SHAPE[1], SHAPE[0]),
        filter=FilterLabel("i", "i_sim_1.4"),
    )
    cids = {"band": "i", "tract": tract, "patch": f"{patch[0]},{patch[1]}"}
    write_exposure(coadd, layout.path("deepCoadd", **cids))
    write_exposure(coadd, layout.path("deepCoadd_calexp", **cids))
    write_table(catalog(6, 11), layout.path("deepCoadd_meas", **cids))
    write_table(catalog(6, 12), layout.path("deepCoadd_ref", tract=tract, patch=cids["patch"]))
    (root / "README.txt").write_text("not a dataset\n")
    return LegacyFacts(root, visits, detectors, calexp_visits, tract, patch, htm7, rerun)


@pytest.fixture(scope="session")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyFacts:
    return build_legacy(tmp_path_factory.mktemp("legacy"))


@contextmanager
def memory_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder in memory (/dev/shm) when there is one, removed afterwards.

    SQLite registries commit often; on a busy disk each commit's fsync costs tens of
    milliseconds, in memory nothing.
    """
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=f"dpzero-{prefix}-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def repo_root() -> Iterator[Path]:
    """Where a test's repository goes (in memory when possible); not yet created."""
    with memory_folder("repo") as folder:
        yield folder / "repo"


PG_URL = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "dpzero_repo_tests"
BACKENDS = (
    "sqlite",
    "postgresql",
    "s3",
    pytest.param("postgresql+s3", marks=pytest.mark.slow),
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the session."""
    with seaweed_s3(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture(scope="session")
def pg_database() -> str:
    """URL of a PostgreSQL database for registry tests (created when missing)."""
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
        if found.fetchone() is None:
            # Another test session may make it meanwhile.
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    return f"{PG_URL}/{PG_DATABASE}"


def drop_namespace(database_url: str, namespace: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


@contextmanager
def backend_spec(backend: str, root: Path, request: pytest.FixtureRequest) -> Iterator[RepoSpec]:
    """A fresh repository location on a backend; removed afterwards."""
    if backend == "sqlite":
        yield RepoSpec(str(root))
        return
    namespace = f"repo_{uuid.uuid4().hex[:12]}"
    database = request.getfixturevalue("pg_database") if "postgresql" in backend else None
    datastore = None
    with pytest.MonkeyPatch.context() as mp:
        if "s3" in backend:
            server = request.getfixturevalue("s3_server")
            for key, value in server.environment().items():
                mp.setenv(key, value)
            datastore = f"s3://{server.bucket}/{namespace}/"
        try:
            yield RepoSpec(
                str(root),
                registry=database,
                namespace=namespace if database else None,
                datastore=datastore,
            )
        finally:
            if database:
                drop_namespace(database, namespace)
