"""Result formats read back by astropy and pyarrow with values, types and units intact."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse as parse_votable
from astropy.io.votable import parse_single_table

from dpzero.errors import InvalidInputError
from dpzero.tap.formats import (
    ResultColumn,
    columns_for_schema,
    parse_format,
    votable_error,
    write_result,
)
from dpzero.tap.formats.votable import base64_lines


def sample() -> pa.Table:
    return pa.table(
        {
            "objectId": pa.array([1, 2, None, 2**62], type=pa.int64()),
            "ra": pa.array([62.0, 61.5, np.nan, 359.999999999], type=pa.float64()),
            "mag": pa.array([21.5, None, 25.0, 19.0], type=pa.float32()),
            "n": pa.array([1, 2, 3, None], type=pa.int32()),
            "flag": pa.array([True, False, None, True]),
            "patch": pa.array(["1,2", "", None, "é,<&>"]),
            "small": pa.array([1, -2, 3, 4], type=pa.int16()),
        }
    )


def encode(table: pa.Table, fmt: str, batch: int = 3, overflow: bool = False) -> bytes:
    ra = ResultColumn(
        "ra", "double", unit="deg", ucd="pos.eq.ra", description="Right ascension", utype="a.b"
    )
    mag = ResultColumn("mag", "float", unit="mag")
    columns = columns_for_schema(table.schema, {"ra": ra, "mag": mag})
    return b"".join(
        write_result(
            parse_format(fmt),
            table.to_batches(max_chunksize=batch),
            table.schema,
            columns,
            infos=[("QUERY", "SELECT 1")],
            overflow=lambda: overflow,
        )
    )


@pytest.mark.parametrize("fmt", ["votable", "votable/td"])
def test_votable_round_trip(fmt: str) -> None:
    data = encode(sample(), fmt)
    votable = parse_votable(io.BytesIO(data))
    resource = votable.resources[0]
    assert [i.value for i in resource.infos if i.name == "QUERY_STATUS"] == ["OK"]
    table = resource.tables[0]
    array = table.array
    assert list(array["objectId"].data[[0, 1, 3]]) == [1, 2, 2**62]
    assert array["objectId"].mask[2]
    assert array["ra"].mask[2]  # NaN reads back as a masked (null) float
    assert array["ra"][3] == 359.999999999
    assert table.get_field_by_id_or_name("ra").unit == "deg"
    assert table.get_field_by_id_or_name("ra").ucd == "pos.eq.ra"
    assert table.get_field_by_id_or_name("ra").description == "Right ascension"
    assert table.get_field_by_id_or_name("ra").utype == "a.b"
    assert table.get_field_by_id_or_name("mag").datatype == "float"
    assert table.get_field_by_id_or_name("small").datatype == "short"
    assert array["mag"].mask[1]
    assert array["n"].mask[3] and array["n"][2] == 3
    assert list(array["flag"].data[[0, 1, 3]]) == [True, False, True]
    assert array["patch"][0] == "1,2"
    assert array["patch"][3] == "?,<&>"  # VOTable char is ASCII


def test_overflow_info_after_the_table() -> None:
    data = encode(sample(), "votable", overflow=True)
    resource = parse_votable(io.BytesIO(data)).resources[0]
    statuses = [i.value for i in resource.infos if i.name == "QUERY_STATUS"]
    assert statuses == ["OK", "OVERFLOW"]


def test_binary2_of_many_rows_and_no_rows() -> None:
    n = 10_007
    table = pa.table({"x": np.arange(n, dtype=np.float64), "i": np.arange(n)})
    read = parse_single_table(io.BytesIO(encode(table, "votable", batch=1000))).array
    np.testing.assert_array_equal(read["x"], np.arange(n))
    empty = parse_single_table(io.BytesIO(encode(table.slice(0, 0), "votable"))).array
    assert len(empty) == 0


def test_csv_and_tsv() -> None:
    for fmt, delimiter in (("csv", ","), ("text/tab-separated-values", "\t")):
        data = encode(sample(), fmt)
        table = pacsv.read_csv(
            io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=delimiter)
        )
        assert table.column_names == sample().column_names
        assert table["objectId"].to_pylist() == [1, 2, None, 2**62]
        assert table["patch"].to_pylist()[3] == "é,<&>"


def test_parquet_keeps_types_and_units() -> None:
    table = pq.read_table(io.BytesIO(encode(sample(), "parquet")))
    assert table.schema.field("mag").type == pa.float32()
    assert table.schema.field("ra").metadata[b"unit"] == b"deg"
    assert table["objectId"].to_pylist() == [1, 2, None, 2**62]


def test_error_document_is_what_pyvo_reads() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        votable = parse_votable(io.BytesIO(votable_error("line 1, column 8: bad <thing>")))
    info = next(i for i in votable.resources[0].infos if i.name == "QUERY_STATUS")
    assert info.value == "ERROR"
    assert info.content == "line 1, column 8: bad <thing>"


def test_unknown_format_is_a_user_error() -> None:
    with pytest.raises(InvalidInputError, match="unsupported RESPONSEFORMAT 'fits'"):
        parse_format("fits")
    assert parse_format(None).name == "votable"
    assert parse_format("application/x-votable+xml; serialization=TABLEDATA").name.endswith(
        "tabledata"
    )


def test_geometry_and_decimal_values_are_sent_plainly() -> None:
    table = pa.table(
        {
            "circle": pa.array([[62.0, -37.0, 0.1], None], type=pa.list_(pa.float64())),
            "d": pa.array([1, 2], type=pa.decimal128(10, 2)),
        }
    )
    for fmt in ("votable", "csv", "parquet", "votable/td"):
        data = encode(table, fmt)
        assert data
    read = parse_single_table(io.BytesIO(encode(table, "votable"))).array
    assert read["circle"][0] == "62.0 -37.0 0.1"
    assert read["d"][1] == 2.0


def _binary2_rows_per_row(batch: pa.RecordBatch, columns: list) -> bytes:
    """The former row-by-row BINARY2 packing, the reference for the vectorised one."""
    from dpzero.tap.formats.votable import _as_numpy

    n = batch.num_rows
    n_mask = (len(columns) + 7) // 8
    data = [_as_numpy(batch.column(i), c) for i, c in enumerate(columns)]
    null_bits = np.zeros((n, n_mask * 8), dtype=bool)
    for i, (_, nulls) in enumerate(data):
        null_bits[:, i] = nulls
    masks = np.packbits(null_bits, axis=1)
    per_column = []
    for c, (values, nulls) in zip(columns, data, strict=True):
        if c.datatype == "char":
            encoded = [str(v).encode("ascii", errors="replace") for v in values]
            per_column.append([len(e).to_bytes(4, "big") + e for e in encoded])
        elif c.datatype == "boolean":
            per_column.append(list(np.where(nulls, b"?", np.where(values, b"T", b"F"))))
        else:
            raw, size = values.tobytes(), values.dtype.itemsize
            per_column.append([raw[k * size : (k + 1) * size] for k in range(n)])
    return b"".join(masks[r].tobytes() + b"".join(col[r] for col in per_column) for r in range(n))


@pytest.mark.parametrize("rows", [0, 1, 4, 997])
def test_binary2_rows_with_text_are_the_row_by_row_bytes(rows: int) -> None:
    from dpzero.tap.formats.votable import _binary2_rows

    rng = np.random.default_rng(rows)
    words = ["", "1,2", "é,<&>", "ascii only", "日本", "a\x00b", "ü" * 40, None]
    table = pa.table(
        {
            "objectId": pa.array(rng.integers(-(2**62), 2**62, rows), type=pa.int64()),
            "name": pa.array([words[i] for i in rng.integers(0, len(words), rows)]),
            "ra": pa.array(np.where(rng.random(rows) < 0.2, np.nan, rng.uniform(0, 360, rows))),
            "flag": pa.array([[True, False, None][i] for i in rng.integers(0, 3, rows)]),
            "band": pa.array([words[i] for i in rng.integers(0, len(words), rows)]),
            "n": pa.array(
                [None if i == 0 else int(i) for i in rng.integers(0, 9, rows)], type=pa.int16()
            ),
            **{f"f{k}": pa.array(rng.normal(size=rows), type=pa.float32()) for k in range(5)},
        }
    )
    columns = columns_for_schema(table.schema, {})
    empty = pa.RecordBatch.from_pylist([], schema=table.schema)
    for batch in table.to_batches(max_chunksize=400) or [empty]:
        assert _binary2_rows(batch, columns) == _binary2_rows_per_row(batch, columns)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 113, 114, 115, 171, 1000, 57 * 400 + 7])
def test_base64_lines_are_the_standard_librarys(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert base64_lines(data) == base64.encodebytes(data)
