"""Streaming HEALPix partitioner: input Parquet files → one HATS catalog.

Three passes over the data, each bounded in memory:

1. Stream the position columns of every file and compute each row's ``_healpix_29``
   (kept, 8 bytes a row) and a histogram of row counts at the finest order.
2. Choose adaptive partitions with hats' alignment rule (`_align`, vectorised over the
   non-empty cells: hats' ``generate_alignment`` loops in Python over every cell of the
   sky), each at most ``partition_rows`` rows, then stream every file again in chunks,
   splitting each chunk by destination partition into Arrow IPC spill files.
3. For each partition, read its spill files (memory-mapped), sort by ``_healpix_29``
   and write its Parquet file in small row groups, then the catalog's metadata files
   with hats' own writers (``partition_info.csv``, ``dataset/_common_metadata``,
   ``dataset/_metadata``, ``hats.properties``, the sky maps).

Memory: the ``_healpix_29`` values of the table, one input chunk (bounded in bytes,
whatever the width of the table) and one partition at a time per thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.errors import InvalidInputError

__all__ = [
    "HEALPIX_COLUMN",
    "MAX_AUTO_ORDER",
    "PartitionPlan",
    "PartitionTooDenseError",
    "chunk_rows_for",
    "partition_table",
    "plan_partitions",
]

HEALPIX_COLUMN = "_healpix_29"
# Finest order the planner raises to on its own (cells of ~0.4 arcsec).
MAX_AUTO_ORDER = 19
# Finest order of the sky maps (point_map.fits, skymap.fits): 12·4^k cells.
SKYMAP_MAX_ORDER = 10
# Bytes of one input chunk in memory; wide tables read fewer rows at once.
CHUNK_BYTES = 256 * 1024 * 1024


class PartitionTooDenseError(InvalidInputError):
    """More rows share one finest HEALPix cell than a partition may hold."""

    code = "partition_too_dense"


@dataclass(frozen=True)
class PartitionPlan:
    """The partitions of a table and the rows each holds.

    Attributes
    ----------
    order
        The finest order considered (may exceed the order asked for).
    pixels
        ``(Norder, Npix, rows)`` of every partition, in HEALPix (nested) order.
    starts
        First ``_healpix_29`` value of each partition's range, ascending.
    """

    order: int
    pixels: tuple[tuple[int, int, int], ...]
    starts: np.ndarray

    def locate(self, hp29: np.ndarray) -> np.ndarray:
        """Index in `pixels` of the partition holding each ``_healpix_29`` value."""
        return np.searchsorted(self.starts, hp29, side="right") - 1


def _histogram(hp29: np.ndarray, order: int) -> np.ndarray:
    """Dense row counts at ``order`` (for the sky maps)."""
    return np.bincount(hp29 >> (2 * (29 - order)), minlength=12 * 4**order).astype(np.int64)


def _runs(sorted_values: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if sorted_values.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(np.diff(sorted_values)) + 1])


def _densest(sorted_hp29: np.ndarray, order: int) -> int:
    if sorted_hp29.size == 0:
        return 0
    cells = sorted_hp29 >> (2 * (29 - order))
    starts = _runs(cells)
    return int(np.diff(np.append(starts, cells.size)).max())


def _align(cells: np.ndarray, counts: np.ndarray, order: int, threshold: int) -> np.ndarray:
    """Partition order of each non-empty cell at ``order`` (sorted, with row counts).

    hats' rule, bottom-up: a cell at a coarser order k gathers all its rows into one
    partition when it holds at most ``threshold`` rows and more than one of its four
    children holds any (a lone non-empty child keeps its finer, smaller pixel). The
    coarsest such ancestor wins. Vectorised over the non-empty cells only.
    """
    final = np.full(cells.size, order, dtype=np.int64)
    for k in range(order - 1, -1, -1):
        parent = cells >> (2 * (order - k))
        child = cells >> (2 * (order - k - 1))
        starts = _runs(parent)
        sums = np.add.reduceat(counts, starts)
        new_child = np.ones(cells.size, dtype=np.int64)
        new_child[1:] = child[1:] != child[:-1]
        children = np.add.reduceat(new_child, starts)
        collapse = (sums <= threshold) & (children > 1)
        lengths = np.diff(np.append(starts, cells.size))
        final[np.repeat(collapse, lengths)] = k
    return final


def plan_partitions(hp29: np.ndarray, *, highest_order: int, partition_rows: int) -> PartitionPlan:
    """Adaptive partitions of at most ``partition_rows`` rows from the rows' ``_healpix_29``.

    When even a single cell at ``highest_order`` holds more than ``partition_rows``
    rows, the order is raised (up to `MAX_AUTO_ORDER`) until none does.

    Raises
    ------
    PartitionTooDenseError
        If more than ``partition_rows`` rows share one cell at `MAX_AUTO_ORDER`
        (or at ``highest_order`` when that is finer).
    """
    ordered = np.sort(hp29)
    order = highest_order
    densest = _densest(ordered, order)
    while densest > partition_rows and order < MAX_AUTO_ORDER:
        order += 1
        densest = _densest(ordered, order)
    if densest > partition_rows:
        raise PartitionTooDenseError(
            f"{densest} rows lie in one HEALPix cell of order {order}, more than "
            f"--partition-rows {partition_rows} allows; raise --partition-rows to at least "
            f"{densest}"
        )
    fine = ordered >> (2 * (29 - order))
    first = _runs(fine)
    cells = fine[first]
    counts = np.diff(np.append(first, fine.size)).astype(np.int64)
    orders = _align(cells, counts, order, partition_rows)
    pixel = cells >> (2 * (order - orders))
    key = np.stack([orders, pixel], axis=1)
    change = np.ones(cells.size, dtype=bool)
    change[1:] = (key[1:] != key[:-1]).any(axis=1)
    starts = np.flatnonzero(change)
    rows = np.add.reduceat(counts, starts) if cells.size else np.zeros(0, dtype=np.int64)
    p_orders, p_pixels = orders[starts], pixel[starts]
    return PartitionPlan(
        order=order,
        pixels=tuple(
            (int(o), int(p), int(n)) for o, p, n in zip(p_orders, p_pixels, rows, strict=True)
        ),
        starts=(p_pixels << (2 * (29 - p_orders))).astype(np.int64),
    )


def chunk_rows_for(schema: pa.Schema, chunk_rows: int) -> int:
    """Rows per input chunk: ``chunk_rows``, fewer for wide tables (`CHUNK_BYTES`)."""
    width = 0
    for field in schema:
        try:
            width += max(1, field.type.bit_width // 8)
        except ValueError:
            width += 32  # strings and other variable-width values
    return max(1_000, min(chunk_rows, CHUNK_BYTES // max(width, 1)))


def _spatial_index(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    from hats.pixel_math.spatial_index import compute_spatial_index

    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(compute_spatial_index(ra, dec), dtype=np.int64)


def _positions(
    files: list[Path], ra_column: str, dec_column: str, batch_rows: int
) -> tuple[np.ndarray, list[int]]:
    """Pass 1: ``_healpix_29`` of every row, in input order, and each file's row count."""
    parts: list[np.ndarray] = []
    counts = []
    for path in files:
        n = 0
        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=[ra_column, dec_column]):
                ra = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
                dec = batch.column(1).to_numpy(zero_copy_only=False).astype(np.float64)
                parts.append(_spatial_index(ra, dec))
                n += batch.num_rows
        counts.append(n)
    hp29 = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return hp29, counts


