"""tap-invoiz: Singer tap for the invoiz invoicing API."""

from __future__ import annotations

try:
    from importlib.metadata import version as _version

    __version__ = _version("tap-invoiz")
except Exception:  # not installed (e.g. run from a source tree)
    __version__ = "0.0.0"
