"""A fleet step keeps one PostgreSQL connection per Dagster storage for its events. dagster-postgres connects anew for
every query, and a shard step records a materialization per account (the marts step a check result per account):
without the held connection every one of them starts PostgreSQL backends. Runs an op in the Dagster virtualenv against
a Dagster storage database of its own and counts the sessions PostgreSQL saw (pg_stat_database.sessions)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from invoiz_ops.fleet.deploy import DAGSTER_VENV
from invoiz_ops.pipeline import connect, drop_database, recreate_database

pytestmark = pytest.mark.slow  # three Dagster runs in their own processes (about 15 s)

EVENTS = 60

# one op that (optionally) holds the connections as the fleet's steps do, then records EVENTS materializations
SCRIPT = """
import sys
from dagster import AssetKey, AssetMaterialization, DagsterInstance, job, op
from invoiz_ops.fleet import load_steps

hold = sys.argv[1] == "hold"

@op
def record(context):
    if hold:
        load_steps.hold_storage_connections(context)
    for i in range(EVENTS):
        context.log_event(AssetMaterialization(asset_key=AssetKey(["invoiz", f"acct-{i}"]), metadata={"records": i}))

@job
def fleet_like():
    record()

with DagsterInstance.get() as instance:
    assert fleet_like.execute_in_process(instance=instance).success
""".replace("EVENTS", str(EVENTS))


def sessions(pg_env: dict[str, str], database: str) -> int:
    time.sleep(1)  # a session is counted when its backend has exited and reported
    with connect(pg_env, database) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


@pytest.fixture
def dagster_home(pg_env, tmp_path):
    if not (DAGSTER_VENV / "bin" / "python").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    database = f"dagster_conn_{uuid.uuid4().hex[:10]}"
    recreate_database(pg_env, database)
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      hostname: {pg_env['PGHOST']}\n      port: {pg_env['PGPORT']}\n"
        f"      username: {pg_env['PGUSER']}\n      password: {pg_env.get('PGPASSWORD', '')}\n"
        f"      db_name: {database}\n"
        "telemetry:\n  enabled: false\n"
    )
    try:
        yield tmp_path, database
    finally:
        drop_database(pg_env, database)


def test_a_step_that_holds_its_connections_does_not_connect_per_event(pg_env, dagster_home):
    home, database = dagster_home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_INVOIZ", "INVOIZ_FLEET", "DAGSTER"))}
    env["DAGSTER_HOME"] = str(home)
    opened = {}
    for mode in ("hold", "per-query", "hold"):  # the first run also creates Dagster's tables
        before = sessions(pg_env, database)
        proc = subprocess.run(
            [str(DAGSTER_VENV / "bin" / "python"), "-c", SCRIPT, mode], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        opened[mode] = sessions(pg_env, database) - before - 1  # less the counting session itself
    # Dagster's default: at least two new connections per materialization; held: the run's own bookkeeping only
    assert opened["per-query"] - opened["hold"] >= 2 * EVENTS, opened
    assert opened["hold"] < EVENTS // 2, opened
