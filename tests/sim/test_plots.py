"""The survey plots are drawn from a simulated folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpzero.errors import InvalidInputError
from dpzero.sim.plots import make_survey_plots


def test_plots_are_png_files(tiny_survey: Path, tmp_path: Path) -> None:
    written = make_survey_plots(tiny_survey, tmp_path / "plots")
    assert {p.name for p in written} == {
        "number_counts.png",
        "colour_magnitude.png",
        "sky_density.png",
        "errors_completeness.png",
    }
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20_000


def test_not_a_survey_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a simulated survey manifest"):
        make_survey_plots(tmp_path, tmp_path / "plots")
