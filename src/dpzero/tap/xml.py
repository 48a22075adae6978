"""XML documents of the service: UWS jobs and job lists, VOSI capabilities, availability
and tables. Each is one function of domain objects to bytes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from dpzero.catalog import TableMetadata
from dpzero.tap.formats import votable_datatype
from dpzero.tap.models import Job, JobPhase
from dpzero.tap.tap_schema import TAP_SCHEMA_NAME, TapSchema, arrow_type_of

__all__ = [
    "availability_xml",
    "capabilities_xml",
    "job_list_xml",
    "job_xml",
    "tables_xml",
]

_UWS = (
    'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _element(name: str, value: str | None) -> str:
    if value is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(value)}</uws:{name}>"


def job_xml(job: Job, job_url: str) -> bytes:
    """The UWS 1.1 job document."""
    parts = [
        _DECL,
        f'<uws:job {_UWS} version="1.1">',
        _element("jobId", job.job_id),
    ]
    if job.run_id:
        parts.append(_element("runId", job.run_id))
    parts += [
        _element("ownerId", job.owner),
        _element("phase", job.phase.value),
        _element("quote", _time(job.quote)),
        _element("creationTime", _time(job.creation_time)),
        _element("startTime", _time(job.start_time)),
        _element("endTime", _time(job.end_time)),
        _element("executionDuration", str(job.execution_duration)),
        _element("destruction", _time(job.destruction)),
        "<uws:parameters>",
    ]
    for key, value in job.parameters.as_uws():
        parts.append(f"<uws:parameter id={quoteattr(key)}>{escape(value)}</uws:parameter>")
    parts.append("</uws:parameters>")
    parts.append("<uws:results>")
    if job.phase == JobPhase.COMPLETED:
        parts.append(
            f'<uws:result id="result" xlink:type="simple" '
            f"xlink:href={quoteattr(job_url + '/results/result')}/>"
        )
    parts.append("</uws:results>")
    if job.phase == JobPhase.ERROR and job.error_message:
        parts.append(
            '<uws:errorSummary type="fatal" hasDetail="true">'
            f"<uws:message>{escape(job.error_message)}</uws:message></uws:errorSummary>"
        )
    parts.append("</uws:job>\n")
    return "".join(parts).encode()


def job_list_xml(jobs: Sequence[Job], async_url: str) -> bytes:
    """The UWS 1.1 job list."""
    parts = [_DECL, f'<uws:jobs {_UWS} version="1.1">']
    for job in jobs:
        parts.append(
            f'<uws:jobref id={quoteattr(job.job_id)} xlink:type="simple" '
            f"xlink:href={quoteattr(async_url + '/' + job.job_id)}>"
        )
        parts.append(_element("phase", job.phase.value))
        if job.run_id:
            parts.append(_element("runId", job.run_id))
        parts.append(_element("ownerId", job.owner))
        parts.append(_element("creationTime", _time(job.creation_time)))
        parts.append("</uws:jobref>")
    parts.append("</uws:jobs>\n")
    return "".join(parts).encode()


def availability_xml(available: bool, note: str) -> bytes:
    """VOSI availability; the literal ``<available>true</available>`` is a contract."""
    state = "true" if available else "false"
    return (
        f'{_DECL}<availability xmlns="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        f"<available>{state}</available><note>{escape(note)}</note></availability>\n"
    ).encode()


def capabilities_xml(
    tap_url: str,
    default_maxrec: int,
    max_maxrec: int,
    execution_duration: int,
    max_execution_duration: int,
    retention_seconds: int,
    upload_limit_bytes: int,
) -> bytes:
    """VOSI capabilities with TAPRegExt: languages, formats, limits, upload methods."""
    formats = [
        (
            "application/x-votable+xml",
            "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
            "votable",
        ),
        (
            "application/x-votable+xml;serialization=TABLEDATA",
            "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
            "votable/td",
        ),
        ("text/csv", None, "csv"),
        ("text/tab-separated-values", None, "tsv"),
        ("application/vnd.apache.parquet", None, "parquet"),
    ]
    out_formats = "".join(
        f"<outputFormat{f' ivo-id={quoteattr(ivo)}' if ivo else ''}><mime>{escape(mime)}</mime>"
        f"<alias>{alias}</alias></outputFormat>"
        for mime, ivo, alias in formats
    )
    geometry = "".join(
        f"<feature><form>{name}</form></feature>"
        for name in (
            "POINT",
            "CIRCLE",
            "BOX",
            "POLYGON",
            "CONTAINS",
            "INTERSECTS",
            "DISTANCE",
            "AREA",
            "CENTROID",
            "COORD1",
            "COORD2",
            "COORDSYS",
        )
    )
    scisql = "".join(
        f"<feature><form>{escape(form)}</form></feature>"
        for form in (
            "scisql_nanojanskyToAbMag(flux DOUBLE) -> DOUBLE",
            "scisql_nanojanskyToAbMagSigma(flux DOUBLE, fluxErr DOUBLE) -> DOUBLE",
            "scisql_angSep(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE) -> DOUBLE",
        )
    )
    endpoints = "".join(
        f'<capability standardID="ivo://ivoa.net/std/{std}">'
        f'<interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="full">'
        f"{escape(tap_url)}/{path}</accessURL></interface></capability>"
        for std, path in (
            ("VOSI#capabilities", "capabilities"),
            ("VOSI#availability", "availability"),
            ("VOSI#tables-1.1", "tables"),
        )
    )
    doc = f"""{_DECL}<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
 xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">
