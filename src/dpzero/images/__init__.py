"""Image access: the ObsCore table, DataLink and cutouts over the Butler repository.

Datasets are named ``butler://<repo-label>/<dataset UUID>`` everywhere
(`dataset_id_uri`, `parse_dataset_id`).
"""

from dpzero.images.ids import (
    DEFAULT_REPO_LABEL,
    DatasetIdError,
    ParsedDatasetId,
    dataset_id_uri,
    parse_dataset_id,
)

__all__ = [
    "DEFAULT_REPO_LABEL",
    "DatasetIdError",
    "ParsedDatasetId",
    "dataset_id_uri",
    "parse_dataset_id",
]
