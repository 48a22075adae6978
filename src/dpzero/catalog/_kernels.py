"""Compiled loops of the query paths: index search, row-copy records to Arrow, the cone test.

An id lookup returns a dozen rows of ~140 columns. Done with numpy, each step is a few
vectorised calls of 1–10 µs that each handle a dozen values: ~40 calls to lay out an
Arrow IPC body, two searches per key in the index. PostgreSQL answers the same lookup
in ~0.5 ms, about what those calls cost. Compiled with numba (already a dependency of
the store through hats) each step is one call. A wide cone's test is the opposite case:
a dozen numpy passes over ~450,000 rows (7.5 ms of a 0.5° cone's 26) where one loop
decides each row with what it already has in registers. The functions are compiled on first use
and cached on disk (``cache=True``); they release the GIL, so the store's reading
threads run them side by side.

Byte order: records, index files and Arrow IPC bodies are little-endian. On another
machine a row copy refuses to open (the store reads Parquet instead, see
`dpzero.catalog._rows`) and numba does not compile the index search.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "BITS",
    "TEXT",
    "VALUES",
    "cone_decide",
    "find_keys",
    "find_rows",
    "ipc_message",
    "key_buckets",
    "key_windows",
    "warm_up",
]

# How a column's record bytes become Arrow buffers (`ipc_message`'s ``kinds``).
VALUES = 0  # the value's bytes as they are (numbers, timestamps as int64)
BITS = 1  # a bool byte, packed to a bit
TEXT = 2  # padded bytes with their length beside them: offsets and data


@numba.njit(cache=True, nogil=True)
def _padded(size: int) -> int:
    return (size + 7) // 8 * 8


@numba.njit(cache=True, nogil=True)
def _get(record: np.ndarray, at: int, width: int) -> int:
    """The little-endian unsigned integer of ``width`` bytes at ``at``."""
    value = np.uint64(0)  # unsigned from the start: numba makes int64 | uint64 a float
    for k in range(width):
        value |= np.uint64(record[at + k]) << np.uint64(8 * k)
    return value


@numba.njit(cache=True, nogil=True, inline="always")
def _copied(record: np.ndarray, at: int, out: np.ndarray, to: int, width: int) -> int:
    """Copy ``width`` bytes of ``record`` at ``at`` to ``out`` at ``to``; return them as
    a little-endian unsigned integer."""
    value = np.uint64(0)
    for k in range(width):
        byte = record[at + k]
        out[to + k] = byte
        value |= np.uint64(byte) << np.uint64(8 * k)
    return value


@numba.njit(cache=True, nogil=True)
def _put(out: np.ndarray, at: int, value: int) -> None:
    """``value`` as a little-endian int64 at ``at``."""
    bits = np.uint64(value)
    for k in range(8):
        out[at + k] = (bits >> np.uint64(8 * k)) & np.uint64(0xFF)


@numba.njit(cache=True, nogil=True)
def _is_nan(bits: int, width: int) -> bool:
    """Whether the IEEE float of ``width`` bytes with these bits is a NaN."""
    if width == 8:
        exponent, fraction = np.uint64(0x7FF0000000000000), np.uint64(0x000FFFFFFFFFFFFF)
    elif width == 4:
        exponent, fraction = np.uint64(0x7F800000), np.uint64(0x007FFFFF)
    else:
        exponent, fraction = np.uint64(0x7C00), np.uint64(0x03FF)
    value = np.uint64(bits)
    return (value & exponent) == exponent and (value & fraction) != 0


@numba.njit(cache=True, nogil=True)
def ipc_message(
    records: np.ndarray,
    template: np.ndarray,
    header_at: np.ndarray,
    valid_at: int,
    layout: np.ndarray,
) -> np.ndarray:
    """One Arrow IPC message (header and body) of the given columns of ``records``.

    Parameters
    ----------
    records
        The records, one row of bytes each (uint8, 2-d, C order).
    template
        The schema's header (`dpzero.catalog._ipc.BatchHeader.template`).
    header_at
        Where the header's numbers go (`dpzero.catalog._ipc.BatchHeader.numbers_at`):
        the batch's length, the body's length, the first node, the first buffer.
    valid_at
        Where the records' validity bitmap starts (numpy's bit order: the first column
        is the high bit of the first byte).
    layout
        int64, one row per column of the batch, in its order: `VALUES`, `BITS` or
        `TEXT`; where its value lies in a record; its value's width in bytes (text: the
        width of its offsets, 4 or 8); where a text's length lies (int32); its bit in
        the validity bitmap; the width of a float whose NaN is NULL (0: NaN stays a
        value). One array, not six: each argument costs the call ~0.5 µs.

    Returns
    -------
    numpy.ndarray
        The message, to give `pyarrow.ipc.read_record_batch`. Each column's buffers lie
        in column order (validity, then values or offsets and data), 8-byte aligned.
    """
    n = records.shape[0]
    columns = layout.shape[0]
    kinds, sources, widths = layout[:, 0], layout[:, 1], layout[:, 2]
    length_sources, valid_bits, nan_widths = layout[:, 3], layout[:, 4], layout[:, 5]
    bitmap = (n + 7) // 8
    # Buffer places: (start, length) of each column's first and second (and third) buffer.
    starts = np.empty((columns, 3), dtype=np.int64)
    lengths = np.zeros((columns, 3), dtype=np.int64)
    size = 0
    for c in range(columns):
        starts[c, 0] = size
        lengths[c, 0] = bitmap
        size += _padded(bitmap)
        starts[c, 1] = size
        if kinds[c] == VALUES:
            lengths[c, 1] = n * widths[c]
        elif kinds[c] == BITS:
            lengths[c, 1] = bitmap
        else:
            lengths[c, 1] = (n + 1) * widths[c]
            total = 0
            for r in range(n):
                total += _get(records[r], length_sources[c], 4)
            lengths[c, 2] = total
        size += _padded(lengths[c, 1])
        starts[c, 2] = size
        size += _padded(lengths[c, 2])
    head = template.size
    message = np.zeros(head + size, dtype=np.uint8)
    message[:head] = template
    body = message[head:]
    nulls = np.zeros(columns, dtype=np.int64)
    text_ends = np.zeros(columns, dtype=np.int64)
    for r in range(n):
        record = records[r]
        bit = np.uint8(1 << (r % 8))
        for c in range(columns):
            v = valid_bits[c]
            valid = (record[valid_at + v // 8] >> (7 - v % 8)) & 1
            kind = kinds[c]
            source = sources[c]
            if kind == VALUES:
                width = widths[c]
                out = starts[c, 1] + r * width
                if width == 8:  # a constant count: the loop is unrolled
                    bits = _copied(record, source, body, out, 8)
                else:
                    bits = _copied(record, source, body, out, width)
                if valid and nan_widths[c] and _is_nan(bits, width):
                    valid = 0
            elif kind == BITS:
                if record[source]:
                    body[starts[c, 1] + r // 8] |= bit
            else:
                length = _get(record, length_sources[c], 4)
                out = starts[c, 2] + text_ends[c]
                for k in range(length):
                    body[out + k] = record[source + k]
                text_ends[c] += length
                # Offsets: a zero first, then each value's end.
                end = starts[c, 1] + (r + 1) * widths[c]
                for k in range(widths[c]):
                    body[end + k] = (text_ends[c] >> (8 * k)) & 0xFF
            if valid:
                body[starts[c, 0] + r // 8] |= bit
            else:
                nulls[c] += 1
    _put(message, header_at[0], n)
    _put(message, header_at[1], size)
    at = header_at[2]
    for c in range(columns):
        _put(message, at + 16 * c, n)
        _put(message, at + 16 * c + 8, nulls[c])
    at = header_at[3]
    for c in range(columns):
        for b in range(3 if kinds[c] == TEXT else 2):
            _put(message, at, starts[c, b])
            _put(message, at + 8, lengths[c, b])
            at += 16
    return message


@numba.njit(cache=True, nogil=True)
def key_windows(
    fences: np.ndarray, stride: int, size: int, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The window ``[low, high)`` of sorted keys (``size`` of them) holding every copy of
    each of ``wanted``, from their ``fences`` (every ``stride``-th key): ``[(i - 1) *
    stride, j * stride)`` with i fences below the key and j not above it. Key j * stride
    is a fence above the key (not read); a key equal to a fence may also sit before it.
    One page of keys per key when a page holds ``stride`` keys."""
    low = np.empty(wanted.size, dtype=np.int64)
    high = np.empty(wanted.size, dtype=np.int64)
    for i in range(wanted.size):
        key = wanted[i]
        low[i] = max(np.searchsorted(fences, key, side="left") - 1, 0) * stride
        high[i] = min(np.searchsorted(fences, key, side="right") * stride, size)
    return low, high


