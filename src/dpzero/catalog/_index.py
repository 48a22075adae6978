"""The director index: objectId → (partition, row group) of a table.

Stored as one Parquet file sorted by the key, in row groups of `INDEX_ROW_GROUP` rows:
a lookup keeps only the footer's per-row-group min/max in memory and reads the few
row groups that can hold the ids asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["INDEX_ROW_GROUP", "ObjectIndex", "build_index"]

INDEX_ROW_GROUP = 65_536

_INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        ("Norder", pa.uint8()),
        ("Npix", pa.int64()),
        ("row_group", pa.int32()),
    ]
)


def build_index(
    partitions: Iterable[tuple[int, int, Path]],
    key_column: str,
    out: Path,
    *,
    null_key: int | None = None,
) -> int:
    """Write the index of ``key_column`` over ``partitions``; return its row count.

    Parameters
    ----------
    partitions
        ``(Norder, Npix, parquet file)`` of every partition of the table.
    key_column
        The indexed column (int64).
    out
        Parquet file to write.
    null_key
        A value meaning "no object", left out of the index.
    """
    keys: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    pixels: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    for norder, npix, path in partitions:
        with pq.ParquetFile(path) as pf:
            chunks = [
                pf.read_row_group(rg, columns=[key_column]).column(0).to_numpy()
                for rg in range(pf.metadata.num_row_groups)
            ]
        for rg, ids in enumerate(chunks):
            if null_key is not None:
                ids = ids[ids != null_key]
            keys.append(ids.astype(np.int64, copy=False))
            orders.append(np.full(ids.size, norder, dtype=np.uint8))
            pixels.append(np.full(ids.size, npix, dtype=np.int64))
            groups.append(np.full(ids.size, rg, dtype=np.int32))
    key = np.concatenate(keys) if keys else np.empty(0, np.int64)
    order = np.argsort(key, kind="stable")
    table = pa.table(
        [
            pa.array(key[order]),
            pa.array(np.concatenate(orders)[order] if keys else np.empty(0, np.uint8)),
            pa.array(np.concatenate(pixels)[order] if keys else np.empty(0, np.int64)),
            pa.array(np.concatenate(groups)[order] if keys else np.empty(0, np.int32)),
        ],
        schema=_INDEX_SCHEMA,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, row_group_size=INDEX_ROW_GROUP, compression="zstd")
    return table.num_rows


@dataclass(frozen=True)
class Location:
    """Where rows with a given key live: partition and row groups."""

    norder: int
    npix: int
    row_groups: tuple[int, ...]


class ObjectIndex:
    """Read side of the index: which partitions and row groups hold given ids.

    Parameters
    ----------
    path
        The index Parquet file written by `build_index`.
    """

    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(path)
        meta = self._file.metadata
        lo = []
        hi = []
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(0).statistics
            lo.append(
                stats.min if stats is not None and stats.has_min_max else np.iinfo(np.int64).min
            )
            hi.append(
                stats.max if stats is not None and stats.has_min_max else np.iinfo(np.int64).max
            )
        self._lo = np.asarray(lo, dtype=np.int64)
        self._hi = np.asarray(hi, dtype=np.int64)

    def locate(self, ids: Iterable[int]) -> list[Location]:
        """Partitions and row groups holding any of ``ids`` (unknown ids are ignored)."""
        wanted = np.unique(np.fromiter((int(i) for i in ids), dtype=np.int64))
        if wanted.size == 0 or self._lo.size == 0:
            return []
        # Row groups are sorted and disjoint, except that equal keys may straddle two.
        first = np.searchsorted(self._hi, wanted, side="left")
        last = np.searchsorted(self._lo, wanted, side="right") - 1
        groups: set[int] = set()
        for a, b in zip(first, last, strict=True):
            groups.update(range(int(a), int(b) + 1))
        found: dict[tuple[int, int], set[int]] = {}
        for rg in sorted(groups):
            t = self._file.read_row_group(rg)
            key = t.column("key").to_numpy()
            left = np.searchsorted(key, wanted, side="left")
            right = np.searchsorted(key, wanted, side="right")
            hit = np.concatenate([np.arange(a, b) for a, b in zip(left, right, strict=True)])
            if hit.size == 0:
                continue
            norder = t.column("Norder").to_numpy()[hit]
            npix = t.column("Npix").to_numpy()[hit]
            rgs = t.column("row_group").to_numpy()[hit]
            for o, p, g in zip(norder, npix, rgs, strict=True):
                found.setdefault((int(o), int(p)), set()).add(int(g))
        return [Location(o, p, tuple(sorted(g))) for (o, p), g in sorted(found.items())]
