"""The Felis schemas as dpzero reads them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dpzero.errors import InvalidInputError
from dpzero.schema import load_schema


def test_dp01_has_the_five_tables_with_their_published_widths() -> None:
    schema = load_schema("dp01_dc2")
    assert schema.name == "dp01_dc2_catalogs"
    widths = {t.name: len(t.columns) for t in schema.tables}
    assert widths == {
        "position": 29,
        "reference": 236,
        "forced_photometry": 747,
        "object": 137,
        "truth_match": 30,
    }


def test_columns_carry_types_units_and_descriptions() -> None:
    obj = load_schema("dp01_dc2").table("object")
    ra = obj.column("ra")
    assert ra.arrow_type == pa.float64()
    assert obj.column("objectId").arrow_type == pa.int64()
    assert obj.column("good").arrow_type == pa.bool_()
    assert obj.column("patch").arrow_type == pa.string()
    assert obj.column("patch").length == 3
    field = obj.arrow_schema().field("psFlux_i")
    assert field.metadata[b"unit"] == b"nmgy"
    assert b"Point Source" in field.metadata[b"description"]


def test_dp02_schema_loads() -> None:
    names = [t.name for t in load_schema("dp02_dc2").tables]
    assert {"Object", "Source", "ForcedSource", "Visit", "CcdVisit"} <= set(names)


def test_unknown_schema_is_a_user_error() -> None:
    with pytest.raises(InvalidInputError, match="unknown schema 'dp9'"):
        load_schema("dp9")


def test_unknown_column_names_the_table() -> None:
    with pytest.raises(KeyError, match="table object has no column nope"):
        load_schema("dp01_dc2").table("object").column("nope")
