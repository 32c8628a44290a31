"""Shared pytest setup: an environment cleared of the user's settings, the invoiz sandbox fixture (shipped with
tap-invoiz) and one PostgreSQL server per session.

The tests never read the user's configuration. Before any test module is imported, every variable that would
configure the tap, the target, dbt, Meltano or libpq (TAP_INVOIZ_*, PG*, ...) is removed from this process's
environment; the project's .env is never read: Meltano runs get `--env-file` pointing at nothing
(invoiz_ops.pipeline.meltano_command) and singer-sdk's standard tests do not parse the environment. A test that needs
the user's values asks for the ``user_environment`` fixture.

The database is an embedded PostgreSQL started for the session, unless TEST_PGHOST (with TEST_PGPORT, TEST_PGUSER,
TEST_PGPASSWORD, TEST_PGDATABASE) names a server for the tests explicitly; they create and drop databases there.
"""

import os

import pytest

pytest_plugins = ["invoiz_sandbox.pytest_plugin"]

# Prefixes of the variables that configure what the tests run (tap, target, dbt, Meltano, libpq, singer-sdk logging).
USER_SETTING_PREFIXES = ("TAP_INVOIZ_", "TARGET_POSTGRES_", "DBT_", "PG", "MELTANO_", "SINGER_SDK_", "LOGLEVEL")
KEPT = {"DBT_EXECUTABLE"}  # which dbt binary the dbt tests call (invoiz_ops.pipeline.dbt_executable), not a setting

_USER_ENVIRONMENT = {k: v for k, v in os.environ.items() if k.startswith(USER_SETTING_PREFIXES) and k not in KEPT}
for _name in _USER_ENVIRONMENT:
    del os.environ[_name]

_PG_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
TEST_DATABASE_SERVER = (
    {key: os.environ.get(f"TEST_{key}", "") for key in _PG_KEYS} if os.environ.get("TEST_PGHOST") else None
)


@pytest.fixture(scope="session")
def user_environment() -> dict[str, str]:
    """The user's TAP_INVOIZ_*/PG*/... variables that were removed from the tests' environment (for a test that
    needs them explicitly)."""
    return dict(_USER_ENVIRONMENT)


@pytest.fixture(scope="session")
def pg_env():
    """PG* variables of the server: TEST_PG* when given, else an embedded one started for the session."""
    if TEST_DATABASE_SERVER is not None:
        env = dict(TEST_DATABASE_SERVER)
        env["PGPORT"] = env["PGPORT"] or "5432"
        env["PGUSER"] = env["PGUSER"] or "postgres"
        env["PGDATABASE"] = env["PGDATABASE"] or "postgres"
        yield env
        return
    # imported here: tests that need no database (tap, sandbox) need neither psycopg nor the pipeline tooling
    from invoiz_ops import embedded_db
    from invoiz_ops.pipeline import database_server

    env, started = database_server()  # PGHOST was removed above: always the embedded server here
    yield env
    if started:
        embedded_db.stop()
