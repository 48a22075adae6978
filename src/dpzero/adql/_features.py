"""The ADQL language features dpzero supports, as TAPRegExt declares them.

A TAP service lists these in its capabilities (``<languageFeatures type="...">``
with one ``<feature><form>...</form><description>...</description></feature>``
each) so that clients know which optional parts of ADQL 2.1 and which user-defined
functions they may use.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADQL_FEATURES", "LanguageFeature"]

_TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt#"


@dataclass(frozen=True)
class LanguageFeature:
    """One optional ADQL feature: its TAPRegExt type, its form and what it does."""

    type: str
    form: str
    description: str = ""


def _features(kind: str, forms: str | list[str]) -> list[LanguageFeature]:
    names = forms.split() if isinstance(forms, str) else forms
    return [LanguageFeature(_TAPREGEXT + kind, form) for form in names]


#: Every optional feature dpzero's ADQL accepts and runs.
ADQL_FEATURES: tuple[LanguageFeature, ...] = (
    *_features(
        "features-adqlgeo",
        "POINT CIRCLE BOX POLYGON CENTROID AREA COORD1 COORD2 COORDSYS DISTANCE CONTAINS"
        " INTERSECTS",
    ),
    *_features("features-adql-string", ["LOWER", "UPPER", "ILIKE"]),
    *_features("features-adql-sets", ["UNION", "EXCEPT", "INTERSECT"]),
    *_features("features-adql-common-table", ["WITH"]),
    *_features("features-adql-conditional", ["COALESCE"]),
    *_features("features-adql-type", ["CAST"]),
    *_features("features-adql-unit", ["IN_UNIT"]),
    *_features("features-adql-offset", ["OFFSET"]),
    LanguageFeature(
        _TAPREGEXT + "features-udf",
        "scisql_nanojanskyToAbMag(flux DOUBLE) -> DOUBLE",
        "AB magnitude of a flux in nJy: -2.5 log10(flux) + 31.4; NULL for flux <= 0.",
    ),
    LanguageFeature(
        _TAPREGEXT + "features-udf",
        "scisql_nanojanskyToAbMagSigma(flux DOUBLE, fluxErr DOUBLE) -> DOUBLE",
        "Error of that magnitude: 2.5 / ln(10) * fluxErr / flux; NULL for flux <= 0.",
    ),
    LanguageFeature(
        _TAPREGEXT + "features-udf",
        "scisql_angSep(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE) -> DOUBLE",
        "Great-circle distance in degrees between two positions given in degrees.",
    ),
    LanguageFeature(
        _TAPREGEXT + "features-udf",
        "scisql_s2PtInCircle(ra DOUBLE, dec DOUBLE, ra0 DOUBLE, dec0 DOUBLE, r DOUBLE) -> INTEGER",
        "1 if (ra, dec) lies within r degrees of (ra0, dec0), else 0.",
    ),
    LanguageFeature(
        _TAPREGEXT + "features-udf",
        "scisql_s2PtInBox(ra DOUBLE, dec DOUBLE, raMin DOUBLE, decMin DOUBLE, raMax DOUBLE,"
        " decMax DOUBLE) -> INTEGER",
        "1 if (ra, dec) lies in the coordinate box (through RA 0 when raMin > raMax), else 0.",
    ),
)
