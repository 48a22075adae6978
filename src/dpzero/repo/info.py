"""What a repository holds: collections, dataset counts, visits and tracts."""

from __future__ import annotations

from dataclasses import dataclass

from lsst.daf.butler import CollectionType

from dpzero.repo.dimensions import INSTRUMENT, RELEASE_COLLECTION, band_of
from dpzero.repo.repository import open_repo

__all__ = ["RepoInfo", "repo_info"]


@dataclass(frozen=True)
class RepoInfo:
    """A summary of a repository.

    Attributes
    ----------
    root
        Repository root.
    collections
        Every collection with its type, sorted by name.
    release_chain
        Children of the release's CHAINED collection (empty if it is absent).
    datasets
        Number of datasets of each dataset type found through the release collection.
    visits
        Visits per band.
    tracts
        Registered tracts.
    """

    root: str
    collections: tuple[tuple[str, str], ...]
    release_chain: tuple[str, ...]
    datasets: dict[str, int]
    visits: dict[str, int]
    tracts: tuple[int, ...]

    def summary(self) -> str:
        """Lines for the terminal."""
        lines = [f"repository {self.root}"]
        if self.release_chain:
            lines.append(f"{RELEASE_COLLECTION} = {' → '.join(self.release_chain)}")
        lines.append("collections:")
        lines += [f"  {name} ({kind})" for name, kind in self.collections]
        lines.append("datasets:")
        lines += [f"  {name}: {n}" for name, n in sorted(self.datasets.items()) if n]
        visits = ", ".join(f"{band} {n}" for band, n in sorted(self.visits.items()))
        lines.append(f"visits: {visits or 'none'}")
        lines.append(f"tracts: {', '.join(map(str, self.tracts)) or 'none'}")
        return "\n".join(lines)


def repo_info(root: str) -> RepoInfo:
    """Summarise a repository.

    Raises
    ------
    InvalidInputError
        If there is no repository at ``root``.
    """
    with open_repo(root) as butler:
        infos = sorted(butler.collections.query_info("*"), key=lambda i: i.name)
        collections = tuple((i.name, i.type.name) for i in infos)
        chain: tuple[str, ...] = ()
        datasets: dict[str, int] = {}
        if any(
            n == RELEASE_COLLECTION and t == CollectionType.CHAINED.name for n, t in collections
        ):
            chain = tuple(butler.collections.get_info(RELEASE_COLLECTION).children)
            for dataset_type in sorted(butler.registry.queryDatasetTypes(), key=lambda d: d.name):
                refs = butler.query_datasets(
                    dataset_type,
                    collections=RELEASE_COLLECTION,
                    find_first=not dataset_type.isCalibration(),
                    explain=False,
                    limit=None,
                )
                datasets[dataset_type.name] = len(refs)
        visits: dict[str, int] = {}
        for record in butler.query_dimension_records("visit", instrument=INSTRUMENT, explain=False):
            band = band_of(record.physical_filter)
            visits[band] = visits.get(band, 0) + 1
        tracts = tuple(sorted(r.id for r in butler.query_dimension_records("tract", explain=False)))
    return RepoInfo(root, collections, chain, datasets, visits, tracts)
