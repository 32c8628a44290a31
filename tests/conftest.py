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

import contextlib
import json
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


# Order of the tests handed to the xdist workers of `make test` (pytest -n ... --dist loadgroup): the long ones first,
# so that the short ones fill the gaps at the end instead of one worker finishing a long test alone.
_RUN_FIRST = ("e2e", "slow")
# Session fixtures of these tests that every worker may set up for itself (cheap, or shared across processes already).
_PER_WORKER_SESSION_FIXTURES = {"pg_env", "user_environment"}


def _shared_fixtures(item) -> list[str]:
    """The fixtures set up once for several tests that this test uses (with the parameter it uses them with): module-
    and class-scoped ones, and the session-scoped ones these tests define (a shared `meltano run sync`)."""
    shared = []
    for name, defs in item._fixtureinfo.name2fixturedefs.items():
        if not defs:
            continue
        fixture = defs[-1]
        ours = fixture.baseid.startswith("tests") and name not in _PER_WORKER_SESSION_FIXTURES
        if fixture.scope in ("module", "class") or (fixture.scope == "session" and ours):
            param = str(item.callspec.params.get(name, "")) if hasattr(item, "callspec") else ""
            where = "session" if fixture.scope == "session" else item.module.__name__
            # xdist reads the group after the last "@" of the test id, and none when a "]" follows it
            shared.append(f"{where}:{name}={param}".translate(str.maketrans("[]@", "()_")))
    return sorted(shared)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests that share an expensive fixture (one dbt build, one fleet deployment, one `meltano run sync`,
    singer-sdk's standard tap tests) go to one xdist worker together: each worker would set it up again otherwise.
    Then the long tests first, module by module."""
    for item in items:
        shared = _shared_fixtures(item)
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(",".join(shared)))

    def rank(item) -> int:
        return next((i for i, mark in enumerate(_RUN_FIRST) if item.get_closest_marker(mark)), len(_RUN_FIRST))

    module_rank: dict[str, int] = {}
    for item in items:
        module_rank[item.module.__name__] = min(module_rank.get(item.module.__name__, len(_RUN_FIRST)), rank(item))
    # Within a rank, modules with a shared fixture (a fleet deployment, a chain) first: `--dist loadgroup` hands out
    # the groups of several tests first anyway, but a group of one test (a deployment used by a single long test)
    # would otherwise wait behind every single end-to-end test and then run alone at the end on one worker, while
    # the other has finished (measured: 190 s of one idle worker).
    shared = {item.module.__name__ for item in items if item.get_closest_marker("xdist_group")}
    items.sort(key=lambda item: (module_rank[item.module.__name__], item.module.__name__ not in shared))


@pytest.fixture(scope="session")
def user_environment() -> dict[str, str]:
    """The user's TAP_INVOIZ_*/PG*/... variables that were removed from the tests' environment (for a test that
    needs them explicitly)."""
    return dict(_USER_ENVIRONMENT)


@pytest.fixture(scope="session")
def pg_env():
    """PG* variables of the server: TEST_PG* when given, else the checkout's embedded one, shared by every pytest
    process that needs it (the xdist workers of `make test`, a second session): see :func:`_embedded_server_lease`."""
    if TEST_DATABASE_SERVER is not None:
        env = dict(TEST_DATABASE_SERVER)
        env["PGPORT"] = env["PGPORT"] or "5432"
        env["PGUSER"] = env["PGUSER"] or "postgres"
        env["PGDATABASE"] = env["PGDATABASE"] or "postgres"
        yield env
        return
    with _embedded_server_lease() as env:
        yield env


@contextlib.contextmanager
def _embedded_server_lease():
    """The embedded server for as long as this process needs it.

    Several pytest processes share the checkout's one server (every test makes its own databases). Under a file
    lock next to its data dir, each process writes its pid into a lease file; the last one to leave stops the server,
    unless it was running before the tests started it (then it is the developer's, `make db-start`). Leases of
    processes that died (kill -9, a crashed worker) are ignored, so a crashed session does not keep the server up.
    """
    # imported here: tests that need no database (tap, sandbox) need neither psycopg nor the pipeline tooling
    from filelock import FileLock

    from invoiz_ops import embedded_db
    from invoiz_ops.pipeline import database_server

    folder = embedded_db.Layout.default().data_dir.parent
    folder.mkdir(parents=True, exist_ok=True)
    leases = folder / "test-leases.json"
    with FileLock(folder / "test-leases.lock"):
        state = _read_leases(leases)
        env, started = database_server()  # PGHOST was removed above: always the embedded server here
        if not state["pids"]:  # the first user decides whether the tests own the server
            state["started_by_tests"] = started
        state["pids"].append(os.getpid())
        leases.write_text(json.dumps(state))
    try:
        yield env
    finally:
        with FileLock(folder / "test-leases.lock"):
            state = _read_leases(leases)
            state["pids"] = [pid for pid in state["pids"] if pid != os.getpid()]
            leases.write_text(json.dumps(state))
            if not state["pids"] and state["started_by_tests"]:
                embedded_db.stop()


def _read_leases(path) -> dict:
    """The lease file, without the pids of processes that no longer exist."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    return {
        "pids": [pid for pid in state.get("pids", []) if _alive(pid)],
        "started_by_tests": bool(state.get("started_by_tests")),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
