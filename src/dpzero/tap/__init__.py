"""The IVOA TAP 1.1 service: sync and async (UWS 1.1) ADQL queries, VOSI, TAP_SCHEMA."""

from dpzero.tap.engine import QueryOutcome, TapEngine
from dpzero.tap.handlers import get_tap_service, get_user, tap_router
from dpzero.tap.runner import JobRunner
from dpzero.tap.service import TapService
from dpzero.tap.storage import JobStore

__all__ = [
    "JobRunner",
    "JobStore",
    "QueryOutcome",
    "TapEngine",
    "TapService",
    "get_tap_service",
    "get_user",
    "tap_router",
]
