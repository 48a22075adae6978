"""The instrument's dimension facts agree with DC2's."""

from __future__ import annotations

import pytest

from dpzero.repo.dimensions import (
    BANDS,
    DETECTORS,
    PHYSICAL_FILTERS,
    band_of,
    detector_facts,
    physical_filter_of,
)


def test_detectors() -> None:
    assert len(DETECTORS) == 189
    assert [d.id for d in DETECTORS] == list(range(189))
    assert detector_facts(94).full_name == "R22_S11"
    assert detector_facts(0).full_name == "R01_S00"
    assert detector_facts(188).full_name == "R43_S22"
    with pytest.raises(ValueError):
        detector_facts(189)


def test_filters() -> None:
    assert BANDS == ("u", "g", "r", "i", "z", "y")
    assert PHYSICAL_FILTERS["u_sim_1.4"] == "u"
    assert physical_filter_of("y") == "y_sim_1.4"
    assert band_of("i_sim_1.4") == "i"
    with pytest.raises(ValueError):
        band_of("i")
    with pytest.raises(ValueError):
        physical_filter_of("x")
