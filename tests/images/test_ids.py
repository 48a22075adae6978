"""Dataset IDs: butler://<repo-label>/<UUID>, round trip and clear errors."""

from __future__ import annotations

import uuid

import pytest

from dpzero.images import DatasetIdError, dataset_id_uri, parse_dataset_id


def test_round_trip() -> None:
    dataset_uuid = uuid.UUID("5c7f0f7e-3b1c-4d5e-9f00-0123456789ab")
    text = dataset_id_uri(dataset_uuid, "dp01")
    assert text == "butler://dp01/5c7f0f7e-3b1c-4d5e-9f00-0123456789ab"
    parsed = parse_dataset_id(f"  {text} ")
    assert parsed.repo_label == "dp01"
    assert parsed.uuid == dataset_uuid


def test_ref_like_object() -> None:
    class Ref:
        id = uuid.UUID(int=7)

    assert dataset_id_uri(Ref(), "x").endswith("/00000000-0000-0000-0000-000000000007")


@pytest.mark.parametrize(
    "text",
    ["", "dp01/abc", "butler://dp01", "butler:///" + str(uuid.UUID(int=1)), "butler://dp01/nope"],
)
def test_bad_ids(text: str) -> None:
    with pytest.raises(DatasetIdError, match="invalid dataset ID"):
        parse_dataset_id(text)


def test_bad_label() -> None:
    with pytest.raises(ValueError):
        dataset_id_uri(uuid.UUID(int=1), "has space")
