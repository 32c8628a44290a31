"""End-to-end fixtures: a fresh database, sandbox and Meltano state per test (the server is tests/conftest.py's), and
one `meltano run sync` shared by the tests that only read what it built."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from invoiz_ops.pipeline import VERBOSE_TARGET, Pipeline, drop_database, private_run_dirs, recreate_database
from invoiz_sandbox import Sandbox
from invoiz_sandbox.pytest_plugin import DEFAULTS


@pytest.fixture
def pipeline(pg_env, invoiz_sandbox, tmp_path):
    """The project's Meltano pipeline wired to the test's sandbox, an empty database and its own state store."""
    database = f"e2e_{uuid.uuid4().hex[:12]}"
    recreate_database(pg_env, database)
    yield Pipeline(
        pg_env=pg_env,
        database=database,
        api_url=invoiz_sandbox.api_url,
        app_url=invoiz_sandbox.app_url,
        credentials=dict(invoiz_sandbox.credentials),
        account="test",
        state_dir=tmp_path / "meltano-state",
        # own .meltano/run and dbt target: a test session must not trip over another one in the same checkout;
        # target-postgres logging at info (meltano.yml keeps it quiet): tests count records from its METRIC lines
        extra_env={**private_run_dirs(tmp_path), **VERBOSE_TARGET},
    )
    drop_database(pg_env, database)


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
    database = f"e2e_marts_{uuid.uuid4().hex[:12]}"
    recreate_database(pg_env, database)
    with Sandbox(**SYNCED_MARTS_SANDBOX) as sandbox:
        pipe = Pipeline(
            pg_env=pg_env,
            database=database,
            api_url=sandbox.api_url,
            app_url=sandbox.app_url,
            credentials=dict(sandbox.credentials),
            account="test",
            state_dir=folder / "meltano-state",
            extra_env={**private_run_dirs(folder), **VERBOSE_TARGET},
        )
        try:
            result = pipe.run("sync")
            yield SyncedMarts(pipeline=pipe, sandbox=sandbox, output=result.stdout + result.stderr)
        finally:
            drop_database(pg_env, database)
