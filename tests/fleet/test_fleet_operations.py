"""Fleet operations on Dagster, shard mode: the daemon runs the schedule, an account added to accounts/fleet.yml is
loaded by the next run the daemon launches without restarting or reloading anything, a backfill of one chosen account
is a run of the cycle with `full_refresh_accounts`, and a row deleted behind the tap's back turns that account's
`rows_match_invoiz` check red (and only that one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet.deploy import DAGSTER_VENV, DEFINITIONS_MODULE, Fleet, credentials_env
from invoiz_ops.fleet.run_history import metadata_of
from invoiz_ops.pipeline import connect, drop_database, project_copy
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = ["acme", "bolt", "cora", "dora"]  # dora joins after the first scheduled cycle
INVOICES = 30


def dagster(fleet: Fleet, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return fleet._run([str(DAGSTER_VENV / "bin" / "dagster"), *args], cwd=fleet.dagster_home, check=check)


FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def latest_runs(fleet: Fleet) -> list[tuple[str, str, dict, int]]:
    """(run_id, status, tags, storage id: in creation order) of the fleet's runs, newest first."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        rows = conn.execute(
            "SELECT run_id, status, run_body, id FROM runs WHERE pipeline_name = 'fleet_cycle' ORDER BY id DESC"
        ).fetchall()
    return [(run_id, status, json.loads(body).get("tags") or {}, number) for run_id, status, body, number in rows]


def wait_for_scheduled_run(fleet: Fleet, created_after: int, timeout: float = 600, finished: bool = True) -> str:
    """The first scheduled run created after the run with storage id CREATED_AFTER (once it has finished, unless
    FINISHED is false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in latest_runs(fleet) if r[3] > created_after and r[2].get("dagster/schedule_name")]
        if runs and (runs[-1][1] in FINISHED or not finished):
            return runs[-1][0]
        time.sleep(1)
    raise AssertionError(f"no scheduled run {'finished' if finished else 'started'} within {timeout:.0f} s")


def wait_for_finished(fleet: Fleet, run_id: str, timeout: float = 600) -> str:
    """The status of a run once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = next(r[1] for r in latest_runs(fleet) if r[0] == run_id)
        if status in FINISHED:
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish within {timeout:.0f} s")


def check_evaluations(fleet: Fleet, run_id: str | None = None) -> dict[str, bool]:
    """{account: passed} of a run's (default: the latest run's) rows_match_invoiz evaluations."""
    run_id = run_id or latest_runs(fleet)[0][0]
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        rows = conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_CHECK_EVALUATION'",
            (run_id,),
        ).fetchall()
    result = {}
    for (event,) in rows:
        data = json.loads(event)["dagster_event"]["event_specific_data"]
        assert data["check_name"] == "rows_match_invoiz"
        result[data["asset_key"]["path"][-1]] = data["success"]
    return result


def stop_daemon(daemon: subprocess.Popen) -> None:
    """The daemon and the code servers it started (its session): TERM, then KILL what is left."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(daemon.pid, sig)  # the group outlives its leader: the code servers stay in it
        except ProcessLookupError:
            return
        try:
            daemon.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)


@pytest.fixture(scope="module")
def fleet(pg_env, tmp_path_factory):
    if not (DAGSTER_VENV / "bin" / "dagster-daemon").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    folder = tmp_path_factory.mktemp("operations")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(NAMES), seed=11, invoices=INVOICES, today="2026-11-01") as sandbox:
        fleet = Fleet(
            project=project_copy(folder, fleet=NAMES[:3]),
            pg_env=pg_env,
            warehouse=f"fleet_{suffix}",
            system_db=f"fleet_{suffix}_meltano",
            dagster_db=f"fleet_{suffix}_dagster",
            dagster_home=folder / "dagster-home",
            shards=2,
            inherit_settings=False,
            extra_env={
                "TAP_INVOIZ_API_URL": sandbox.api_url,
                "TAP_INVOIZ_APP_URL": sandbox.app_url,
                "INVOIZ_FLEET_CRON": "* * * * *",  # a cycle every minute: the test waits for the first one
                **credentials_env(sandbox, NAMES, sandbox.installation_ids),
            },
        )
        daemon = None
        try:
            fleet.deploy()
            dagster(fleet, "schedule", "start", "fleet_every_cycle", "-m", DEFINITIONS_MODULE)
            daemon = subprocess.Popen(
                [str(DAGSTER_VENV / "bin" / "dagster-daemon"), "run", "-m", DEFINITIONS_MODULE],
                cwd=fleet.dagster_home,
                env=fleet.env(),
                stdout=open(folder / "daemon.log", "wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            yield fleet, sandbox, daemon
        finally:
            if daemon is not None:
                stop_daemon(daemon)
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)


def run_materializations(fleet: Fleet) -> list[tuple[str, str, dict]]:
    """(run_id, account, metadata) of every account materialization in the fleet's Dagster storage."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        rows = conn.execute(
            "SELECT run_id, event FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id"
        ).fetchall()
    result = []
    for run_id, event in rows:
        body = json.loads(event)["dagster_event"]["event_specific_data"]["materialization"]
        result.append((run_id, body["asset_key"]["path"][-1], metadata_of(body)))
    return result


