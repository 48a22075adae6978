"""Id lookups of a shape seen before skip the ADQL front end and give exactly the
selection, rows and errors of the usual path."""

from __future__ import annotations

import gc
import shutil
import weakref

import pyarrow as pa
import pytest

import dpzero.adql
from dpzero.adql import AdqlError
from dpzero.catalog import ingest_catalogs, open_store
from dpzero.catalog._adql import adql_plan, plan_or_selection
from dpzero.catalog._selection import Selection
from dpzero.catalog._shapes import _shapes, query_shape
from dpzero.errors import InvalidInputError

from .conftest import TINY_OPTIONS, write_inputs

DB = "dp01_dc2_catalogs"
OBJ = f"{DB}.object"


@pytest.fixture
def store(tiny_store):
    # A store object of its own: every test starts with no shapes learnt.
    return open_store(tiny_store)


@pytest.fixture(scope="module")
def ids(tiny_inputs) -> list[int]:
    return tiny_inputs[1]["object"].column("objectId").to_pylist()


def _not_called(text: str) -> None:
    raise AssertionError("the ADQL front end ran")


def listed(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def test_shape_takes_out_numbers_only():
    shape = query_shape(
        "SELECT TOP 5 mag_g2, \"col 7\", 'a 3' -- note 4\n"
        "FROM t1 WHERE x IN (12, -3) AND y < 1.5e3 AND z = 0x1F AND w > .5"
    )
    assert shape.numbers == ("5", "12", "3", "1.5e3", ".5")
    assert shape.negated == (False, False, True, False, False)
    assert shape.text == (
        "SELECT TOP \0i mag_g2, \"col 7\", 'a 3' -- note 4\n"
        "FROM t1 WHERE x IN (\0L) AND y < \0r AND z = 0x1F AND w > \0r"
    )
    # Same tokens, other values: one shape; other tokens: another.
    assert (
        query_shape("SELECT TOP 9 a FROM t WHERE b = 1").text
        == query_shape("SELECT TOP 12345 a FROM t WHERE b = 77").text
    )
    assert (
        query_shape("SELECT a FROM t WHERE b = 1").text
        != query_shape("SELECT a FROM t WHERE b = 1.0").text
    )


def known_and_usual(store, text: str, monkeypatch) -> Selection:
    """The selection a known shape gives ``text`` (without the front end), checked
    against the usual path's."""
    with monkeypatch.context() as patched:
        patched.setattr(dpzero.adql, "parse_adql", _not_called)
        known = plan_or_selection(store, text)
    usual = plan_or_selection(store, text, by_shape=False)
    assert known == usual
    assert known.where_sql() == usual.where_sql()
    assert known.general_plan() == usual.general_plan()
    return known


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM {obj} WHERE objectId IN ({ids})",
        "SELECT TOP {top} objectId, ra AS r FROM {obj} AS o WHERE o.objectId IN ({ids})",
        "select objectid, dec from {obj} where (objectId in ({ids}))",
        "SELECT * FROM {obj} WHERE objectId = {one}",
        "SELECT objectId FROM {obj} WHERE {one} = objectId",
        "SELECT objectId FROM {obj} WHERE objectId IN ({ids}, -{one})",
    ],
)
def test_a_known_shape_gives_the_usual_selection_and_rows(store, ids, template, monkeypatch):
    def query(values: list[int], top: int) -> str:
        return template.format(obj=OBJ, ids=listed(values), one=values[0], top=top)

    first = query(ids[:12], 5)
    learnt = plan_or_selection(store, first)
    assert isinstance(learnt, Selection)
    assert len(_shapes(store).recipes) == 1
    # Other ids (one repeated, one absent from the table) and another TOP.
    other = [*ids[100:111], ids[100], 42]
    text = query(other, 3)
    usual = known_and_usual(store, text, monkeypatch)
    got = store.query_adql(text)
    want = store.query(usual.general_plan())
    key = got.column_names[0]
    assert got.schema == want.schema
    expected = {v for v in other if v in set(ids)}
    if "TOP" in template:  # any 3 of the rows (no ORDER BY)
        assert got.num_rows == want.num_rows == min(3, len(expected))
        assert set(got.column(key).to_pylist()) <= expected
    else:
        assert got.sort_by(key).equals(want.sort_by(key))
        single = "{ids}" not in template
        assert set(got.column(key).to_pylist()) == ({other[0]} if single else expected)


