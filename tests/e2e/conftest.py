"""End-to-end fixtures: a fresh database, sandbox and Meltano state per test (the server is tests/conftest.py's), and
one `meltano run sync` shared by the tests that only read what it built."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from e2e_helpers import scratch_pipeline

from invoiz_ops.pipeline import Pipeline
from invoiz_sandbox import Sandbox
from invoiz_sandbox.pytest_plugin import DEFAULTS


@pytest.fixture
def pipeline(pg_env, invoiz_sandbox, tmp_path):
    """The project's Meltano pipeline wired to the test's sandbox, an empty database and its own state store."""
    with scratch_pipeline(pg_env, invoiz_sandbox, tmp_path) as pipe:
        yield pipe


@dataclass(frozen=True)
class SyncedMarts:
    """What one `meltano run sync` built: its pipeline (database, state), the sandbox it read and the run's output."""

    pipeline: Pipeline
    sandbox: Sandbox
    output: str


SYNCED_MARTS_SANDBOX = {**DEFAULTS, "invoices": 120}


@pytest.fixture(scope="session")
def synced_marts(pg_env, tmp_path_factory):
    """One `meltano run sync` (tap-invoiz → target-postgres → dbt build) of a 120-invoice sandbox into its own
    database, for the tests that only read the raw tables and marts: each such test would otherwise pay a whole
    sync with `dbt build`. Read-only: a test that changes the sandbox or the database uses ``pipeline`` instead.
    Its tests run on one xdist worker together (tests/conftest.py groups session fixtures of the tests)."""
    folder = tmp_path_factory.mktemp("synced-marts")
    with Sandbox(**SYNCED_MARTS_SANDBOX) as sandbox, scratch_pipeline(pg_env, sandbox, folder, "e2e_marts") as pipe:
        result = pipe.run("sync")
        yield SyncedMarts(pipeline=pipe, sandbox=sandbox, output=result.stdout + result.stderr)
