"""Object IDs of DataLink: ``<database>.<table>?<objectId>``."""

from __future__ import annotations

import pytest

from dpzero.images.faults import UsageFault
from dpzero.images.objects import OBJECT_TABLES, object_id_uri, parse_object_id


def test_round_trip() -> None:
    text = object_id_uri("dp01_dc2_catalogs.object", 16849332795867480)
    assert text == "dp01_dc2_catalogs.object?16849332795867480"
    parsed = parse_object_id(text)
    assert parsed is not None
    assert parsed.table is OBJECT_TABLES["dp01_dc2_catalogs.object"]
    assert parsed.object_id == 16849332795867480
    assert str(parsed) == text
    # Table names are case-insensitive, as in ADQL; white space around is ignored.
    again = parse_object_id("  DP01_DC2_Catalogs.Object?-7 ")
    assert again is not None and again.object_id == -7
    assert parse_object_id("dp02_dc2_catalogs.Object?1").table.ra == "coord_ra"


@pytest.mark.parametrize(
    "text", ["butler://dp01/5c7f0f7e-3b1c-4d5e-9f00-0123456789ab", "12345", "object?1", ""]
)
def test_other_ids_are_not_objects(text: str) -> None:
    assert parse_object_id(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dp01_dc2_catalogs.object?", "objectId '' is not an integer"),
        ("dp01_dc2_catalogs.object?1.5", "objectId '1.5' is not an integer"),
        ("dp01_dc2_catalogs.object?99999999999999999999", "objectId"),
        ("dp01_dc2_catalogs.object?9223372036854775808", "does not fit in 64 bits"),
        ("dp01_dc2_catalogs.truth_match?1", "not an object table"),
    ],
)
def test_malformed_object_ids(text: str, message: str) -> None:
    with pytest.raises(UsageFault, match=r"^UsageFault: ID ") as info:
        parse_object_id(text)
    assert message in info.value.message
