"""Storage class delegate of `Exposure`: components and the ``bbox`` parameter in memory.

The formatter applies components and parameters while reading a file; this
delegate does the same for datasets already in memory (an in-memory datastore, a
cached read, or a pipeline handing an exposure to the next task).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lsst.daf.butler import StorageClassDelegate

from dpzero.repo.exposure import Box, Exposure

__all__ = ["ExposureDelegate"]

_ATTRIBUTES = {
    "image": "image",
    "mask": "mask",
    "variance": "variance",
    "wcs": "wcs",
    "psf": "psf",
    "photoCalib": "photo_calib",
    "visitInfo": "visit_info",
    "bbox": "bbox",
    "filter": "filter",
}


class ExposureDelegate(StorageClassDelegate):
    """Gets components of, assembles and cuts in-memory `Exposure` objects."""

    def can_accept(self, inMemoryDataset: Any) -> bool:  # noqa: N803 (base class name)
        """Accept `Exposure` without conversion."""
        return isinstance(inMemoryDataset, Exposure)

    def getComponent(self, composite: Any, componentName: str) -> Any:  # noqa: N802, N803
        """Return one component of an `Exposure`.

        Raises
        ------
        AttributeError
            If ``componentName`` is not a component of exposures.
        """
        try:
            return getattr(composite, _ATTRIBUTES[componentName])
        except KeyError:
            raise AttributeError(f"exposures have no component {componentName!r}") from None

    def assemble(self, components: dict[str, Any], pytype: type | None = None) -> Any:
        """Build an `Exposure` from its components (the planes are required)."""
        kwargs = {_ATTRIBUTES[name]: value for name, value in components.items()}
        return (pytype or Exposure)(**kwargs)

    def handleParameters(  # noqa: N802
        self,
        inMemoryDataset: Any,  # noqa: N803
        parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Apply the ``bbox`` parameter: cut the exposure (or a plane) to the box."""
        if not parameters:
            return inMemoryDataset
        unknown = set(parameters) - {"bbox"}
        if unknown:
            raise KeyError(f"parameters not understood by exposures: {sorted(unknown)}")
        bbox = parameters["bbox"]
        if bbox is None:
            return inMemoryDataset
        if not isinstance(bbox, Box):
            raise TypeError(f"the bbox parameter must be a dpzero Box, not {type(bbox)}")
        if isinstance(inMemoryDataset, Exposure):
            return inMemoryDataset.subset(bbox)
        return inMemoryDataset