def cone(ra: float, dec: float, r: float) -> str:
    return f"CIRCLE('ICRS', {ra}, {dec}, {r})"


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM {obj} WHERE CONTAINS(POINT('ICRS', ra, dec), {circle}) = 1",
        "SELECT TOP {top} objectId, ra AS r FROM {obj} AS o "
        "WHERE 1 = CONTAINS(POINT('ICRS', o.ra, o.dec), {circle})",
        "select objectid from {obj} where (contains(point('icrs', ra, dec), {circle}) = 1)",
    ],
)
def test_a_known_cone_shape_gives_the_usual_selection_and_rows(store, template, monkeypatch):
    def query(circle: str, top: int = 5) -> str:
        return template.format(obj=OBJ, circle=circle, top=top)

    plan_or_selection(store, query(cone(56.1, -36.05, 0.25)))
    assert len(_shapes(store).recipes) == 1
    for circle, top in [
        (cone(56.0, -35.9, 0.2), 3),
        (cone(0.0, -30.0, 0.3), 1000),  # across RA 0/360
        (cone(77.5, -90.0, 0.4), 0),  # on the pole
        (cone(56.3, -35.4, 5 / 3600), 2),
        (cone(56.0, -36.0, 0.0), 7),
    ]:
        text = query(circle, top)
        known_and_usual(store, text, monkeypatch)
        got, want = store.query_adql(text), store.query(adql_plan(store, text))
        key = got.column_names[0]
        assert got.schema == want.schema
        if "TOP" not in template:
            assert got.sort_by(key).equals(want.sort_by(key))
        else:
            assert got.num_rows == want.num_rows
    # What the recipe cannot take goes the usual way, errors included.
    assert (
        store.query_adql(query(cone(56, -36, 200))).num_rows
        == store.query(adql_plan(store, query(cone(56, -36, 200)))).num_rows
    )
    with pytest.raises(AdqlError, match="not a position on the sky"):
        store.query_adql(query(cone(56, -95, 0.1)))
    with pytest.raises(AdqlError, match="radius"):
        store.query_adql(query(cone(56, -36, -0.1)))


def polygon(*vertices: float) -> str:
    return f"POLYGON('ICRS', {', '.join(repr(float(v)) for v in vertices)})"


def test_a_known_polygon_shape_gives_the_usual_selection_and_rows(store, monkeypatch):
    def query(region: str) -> str:
        return f"SELECT TOP 500 * FROM {OBJ} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), {region})"

    plan_or_selection(store, query(polygon(55.8, -36.2, 56.4, -36.1, 56.3, -35.7, 55.9, -35.8)))
    assert len(_shapes(store).recipes) == 1
    for region in (
        polygon(56.0, -36.3, 56.5, -36.3, 56.5, -35.9, 56.0, -35.9),
        polygon(359.8, -30.2, 0.3, -30.2, 0.3, -29.8, 359.8, -29.8),  # across RA 0/360
        polygon(0.0, -89.5, 90.0, -89.5, 180.0, -89.5, 270.0, -89.5),  # round the pole
    ):
        text = query(region)
        known_and_usual(store, text, monkeypatch)
        got, want = store.query_adql(text), store.query(adql_plan(store, text))
        assert got.sort_by("objectId").equals(want.sort_by("objectId"))
        assert got.num_rows > 0
    # Not convex: the usual path (DuckDB decides), same rows.
    dent = query(polygon(55.5, -36.5, 56.5, -36.5, 56.0, -36.0, 56.5, -35.5))
    assert store.query_adql(dent).num_rows == store.query(adql_plan(store, dent)).num_rows
    with pytest.raises(AdqlError, match="not a position on the sky"):
        store.query_adql(query(polygon(56.0, -36.3, 56.5, -36.3, 56.5, -95.0, 56.0, -35.9)))


