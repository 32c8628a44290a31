"""Paths and readers shared by the ecosystem tests (a module of its own: several test folders have a conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HUB_FILE = PROJECT_ROOT / "hub" / "extractors" / "tap-invoiz--customer-values.yml"
# A copy of meltano/hub's schemas/ (common/, plugin_definitions/) in the repo, so the test runs on any clone.
HUB_SCHEMAS = PROJECT_ROOT / "hub" / "schemas"
TAP_EXE = str(Path(sys.executable).parent / "tap-invoiz")

# the tap tests' helpers (run the tap in-process or as the console script against a sandbox)
if str(PROJECT_ROOT / "tests" / "tap") not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT / "tests" / "tap"))


def meltano_extractor() -> dict:
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())
    return next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-invoiz")


def hub_definition() -> dict:
    return yaml.safe_load(HUB_FILE.read_text())
