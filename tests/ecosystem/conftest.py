"""Fixtures of the ecosystem tests: the Hub definition, the extractor in meltano.yml, the tap's --about."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HUB_FILE = PROJECT_ROOT / "hub" / "extractors" / "tap-invoiz--customer-values.yml"
HUB_SCHEMAS = PROJECT_ROOT.parent / "shared" / "meltano-hub-schemas"
TAP_EXE = str(Path(sys.executable).parent / "tap-invoiz")

# the tap tests' helpers (run the tap in-process or as the console script against a sandbox)
sys.path.insert(0, str(PROJECT_ROOT / "tests" / "tap"))


def meltano_extractor() -> dict:
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())
    return next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-invoiz")


@pytest.fixture(scope="session")
def hub_definition() -> dict:
    return yaml.safe_load(HUB_FILE.read_text())


@pytest.fixture(scope="session")
def extractor() -> dict:
    return meltano_extractor()


@pytest.fixture(scope="session")
def about() -> dict:
    """`tap-invoiz --about --format json`, as Meltano Hub's tooling and users see it."""
    proc = subprocess.run([TAP_EXE, "--about", "--format", "json"], capture_output=True, text=True, timeout=120,
                          check=True)
    return json.loads(proc.stdout)
