"""Dataset identifiers shared by ObsCore, DataLink and cutouts.

A dataset is named as DP0.2 names it: ``butler://<repo-label>/<dataset UUID>``, e.g.
``butler://dp01/5c7f0f7e-3b1c-4d5e-9f00-0123456789ab``. ObsCore's ``obs_publisher_did``
holds this text; ``/api/datalink/links?ID=`` and ``/api/cutout?ID=`` take it back.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Protocol

from dpzero.errors import DpzeroUserError

__all__ = [
    "DEFAULT_REPO_LABEL",
    "DatasetIdError",
    "ParsedDatasetId",
    "dataset_id_uri",
    "parse_dataset_id",
]

DEFAULT_REPO_LABEL = "dp01"
"""Label of the served repository in dataset IDs (DP0.2 uses ``dp02``)."""

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCHEME = "butler://"


class DatasetIdError(DpzeroUserError):
    """A dataset ID is not of the form ``butler://<repo-label>/<UUID>``."""

    code = "invalid_dataset_id"


class _HasId(Protocol):
    """Anything with a dataset UUID, e.g. `lsst.daf.butler.DatasetRef`."""

    @property
    def id(self) -> uuid.UUID: ...


@dataclass(frozen=True)
class ParsedDatasetId:
    """The parts of a dataset ID."""

    repo_label: str
    """Label of the repository the dataset belongs to."""
    uuid: uuid.UUID
    """Butler dataset ID (``DatasetRef.id``)."""


def dataset_id_uri(ref: _HasId | uuid.UUID, repo_label: str = DEFAULT_REPO_LABEL) -> str:
    """Return the public ID of a dataset.

    Parameters
    ----------
    ref
        A `~lsst.daf.butler.DatasetRef` (or anything with an ``id``) or a dataset UUID.
    repo_label
        Label of the repository in the ID.

    Returns
    -------
    str
        ``butler://<repo_label>/<uuid>``.

    Raises
    ------
    ValueError
        If the label is not a short word of letters, digits, ``.``, ``_`` or ``-``.
    """
    if not _LABEL.match(repo_label):
        raise ValueError(f"invalid repository label {repo_label!r}")
    dataset_uuid = ref if isinstance(ref, uuid.UUID) else ref.id
    return f"{_SCHEME}{repo_label}/{dataset_uuid}"


def parse_dataset_id(text: str) -> ParsedDatasetId:
    """Parse a public dataset ID.

    Parameters
    ----------
    text
        ``butler://<repo-label>/<uuid>`` (surrounding white space is ignored).

    Returns
    -------
    ParsedDatasetId
        The repository label and the dataset UUID.

    Raises
    ------
    DatasetIdError
        If the text is not such an ID.
    """
    stripped = text.strip()
    hint = "expected butler://<repo-label>/<dataset UUID>"
    if not stripped.lower().startswith(_SCHEME):
        raise DatasetIdError(f"invalid dataset ID {text!r}: {hint}")
    label, sep, rest = stripped[len(_SCHEME) :].partition("/")
    if not sep or not _LABEL.match(label):
        raise DatasetIdError(f"invalid dataset ID {text!r}: {hint}")
    try:
        dataset_uuid = uuid.UUID(rest)
    except ValueError:
        raise DatasetIdError(f"invalid dataset ID {text!r}: {rest!r} is not a UUID") from None
    return ParsedDatasetId(label, dataset_uuid)
