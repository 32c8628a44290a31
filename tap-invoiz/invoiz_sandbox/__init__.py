"""invoiz sandbox: a local, deterministic stand-in for the invoiz REST API (see README.md in this folder)."""
from .data import NotFound, SandboxError
from .faults import KINDS as FAULT_KINDS, REQUEST_KINDS
from .server import DEMO_CREDENTIALS, VARIANTS, Sandbox, main
from .fleet import FleetSandbox

__all__ = ["Sandbox", "FleetSandbox", "DEMO_CREDENTIALS", "VARIANTS", "FAULT_KINDS", "REQUEST_KINDS", "SandboxError",
           "NotFound", "main"]
