"""``dpzero sim catalogs``: the truth and the five DP0.1 tables, written as DESC-style Parquet.

Output folder::

    manifest.json                       size, seed, region, row counts, schema version
    truth/truth_tract<T>.parquet        every simulated source (the truth universe)
    object/object_tract<T>.parquet      one file per tract and table, a row group per patch
    truth_match/… position/… reference/… forced_photometry/…

The folder is built under a temporary name beside the target and renamed into place
when complete, so an error or an interrupt leaves nothing half-written. Patches are
simulated independently (in worker processes with ``jobs`` > 1) and written in sky-map
order, so the bytes depend only on size and seed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from dpzero.errors import InvalidInputError, OutputExistsError
from dpzero.schema import load_schema
from dpzero.sim.observe import observe_patch
from dpzero.sim.survey import SurveyRegion, survey_region
from dpzero.sim.tables import build_tables
from dpzero.sim.universe import TRUTH_SCHEMA, PatchCell, patches_in_region, simulate_truth

__all__ = ["CATALOG_TABLES", "CatalogManifest", "simulate_catalogs", "simulate_patch"]

CATALOG_TABLES = ("object", "truth_match", "position", "reference", "forced_photometry")
SCHEMA_KEY = "dp01_dc2"
_PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


@dataclass
class TableFiles:
    """Files and row count of one table in the output."""

    rows: int = 0
    files: list[str] = field(default_factory=list)


@dataclass
class CatalogManifest:
    """What a simulation wrote (saved as ``manifest.json``)."""

    size: str
    seed: int
    region: dict[str, float]
    area_deg2: float
    sky_map: str
    schema: str
    database: str
    schema_version: str
    patches: int
    tables: dict[str, TableFiles]
    truth: TableFiles
    elapsed_seconds: float = 0.0

    def to_json(self) -> str:
        """Deterministic JSON (the elapsed time is left out so that bytes repeat)."""
        data = asdict(self)
        data.pop("elapsed_seconds")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, folder: Path) -> CatalogManifest:
        """Read the manifest of a simulated survey folder.

        Raises
        ------
        InvalidInputError
            If the folder has no readable manifest.
        """
        path = Path(folder) / "manifest.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{path}: not a simulated survey manifest ({exc})") from None
        data["tables"] = {k: TableFiles(**v) for k, v in data["tables"].items()}
        data["truth"] = TableFiles(**data["truth"])
        return cls(**data)

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"simulated {self.size} survey (seed {self.seed}): {self.area_deg2:.3f} deg², "
            f"{self.patches} patches of sky map {self.sky_map}",
            f"  truth: {self.truth.rows:,} sources",
        ]
        lines += [f"  {self.database}.{k}: {v.rows:,} rows" for k, v in self.tables.items()]
        if self.elapsed_seconds:
            rate = self.tables["object"].rows / self.elapsed_seconds
            lines.append(f"  {self.elapsed_seconds:.1f} s, {rate:,.0f} objects/s")
        return "\n".join(lines)


def simulate_patch(cell: PatchCell, region: SurveyRegion, seed: int) -> dict[str, pa.Table]:
    """Truth and the five tables of one patch (the unit of work)."""
    truth = simulate_truth(cell, region, seed)
    observed = observe_patch(truth, cell, seed, region)
    tables = build_tables(observed, truth)
    tables["truth"] = truth
    return tables


def _chosen_tables(tables: Sequence[str] | None) -> tuple[str, ...]:
    """The tables to write, in `CATALOG_TABLES` order; unknown names are a user error."""
    if tables is None:
        return CATALOG_TABLES
    unknown = sorted(set(tables) - set(CATALOG_TABLES))
    if unknown or not tables:
        raise InvalidInputError(
            f"unknown table(s) {', '.join(unknown) or '(none given)'}; "
            f"choose among {', '.join(CATALOG_TABLES)}"
        )
    return tuple(name for name in CATALOG_TABLES if name in tables)


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; choose a new output folder")
    if out.is_dir() and any(out.iterdir()):
        raise OutputExistsError(
            f"{out} exists and is not empty; choose a new output folder or remove it first"
        )
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write in {parent}: permission denied")


def _patch_results(
    cells: list[PatchCell], region: SurveyRegion, seed: int, jobs: int
) -> Iterator[dict[str, pa.Table]]:
    """Per-patch tables in order; with jobs > 1, a bounded window of worker processes."""
    if jobs <= 1:
        for cell in cells:
            yield simulate_patch(cell, region, seed)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: deque[Future[dict[str, pa.Table]]] = deque()
        queue = iter(cells)
        for cell in queue:
            pending.append(pool.submit(simulate_patch, cell, region, seed))
            if len(pending) >= 2 * jobs:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(simulate_patch, nxt, region, seed))
            yield result


def simulate_catalogs(
    size: str,
    seed: int,
    out: Path,
    progress: bool = True,
    jobs: int = 1,
    tables: Sequence[str] | None = None,
) -> CatalogManifest:
    """Simulate a survey and write its truth and DP0.1 catalogs.

    Parameters
    ----------
    size
        ``tiny``, ``small``, ``medium`` or ``large``.
    seed
        Random seed; the same size and seed give byte-identical files.
    out
        Output folder; must not exist, or be empty.
    progress
        Show a progress bar on standard error.
    jobs
        Worker processes (1: simulate in this process).
    tables
        Only write these of `CATALOG_TABLES` (default: all). Every table is still
        simulated, so the rows written do not depend on the choice; leaving out the
        wide ones saves most of the disk (e.g. the medium survey's object and position
        tables alone, for the catalog benchmarks).

    Raises
    ------
    InvalidInputError
        For an unknown size or table, a negative seed or an unwritable location.
    OutputExistsError
        If ``out`` exists and is not empty.
    """
    region = survey_region(size)
    if seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, not {seed}")
    if jobs < 1:
        raise InvalidInputError(f"jobs must be at least 1, not {jobs}")
    chosen = _chosen_tables(tables)
    out = Path(out)
    _check_output(out)
    schema = load_schema(SCHEMA_KEY)
    cells = patches_in_region(region)
    tmp = out.absolute().parent / f".{out.name}.partial-{os.getpid()}"
    start = time.monotonic()
    try:
        manifest = _write_all(
            tmp, cells, region, size, seed, schema.version, progress, jobs, chosen
        )
        manifest.elapsed_seconds = time.monotonic() - start
        (tmp / "manifest.json").write_text(manifest.to_json())
        if out.is_dir():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _write_all(
    tmp: Path,
    cells: list[PatchCell],
    region: SurveyRegion,
    size: str,
    seed: int,
    schema_version: str,
    progress: bool,
    jobs: int,
    chosen: tuple[str, ...],
) -> CatalogManifest:
    schema = load_schema(SCHEMA_KEY)
    arrow_schemas = {name: schema.table(name).arrow_schema() for name in chosen}
    arrow_schemas["truth"] = TRUTH_SCHEMA
    files = {name: TableFiles() for name in arrow_schemas}
    for name in arrow_schemas:
        (tmp / name).mkdir(parents=True)
    writers: dict[str, pq.ParquetWriter] = {}
    current_tract: int | None = None
    bar = tqdm(total=len(cells), unit="patch", desc=f"sim {size}", disable=not progress)
    try:
        for cell, tables in zip(cells, _patch_results(cells, region, seed, jobs), strict=True):
            if cell.tract != current_tract:
                for w in writers.values():
                    w.close()
                writers = {}
                current_tract = cell.tract
            for name, table in tables.items():
                if table.num_rows == 0 or name not in arrow_schemas:
                    continue
                if name not in writers:
                    rel = f"{name}/{name}_tract{cell.tract}.parquet"
                    writers[name] = pq.ParquetWriter(
                        tmp / rel, arrow_schemas[name], **_PARQUET_OPTIONS
                    )
                    files[name].files.append(rel)
                writers[name].write_table(table, row_group_size=max(table.num_rows, 1))
                files[name].rows += table.num_rows
            bar.update(1)
            bar.set_postfix(objects=f"{files['object'].rows:,}")
    finally:
        for w in writers.values():
            w.close()
        bar.close()
    return CatalogManifest(
        size=size,
        seed=seed,
        region=asdict(region),
        area_deg2=round(region.area_deg2, 6),
        sky_map="DC2",
        schema=SCHEMA_KEY,
        database=schema.name,
        schema_version=schema_version,
        patches=len(cells),
        tables={name: files[name] for name in chosen},
        truth=files["truth"],
    )