def test_only_id_lists_and_regions_alone_are_kept(store, ids):
    for text in (
        f"SELECT objectId FROM {OBJ} WHERE objectId IN ({listed(ids[:3])}) AND ra > 56",
        f"SELECT objectId FROM {OBJ} WHERE objectId IN ({listed(ids[:3])}) AND 1 = 1",
        f"SELECT objectId FROM {OBJ} -- 5 ids\nWHERE objectId IN ({listed(ids[:3])})",
        f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), {cone(56, -36, 0.1)}) = 1"
        " AND ra > 56",
        f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), "
        "CIRCLE('ICRS', 56, -36, 36 / 360.0)) = 1",
        # The circle's numbers could stand in two places: not kept.
        f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), {cone(1, 1, 1)}) = 1",
        f"SELECT * FROM {OBJ} WHERE CONTAINS(POINT('ICRS', ra, dec), "
        "BOX('ICRS', 56.1, -36.0, 0.2, 0.1)) = 1",
    ):
        plan_or_selection(store, text)
    assert len(_shapes(store).recipes) == 0


def test_values_the_recipe_cannot_take_go_the_usual_way(store, ids):
    plan_or_selection(
        store, f"SELECT TOP 3 objectId FROM {OBJ} WHERE objectId IN ({ids[0]}, {ids[1]})"
    )
    assert len(_shapes(store).recipes) == 1
    # Beyond 64 bits: no row, as the usual path answers (DuckDB compares exactly).
    huge = f"SELECT TOP 3 objectId FROM {OBJ} WHERE objectId IN ({2**64}, {ids[1]})"
    assert store.query_adql(huge).column(0).to_pylist() == [ids[1]]
    # A TOP beyond 64 bits: DuckDB's error, as on the usual path.
    too_many = f"SELECT TOP {2**64} objectId FROM {OBJ} WHERE objectId IN ({ids[0]}, {ids[1]})"
    with pytest.raises(InvalidInputError, match="out of range"):
        store.query_adql(too_many)


def test_a_known_shape_with_an_error_fails_as_usual(store, ids):
    plan_or_selection(store, f"SELECT objectId FROM {OBJ} WHERE objectId IN ({ids[0]})")
    with pytest.raises(AdqlError, match="objectIdd"):
        store.query_adql(f"SELECT objectIdd FROM {OBJ} WHERE objectId IN ({ids[0]})")
    with pytest.raises(AdqlError, match="line 1"):
        store.query_adql(f"SELECT objectId FROM {OBJ} WHERE objectId IN ({ids[0]},)")


def test_a_kept_shape_holds_no_upload(store, ids):
    upload = pa.table({"x": pa.array(range(1000))})
    held = weakref.ref(upload)
    text = f"SELECT objectId FROM {OBJ} WHERE objectId IN ({ids[0]}, {ids[1]})"
    found = plan_or_selection(store, text, {"TAP_UPLOAD.big": upload})
    assert len(_shapes(store).recipes) == 1
    del upload, found
    gc.collect()
    assert held() is None


def test_uploads_change_the_key(store, ids):
    text = f"SELECT objectId FROM {OBJ} WHERE objectId IN ({ids[0]})"
    upload = {"TAP_UPLOAD.mine": pa.table({"x": [1]})}
    plan_or_selection(store, text)
    plan_or_selection(store, text, upload)
    assert len(_shapes(store).recipes) == 2


def test_reingest_forgets_the_shapes(tmp_path, tiny_store, ids):
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy, symlinks=True)
    reader = open_store(copy)
    text = f"SELECT objectId, ra FROM {OBJ} WHERE objectId IN ({listed(ids[:4])})"
    assert reader.query_adql(text).num_rows == 4
    before = _shapes(reader)
    new = write_inputs(tmp_path / "in", n=300, seed=11, tables=("object",))["object"]
    ingest_catalogs(tmp_path / "in", copy, options=TINY_OPTIONS)
    new_ids = new.column("objectId").to_pylist()[:4]
    got = reader.query_adql(text.replace(listed(ids[:4]), listed(new_ids)))
    assert _shapes(reader) is not before
    want = new.filter(pa.compute.is_in(new.column("objectId"), pa.array(new_ids)))
    assert sorted(got.column("ra").to_pylist()) == sorted(want.column("ra").to_pylist())
