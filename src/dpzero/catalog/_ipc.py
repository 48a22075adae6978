"""Arrow record batches written as one IPC message, for wide results of few rows.

Making a pyarrow array costs a few microseconds however short it is: a 12-row result
of 137 columns spent ~1.5 ms building arrays one by one and a table of them. Arrow's IPC
reader builds a whole batch in C++ from one message, a flatbuffer header (each
column's length and null count, each buffer's place in the body) followed by the body.
So the body is laid out in one compiled loop (`dpzero.catalog._kernels.ipc_message`),
and the header is pyarrow's own for the schema, written once per schema with a 1-row
batch, with its numbers overwritten there: lengths, null counts, buffer places (the
flatbuffer's layout depends on the schema only, never on the numbers in it). This
module finds where those numbers are.

See the Arrow columnar format's "Serialization and Interprocess Communication"
(encapsulated message: continuation marker, header size, header, body; buffers 8-byte
aligned) and its ``Message.fbs``/``Schema.fbs`` for the tables read here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["BatchHeader"]

# Field numbers of the flatbuffer tables (Message.fbs).
_MESSAGE_HEADER = 2
_MESSAGE_BODY_LENGTH = 3
_BATCH_LENGTH = 0
_BATCH_NODES = 1
_BATCH_BUFFERS = 2


def _field(buf: bytes, table: int, number: int) -> int:
    """Where field ``number`` of the flatbuffer table at ``table`` is (it must be set)."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * number
    at = struct.unpack_from("<H", buf, vtable + slot)[0] if slot < size else 0
    if not at:
        raise ValueError(f"flatbuffer field {number} is not set")
    return table + at


def _target(buf: bytes, at: int) -> int:
    """Where the offset stored at ``at`` points."""
    return at + struct.unpack_from("<I", buf, at)[0]


def buffer_count(arrow_type: pa.DataType) -> int | None:
    """IPC buffers of a column of ``arrow_type`` (validity, values[, data]), or None for
    types written otherwise (nested, dictionary, views)."""
    if pa.types.is_boolean(arrow_type) or (
        pa.types.is_primitive(arrow_type) and arrow_type.bit_width % 8 == 0
    ):
        return 2
    if arrow_type in (pa.string(), pa.binary(), pa.large_string(), pa.large_binary()):
        return 3
    return None


@dataclass(frozen=True)
class BatchHeader:
    """The IPC header of batches of one schema, with where its numbers are.

    Attributes
    ----------
    schema
        The batches' schema.
    template
        The encapsulated header (continuation marker, size, flatbuffer, padding), as
        bytes of numpy for `dpzero.catalog._kernels.ipc_message`.
    numbers_at
        Where in the template the batch's numbers go (int64): its length, the body's
        length, the first node's, the first buffer's.
    """

    schema: pa.Schema
    template: np.ndarray
    numbers_at: np.ndarray

    @classmethod
    def of(cls, schema: pa.Schema) -> BatchHeader | None:
        """The header of ``schema``'s batches, or None if a type needs other buffers."""
        counts = [buffer_count(f.type) for f in schema]
        if any(c is None for c in counts) or not len(schema):
            return None
        sample = pa.RecordBatch.from_arrays([pa.nulls(1, f.type) for f in schema], schema=schema)
        message = sample.serialize().to_pybytes()
        size = struct.unpack_from("<i", message, 4)[0]
        head = message[: 8 + size]
        root = _target(head, 8)
        batch = _target(head, _field(head, root, _MESSAGE_HEADER))
        nodes = _target(head, _field(head, batch, _BATCH_NODES))
        buffers = _target(head, _field(head, batch, _BATCH_BUFFERS))
        if (
            struct.unpack_from("<I", head, nodes)[0] != len(schema)
            or struct.unpack_from("<I", head, buffers)[0] != sum(counts)  # type: ignore[arg-type]
            or (nodes + 4) % 8
            or (buffers + 4) % 8
        ):
            return None  # not the layout this module writes (a future format change)
        return cls(
            schema=schema,
            template=np.frombuffer(head, dtype=np.uint8),
            numbers_at=np.asarray(
                [
                    _field(head, batch, _BATCH_LENGTH),
                    _field(head, root, _MESSAGE_BODY_LENGTH),
                    nodes + 4,
                    buffers + 4,
                ],
                dtype=np.int64,
            ),
        )
