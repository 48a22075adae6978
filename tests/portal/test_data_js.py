"""The portal's pure helpers (data.js) run under Node.js: positions, ADQL, CSV, order."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("data_js_check.mjs")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    # As .mjs: Node then reads the browser module as an ES module whatever its version.
    module = tmp_path_factory.mktemp("js") / "data.mjs"
    module.write_text(resources.files("dpzero.portal").joinpath("static/data.js").read_text())
    run = subprocess.run(
        [node, str(SCRIPT), module.as_uri()], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_positions_and_units(results: dict) -> None:
    assert results["degrees"] == [62.5, -37.25]
    assert results["sexagesimal"] == pytest.approx([62.5, -37.25])
    assert results["badDec"].startswith("error: Dec 95")
    assert results["radius"] == pytest.approx(0.025)


def test_adql_of_each_search(results: dict) -> None:
    assert results["cone"] == (
        "SELECT objectId, ra\nFROM t\n"
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62, -37, 0.03333333)) = 1\n"
        "  AND (mag_i_cModel < 24)"
    )
    assert results["polygon"] == (
        "SELECT TOP 10 *\nFROM t\nWHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), "
        "POLYGON('ICRS', 61, -37, 62, -37, 62, -36)) = 1"
    )
    assert results["ids"] == "SELECT *\nFROM t\nWHERE objectId IN (12, 13, 14)"
    assert "not an integer" in results["badIds"]
    assert "at least 3" in results["twoVertices"]


def test_csv_and_row_order(results: dict) -> None:
    csv = results["csv"]
    assert csv["names"] == ["a", "b", "c"] and csv["length"] == 3
    assert csv["numeric"] == [True, False, True]
    assert csv["b"] == ['x, "y"', "z", "w"]
    assert csv["c"] == ["NaN", "3.5", "NaN"]
    assert results["sortDesc"] == [2, 1, 0]
    assert results["sortNaNLast"] == [1, 0, 2]
    assert results["filterRange"] == [0, 1]
    assert results["filterText"] == [0]
