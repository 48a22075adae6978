"""Conversion of a legacy (Gen2-style) release folder into a Butler repository."""

from dpzero.repo.convert.ingest import (
    TRANSFER_MODES,
    ConvertReport,
    LegacyLayoutError,
    convert_legacy,
)
from dpzero.repo.convert.scan import LegacyFile, scan_legacy

__all__ = [
    "TRANSFER_MODES",
    "ConvertReport",
    "LegacyFile",
    "LegacyLayoutError",
    "convert_legacy",
    "scan_legacy",
]
