"""IVOA DataLink 1.1 documents: the links of datasets and the SODA service descriptor.

`links_votable` renders `LinkRow` rows (one table, the DataLink columns) and, for
each dataset that can be cut out, a ``RESOURCE type="meta" utype="adhoc:service"``
describing the SODA sync service with its input parameters (``ID`` filled in, ``POS``,
``CIRCLE``, ``POLYGON`` left for the client), as pyvo's ``DatalinkResults`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

__all__ = [
    "DATALINK_STANDARD_ID",
    "SODA_SYNC_STANDARD_ID",
    "LinkRow",
    "SodaDescriptor",
    "links_votable",
]

DATALINK_STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
SODA_SYNC_STANDARD_ID = "ivo://ivoa.net/std/SODA#sync-1.0"


@dataclass(frozen=True)
class LinkRow:
    """One row of a DataLink table (exactly one of access_url, service_def, error_message).

    Attributes
    ----------
    id
        The dataset ID the link belongs to, as the client sent it.
    semantics
        Term of the DataLink vocabulary (``#this``, ``#cutout``, ``#auxiliary``…).
    access_url
        URL of the linked resource.
    service_def
        ``ID`` of the service descriptor resource to call instead.
    error_message
        Why no link can be given (``NotFoundFault: …``).
    description
        Text for people.
    content_type
        MIME type of what the link returns.
    content_length
        Bytes the link returns, when known.
    content_qualifier
        ObsCore product type of what it returns (``image``).
    link_auth
        ``false``, ``optional`` or ``required``: whether the link needs credentials.
    link_authorized
        Whether the caller holds them.
    """

    id: str
    semantics: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    description: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    content_qualifier: str | None = None
    link_auth: str | None = None
    link_authorized: bool | None = None


@dataclass(frozen=True)
class SodaDescriptor:
    """A SODA sync service descriptor bound to one dataset.

    Attributes
    ----------
    resource_id
        XML ID the ``#cutout`` row names in ``service_def``.
    access_url
        URL of the SODA sync endpoint.
    dataset_id
        Value of its ``ID`` input parameter.
    """

    resource_id: str
    access_url: str
    dataset_id: str


_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # name, VOTable datatype attributes, UCD (DataLink 1.1, table 1)
    ("ID", 'datatype="char" arraysize="*"', "meta.id;meta.main"),
    ("access_url", 'datatype="char" arraysize="*"', "meta.ref.url"),
    ("service_def", 'datatype="char" arraysize="*"', "meta.ref"),
    ("error_message", 'datatype="char" arraysize="*"', "meta.code.error"),
    ("semantics", 'datatype="char" arraysize="*"', "meta.code"),
    ("description", 'datatype="char" arraysize="*"', "meta.note"),
    ("content_type", 'datatype="char" arraysize="*"', "meta.code.mime"),
    ("content_length", 'datatype="long" unit="byte"', "phys.size;meta.file"),
    ("content_qualifier", 'datatype="char" arraysize="*"', "meta.code.class"),
    ("local_semantics", 'datatype="char" arraysize="*"', "meta.code"),
    ("link_auth", 'datatype="char" arraysize="*"', "meta.code"),
    ("link_authorized", 'datatype="boolean"', "meta.code"),
)
_NULL_LENGTH = -1


def _cell(value: str | int | bool | None) -> str:
    if value is None:
        return "<TD/>"
    if isinstance(value, bool):
        return "<TD>T</TD>" if value else "<TD>F</TD>"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<TD>{text}</TD>"


def _row(row: LinkRow) -> str:
    length = _NULL_LENGTH if row.content_length is None else row.content_length
    cells = (
        row.id,
        row.access_url,
        row.service_def,
        row.error_message,
        row.semantics,
        row.description,
        row.content_type,
        length,
        row.content_qualifier,
        None,
        row.link_auth,
        row.link_authorized,
    )
    return "<TR>" + "".join(_cell(c) for c in cells) + "</TR>"


def _field(name: str, attributes: str, ucd: str) -> str:
    if name == "content_length":
        return (
            f'<FIELD name="{name}" {attributes} ucd="{ucd}"><VALUES null="{_NULL_LENGTH}"/></FIELD>'
        )
    return f'<FIELD name="{name}" {attributes} ucd="{ucd}"/>'


def _descriptor(soda: SodaDescriptor) -> str:
    text = 'datatype="char" arraysize="*"'
    return "\n".join(
        [
            f'<RESOURCE type="meta" utype="adhoc:service" ID={quoteattr(soda.resource_id)}>',
            "<DESCRIPTION>Cutout of the image holding a sky region (SODA sync): "
            "give one of POS, CIRCLE or POLYGON, in degrees.</DESCRIPTION>",
            f'<PARAM name="standardID" {text} value={quoteattr(SODA_SYNC_STANDARD_ID)}/>',
            f'<PARAM name="accessURL" {text} value={quoteattr(soda.access_url)}/>',
            '<GROUP name="inputParams">',
            f'<PARAM name="ID" {text} ucd="meta.id;meta.dataset" '
            f"value={quoteattr(soda.dataset_id)}/>",
            f'<PARAM name="POS" {text} ucd="pos.outline;obs" value="">'
            "<DESCRIPTION>CIRCLE ra dec radius, RANGE ra1 ra2 dec1 dec2, "
            "or POLYGON ra1 dec1 ra2 dec2 ... (degrees)</DESCRIPTION></PARAM>",
            '<PARAM name="CIRCLE" datatype="double" arraysize="3" xtype="circle" unit="deg" '
            'ucd="pos.outline;obs" value=""><DESCRIPTION>ra dec radius</DESCRIPTION></PARAM>',
            '<PARAM name="POLYGON" datatype="double" arraysize="*" xtype="polygon" unit="deg" '
            'ucd="pos.outline;obs" value=""><DESCRIPTION>ra1 dec1 ra2 dec2 ra3 dec3 ...'
            "</DESCRIPTION></PARAM>",
            "</GROUP>",
            "</RESOURCE>",
        ]
    )


def links_votable(rows: Sequence[LinkRow], descriptors: Sequence[SodaDescriptor] = ()) -> bytes:
    """A DataLink response document.

    Parameters
    ----------
    rows
        The links, grouped by ID in the order the IDs were asked.
    descriptors
        Service descriptors the rows' ``service_def`` refer to.

    Returns
    -------
    bytes
        A VOTable 1.4 document (UTF-8), ``QUERY_STATUS`` OK.
    """
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        '<RESOURCE type="results">',
        '<INFO name="QUERY_STATUS" value="OK"/>',
        f'<INFO name="standardID" value="{DATALINK_STANDARD_ID}"/>',
        "<TABLE>",
        *(_field(*column) for column in _COLUMNS),
        "<DATA><TABLEDATA>",
        *(_row(row) for row in rows),
        "</TABLEDATA></DATA>",
        "</TABLE>",
        "</RESOURCE>",
        *(_descriptor(d) for d in descriptors),
        "</VOTABLE>",
        "",
    ]
    return "\n".join(parts).encode("utf-8")
