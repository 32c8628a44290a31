"""Shared pytest setup: the invoiz sandbox fixture (shipped with tap-invoiz) and one PostgreSQL server per session."""

import pytest

from tools import embedded_db
from tools.pipeline import database_server

pytest_plugins = ["invoiz_sandbox.pytest_plugin"]


@pytest.fixture(scope="session")
def pg_env():
    """PG* variables of the server: the user's (PGHOST set) or an embedded one started for the session."""
    env, started = database_server()
    yield env
    if started:
        embedded_db.stop()
