"""Errors of the image services, worded as DALI/SODA faults (``UsageFault: …``)."""

from __future__ import annotations

from dpzero.errors import DpzeroUserError

__all__ = ["ImageServiceError", "NotFoundFault", "UsageFault"]


class ImageServiceError(DpzeroUserError):
    """A request the image services cannot answer; the message starts with the fault.

    Parameters
    ----------
    detail
        What is wrong, without the fault name (it is prefixed here).
    """

    fault = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.fault}: {detail}")
        self.detail = detail


class UsageFault(ImageServiceError):  # noqa: N818  (named as DALI names it)
    """A parameter is missing, malformed or not usable with the dataset (HTTP 400)."""

    code = "usage_fault"
    fault = "UsageFault"
    status_code = 400


class NotFoundFault(ImageServiceError):  # noqa: N818  (named as DALI names it)
    """The dataset ID names nothing this service holds (HTTP 404)."""

    code = "not_found_fault"
    fault = "NotFoundFault"
    status_code = 404
