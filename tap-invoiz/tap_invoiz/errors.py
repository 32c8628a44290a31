"""Errors of tap-invoiz."""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError


class InvoizConfigError(ConfigValidationError):
    """A setting is wrong (credentials, api_url, ...). singer-sdk's CLI logs the message and exits with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[message])
