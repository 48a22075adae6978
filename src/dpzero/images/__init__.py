"""Image access: the ObsCore table, DataLink and cutouts over the Butler repository.

Datasets are named ``butler://<repo-label>/<dataset UUID>`` everywhere
(`dataset_id_uri`, `parse_dataset_id`), catalog objects ``<database>.<table>?<objectId>``
(`object_id_uri`, `parse_object_id`). SODA regions and the pixel box holding one
(`parse_region`, `cutout_box`) are pure; `dpzero.images.service.ImageService` (links,
files, cutouts) and `dpzero.images.handlers` import the Butler when imported.
"""

from dpzero.images.cutout import (
    CircleRegion,
    PolygonRegion,
    RangeRegion,
    SkyRegion,
    cutout_box,
    parse_region,
)
from dpzero.images.faults import ImageServiceError, NotFoundFault, UsageFault
from dpzero.images.ids import (
    DEFAULT_REPO_LABEL,
    DatasetIdError,
    ParsedDatasetId,
    dataset_id_uri,
    parse_dataset_id,
)
from dpzero.images.objects import ObjectId, object_id_uri, parse_object_id

__all__ = [
    "DEFAULT_REPO_LABEL",
    "CircleRegion",
    "DatasetIdError",
    "ImageServiceError",
    "NotFoundFault",
    "ObjectId",
    "ParsedDatasetId",
    "PolygonRegion",
    "RangeRegion",
    "SkyRegion",
    "UsageFault",
    "cutout_box",
    "dataset_id_uri",
    "object_id_uri",
    "parse_dataset_id",
    "parse_object_id",
    "parse_region",
]