def live_invoices(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return dict(
            conn.execute(
                "SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL GROUP BY 1"
            ).fetchall()
        )


def test_operations(fleet):
    fleet, sandbox, daemon = fleet

    # the daemon runs the schedule; once its first cycle is under way the rest is started by hand
    first = wait_for_scheduled_run(fleet, 0, finished=False)
    dagster(fleet, "schedule", "stop", "fleet_every_cycle", "-m", DEFINITIONS_MODULE)
    status = wait_for_finished(fleet, first)
    assert status == "SUCCESS", (fleet.dagster_home.parent / "daemon.log").read_text()[-3000:]
    assert live_invoices(fleet) == dict.fromkeys(NAMES[:3], INVOICES)
    assert check_evaluations(fleet, first) == dict.fromkeys(NAMES[:3], True)

    # an account joins: the next run the same daemon launches (through its code server, loaded before the change)
    # loads it; nothing restarted or reloaded
    (fleet.project / "accounts" / "fleet.yml").write_text("accounts:\n" + "".join(f"- name: {n}\n" for n in NAMES))
    fleet_accounts.generate(fleet.project)
    before = {r[0] for r in latest_runs(fleet)}
    dagster(fleet, "job", "launch", "-m", DEFINITIONS_MODULE, "-j", "fleet_cycle")  # queued; the daemon starts it
    launched = next(r[0] for r in latest_runs(fleet) if r[0] not in before)
    assert wait_for_finished(fleet, launched) == "SUCCESS"
    assert live_invoices(fleet) == dict.fromkeys(NAMES, INVOICES)
    dora = [meta for run_id, key, meta in run_materializations(fleet) if key == "dora"]
    assert dora and dora[0]["new"] > INVOICES  # its first load
    assert check_evaluations(fleet, launched) == dict.fromkeys(NAMES, True)
    stop_daemon(daemon)

    # a silent gap: one of cora's rows disappears from the warehouse behind the tap's back
    with connect(fleet.pg_env, fleet.warehouse, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM raw_invoiz.invoices WHERE (account, id) IN "
            "(SELECT account, id FROM raw_invoiz.invoices WHERE account = 'cora' LIMIT 1)"
        )

    # backfill of one chosen account: a run of the cycle with full_refresh_accounts
    config = fleet.dagster_home / "backfill.yaml"
    config.write_text("full_refresh_accounts: [bolt]\n")
    proc = dagster(fleet, "job", "execute", "-m", DEFINITIONS_MODULE, "-j", "fleet_cycle", "-c", str(config))
    status, _ = fleet.last_run_steps()
    assert status == "SUCCESS", proc.stdout[-3000:]
    materialized = dict(fleet.materializations())
    assert materialized["bolt"]["full_refresh"] is True and materialized["bolt"]["records"] > INVOICES
    assert materialized["acme"]["full_refresh"] is False and materialized["acme"]["records"] == 0
    # the gap stays (an incremental load does not see it) and turns only cora's check red
    assert live_invoices(fleet) == {**dict.fromkeys(NAMES, INVOICES), "cora": INVOICES - 1}
    assert check_evaluations(fleet) == {"acme": True, "bolt": True, "cora": False, "dora": True}
