"""End-to-end fixtures: a fresh database, sandbox and Meltano state per test (the server is tests/conftest.py's)."""

from __future__ import annotations

import uuid

import pytest

from invoiz_ops.pipeline import VERBOSE_TARGET, Pipeline, drop_database, private_run_dirs, recreate_database


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