def _spill(
    files: list[Path],
    hp29: np.ndarray,
    plan: PartitionPlan,
    spill_dir: Path,
    chunk_rows: int,
    on_chunk: Callable[[int], None] | None,
) -> pa.Schema:
    """Pass 2: split every input chunk by partition into Arrow IPC files."""
    offset = 0
    chunk = 0
    schema: pa.Schema | None = None
    for path in files:
        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=chunk_rows):
                n = batch.num_rows
                hp = hp29[offset : offset + n]
                offset += n
                table = pa.Table.from_batches([batch])
                table = table.add_column(0, HEALPIX_COLUMN, pa.array(hp, type=pa.int64()))
                schema = table.schema
                dest = plan.locate(hp)
                order = np.argsort(dest, kind="stable")
                dest_sorted = dest[order]
                table = table.take(pa.array(order))
                starts = np.flatnonzero(np.diff(dest_sorted, prepend=-1))
                ends = np.append(starts[1:], n)
                for s, e in zip(starts, ends, strict=True):
                    out = spill_dir / str(int(dest_sorted[s]))
                    out.mkdir(exist_ok=True)
                    with (
                        pa.OSFile(str(out / f"{chunk}.arrow"), "wb") as sink,
                        pa.ipc.new_file(sink, schema) as writer,
                    ):
                        writer.write_table(table.slice(s, e - s))
                chunk += 1
                if on_chunk is not None:
                    on_chunk(n)
        if schema is None:
            # An empty file still fixes the table's schema.
            with pq.ParquetFile(path) as pf:
                schema = pf.schema_arrow.insert(0, pa.field(HEALPIX_COLUMN, pa.int64()))
    assert schema is not None
    return schema


