"""Catalog objects as DataLink IDs: ``<database>.<table>?<objectId>``.

An object is named by the qualified ADQL name of its table and its ``objectId``,
joined by ``?`` as the local part of an IVOA publisher identifier is:
``dp01_dc2_catalogs.object?16849332795867480``. The text is what a TAP user already
has in hand (the table queried and the row's ``objectId``), so no lookup service is
needed to build it. `/api/datalink/links?ID=` takes it next to dataset IDs and
answers the images holding the object's position (`ImageService.object_links`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dpzero.images.faults import UsageFault

__all__ = [
    "OBJECT_CUTOUT_RADIUS_ARCSEC",
    "OBJECT_TABLES",
    "ObjectId",
    "ObjectTable",
    "object_id_uri",
    "parse_object_id",
]

OBJECT_CUTOUT_RADIUS_ARCSEC = 5.0
"""Radius of the ready-made cutout around an object (a galaxy and its surroundings)."""


@dataclass(frozen=True)
class ObjectTable:
    """A catalog table whose rows can be named as DataLink IDs.

    Attributes
    ----------
    name
        Qualified ADQL name (``database.table``), lower case.
    key
        Column of the object's ID.
    ra, dec
        Columns of its position (degrees, ICRS).
    """

    name: str
    key: str
    ra: str
    dec: str


OBJECT_TABLES: dict[str, ObjectTable] = {
    t.name: t
    for t in (
        ObjectTable("dp01_dc2_catalogs.object", "objectId", "ra", "dec"),
        ObjectTable("dp02_dc2_catalogs.object", "objectId", "coord_ra", "coord_dec"),
    )
}
"""The object tables of the DP0.1 and DP0.2 catalogs, by qualified name."""

_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)\?(.*)$")
_HINT = "expected <database>.<table>?<objectId>, e.g. dp01_dc2_catalogs.object?1234"


@dataclass(frozen=True)
class ObjectId:
    """A catalog object named in a DataLink request."""

    table: ObjectTable
    """Its table."""
    object_id: int
    """Its ``objectId``."""

    def __str__(self) -> str:
        return object_id_uri(self.table.name, self.object_id)


def object_id_uri(table: str, object_id: int) -> str:
    """The DataLink ID of a catalog object: ``<database>.<table>?<objectId>``."""
    return f"{table}?{int(object_id)}"


def parse_object_id(text: str) -> ObjectId | None:
    """Read an object ID, or say that the text is not one (``None``).

    Parameters
    ----------
    text
        An ``ID`` value as the client sent it.

    Returns
    -------
    ObjectId or None
        The object, or ``None`` when the text is not of the object form (a dataset
        ID, for instance).

    Raises
    ------
    UsageFault
        If the text is of the object form but names a table without objects or an
        ``objectId`` that is not an integer.
    """
    match = _FORM.match(text)
    if match is None:
        return None
    name, key = match.group(1).lower(), match.group(2).strip()
    table = OBJECT_TABLES.get(name)
    if table is None:
        known = ", ".join(OBJECT_TABLES)
        raise UsageFault(f"ID {text.strip()!r}: {name} is not an object table; use {known}")
    if not re.fullmatch(r"[+-]?\d{1,19}", key):
        raise UsageFault(f"ID {text.strip()!r}: objectId {key!r} is not an integer; {_HINT}")
    value = int(key)
    if not -(2**63) <= value < 2**63:
        raise UsageFault(f"ID {text.strip()!r}: objectId {key} does not fit in 64 bits")
    return ObjectId(table, value)
