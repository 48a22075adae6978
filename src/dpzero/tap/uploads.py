"""TAP UPLOAD (TAP 1.1 §2.5.7): VOTable tables sent with a query, as ``TAP_UPLOAD.<name>``."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pyarrow as pa

from dpzero.errors import InvalidInputError
from dpzero.tap.models import UploadSpec

__all__ = ["UPLOAD_SCHEMA", "parse_upload_param", "read_votable_upload"]

UPLOAD_SCHEMA = "TAP_UPLOAD"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_upload_param(values: list[str]) -> tuple[UploadSpec, ...]:
    """UploadSpecs of UPLOAD parameter values (``name,URI`` pairs separated by ``;``).

    Raises
    ------
    InvalidInputError
        For a malformed pair, a name that is not an ADQL identifier, a URI scheme other
        than param:, http: or https:, or a name used twice.
    """
    specs: list[UploadSpec] = []
    for value in values:
        for pair in filter(None, (p.strip() for p in value.split(";"))):
            name, sep, uri = pair.partition(",")
            name, uri = name.strip(), uri.strip()
            if not sep or not name or not uri:
                raise InvalidInputError(f"UPLOAD {pair!r} must be written name,URI")
            if not _NAME.match(name):
                raise InvalidInputError(
                    f"UPLOAD table name {name!r} must be an identifier (letters, digits, _)"
                )
            if not (uri.startswith(("param:", "http://", "https://"))):
                raise InvalidInputError(
                    f"UPLOAD {name}: URI {uri!r} must be param:<field>, http:// or https://"
                )
            if any(s.name.lower() == name.lower() for s in specs):
                raise InvalidInputError(f"UPLOAD table {name} is given twice")
            specs.append(UploadSpec(name, uri))
    return tuple(specs)


def read_votable_upload(name: str, data: bytes, max_rows: int) -> pa.Table:
    """An uploaded VOTable as an Arrow table (masked values become nulls).

    Raises
    ------
    InvalidInputError
        If the bytes are not a VOTable with one table, or it has too many rows.
    """
    from astropy.io.votable import parse_single_table

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse_single_table(io.BytesIO(data)).to_table()
    except Exception as exc:  # astropy raises many kinds for malformed XML
        raise InvalidInputError(f"UPLOAD {name}: not a readable VOTable ({exc})") from None
    if len(table) > max_rows:
        raise InvalidInputError(f"UPLOAD {name} has {len(table):,} rows; the limit is {max_rows:,}")
    arrays, names = [], []
    for column in table.columns.values():
        values = column.data
        mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else None
        raw = np.ma.getdata(values)
        if raw.dtype.kind in "SU" or raw.dtype == object:
            items = [
                None if (mask is not None and mask[i]) else _text(v) for i, v in enumerate(raw)
            ]
            arrays.append(pa.array(items, type=pa.string()))
        elif raw.ndim > 1:
            raise InvalidInputError(f"UPLOAD {name}: column {column.name} is an array")
        else:
            arrays.append(pa.array(raw, mask=mask))
        names.append(column.name)
    return pa.Table.from_arrays(arrays, names=names)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