def write_kwargs(
    schema: pa.Schema,
    compression: str,
    compression_level: int,
    sorting_columns: list[pq.SortingColumn] | None = None,
) -> dict[str, object]:
    """Parquet writer arguments of a partition or margin file: hats' (byte stream split
    floats, a delta-packed `HEALPIX_COLUMN`, dictionaries elsewhere) with the codec,
    except that 64-bit integers are delta-packed and left uncompressed.

    Those are ids (objectId, parentObjectId) and the HEALPix index. An id is unique, so
    its dictionary is the column again plus the codes (5.8 B a row with LZ4 on the
    medium survey); sorted by sky position, a partition's ids of one tract and patch
    lie close, so their deltas pack to ~3 B a row and decode 2.6× faster. A codec
    gains ~8 % on packed deltas for ~15 % more decoding (and nothing on the HEALPix
    index): objectId is returned by most queries, so its decoding is what counts.
    """
    from hats.io import file_io

    extra = {} if sorting_columns is None else {"sorting_columns": sorting_columns}
    level = compression_level if compression == "zstd" else None  # zstd alone has levels
    kwargs = file_io.get_parquet_write_table_kwargs(
        schema,
        write_table_kwargs={**extra, "compression": compression, "compression_level": level},
    )
    kwargs.pop("row_group_size", None)  # the callers set their own
    integers = {f.name for f in schema if pa.types.is_int64(f.type)}
    if not integers:
        return kwargs
    encoding = dict(kwargs.get("column_encoding") or {})
    encoding.update(dict.fromkeys(integers, "DELTA_BINARY_PACKED"))
    dictionary = kwargs.get("use_dictionary")
    if isinstance(dictionary, list):
        dictionary = [name for name in dictionary if name not in integers]
    others = [f.name for f in schema if f.name not in integers]
    kwargs.update(
        column_encoding=encoding,
        use_dictionary=dictionary,
        compression={**dict.fromkeys(others, compression), **dict.fromkeys(integers, "none")},
        compression_level=None if level is None else dict.fromkeys(others, level),
    )
    return kwargs