@numba.njit(cache=True, nogil=True)
def find_keys(keys: np.ndarray, fences: np.ndarray, stride: int, wanted: np.ndarray) -> np.ndarray:
    """Every position of each of ``wanted`` in the sorted ``keys`` (in the order of
    ``wanted``, a key's copies in order), searching only the window `key_windows` gives."""
    low, high = key_windows(fences, stride, keys.size, wanted)
    first = np.empty(wanted.size, dtype=np.int64)
    last = np.empty(wanted.size, dtype=np.int64)
    for i in range(wanted.size):
        window = keys[low[i] : high[i]]
        first[i] = low[i] + np.searchsorted(window, wanted[i], side="left")
        last[i] = low[i] + np.searchsorted(window, wanted[i], side="right")
    found = np.empty((last - first).sum(), dtype=np.int64)
    at = 0
    for i in range(wanted.size):
        for position in range(first[i], last[i]):
            found[at] = position
            at += 1
    return found


@numba.njit(cache=True, nogil=True)
def cone_decide(
    ra: np.ndarray,
    dec: np.ndarray,
    constants: np.ndarray,
    sure: np.ndarray,
    undecided: np.ndarray,
) -> None:
    """`dpzero.catalog._selection.ConeTest.decide`, one row at a time.

    ``constants`` (float64): ra0, dec0, low, high, limit, band, the upper bound's RA
    weight, its inner limit, the lower bound's RA weight, its outer limit and
    cos(dec0). Each row is decided by the cheapest of: outside the Dec band; inside by
    the trigonometry-free upper bound; outside by the lower bound; the haversine.
    ``sure`` and ``undecided`` (bool, one per row) are written.
    """
    ra0, dec0, low, high, limit, band = constants[:6]
    ra_weight, inner_limit, far, outer_limit, cos0 = constants[6:11]
    scale = (np.pi / 360.0) ** 2
    to_radians = np.pi / 180.0
    for i in range(ra.size):
        d = dec[i]
        sure[i] = False
        undecided[i] = False
        if not (d >= low and d <= high):  # NaN too
            continue
        d_dec = d - dec0
        d_ra = ra[i] - ra0
        d_dec2 = d_dec * d_dec
        d_ra2 = d_ra * d_ra
        if d_dec2 + d_ra2 * ra_weight <= inner_limit:
            sure[i] = True
            continue
        x_dec = d_dec2 * scale
        x_ra = d_ra2 * scale
        if x_dec * (1.0 - x_dec / 3.0) + far * (x_ra * (1.0 - x_ra / 3.0)) > outer_limit:
            continue
        a = np.sin((dec0 - d) * to_radians / 2)
        b = np.sin((ra0 - ra[i]) * to_radians / 2)
        h = a * a + np.cos(d * to_radians) * cos0 * (b * b)
        sure[i] = h <= limit - band
        undecided[i] = abs(h - limit) <= band


