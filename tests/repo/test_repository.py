"""Repository creation, and put/get of dpzero's own storage classes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from lsst.daf.butler import Butler, DatasetRef, FileDataset

from dpzero.errors import InvalidInputError
from dpzero.repo.dimensions import DETECTORS, INSTRUMENT
from dpzero.repo.exposure import Box, Exposure
from dpzero.repo.records import day_obs_of, polygon, visit_records
from dpzero.repo.repository import RepoSpec, create_repo, insert_records, open_repo
from dpzero.sim.images.background import Background

from .conftest import exposure_for, memory_folder

RUN = "u/test/run"


@pytest.fixture(scope="module")
def repo() -> Iterator[Path]:
    with memory_folder("created") as root, create_repo(RepoSpec(str(root))) as butler:
        insert_records(
            butler,
            visit_records([_observation(512055, 94), _observation(512055, 95)]),
        )
        butler.registry.registerRun(RUN)
        butler.put(
            exposure_for(512055, "i", 94, 10.0),
            "calexp",
            instrument=INSTRUMENT,
            visit=512055,
            detector=94,
            run=RUN,
        )
        butler.put(
            Background(np.full((2, 2), 3.0, dtype=np.float32), 20, 40, 30),
            "calexpBackground",
            instrument=INSTRUMENT,
            visit=512055,
            detector=94,
            run=RUN,
        )
        butler.close()
        yield root


def _observation(visit: int, detector: int):
    from dpzero.repo.records import DetectorObservation

    exposure = exposure_for(visit, "i", detector, 0.0)
    corners = [exposure.parent_to_sky(x, y) for x, y in ((0, 0), (39, 0), (39, 29), (0, 29))]
    return DetectorObservation(
        visit,
        detector,
        "i_sim_1.4",
        exposure.visit_info,
        [(float(a), float(d)) for a, d in corners],
    )


def test_dimensions_registered(repo: Path) -> None:
    with Butler(str(repo)) as butler:
        detectors = butler.query_dimension_records("detector", instrument=INSTRUMENT)
        assert len(detectors) == len(DETECTORS) == 189
        assert {d.full_name for d in detectors if d.id == 94} == {"R22_S11"}
        filters = butler.query_dimension_records("physical_filter", instrument=INSTRUMENT)
        assert {(f.name, f.band) for f in filters} >= {("i_sim_1.4", "i"), ("u_sim_1.4", "u")}
        assert [s.name for s in butler.query_dimension_records("skymap")] == ["DC2"]
        names = {t.name for t in butler.registry.queryDatasetTypes()}
        assert {"calexp", "deepCoadd_forced_src", "cal_ref_cat", "skyMap", "camera"} <= names
        visit = butler.query_dimension_records("visit", instrument=INSTRUMENT)[0]
        assert visit.day_obs == day_obs_of(59858.2) == 20221005  # noon-to-noon night
        assert visit.physical_filter == "i_sim_1.4"


def test_put_get_exposure(repo: Path) -> None:
    expected = exposure_for(512055, "i", 94, 10.0)
    with Butler(str(repo), collections=RUN) as butler:
        got = butler.get("calexp", visit=512055, detector=94)
        assert isinstance(got, Exposure)
        np.testing.assert_array_equal(got.image, expected.image)
        assert got.visit_info == expected.visit_info
        box = Box(3, 4, 5, 6)
        variance = butler.get(
            "calexp.variance", visit=512055, detector=94, parameters={"bbox": box}
        )
        assert variance.shape == (6, 5)
        mask = butler.get("calexp.mask", visit=512055, detector=94)
        assert mask.dtype == np.int32 and mask.shape == (30, 40)
        assert butler.get("calexp.filter", visit=512055, detector=94).band == "i"
        # A deferred handle applies the bbox to the in-memory exposure (the delegate).
        handle = butler.getDeferred("calexp", visit=512055, detector=94)
        cut = handle.get(parameters={"bbox": box})
        np.testing.assert_array_equal(cut.image, expected.image[4:10, 3:8])
        background = butler.get("calexpBackground", visit=512055, detector=94)
        assert background.image()[0, 0] == 3.0


def test_fits_table_ingest(repo: Path, tmp_path: Path) -> None:
    table = Table({"id": np.arange(4, dtype=np.int64), "flux": np.ones(4, dtype=np.float32)})
    path = tmp_path / "src.fits"
    table.write(path)
    with Butler.from_config(str(repo), writeable=True) as butler:
        dataset_type = butler.get_dataset_type("src")
        ref = DatasetRef(
            dataset_type,
            {"instrument": INSTRUMENT, "visit": 512055, "detector": 95},
            run=RUN,
        )
        butler.ingest(
            FileDataset(str(path), [ref], formatter="dpzero.repo.formatters.FitsTableFormatter"),
            transfer="copy",
        )
        got = butler.get("src", instrument=INSTRUMENT, visit=512055, detector=95, collections=RUN)
        assert list(got["id"]) == [0, 1, 2, 3]
        only = butler.get(
            "src",
            instrument=INSTRUMENT,
            visit=512055,
            detector=95,
            collections=RUN,
            parameters={"columns": ["flux"]},
        )
        assert only.colnames == ["flux"]


def test_polygon_holds_its_corners() -> None:
    from lsst.sphgeom import LonLat, UnitVector3d

    region = polygon([359.99, 0.01, 0.01, 359.99], [-0.01, -0.01, 0.01, 0.01])
    assert region.contains(UnitVector3d(LonLat.fromDegrees(0.0, 0.0)))
    assert not region.contains(UnitVector3d(LonLat.fromDegrees(180.0, 0.0)))


def test_bad_locations(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no Butler repository"):
        open_repo(tmp_path / "none")
    with pytest.raises(InvalidInputError, match="must start with postgresql://"):
        create_repo(RepoSpec(str(tmp_path / "r"), registry="mysql://h/db"))
    with pytest.raises(InvalidInputError, match="cannot prepare the registry database"):
        create_repo(
            RepoSpec(str(tmp_path / "r"), registry="postgresql://postgres@127.0.0.1:1/none")
        )


def test_pipe_base_finds_the_instrument(repo: Path) -> None:
    from lsst.pipe.base import Instrument

    from dpzero.repo.formatters import RawFormatter
    from dpzero.repo.instrument import LsstCamImSim

    with Butler.from_config(str(repo), writeable=True) as butler:
        instrument = Instrument.from_string(INSTRUMENT, butler.registry)
        assert isinstance(instrument, LsstCamImSim)
        assert instrument.getRawFormatter({}) is RawFormatter
        instrument.register(butler.registry)  # already there: no change, no error
        assert len(butler.query_dimension_records("detector", instrument=INSTRUMENT)) == 189


@pytest.mark.slow
def test_postgresql_database_is_created(tmp_path: Path) -> None:
    import uuid

    import psycopg

    name = f"dpzero_repo_new_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with create_repo(RepoSpec(str(tmp_path / "r"), registry=url)) as butler:
            assert len(butler.query_dimension_records("detector", instrument=INSTRUMENT)) == 189
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