def _write_partition(
    spill: Path,
    dest: Path,
    schema: pa.Schema,
    row_group_rows: int,
    compression: str,
    compression_level: int,
) -> int:
    """Pass 3 for one partition: gather, sort by ``_healpix_29``, write Parquet."""

    pieces = []
    for f in sorted(spill.iterdir(), key=lambda p: int(p.stem)):
        with pa.memory_map(str(f)) as source:
            pieces.append(pa.ipc.open_file(source).read_all())
    table = pa.concat_tables(pieces)
    ordering = [(HEALPIX_COLUMN, "ascending")]
    table = table.sort_by(ordering)
    kwargs = write_kwargs(
        table.schema,
        compression,
        compression_level,
        pq.SortingColumn.from_ordering(schema, ordering),
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(dest, table.schema, **kwargs) as writer:
        for start in range(0, table.num_rows, row_group_rows):
            writer.write_table(table.slice(start, row_group_rows))
    rows = table.num_rows
    del table, pieces
    shutil.rmtree(spill)
    return rows


def partition_table(
    files: list[Path],
    catalog_dir: Path,
    *,
    ra_column: str,
    dec_column: str,
    highest_order: int,
    partition_rows: int,
    row_group_rows: int,
    chunk_rows: int,
    threads: int = 2,
    compression: str = "lz4",
    compression_level: int = 3,
    properties: dict[str, str] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> list[tuple[int, int, Path]]:
    """Write the HATS catalog of the rows in ``files`` into ``catalog_dir``.

    Parameters
    ----------
    files
        Input Parquet files, all with the same schema.
    catalog_dir
        The catalog folder to create (its name is the catalog's name).
    ra_column, dec_column
        Position columns, degrees.
    highest_order
        Finest HEALPix order of a partition (raised when a cell is too dense).
    partition_rows
        Maximum rows in a partition.
    row_group_rows
        Rows per Parquet row group.
    chunk_rows
        Rows read from an input file at once (fewer for wide tables).
    threads
        Partitions sorted and written at once.
    compression, compression_level
        Parquet codec of the files, and its level for zstd.
    properties
        Extra ``hats.properties`` entries.
    on_rows
        Called with the rows of each input chunk spilled.

    Returns
    -------
    list of tuple
        ``(Norder, Npix, parquet file)`` of every partition.

    Raises
    ------
    PartitionTooDenseError
        If a single HEALPix cell holds more than ``partition_rows`` rows.
    """
    from hats.catalog import PartitionInfo, TableProperties
    from hats.io import file_io, paths
    from hats.io.parquet_metadata import write_parquet_metadata
    from hats.io.skymap import write_skymap
    from hats.pixel_math.healpix_pixel import HealpixPixel

    from dpzero import __version__

    with pq.ParquetFile(files[0]) as pf:
        batch_rows = chunk_rows_for(pf.schema_arrow, chunk_rows)
    hp29, _ = _positions(files, ra_column, dec_column, max(batch_rows, chunk_rows))
    plan = plan_partitions(hp29, highest_order=highest_order, partition_rows=partition_rows)
    catalog_dir.mkdir(parents=True, exist_ok=True)
    spill_dir = catalog_dir.parent / f"_spill_{catalog_dir.name}"
    spill_dir.mkdir(parents=True)
    try:
        schema = _spill(files, hp29, plan, spill_dir, batch_rows, on_rows)
        map_order = min(plan.order, SKYMAP_MAX_ORDER)
        histogram = _histogram(hp29, map_order)
        del hp29
        pixels = [HealpixPixel(o, p) for o, p, _ in plan.pixels]
        targets = [Path(str(paths.pixel_catalog_file(catalog_dir, px))) for px in pixels]

        def write(i: int) -> int:
            return _write_partition(
                spill_dir / str(i),
                targets[i],
                schema,
                row_group_rows,
                compression,
                compression_level,
            )

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            written = list(pool.map(write, range(len(pixels))))
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    for (o, p, expected), got in zip(plan.pixels, written, strict=True):
        if expected != got:
            raise RuntimeError(f"partition {o}/{p}: planned {expected} rows, wrote {got}")
    total = int(sum(written))
    info = PartitionInfo.from_healpix(pixels)
    info.write_to_file(paths.get_partition_info_pointer(catalog_dir))
    if pixels:
        write_parquet_metadata(catalog_dir)
    else:
        (catalog_dir / "dataset").mkdir(parents=True, exist_ok=True)
        pq.write_metadata(schema, catalog_dir / "dataset" / "_common_metadata")
    file_io.write_fits_image(histogram, paths.get_point_map_file_pointer(catalog_dir))
    write_skymap(histogram=histogram, catalog_dir=catalog_dir, orders=None)
    highest = max((px.order for px in pixels), default=0)
    provenance = TableProperties.new_provenance_dict(
        catalog_dir, builder=f"dpzero v{__version__}", **(properties or {})
    )
    TableProperties(
        **provenance,
        catalog_name=catalog_dir.name,
        catalog_type="object",
        total_rows=total,
        ra_column=ra_column,
        dec_column=dec_column,
        hats_max_rows=partition_rows,
        hats_order=highest,
        moc_sky_fraction=f"{info.calculate_fractional_coverage():0.5f}",
        hats_npix_suffix=".parquet",
        hats_skymap_order=map_order,
        hats_col_healpix=HEALPIX_COLUMN,
        hats_col_healpix_order=29,
    ).to_properties_file(catalog_dir)
    return [(px.order, px.pixel, t) for px, t in zip(pixels, targets, strict=True)]
