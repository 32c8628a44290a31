"""A fleet left alone: faults an unattended fleet meets, each through the real Dagster CLI and daemon, Meltano,
target-postgres and dbt (3 small accounts on one multi-tenant sandbox, a fresh deploy per test).

- Two cycles started together on a fresh deploy both finish: the schema step creates the raw tables once before
  any load (no two targets race on CREATE TABLE), and every pool exists before a run claims it.
- A target killed mid-load (SIGKILL) is a red step naming the account, with the target's own error line and what
  was committed in the failure metadata; the other accounts and the marts complete. No second try hides it.
- kill -9 of a whole cycle's process tree: dagster-daemon's run monitoring fails the dead run and frees its pool
  slots; the next cycle, started right away, waits for them and then loads every account and builds the marts.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from invoiz_ops.fleet.deploy import DAGSTER_VENV, Fleet, credentials_env
from invoiz_ops.pipeline import connect, drop_database, project_copy
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = ["acme", "bolt", "cora"]
INVOICES = 20


@pytest.fixture
def fleet_factory(pg_env, tmp_path):
    """make(monitor_poll_seconds=…) → (fleet, sandbox, folder): a deployed fleet of NAMES; databases dropped after."""
    made = []

    def make(**options):
        sandbox = FleetSandbox(installations=len(NAMES), seed=7, invoices=INVOICES, today="2026-11-01")
        sandbox.__enter__()
        project = project_copy(tmp_path, fleet=NAMES)
        suffix = uuid.uuid4().hex[:10]
        fleet = Fleet(
            project=project,
            pg_env=pg_env,
            warehouse=f"fleetrec_{suffix}",
            system_db=f"fleetrec_{suffix}_meltano",
            dagster_db=f"fleetrec_{suffix}_dagster",
            dagster_home=tmp_path / "dagster-home",
            max_concurrent=3,
            inherit_settings=False,
            extra_env={
                "TAP_INVOIZ_API_URL": sandbox.api_url,
                "TAP_INVOIZ_APP_URL": sandbox.app_url,
                **credentials_env(sandbox, NAMES, sandbox.installation_ids),
            },
            **options,
        )
        made.append((fleet, sandbox))
        fleet.deploy()
        return fleet, sandbox

    if not (DAGSTER_VENV / "bin" / "dagster").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    yield make
    for fleet, sandbox in made:
        sandbox.__exit__(None, None, None)
        for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
            drop_database(fleet.pg_env, db)


def live_rows(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return dict(
            conn.execute(
                "SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL GROUP BY account"
            ).fetchall()
        )


def marts_accounts(fleet: Fleet) -> int:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return conn.execute("SELECT count(DISTINCT account) FROM analytics.customer_invoices").fetchone()[0]


def processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of this machine's processes."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (ppid, cmdline)
    return found


def descendants(root: int) -> list[int]:
    table = processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_two_cycles_started_together_on_a_fresh_deploy_both_finish(fleet_factory, tmp_path):
    fleet, _ = fleet_factory()
    with connect(fleet.pg_env, fleet.dagster_db) as conn:  # deploy created every pool before any run
        pools = {r[0] for r in conn.execute("SELECT concurrency_key FROM concurrency_limits")}
    assert pools == {"invoiz-schema", "invoiz-marts", *(f"invoiz-account-{n}" for n in NAMES)}
    with connect(fleet.pg_env, fleet.warehouse) as conn:  # and the raw tables, before any load
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'raw_invoiz'")}
    assert {"invoices", "contacts", "sync_status"} <= tables

    cycles = [fleet.start(fleet.cycle_command(), tmp_path / f"cycle-{k}.log") for k in (1, 2)]
    codes = [c.wait(timeout=600) for c in cycles]
    logs = "\n".join((tmp_path / f"cycle-{k}.log").read_text()[-3000:] for k in (1, 2))
    runs = fleet.runs()
    assert [status for _, status in runs] == ["SUCCESS", "SUCCESS"], logs
    assert codes == [0, 0]
    for run_id, _ in runs:
        steps = fleet.run_steps(run_id)
        assert set(steps.values()) == {"STEP_SUCCESS"} and len(steps) == len(NAMES) + 2, steps
    assert live_rows(fleet) == {name: INVOICES for name in NAMES}
    assert marts_accounts(fleet) == len(NAMES)


def test_a_killed_target_is_a_red_step_naming_the_account_and_the_others_complete(fleet_factory, tmp_path):
    fleet, sandbox = fleet_factory()
    victim = "bolt"
    sandbox.installation(sandbox.installation_ids[NAMES.index(victim)]).set_latency(1500)  # a slow listing

    def victims_target():
        for pid, (_, cmdline) in processes().items():
            if "bin/target-postgres" in cmdline and f"/account-{victim}/" in cmdline:
                return pid
        return None

    cycle = fleet.start(fleet.cycle_command(), tmp_path / "cycle.log")
    target = wait_for(victims_target, 300, f"the target-postgres process of {victim}")
    time.sleep(2)  # its tap is listing (slowly); the target has its SCHEMA messages and is waiting for records
    os.kill(target, signal.SIGKILL)
    cycle.wait(timeout=600)

    (run_id, status), steps = fleet.runs()[-1], fleet.last_run_steps()[1]
    assert status == "FAILURE"
    assert steps == {
        "warehouse_schema": "STEP_SUCCESS",
        **{f"load_{n}": ("STEP_FAILURE" if n == victim else "STEP_SUCCESS") for n in NAMES},
        "marts": "STEP_SUCCESS",
    }
    failure = fleet.step_failure(run_id, f"load_{victim}")
    assert failure["description"].startswith(f"account {victim}: target-postgres failed"), failure
    assert failure["metadata"]["failed_process"] == "target-postgres"
    assert "target-postgres stopped without an error message (killed" in failure["metadata"]["first_error"]
    assert "unchanged" not in failure["description"]
    assert "state" in failure["description"]  # what was committed: rows and state
    assert live_rows(fleet).keys() >= {n for n in NAMES if n != victim}
    assert marts_accounts(fleet) >= len(NAMES) - 1
    # no second try: the step ran meltano once (no retry log, one "Running job" in the step's log)
    step_log = (fleet.project / ".fleet" / "steps" / f"account-{victim}" / "last-run.log").read_text()
    assert step_log.count("Running job with name") == 1
    assert not (fleet.project / ".fleet" / "steps" / f"account-{victim}" / "last-failed-try.log").exists()


def test_after_kill_9_of_a_cycle_the_next_cycle_loads_every_account_without_a_person(fleet_factory, tmp_path):
    fleet, sandbox = fleet_factory(monitor_poll_seconds=2)
    for installation in sandbox.installation_ids:  # slow listings: the cycle is mid-load when it is killed
        sandbox.installation(installation).set_latency(1000)
    daemon = fleet.start(fleet.daemon_command(), tmp_path / "daemon.log")
    try:
        # the killed run gets a short maximum runtime of its own (the instance default is two schedule intervals)
        limit = 90
        started = time.monotonic()
        first = fleet.start(fleet.cycle_command(tags={"dagster/max_runtime": str(limit)}), tmp_path / "cycle-1.log")

        def a_target_runs():
            return any("bin/target-postgres" in processes().get(p, (0, ""))[1] for p in descendants(first.pid))

        wait_for(a_target_runs, 900, "a load of the first cycle")
        tree = descendants(first.pid)
        for pid in tree:  # what an OOM kill or a lost node does: every process of the run at once
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        first.wait(timeout=30)
        killed_run, status = fleet.runs()[-1]
        if time.monotonic() - started < limit - 5:  # (on a very busy machine the limit can pass before the kill)
            assert status == "STARTED"  # nobody told Dagster
            with connect(fleet.pg_env, fleet.dagster_db) as conn:
                held = conn.execute(
                    "SELECT count(*) FROM concurrency_slots WHERE run_id = %s", (killed_run,)
                ).fetchone()[0]
            assert held >= 1  # the dead run holds pool slots

        for installation in sandbox.installation_ids:
            sandbox.installation(installation).set_latency(0)
        second = fleet.cycle(timeout=1500)  # started right away, as the schedule would: waits for the slots
        runs = dict(fleet.runs())
        assert runs[killed_run] == "FAILURE"  # failed by run monitoring, not by a person:
        with connect(fleet.pg_env, fleet.dagster_db) as conn:
            (by_monitoring,) = conn.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s AND event LIKE %s",
                (killed_run, "%exceeding maximum runtime%"),
            ).fetchone()
        assert by_monitoring >= 1
        status, steps = fleet.last_run_steps()
        assert status == "SUCCESS", second.stdout[-3000:]
        assert set(steps) == {"warehouse_schema", *(f"load_{n}" for n in NAMES), "marts"}
        assert live_rows(fleet) == {name: INVOICES for name in NAMES}
        assert marts_accounts(fleet) == len(NAMES)
        with connect(fleet.pg_env, fleet.dagster_db) as conn:
            assert conn.execute("SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL").fetchone()[0] == 0
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