@numba.njit(cache=True, nogil=True)
def key_buckets(keys: np.ndarray, buckets: int) -> np.ndarray:
    """The index bucket of each key (int64): a multiplicative hash, so any id pattern
    spreads evenly."""
    which = np.zeros(keys.size, dtype=np.int64)
    if buckets > 1:
        for i in range(keys.size):
            mixed = np.uint64(keys[i]) * np.uint64(0x9E3779B97F4A7C15)
            which[i] = np.int64((mixed >> np.uint64(33)) % np.uint64(buckets))
    return which


@numba.njit(cache=True, nogil=True)
def find_rows(
    keys: np.ndarray,
    partitions: np.ndarray,
    rows: np.ndarray,
    bucket_starts: np.ndarray,
    fences: np.ndarray,
    fence_starts: np.ndarray,
    stride: int,
    wanted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Partition and row of every entry holding one of ``wanted`` (unique), ordered by
    partition and row, in one call: each key's bucket (`key_buckets`), then its entries
    in that bucket (`find_keys`).

    The buckets lie one after another: bucket b's entries (``keys``, ``partitions``,
    ``rows``) from ``bucket_starts[b]``, its fences (every ``stride``-th key) from
    ``fence_starts[b]``.
    """
    buckets = bucket_starts.size - 1
    which = key_buckets(wanted, buckets)
    found = np.empty(0, dtype=np.int64)
    for b in range(buckets):
        mine = wanted[which == b]
        if mine.size:
            start, end = bucket_starts[b], bucket_starts[b + 1]
            bucket_fences = fences[fence_starts[b] : fence_starts[b + 1]]
            at = find_keys(keys[start:end], bucket_fences, stride, mine)
            found = np.concatenate((found, start + at))
    # Partition and row as one sortable number (both are below 2**31).
    places = np.empty(found.size, dtype=np.int64)
    for i in range(found.size):
        places[i] = (np.int64(partitions[found[i]]) << 32) | np.int64(rows[found[i]])
    places.sort()
    return places >> 32, places & 0xFFFFFFFF


def warm_up() -> None:
    """Load (or compile, the first time) each loop for the argument types queries give
    it: ~0.3 s from the disk cache, ~2 s to compile, otherwise paid by a server's first
    id lookup. Numba keeps one machine-code version per argument types (read-only or
    not, contiguous or strided), so these are the ones the store passes."""
    entries = np.zeros(4, dtype=[("key", "<i8"), ("partition", "<i4"), ("row", "<i4")])
    entries.flags.writeable = False  # the index is mapped read-only
    keys = entries["key"]  # strided: a field of the entries
    fences = np.zeros(1, dtype=np.int64)
    wanted = np.zeros(1, dtype=np.int64)
    key_windows(fences, 4, keys.size, wanted)
    find_keys(keys, fences, 4, wanted)
    key_buckets(wanted, 2)
    entry_starts = np.array([0, 4], dtype=np.int64)
    fence_starts = np.array([0, 1], dtype=np.int64)
    parts, rows = entries["partition"], entries["row"]
    find_rows(keys, parts, rows, entry_starts, fences, fence_starts, 4, wanted)
    template = np.frombuffer(bytes(64), dtype=np.uint8)  # a header: read-only bytes
    at = np.zeros(4, dtype=np.int64)
    ipc_message(np.zeros((0, 8), dtype=np.uint8), template, at, 0, np.zeros((0, 6), np.int64))
    positions = np.zeros(1)
    positions.flags.writeable = False  # `ConeTest.decide` passes read-only views
    flags = np.zeros(1, dtype=bool)
    cone_decide(positions, positions, np.zeros(11), flags, flags)
