"""Path rules of the legacy layout: every dataset type round-trips through its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpzero.errors import InvalidInputError
from dpzero.sim.images.layout import DATASET_TYPES, LegacyLayout

DATA_ID = {
    "visit": 1234,
    "band": "i",
    "detector": 94,
    "tract": 3831,
    "patch": "3,1",
    "calib_date": "2022-01-01",
    "physical_filter": "i_sim_1.4",
    "htm7": 143737,
}

# Every dataset type the release must hold (DESIGN: DP0.1's dataset types).
REQUIRED = {
    "raw", "calexp", "calexpBackground", "src", "icSrc", "srcMatch", "skyCorr",
    "deepCoadd", "deepCoadd_calexp", "deepCoadd_calexp_background", "deepCoadd_det",
    "deepCoadd_meas", "deepCoadd_forced_src", "deepCoadd_ref", "deepCoadd_mergeDet",
    "deepCoadd_measMatch", "deepCoadd_nImage", "bias", "dark", "flat", "skyMap", "camera",
    "cal_ref_cat",
}  # fmt: skip


def test_every_required_dataset_type_has_a_rule() -> None:
    assert set(DATASET_TYPES) == REQUIRED


@pytest.mark.parametrize("name", sorted(DATASET_TYPES))
def test_path_round_trip(name: str) -> None:
    layout = LegacyLayout(Path("/data"), rerun="r1")
    data_id = {k: DATA_ID[k] for k in DATASET_TYPES[name].dimensions}
    relative = layout.relative_path(name, **data_id)
    assert layout.path(name, **data_id) == Path("/data") / relative
    assert layout.parse(name, relative) == data_id


def test_documented_paths() -> None:
    layout = LegacyLayout(Path("/d"), rerun="dp01")
    assert layout.relative_path("calexp", visit=1234, band="i", detector=94) == (
        "rerun/dp01/calexp/00001234/i/calexp_00001234-i-094.fits"
    )
    assert layout.relative_path("raw", visit=1234, band="i", detector=94) == (
        "raw/00001234/R22/lsst_a_1234_R22_S11_i.fits"
    )
    assert layout.relative_path("deepCoadd", band="r", tract=3831, patch="3,1") == (
        "rerun/dp01/deepCoadd/r/3831/3,1.fits"
    )


def test_parse_rejects_other_paths() -> None:
    layout = LegacyLayout(Path("/d"))
    assert layout.parse("calexp", "rerun/dp01/calexp/00001234/i/src_00001234-i-094.parq") is None
    # the visit in the folder and in the file name disagree
    assert layout.parse("calexp", "rerun/dp01/calexp/00001234/i/calexp_00001235-i-094.fits") is None
    # another rerun
    assert layout.parse("calexp", "rerun/x/calexp/00001234/i/calexp_00001234-i-094.fits") is None
    # the nImage file is not a deepCoadd
    assert layout.parse("deepCoadd", "rerun/dp01/deepCoadd/r/3831/3,1_nImage.fits") is None


def test_find_lists_datasets_on_disk(tmp_path: Path) -> None:
    layout = LegacyLayout(tmp_path)
    wanted = []
    for visit, detector in [(20, 94), (20, 95), (31, 94)]:
        path = layout.path("calexp", visit=visit, band="g", detector=detector)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        wanted.append(({"visit": visit, "band": "g", "detector": detector}, path))
    stray = tmp_path / "rerun/dp01/calexp/00000020/g/notes.txt"
    stray.write_text("not a dataset")
    assert sorted(layout.find("calexp"), key=lambda t: str(t[1])) == wanted
    assert list(layout.find("src")) == []


def test_user_errors() -> None:
    layout = LegacyLayout(Path("/d"))
    with pytest.raises(InvalidInputError, match="unknown dataset type"):
        layout.relative_path("calexpp", visit=1)
    with pytest.raises(InvalidInputError, match="lacks detector"):
        layout.relative_path("calexp", visit=1, band="g")
