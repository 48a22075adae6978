"""Merge the outputs of a run made elsewhere into the main repository.

A remote or local pipeline execution writes into its own small repository; its RUN
collections are then copied into the main one with their dimension records, and
optionally put at the front of a CHAINED collection so the release sees them.
Merging twice copies nothing the second time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from lsst.daf.butler import Butler, CollectionType, DatasetRef, MissingCollectionError
from lsst.daf.butler.registry import ConflictingDefinitionError

from dpzero.errors import InvalidInputError
from dpzero.repo.repository import (
    CALIB_RUN,
    CALIB_UNBOUNDED_RUN,
    RAW_RUN,
    REFCAT_RUN,
    SKYMAP_RUN,
    open_repo,
)

__all__ = ["MergeConflictError", "MergeReport", "merge_runs"]


class MergeConflictError(InvalidInputError):
    """The main repository holds different datasets or definitions than the source."""

    code = "merge_conflict"
    status_code = 409


@dataclass(frozen=True)
class MergeReport:
    """What a merge did.

    Attributes
    ----------
    runs
        RUN collections merged.
    transferred
        Datasets copied per dataset type.
    already_present
        Datasets the target had already.
    chain
        CHAINED collection the runs were put in front of, if any.
    """

    runs: tuple[str, ...]
    transferred: dict[str, int]
    already_present: int
    chain: str | None

    def summary(self) -> str:
        """A few lines for the terminal."""
        total = sum(self.transferred.values())
        lines = [
            f"merged {len(self.runs)} runs: {total} datasets copied, "
            f"{self.already_present} already present"
        ]
        lines += [f"  {name}: {n}" for name, n in sorted(self.transferred.items()) if n]
        if self.chain:
            lines.append(f"runs are first in {self.chain}")
        return "\n".join(lines)


def _is_infrastructure(run: str) -> bool:
    """Runs every dpzero repository has (sky map, calibrations, raws, refcats)."""
    fixed = (SKYMAP_RUN, RAW_RUN, CALIB_UNBOUNDED_RUN, REFCAT_RUN)
    return run in fixed or run.startswith(f"{CALIB_RUN}/") or run == CALIB_RUN


def _runs_of(source: Butler, runs: Sequence[str] | None) -> list[str]:
    known = {
        info.name: info.type for info in source.collections.query_info("*", include_chains=False)
    }
    if runs is None:
        return sorted(
            name
            for name, kind in known.items()
            if kind is CollectionType.RUN and not _is_infrastructure(name)
        )
    missing = [r for r in runs if known.get(r) is not CollectionType.RUN]
    if missing:
        raise InvalidInputError(f"not RUN collections of the source: {', '.join(missing)}")
    return list(runs)


def merge_runs(
    source: str,
    target: str,
    runs: Sequence[str] | None = None,
    *,
    chain: str | None = None,
    transfer: str = "copy",
) -> MergeReport:
    """Copy RUN collections (datasets, files, dimension records) between repositories.

    Parameters
    ----------
    source
        Root of the repository holding the runs.
    target
        Root of the main repository.
    runs
        RUN collections to merge; by default all of the source's but those every
        dpzero repository has (sky map, raws, calibrations, reference catalog).
    chain
        CHAINED collection of the target to put the merged runs in front of
        (created if missing).
    transfer
        How files are copied (``copy``, ``symlink``, ``auto``…).

    Returns
    -------
    MergeReport
        What was copied.

    Raises
    ------
    InvalidInputError
        If a repository is missing, a run is not in the source, or ``chain`` names a
        collection of another type.
    MergeConflictError
        If the main repository holds a different dataset for one of the source's
        (same run, dataset type and data ID) or defines a dataset type differently;
        the run with the conflict is not merged.
    """
    with open_repo(source) as src, open_repo(target, writeable=True) as dst:
        chosen = _runs_of(src, runs)
        transferred: Counter[str] = Counter()
        present = 0
        for run in chosen:
            refs: list[DatasetRef] = []
            summary = src.collections.get_info(run, include_summary=True)
            for dataset_type in sorted(summary.dataset_types):
                refs.extend(
                    src.query_datasets(dataset_type, collections=run, explain=False, limit=None)
                )
            if not refs:
                continue
            existing = _existing(dst, run, {r.datasetType.name for r in refs})
            _refuse_conflicts(run, refs, existing)
            todo = [
                r for r in refs if (r.datasetType.name, r.dataId.required_values) not in existing
            ]
            present += len(refs) - len(todo)
            if todo:
                try:
                    dst.transfer_from(
                        src,
                        todo,
                        transfer=transfer,
                        register_dataset_types=True,
                        transfer_dimensions=True,
                    )
                except ConflictingDefinitionError as exc:
                    raise MergeConflictError(
                        f"cannot merge run {run}: a definition differs in the main "
                        f"repository ({exc})"
                    ) from None
            transferred.update(r.datasetType.name for r in todo)
        if chain is not None:
            _put_first(dst, chain, chosen)
    return MergeReport(tuple(chosen), dict(transferred), present, chain)


def _existing(butler: Butler, run: str, dataset_types: set[str]) -> dict[tuple[str, tuple], UUID]:
    """Dataset ids the target has in a run already, by (dataset type, data id)."""
    if not _has_run(butler, run):
        return {}
    known = {t.name for t in butler.registry.queryDatasetTypes()}
    found: dict[tuple[str, tuple], UUID] = {}
    for name in sorted(dataset_types & known):
        for ref in butler.query_datasets(name, collections=run, explain=False, limit=None):
            found[(name, ref.dataId.required_values)] = ref.id
    return found


def _refuse_conflicts(
    run: str, refs: list[DatasetRef], existing: dict[tuple[str, tuple], UUID]
) -> None:
    """Raise when the target holds another dataset for one of ``refs``' places.

    The same dataset (same id) merged again is fine; a different one in the same run,
    type and data ID means two executions wrote the same run: merging either way
    would lose one, so nothing is merged.
    """
    clashes = [
        r
        for r in refs
        if existing.get((r.datasetType.name, r.dataId.required_values), r.id) != r.id
    ]
    if clashes:
        first = clashes[0]
        raise MergeConflictError(
            f"cannot merge run {run}: the main repository holds other datasets for "
            f"{len(clashes)} of its datasets (first: {first.datasetType.name} "
            f"{first.dataId.required}); merge into a new run, or remove the other run "
            "from the main repository"
        )


def _has_run(butler: Butler, run: str) -> bool:
    try:
        return butler.collections.get_info(run).type is CollectionType.RUN
    except MissingCollectionError:
        return False


def _put_first(butler: Butler, chain: str, runs: list[str]) -> None:
    registry = butler.registry
    registry.registerCollection(chain, CollectionType.CHAINED)
    info = butler.collections.get_info(chain)
    if info.type is not CollectionType.CHAINED:
        raise InvalidInputError(f"{chain} is a {info.type.name} collection, not CHAINED")
    children = [r for r in runs if _has_run(butler, r)]
    rest = [c for c in registry.getCollectionChain(chain) if c not in children]
    registry.setCollectionChain(chain, [*children, *rest])
