"""Create and open dpzero Butler repositories, and register what every one holds.

A repository is a plain ``lsst.daf.butler`` repository: SQLite registry and local
files by default, or a PostgreSQL registry and an S3 datastore by URL. Its
``butler.yaml`` carries dpzero's storage classes and formatters
(``configs/storage.yaml``), so users open it with ``Butler(REPO)`` and nothing else.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import yaml
from lsst.daf.butler import (
    Butler,
    CollectionType,
    Config,
    DataCoordinate,
    DatasetIdGenEnum,
    DatasetRef,
    DatasetType,
)
from lsst.resources import ResourcePath

from dpzero.errors import InvalidInputError
from dpzero.repo.dataset_types import DP01_DATASET_TYPES
from dpzero.repo.dimensions import RELEASE_COLLECTION, SKYMAP_NAME
from dpzero.repo.records import instrument_records, skymap_records
from dpzero.sim.skymap import DC2_SKYMAP

__all__ = [
    "CALIB_CERTIFIED",
    "CALIB_CHAIN",
    "CALIB_RUN",
    "CALIB_UNBOUNDED_RUN",
    "RAW_RUN",
    "REFCAT_RUN",
    "SKYMAP_RUN",
    "RepoSpec",
    "create_repo",
    "insert_records",
    "open_repo",
    "processing_run",
    "put_once",
    "register_instrument",
    "register_skymap",
]

RAW_RUN = "2.2i/raw/all"
"""RUN collection of the raw images."""

CALIB_RUN = "2.2i/calib/DP0.1"
"""RUN collection holding the master bias, dark and flat frames."""

CALIB_UNBOUNDED_RUN = "2.2i/calib/unbounded"
"""RUN collection of calibrations valid forever (the camera)."""

CALIB_CERTIFIED = "2.2i/calib/certified"
"""CALIBRATION collection certifying the master calibrations with validity ranges."""

CALIB_CHAIN = "2.2i/calib"
"""CHAINED collection of all calibrations."""

REFCAT_RUN = "refcats/DP0.1"
"""RUN collection of the photometric and astrometric reference catalog."""

SKYMAP_RUN = "skymaps"
"""RUN collection of the sky map definition."""


def processing_run(rerun: str) -> str:
    """RUN collection of a legacy rerun's products (``2.2i/runs/DP0.1/<rerun>``)."""
    return f"{RELEASE_COLLECTION}/{rerun}"


@dataclass(frozen=True)
class RepoSpec:
    """Where a repository lives.

    Attributes
    ----------
    root
        Folder (or URI) of ``butler.yaml``; also the datastore root by default.
    registry
        Database URL of the registry (``postgresql://user@host:port/db``); ``None``
        for an SQLite file in ``root``.
    namespace
        PostgreSQL schema of the registry tables (one database, many repositories).
    datastore
        Datastore root URI (``s3://bucket/path``); ``None`` for ``root``.
    """

    root: str
    registry: str | None = None
    namespace: str | None = None
    datastore: str | None = None

    def seed_config(self) -> Config:
        """The configuration `create_repo` writes into ``butler.yaml``."""
        text = importlib.resources.files("dpzero.repo").joinpath("configs/storage.yaml")
        config = Config(yaml.safe_load(text.read_text()))
        if self.registry is not None:
            if not self.registry.startswith(("postgresql://", "sqlite:///")):
                raise InvalidInputError(
                    f"registry URL {self.registry!r} must start with postgresql:// or sqlite:///"
                )
            config["registry", "db"] = self.registry
            if self.namespace:
                config["registry", "namespace"] = self.namespace
        if self.datastore is not None:
            config["datastore", "root"] = self.datastore
        return config


