"""The director index: objectId → (partition, row) of a table.

Hash-bucketed so building it sorts one bucket at a time and memory stays bounded
whatever the table's size (about `BUCKET_ROWS` rows × 24 bytes). Each bucket is one
file of entries (key, partition — its position in the index's partition list — and the
row within it), sorted by key, 256 to a 4 kB page and starting on a page, read
memory-mapped; the first key of each page (its fence) is kept in memory. A lookup is a
binary search in the one page the fences point at (a compiled loop,
`dpzero.catalog._kernels.find_keys`: a numpy search per key cost ~5 µs a key), which
holds the partition and row too, and hands the exact rows to the reader, which takes
them from the row copy (`dpzero.catalog._rows`) or the row groups holding them, without
reading any key column. On a cold page cache a key costs one page read, then its record
one or two (format 2 had keys and rows in two files, 512 keys a fence: three pages).
Before, the buckets were Parquet files keyed to row groups: 12 ids decoded 12 index row
groups and 12 key-column chunks (≈ 15 ms on the medium survey; now ≈ 0.05 ms).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.catalog._kernels import find_keys, find_rows, key_buckets, key_windows
from dpzero.catalog._rows import ReadAhead, load_mapped, span_positions
from dpzero.errors import InvalidInputError

__all__ = ["BUCKET_ROWS", "DuplicateKey", "Location", "ObjectIndex", "build_index"]

BUCKET_ROWS = 8_000_000
# An entry: the key, then where its row is.
_ENTRY = np.dtype([("key", "<i8"), ("partition", "<i4"), ("row", "<i4")])
_PAGE_BYTES = 4096
# The first key of each page is kept in memory: a lookup then reads one 4 kB page
# instead of binary-searching ~13 pages of a file not yet in memory.
FENCE_STRIDE = _PAGE_BYTES // _ENTRY.itemsize
# Up to this many keys a bucket is searched key by key through its fences.
_FEW_KEYS = 64
_META = "index.json"
# Version 1 was Parquet buckets pointing at row groups, version 2 keys and rows in two
# .npy files: such a store must be re-ingested.
_FORMAT = 3

# The entries before sorting, as Parquet shards of each bucket.
_SHARD_SCHEMA = pa.schema([(name, pa.from_numpy_dtype(_ENTRY[name])) for name in _ENTRY.names])


@dataclass(frozen=True)
class DuplicateKey:
    """A key found twice in a table that must not repeat it."""

    key: int


def _entries_file(folder: Path, bucket: int) -> Path:
    # Raw entries, no header: the first entry starts the file's first page.
    return folder / f"bucket-{bucket:05d}-entries.bin"


def _fences_file(folder: Path, bucket: int) -> Path:
    return folder / f"bucket-{bucket:05d}-fences.npy"


def build_index(
    partitions: Iterable[tuple[int, int, Path]],
    key_column: str,
    out: Path,
    *,
    rows: int,
    null_key: int | None = None,
    unique: bool = False,
) -> int | DuplicateKey:
    """Write the index of ``key_column`` over ``partitions`` into the folder ``out``.

    Parameters
    ----------
    partitions
        ``(Norder, Npix, parquet file)`` of every partition of the table.
    key_column
        The indexed column (int64).
    out
        Folder to write.
    rows
        The table's row count (sets the number of buckets).
    null_key
        A value meaning "no object", left out of the index.
    unique
        Report the first key found twice instead of indexing it.

    Returns
    -------
    int or DuplicateKey
        Rows indexed, or the duplicate key when ``unique`` and one exists.
    """
    buckets = max(1, -(-rows // BUCKET_ROWS))
    shards = out / "_shards"
    shards.mkdir(parents=True)
    writers: dict[int, pq.ParquetWriter] = {}
    pixels: list[tuple[int, int]] = []
    try:
        for ordinal, (norder, npix, path) in enumerate(partitions):
            pixels.append((norder, npix))
            offset = 0
            with pq.ParquetFile(path) as pf:
                for rg in range(pf.metadata.num_row_groups):
                    ids = pf.read_row_group(rg, columns=[key_column]).column(0).to_numpy()
                    ids = ids.astype(np.int64, copy=False)
                    at = np.arange(offset, offset + ids.size, dtype=np.int32)
                    offset += ids.size
                    if null_key is not None:
                        known = ids != null_key
                        ids, at = ids[known], at[known]
                    which = key_buckets(ids, buckets)
                    for b in np.unique(which):
                        sel = which == b
                        part = pa.table(
                            [ids[sel], np.full(int(sel.sum()), ordinal, np.int32), at[sel]],
                            schema=_SHARD_SCHEMA,
                        )
                        if b not in writers:
                            writers[int(b)] = pq.ParquetWriter(
                                shards / f"{b}.parquet", _SHARD_SCHEMA
                            )
                        writers[int(b)].write_table(part)
    finally:
        for w in writers.values():
            w.close()
    total = 0
    for b in range(buckets):
        shard = shards / f"{b}.parquet"
        table = pq.read_table(shard) if shard.exists() else _SHARD_SCHEMA.empty_table()
        key = table.column("key").to_numpy()
        # Stable: equal keys (truth_match) keep the table's order.
        order = np.argsort(key, kind="stable")
        key = key[order]
        if unique and key.size > 1:
            dup = np.flatnonzero(key[1:] == key[:-1])
            if dup.size:
                shutil.rmtree(shards)
                return DuplicateKey(int(key[dup[0]]))
        entries = np.empty(key.size, dtype=_ENTRY)
        entries["key"] = key
        entries["partition"] = table.column("partition").to_numpy()[order]
        entries["row"] = table.column("row").to_numpy()[order]
        entries.tofile(_entries_file(out, b))
        np.save(_fences_file(out, b), key[::FENCE_STRIDE].copy(), allow_pickle=False)
        total += key.size
    shutil.rmtree(shards)
    meta = {
        "format": _FORMAT,
        "key": key_column,
        "buckets": buckets,
        "rows": total,
        "partitions": pixels,
    }
    (out / _META).write_text(json.dumps(meta))
    return total


@dataclass(frozen=True)
class Location:
    """Where rows with given keys live: a partition and the rows within it (sorted)."""

    norder: int
    npix: int
    rows: np.ndarray


class ObjectIndex:
    """Read side of the index: which partitions and rows hold given ids.

    Parameters
    ----------
    path
        The index folder written by `build_index`.

    Raises
    ------
    InvalidInputError
        If the index was written by an older dpzero (its table must be re-ingested).
    """

    def __init__(self, path: Path) -> None:
        meta = json.loads((path / _META).read_text())
        if meta.get("format") != _FORMAT:
            raise InvalidInputError(
                f"the objectId index at {path} was written by an older dpzero; "
                "re-ingest the table (dpzero catalog ingest)"
            )
        self.key_column: str = meta["key"]
        self._pixels = [tuple(p) for p in meta["partitions"]]
        buckets = range(int(meta["buckets"]))
        self._files = [_entries_file(path, b) for b in buckets]
        self._use([load_mapped(file, raw=_ENTRY) for file in self._files])
        # Held in memory: every bucket's keys, partitions and rows, one after another.
        self._held_columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._fences = [np.load(_fences_file(path, b)) for b in buckets]
        self._all_fences = np.concatenate([np.zeros(0, dtype=np.int64), *self._fences])
        self._fence_starts = np.cumsum([0, *(f.size for f in self._fences)], dtype=np.int64)

    def _use(self, entries: list[np.ndarray]) -> None:
        """Search ``entries`` (one array per bucket) from now on."""
        self._entries = entries
        self._keys = [bucket["key"] for bucket in entries]
        self._read_ahead = [ReadAhead(bucket) for bucket in entries]  # no-op unless mapped

    @property
    def pixels(self) -> list[tuple[int, int]]:
        """``(Norder, Npix)`` of each partition, in the order `find` numbers them."""
        return self._pixels

    @property
    def held(self) -> bool:
        """Whether the entries are in this process's memory (`hold_in_memory`)."""
        return self._held_columns is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the entries (what `hold_in_memory` copies)."""
        return sum(entries.nbytes for entries in self._entries)

    def hold_in_memory(self) -> None:
        """Copy the entries from their mapped files into this process's memory.

        A mapped page lives in the kernel's page cache, which every process's reads
        share: another program's scan of gigabytes pushes the index out, and the next id
        lookup reads a page from disk per key. A database server keeps its indexes in
        memory of its own (PostgreSQL's shared buffers); so does a server holding this.
        """
        if self.held:
            return
        sizes = [bucket.size for bucket in self._entries]
        starts = np.cumsum([0, *sizes], dtype=np.int64)
        held = np.empty(int(starts[-1]), dtype=_ENTRY)
        spans = list(itertools.pairwise(starts.tolist()))
        for file, (start, end) in zip(self._files, spans, strict=True):
            # Read whole (the mapping reads page by page: it is told reads are random),
            # every bucket into one array so that one compiled call searches them all.
            with file.open("rb") as f:
                f.readinto(memoryview(held[start:end]).cast("B"))  # type: ignore[arg-type]
        # Read-only as the mapping was: the compiled search keeps one machine-code
        # version per array type, and writeable is part of the type.
        held.flags.writeable = False
        self._use([held[start:end] for start, end in spans])
        # Last: `find` may run meanwhile (a server holds its indexes in the background),
        # and takes the compiled path once the held columns are there.
        self._bucket_starts = starts
        self._held_columns = (held["key"], held["partition"], held["row"])

    def find(
        self, ids: Iterable[int], *, read_ahead: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Partition (a position in `pixels`) and row of each row holding any of ``ids``
        (unknown ids are ignored), ordered by partition and row.

        With ``read_ahead`` the pages each step reads are asked for at once first (see
        `dpzero.catalog._rows.ReadAhead`): worth it when the page cache is cold.
        """
        wanted = np.fromiter(ids, dtype=np.int64)
        if wanted.size > 1 and not (wanted[1:] > wanted[:-1]).all():  # selections sort theirs
            wanted = np.unique(wanted)
        if self._held_columns is not None and wanted.size <= _FEW_KEYS:
            # In memory, a few keys: one compiled call (a dozen numpy calls per bucket
            # cost ~40 µs, most of a 12-id lookup's search).
            return find_rows(
                *self._held_columns,
                self._bucket_starts,
                self._all_fences,
                self._fence_starts,
                FENCE_STRIDE,
                wanted,
            )
        buckets = len(self._keys)
        which = key_buckets(wanted, buckets) if buckets > 1 else None
        hits = []
        for b, keys in enumerate(self._keys):
            mine = wanted if which is None else wanted[which == b]
            if mine.size == 0 or keys.size == 0:
                continue
            if mine.size > _FEW_KEYS:
                # Many keys (a join's ids): one vectorised search touches most pages anyway.
                first = np.searchsorted(keys, mine, side="left")
                last = np.searchsorted(keys, mine, side="right")
                at = span_positions(first, last)
            else:
                fences = self._fences[b]
                if read_ahead:  # the page (or two) each key is searched in
                    low, high = key_windows(fences, FENCE_STRIDE, keys.size, mine)
                    self._read_ahead[b].rows(low.tolist(), np.maximum(high - 1, low).tolist())
                at = find_keys(keys, fences, FENCE_STRIDE, mine)
            if at.size:
                hits.append(self._entries[b][np.sort(at)])
        if not hits:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        # Field by field: joining structured arrays costs numpy a type promotion.
        parts = np.concatenate([found["partition"] for found in hits]).astype(np.int64)
        rows = np.concatenate([found["row"] for found in hits]).astype(np.int64)
        order = np.lexsort((rows, parts))
        return parts[order], rows[order]

    def locate(self, ids: Iterable[int]) -> list[Location]:
        """Partitions and rows holding any of ``ids`` (unknown ids are ignored)."""
        parts, rows = self.find(ids)
        if not parts.size:
            return []
        cuts = [0, *(np.flatnonzero(np.diff(parts)) + 1).tolist(), len(parts)]
        out = []
        for start, end in itertools.pairwise(cuts):
            norder, npix = self._pixels[int(parts[start])]
            out.append(Location(int(norder), int(npix), rows[start:end]))
        return sorted(out, key=lambda loc: (loc.norder, loc.npix))