<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
<interface xsi:type="vs:ParamHTTP" role="std" version="1.1">
<accessURL use="base">{escape(tap_url)}</accessURL></interface>
<language><name>ADQL</name>
<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>
<description>ADQL 2.1, with the scisql functions of Rubin's Qserv</description>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{geometry}</languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">{scisql}</languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-common-table">
<feature><form>WITH</form></feature></languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-sets">
<feature><form>UNION</form></feature><feature><form>EXCEPT</form></feature>
<feature><form>INTERSECT</form></feature></languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-string">
<feature><form>LOWER</form></feature><feature><form>ILIKE</form></feature></languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-offset">
<feature><form>OFFSET</form></feature></languageFeatures>
<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-type">
<feature><form>CAST</form></feature></languageFeatures>
</language>
{out_formats}
<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>
<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>
<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-https"/>
<retentionPeriod><default>{retention_seconds}</default><hard>{retention_seconds}</hard></retentionPeriod>
<executionDuration><default>{execution_duration}</default><hard>{max_execution_duration}</hard></executionDuration>
<outputLimit><default unit="row">{default_maxrec}</default><hard unit="row">{max_maxrec}</hard></outputLimit>
<uploadLimit><hard unit="byte">{upload_limit_bytes}</hard></uploadLimit>
</capability>
{endpoints}
</vosi:capabilities>
"""
    return doc.encode()


def _column_xml(
    name: str,
    datatype: str,
    arraysize: str | None,
    unit: str,
    ucd: str,
    utype: str,
    description: str,
    principal: bool,
    indexed: bool,
) -> str:
    size = f" arraysize={quoteattr(arraysize)}" if arraysize else ""
    parts = [f"<column><name>{escape(name)}</name>"]
    if description:
        parts.append(f"<description>{escape(description)}</description>")
    if unit:
        parts.append(f"<unit>{escape(unit)}</unit>")
    if ucd:
        parts.append(f"<ucd>{escape(ucd)}</ucd>")
    if utype:
        parts.append(f"<utype>{escape(utype)}</utype>")
    parts.append(f'<dataType xsi:type="vs:VOTableType"{size}>{datatype}</dataType>')
    if indexed:
        parts.append("<flag>indexed</flag>")
    if principal:
        parts.append("<flag>principal</flag>")
    parts.append("</column>")
    return "".join(parts)


def tables_xml(
    catalog_tables: Sequence[TableMetadata],
    schema_descriptions: dict[str, str],
    tap_schema: TapSchema,
    only: str | None = None,
) -> bytes:
    """VOSI tables: every schema, table and column (or one table with ``only``)."""
    by_db: dict[str, list[str]] = {}
    for meta in sorted(catalog_tables, key=lambda t: (t.database, t.table)):
        qualified = f"{meta.database}.{meta.table}"
        if only and qualified.lower() != only.lower():
            continue
        cols = []
        keys = {meta.key_column, meta.ra_column, meta.dec_column}
        for c in meta.columns:
            datatype, arraysize, _ = votable_datatype(arrow_type_of(c.arrow_type))
            cols.append(
                _column_xml(
                    c.name,
                    datatype,
                    arraysize,
                    c.unit,
                    c.ucd,
                    c.utype,
                    c.description,
                    c.principal,
                    c.name in keys,
                )
            )
        by_db.setdefault(meta.database, []).append(
            f'<table type="table"><name>{escape(qualified)}</name>'
            f"<description>{escape(meta.description)}</description>{''.join(cols)}</table>"
        )
    for name, cols in tap_schema.self_description().items():
        qualified = f"{TAP_SCHEMA_NAME}.{name}"
        if only and qualified.lower() != only.lower():
            continue
        xml_cols = [
            _column_xml(c, t, "*" if t == "char" else None, "", "", "", d, True, False)
            for c, t, d in cols
        ]
        by_db.setdefault(TAP_SCHEMA_NAME, []).append(
            f'<table type="table"><name>{qualified}</name>{"".join(xml_cols)}</table>'
        )
    body = "".join(
        f"<schema><name>{escape(db)}</name>"
        f"<description>{escape(schema_descriptions.get(db, ''))}</description>"
        f"{''.join(tables)}</schema>"
        for db, tables in by_db.items()
    )
    if only:
        # A single table: VOSI 1.1 answers with the table element alone.
        table = next(iter(by_db.values()))[0] if by_db else ""
        return (
            f'{_DECL}<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            + table.removeprefix("<table ").replace("</table>", "</vosi:table>", 1)
        ).encode()
    return (
        f'{_DECL}<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{body}</vosi:tableset>\n"
    ).encode()
