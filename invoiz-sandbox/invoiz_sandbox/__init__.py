"""invoiz sandbox: a local, deterministic stand-in for the invoiz REST API (see README.md in this folder)."""

import os as _os
import sys as _sys

try:  # Faker is this distribution's dependency; a bare copy of the package without it gets one clear line
    import faker as _faker  # noqa: F401
except ModuleNotFoundError as _missing:
    _HOW = "the invoiz sandbox needs Faker: pip install -e ./invoiz-sandbox"
    if _os.path.basename(_sys.argv[0] or "").startswith("invoiz-sandbox"):  # the console script: one clear line
        raise SystemExit(f"invoiz-sandbox: {_HOW}") from None
    raise ModuleNotFoundError(f"{_HOW} ({_missing})", name=_missing.name) from _missing

from .cli import main
from .data import NotFound, SandboxError
from .faults import KINDS as FAULT_KINDS
from .faults import REQUEST_KINDS
from .multi_tenant import FleetSandbox
from .server import DEMO_CREDENTIALS, VARIANTS, Sandbox

__all__ = [
    "Sandbox",
    "FleetSandbox",
    "DEMO_CREDENTIALS",
    "VARIANTS",
    "FAULT_KINDS",
    "REQUEST_KINDS",
    "SandboxError",
    "NotFound",
    "main",
]
