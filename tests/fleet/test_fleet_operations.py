"""Fleet operations on Dagster, shard mode: the daemon runs the schedule, an account added to accounts/fleet.yml is
loaded by the next scheduled cycle without restarting or reloading anything, a backfill of one chosen account is a
run of the cycle with `full_refresh_accounts`, and a row deleted behind the tap's back turns that account's
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

from invoiz_ops.fleet import accounts as fleet_accounts
from invoiz_ops.fleet.deploy import DAGSTER_VENV, DEFINITIONS_MODULE, Fleet, credentials_env, demo_project
from invoiz_ops.pipeline import connect, drop_database
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = ["acme", "bolt", "cora", "dora"]  # dora joins after the first scheduled cycle
INVOICES = 30


def dagster(fleet: Fleet, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return fleet._run([str(DAGSTER_VENV / "bin" / "dagster"), *args], cwd=fleet.dagster_home, check=check)


def latest_runs(fleet: Fleet) -> list[tuple[str, str, dict]]:
    """(run_id, status, tags) of the fleet's runs, newest first."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        rows = conn.execute(
            "SELECT run_id, status, run_body FROM runs WHERE pipeline_name = 'fleet_cycle' ORDER BY id DESC"
        ).fetchall()
    return [(run_id, status, json.loads(body).get("tags") or {}) for run_id, status, body in rows]


def wait_for_scheduled_run(fleet: Fleet, seen: set[str], timeout: float = 300) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id, status, tags in latest_runs(fleet):
            if run_id not in seen and tags.get("dagster/schedule_name") == "fleet_every_cycle":
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    return run_id, status
        time.sleep(2)
    raise AssertionError(f"no scheduled run finished within {timeout:.0f} s")


def check_evaluations(fleet: Fleet) -> dict[str, bool]:
    """{account: passed} of the latest run's rows_match_invoiz evaluations."""
    run_id = latest_runs(fleet)[0][0]
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


@pytest.fixture(scope="module")
def fleet(pg_env, tmp_path_factory):
    if not (DAGSTER_VENV / "bin" / "dagster-daemon").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    folder = tmp_path_factory.mktemp("operations")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(NAMES), seed=11, invoices=INVOICES, today="2026-11-01") as sandbox:
        fleet = Fleet(
            project=demo_project(folder, NAMES[:3]),
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
                "INVOIZ_FLEET_CRON": "* * * * *",  # a cycle every minute, so that the test sees the daemon run two
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
                stdout=open(folder / "daemon.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            yield fleet, sandbox, daemon
        finally:
            if daemon is not None and daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=60)
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)


def live_invoices(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return dict(
            conn.execute(
                "SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL GROUP BY 1"
            ).fetchall()
        )


def test_operations(fleet):
    fleet, sandbox, daemon = fleet

    # the daemon runs the schedule
    first, status = wait_for_scheduled_run(fleet, set())
    assert status == "SUCCESS", (fleet.dagster_home.parent / "daemon.log").read_text()[-3000:]
    assert live_invoices(fleet) == dict.fromkeys(NAMES[:3], INVOICES)
    assert check_evaluations(fleet) == dict.fromkeys(NAMES[:3], True)

    # an account joins: the same daemon and code location, nothing reloaded
    (fleet.project / "accounts" / "fleet.yml").write_text("accounts:\n" + "".join(f"- name: {n}\n" for n in NAMES))
    fleet_accounts.generate(fleet.project)
    seen = {run_id for run_id, _, _ in latest_runs(fleet)}
    second, status = wait_for_scheduled_run(fleet, seen)
    assert status == "SUCCESS"
    assert live_invoices(fleet) == dict.fromkeys(NAMES, INVOICES)
    materialized = dict(fleet.materializations())
    assert materialized["dora"]["new"] > INVOICES and materialized["acme"]["records"] == 0
    os.killpg(daemon.pid, signal.SIGTERM)  # the rest is started by hand
    daemon.wait(timeout=60)
    time.sleep(2)
    while latest_runs(fleet)[0][1] not in ("SUCCESS", "FAILURE", "CANCELED"):  # a run the daemon launched last
        time.sleep(2)

    # backfill of one chosen account: a run of the cycle with full_refresh_accounts
    config = fleet.dagster_home / "backfill.yaml"
    config.write_text("full_refresh_accounts: [bolt]\n")
    proc = dagster(fleet, "job", "execute", "-m", DEFINITIONS_MODULE, "-j", "fleet_cycle", "-c", str(config))
    status, _ = fleet.last_run_steps()
    assert status == "SUCCESS", proc.stdout[-3000:]
    materialized = dict(fleet.materializations())
    assert materialized["bolt"]["full_refresh"] is True and materialized["bolt"]["records"] > INVOICES
    assert materialized["acme"]["full_refresh"] is False and materialized["acme"]["records"] == 0
    assert live_invoices(fleet) == dict.fromkeys(NAMES, INVOICES)

    # a silent gap: one of cora's rows disappears from the warehouse behind the tap's back
    with connect(fleet.pg_env, fleet.warehouse, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM raw_invoiz.invoices WHERE (account, id) IN "
            "(SELECT account, id FROM raw_invoiz.invoices WHERE account = 'cora' LIMIT 1)"
        )
    fleet.cycle()
    assert check_evaluations(fleet) == {"acme": True, "bolt": True, "cora": False, "dora": True}