def create_repo(spec: RepoSpec) -> Butler:
    """Create an empty repository with the instrument, sky map and dataset types.

    Returns a writeable Butler. An existing repository at ``spec.root`` is opened and
    completed instead (registration is idempotent).

    Raises
    ------
    InvalidInputError
        If the registry URL is not one dpzero supports.
    """
    root = ResourcePath(spec.root, forceDirectory=True)
    if not root.join("butler.yaml").exists():
        if spec.registry is not None and spec.registry.startswith("postgresql://"):
            _prepare_postgresql(spec.registry)
        Butler.makeRepo(
            root,
            config=spec.seed_config(),
            forceConfigRoot=spec.datastore is None and spec.registry is None,
        )
    butler = open_repo(spec.root, writeable=True)
    register_instrument(butler)
    register_skymap(butler, tracts=())
    known = {dt.name for dt in butler.registry.queryDatasetTypes()}
    for dataset_type in DP01_DATASET_TYPES:
        if dataset_type.name in known:
            continue
        butler.registry.registerDatasetType(
            DatasetType(
                dataset_type.name,
                dataset_type.dimensions,
                dataset_type.storage_class,
                universe=butler.dimensions,
                isCalibration=dataset_type.is_calibration,
            )
        )
    return butler


def _prepare_postgresql(url: str) -> None:
    """Create the database if missing and enable ``btree_gist`` (the registry needs it).

    Raises
    ------
    InvalidInputError
        If the server cannot be reached, or the database or extension cannot be made.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            if "does not exist" not in str(exc) or not parsed.database:
                raise
            server = parsed.set(database="postgres").render_as_string(hide_password=False)
            with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f'CREATE DATABASE "{parsed.database}"')
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        with conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    except psycopg.Error as exc:
        raise InvalidInputError(
            f"cannot prepare the registry database {url}: {str(exc).strip()} "
            "(the server must be reachable, and the database creatable or present "
            "with btree_gist enabled or enableable)"
        ) from exc


def open_repo(root: str | Path, *, writeable: bool = False, **kwargs: object) -> Butler:
    """Open an existing repository.

    Raises
    ------
    InvalidInputError
        If there is no repository at ``root``.
    """
    if not ResourcePath(str(root), forceDirectory=True).join("butler.yaml").exists():
        raise InvalidInputError(f"no Butler repository at {root} (no butler.yaml)")
    return Butler.from_config(str(root), writeable=writeable, **kwargs)  # type: ignore[arg-type]


def insert_records(butler: Butler, records: dict[str, list[dict]]) -> None:
    """Insert dimension records, element by element, keeping those already there."""
    for element, rows in records.items():
        if rows:
            butler.registry.insertDimensionData(element, *rows, skip_existing=True)


def register_instrument(butler: Butler) -> None:
    """Register ``LSSTCam-imSim`` with its physical filters, detectors and visit system."""
    insert_records(butler, instrument_records())


def register_skymap(butler: Butler, tracts: object = ()) -> None:
    """Register the DC2 sky map, the given tracts with their patches, and store it.

    Parameters
    ----------
    butler
        Writeable Butler.
    tracts
        Tract ids to register (with regions) in addition to those already there.
    """
    records = skymap_records(DC2_SKYMAP, tracts)  # type: ignore[arg-type]
    insert_records(butler, records)
    butler.registry.registerDatasetType(
        DatasetType("skyMap", ("skymap",), "DpzeroSkyMap", universe=butler.dimensions)
    )
    butler.registry.registerRun(SKYMAP_RUN)
    if butler.find_dataset("skyMap", skymap=SKYMAP_NAME, collections=SKYMAP_RUN):
        return
    put_once(butler, DC2_SKYMAP, "skyMap", {"skymap": SKYMAP_NAME}, SKYMAP_RUN)


def put_once(butler: Butler, obj: object, dataset_type: str, data_id: dict, run: str) -> None:
    """Put with an id made from the dataset type, data id and run.

    The same dataset put in two repositories gets the same id, so merging them
    later finds one dataset, not two conflicting ones.
    """
    dt = butler.get_dataset_type(dataset_type)
    ref = DatasetRef(
        dt,
        DataCoordinate.standardize(data_id, dimensions=dt.dimensions),
        run=run,
        id_generation_mode=DatasetIdGenEnum.DATAID_TYPE_RUN,
    )
    butler.put(obj, ref)


def register_release_chain(butler: Butler, children: list[str]) -> None:
    """Make `RELEASE_COLLECTION` a CHAINED collection over ``children`` (in order)."""
    butler.registry.registerCollection(RELEASE_COLLECTION, CollectionType.CHAINED)
    butler.registry.setCollectionChain(RELEASE_COLLECTION, children)
