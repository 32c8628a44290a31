"""Fixtures of the ecosystem tests: the Hub definition, the extractor in meltano.yml, the tap's --about."""

from __future__ import annotations

import json
import subprocess

import ecosystem_helpers as h
import pytest


@pytest.fixture(scope="session")
def hub_definition() -> dict:
    return h.hub_definition()


@pytest.fixture(scope="session")
def extractor() -> dict:
    return h.meltano_extractor()


@pytest.fixture(scope="session")
def about() -> dict:
    """`tap-invoiz --about --format json`, as Meltano Hub's tooling and users see it."""
    proc = subprocess.run(
        [h.TAP_EXE, "--about", "--format", "json"], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(proc.stdout)
