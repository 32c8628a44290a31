"""End-to-end fixtures: a PostgreSQL server for the session, a fresh database, sandbox and state per test."""

from __future__ import annotations

import uuid

import pytest

from tools import embedded_db
from tools.pipeline import Pipeline, database_server, drop_database, recreate_database


@pytest.fixture(scope="session")
def pg_env():
    """PG* variables of the server: the user's (PGHOST set) or an embedded one started for the session."""
    env, started = database_server()
    yield env
    if started:
        embedded_db.stop()


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
    )
    drop_database(pg_env, database)
