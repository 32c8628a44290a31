"""A fleet left alone: faults an unattended fleet meets, each through the real Dagster CLI and daemon, Meltano,
target-postgres and dbt (3 small accounts on one multi-tenant sandbox; one deploy shared by the tests of this module,
in this order: the first needs the deploy fresh, the others only a working fleet).

- Two cycles started together on a fresh deploy both finish: the schema step creates the raw tables once before
  any load (no two targets race on CREATE TABLE), and every pool exists before a run claims it.
- A target killed mid-load (SIGKILL) is a red step naming the account, with the target's own error line and what
  was committed in the failure metadata; the other accounts and the marts complete. No second try hides it.
- kill -9 of a cycle's process tree, both ways a run can die: a run the daemon launched (its run worker is a child of
  the daemon's code server, which fails the run as soon as that process is gone) and a run of `invoiz_ops.fleet.cycle`
  that no launcher knows (dagster-daemon's run monitoring fails it at its maximum runtime); their pool slots are freed
  and the next cycle loads every account's change and builds the marts, without a person. That cycle, started
  outside the daemon's run queue while a dead run still holds its slots, waits for them without spinning a core.
- One step per account, no reload: an account added to accounts/fleet.yml is loaded by the next run the daemon
  launches (its pool created by the run's first step, before any claim of the run), one removed is left alone, and
  a backfill of the added account is a run of the cycle like any other.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet.deploy import DAGSTER_VENV, DEFINITIONS, Fleet, credentials_env
from invoiz_ops.pipeline import connect, drop_database, project_copy
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = ["acme", "bolt", "cora"]
JOINING = "dora"  # an installation the fleet does not declare until the last test
INVOICES = 20


@pytest.fixture(scope="module")
def deployed(pg_env, tmp_path_factory):
    """(fleet, sandbox): a deployed fleet of NAMES with run monitoring polling every 2 s; databases dropped after."""
    if not (DAGSTER_VENV / "bin" / "dagster").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    folder = tmp_path_factory.mktemp("recovery")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(NAMES) + 1, seed=7, invoices=INVOICES, today="2026-11-01") as sandbox:
        fleet = Fleet(
            project=project_copy(folder, fleet=NAMES),
            pg_env=pg_env,
            warehouse=f"fleetrec_{suffix}",
            system_db=f"fleetrec_{suffix}_meltano",
            dagster_db=f"fleetrec_{suffix}_dagster",
            dagster_home=folder / "dagster-home",
            max_concurrent=3,
            monitor_poll_seconds=2,
            inherit_settings=False,
            extra_env={
                "TAP_INVOIZ_API_URL": sandbox.api_url,
                "TAP_INVOIZ_APP_URL": sandbox.app_url,
                **credentials_env(sandbox, [*NAMES, JOINING], sandbox.installation_ids),
            },
        )
        try:
            fleet.deploy()
            yield fleet, sandbox
        finally:
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)


def set_latency(sandbox, milliseconds: int, names=NAMES) -> None:
    for name in names:
        sandbox.installation(sandbox.installation_ids[NAMES.index(name)]).set_latency(milliseconds)


def live_rows(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return dict(
            conn.execute(
                "SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL GROUP BY account"
            ).fetchall()
        )


def paid_rows(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return dict(
            conn.execute(
                "SELECT account, count(*) FILTER (WHERE state = 'paid') FROM raw_invoiz.invoices "
                "WHERE _sdc_deleted_at IS NULL GROUP BY account"
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


def held_slots(fleet: Fleet, run_id: str | None = None) -> int:
    """Pool slots held by one run (default: by any run)."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        if run_id is None:
            return conn.execute("SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL").fetchone()[0]
        return conn.execute("SELECT count(*) FROM concurrency_slots WHERE run_id = %s", (run_id,)).fetchone()[0]


def run_events(fleet: Fleet, run_id: str, like: str) -> list[str]:
    """The events of a run whose text contains LIKE (an SQL LIKE pattern)."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT event FROM event_logs WHERE run_id = %s AND event LIKE %s ORDER BY id", (run_id, like)
            )
        ]


def new_run(fleet: Fleet, before: set[str]) -> str | None:
    return next((run_id for run_id, _ in fleet.runs() if run_id not in before), None)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_tree(root: int) -> None:
    """What an OOM kill or a lost node does: every process of the tree at once."""
    for pid in descendants(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_two_cycles_started_together_on_a_fresh_deploy_both_finish(deployed, tmp_path):
    fleet, _ = deployed
    with connect(fleet.pg_env, fleet.dagster_db) as conn:  # deploy created every pool before any run
        pools = {r[0] for r in conn.execute("SELECT concurrency_key FROM concurrency_limits")}
    assert pools == {"invoiz-marts", *(f"invoiz-account-{n}" for n in NAMES)}
    with connect(fleet.pg_env, fleet.warehouse) as conn:  # and the raw tables, before any load
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'raw_invoiz'")}
    assert {"invoices", "contacts", "sync_status"} <= tables
    assert fleet.runs() == []  # a fresh deploy: these are its first cycles

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


def test_a_killed_target_is_a_red_step_naming_the_account_and_the_others_complete(deployed, tmp_path):
    fleet, sandbox = deployed
    victim = "bolt"
    set_latency(sandbox, 1500, [victim])  # a slow listing

    def victims_target():
        for pid, (_, cmdline) in processes().items():
            if "bin/target-postgres" in cmdline and f"{fleet.work_dir}/account-{victim}/" in cmdline:
                return pid
        return None

    try:
        cycle = fleet.start(fleet.cycle_command(), tmp_path / "cycle.log")
        target = wait_for(victims_target, 300, f"the target-postgres process of {victim}")
        time.sleep(2)  # its tap is listing (slowly); the target has its SCHEMA messages and is waiting for records
        os.kill(target, signal.SIGKILL)
        cycle.wait(timeout=600)
    finally:
        set_latency(sandbox, 0, [victim])

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
    step_log = (fleet.work_dir / f"account-{victim}" / "last-run.log").read_text()
    assert step_log.count("Running job with name") == 1
    assert not (fleet.work_dir / f"account-{victim}" / "last-failed-try.log").exists()


def test_after_kill_9_of_a_cycle_the_next_cycle_loads_every_account_without_a_person(deployed, tmp_path):
    fleet, sandbox = deployed
    paid_before = paid_rows(fleet)
    for name in NAMES:  # a change in every account, for the recovering cycle to load
        account = sandbox.installation(sandbox.installation_ids[NAMES.index(name)])
        account.pay(next(i for i in account.invoice_ids() if account.invoice_row(i)["state"] == "locked"))
    daemon = fleet.start(fleet.daemon_command(), tmp_path / "daemon.log")
    try:
        # 1. A run the daemon launches (queued by `dagster job launch`, started by the daemon's code server), killed
        # mid-load: the code server sees its run worker die and fails the run at once.
        set_latency(sandbox, 1000)  # slow listings: the run is mid-load when it is killed
        before = {run_id for run_id, _ in fleet.runs()}
        dagster = str(DAGSTER_VENV / "bin" / "dagster")
        fleet._run([dagster, "job", "launch", "-f", str(DEFINITIONS), "-j", "fleet_cycle"], cwd=fleet.dagster_home)
        launched = wait_for(lambda: new_run(fleet, before), 60, "the launched run")
        started_event = wait_for(
            lambda: run_events(fleet, launched, "%Started process for run (pid:%"), 300, "the launched run's worker"
        )[0]
        worker = int(started_event.split("(pid: ", 1)[1].split(")", 1)[0])

        def a_target_runs():
            return any("bin/target-postgres" in processes().get(p, (0, ""))[1] for p in descendants(worker))

        wait_for(a_target_runs, 600, "a load of the launched run")
        kill_tree(worker)
        set_latency(sandbox, 0)
        wait_for(lambda: dict(fleet.runs())[launched] == "FAILURE", 60, "the killed run to be failed")
        assert run_events(fleet, launched, "%was terminated by signal 9%")  # by its code server, not by a person

        # 2. A run no launcher knows (`invoiz_ops.fleet.cycle`, as a lost node leaves it: nobody is left to notice),
        # killed once its loads hold their pool slots: run monitoring fails it at its maximum runtime.
        limit = 45
        set_latency(sandbox, 1000)
        before = {run_id for run_id, _ in fleet.runs()}
        started = time.monotonic()
        orphan = fleet.start(fleet.cycle_command(tags={"dagster/max_runtime": str(limit)}), tmp_path / "cycle-1.log")
        orphan_run = wait_for(lambda: new_run(fleet, before), 300, "the orphaned run")
        wait_for(
            lambda: held_slots(fleet, orphan_run) == len(NAMES), 300, "the orphaned run's loads to hold their slots"
        )
        kill_tree(orphan.pid)
        orphan.wait(timeout=30)
        set_latency(sandbox, 0)
        if time.monotonic() - started < limit - 5:  # (on a very busy machine the limit can pass before the kill)
            assert dict(fleet.runs())[orphan_run] == "STARTED"  # nobody told Dagster
            assert held_slots(fleet, orphan_run) == len(NAMES)  # the dead run holds every account's slot

        # 3. The next cycle, started right away (outside the daemon's run queue, which would hold it back): it waits
        # for the dead run's slots without spinning a core (invoiz_ops.fleet.pool_wait), then loads every account's
        # change and builds the marts.
        before = {run_id for run_id, _ in fleet.runs()}
        log = tmp_path / "cycle-2.log"
        cycle = fleet.start(fleet.cycle_command(), log)
        following = wait_for(lambda: new_run(fleet, before), 300, "the next cycle's run")
        wait_for(
            lambda: run_events(fleet, following, "%Step blocked by limit for pool invoiz-account-%"),
            300,
            "the next cycle to wait for the dead run's slots",
        )
        cpu_before, waiting_since = cpu_seconds(cycle.pid), time.monotonic()
        time.sleep(3)
        cpu_used, waited = cpu_seconds(cycle.pid) - cpu_before, time.monotonic() - waiting_since
        if dict(fleet.runs())[orphan_run] == "STARTED":  # the slot stayed held all along (not on a very busy machine)
            assert cpu_used < 0.25 * waited, f"the waiting run used {cpu_used:.2f} CPU-s in {waited:.1f} s"
        assert cycle.wait(timeout=1500) == 0, log.read_text()[-3000:]
        assert dict(fleet.runs())[orphan_run] == "FAILURE"  # failed by run monitoring, not by a person
        assert run_events(fleet, orphan_run, "%exceeding maximum runtime%")
        status, steps = fleet.last_run_steps()
        assert status == "SUCCESS", log.read_text()[-3000:]
        assert set(steps) == {"warehouse_schema", *(f"load_{n}" for n in NAMES), "marts"}
        assert live_rows(fleet) == {name: INVOICES for name in NAMES}
        assert paid_rows(fleet) == {name: paid_before[name] + 1 for name in NAMES}  # every account's change
        assert marts_accounts(fleet) == len(NAMES)
        wait_for(lambda: held_slots(fleet) == 0, 30, "every pool slot to be free")
    finally:
        set_latency(sandbox, 0)
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def test_an_account_added_or_removed_is_loaded_or_left_by_the_next_run_without_a_reload(deployed, tmp_path):
    """One step per account: the steps come from the code location, which the run's own process loads again — an
    account added to accounts/fleet.yml gets its step (and its pool, created by the run's first step before any
    claim) in the next run the daemon launches, one removed gets none; no reload, no restart, no deploy."""
    fleet, sandbox = deployed
    daemon = fleet.start(fleet.daemon_command(), tmp_path / "daemon.log")
    try:
        rows_before = live_rows(fleet)
        declared = [name for name in NAMES if name != "bolt"] + [JOINING]
        (fleet.project / "accounts" / "fleet.yml").write_text(
            "accounts:\n" + "".join(f"- name: {n}\n" for n in declared)
        )
        fleet_accounts.generate(fleet.project)
        before = {run_id for run_id, _ in fleet.runs()}
        dagster = str(DAGSTER_VENV / "bin" / "dagster")
        fleet._run([dagster, "job", "launch", "-f", str(DEFINITIONS), "-j", "fleet_cycle"], cwd=fleet.dagster_home)
        launched = wait_for(lambda: new_run(fleet, before), 60, "the launched run")
        wait_for(lambda: dict(fleet.runs())[launched] in ("SUCCESS", "FAILURE"), 600, "the launched run to finish")
        assert dict(fleet.runs())[launched] == "SUCCESS", (tmp_path / "daemon.log").read_text()[-3000:]
        steps = fleet.run_steps(launched)
        assert set(steps) == {"warehouse_schema", *(f"load_{n}" for n in declared), "marts"}
        assert set(steps.values()) == {"STEP_SUCCESS"}
        assert live_rows(fleet) == {**rows_before, JOINING: INVOICES}  # bolt's rows stay; nothing else changed
        assert marts_accounts(fleet) == len(NAMES) + 1

        # a backfill of the account that joined, through the same daemon: `full_refresh_accounts` is read from the
        # run's config, so the steps need no config the code server's copy lacks
        config = tmp_path / "backfill.yaml"
        config.write_text(f"full_refresh_accounts: [{JOINING}]\n")
        before = {run_id for run_id, _ in fleet.runs()}
        fleet._run(
            [dagster, "job", "launch", "-f", str(DEFINITIONS), "-j", "fleet_cycle", "-c", str(config)],
            cwd=fleet.dagster_home,
        )
        backfill = wait_for(lambda: new_run(fleet, before), 60, "the backfill run")
        wait_for(lambda: dict(fleet.runs())[backfill] in ("SUCCESS", "FAILURE"), 600, "the backfill to finish")
        assert dict(fleet.runs())[backfill] == "SUCCESS", (tmp_path / "daemon.log").read_text()[-3000:]
        materialized = dict(fleet.materializations())
        assert materialized[JOINING]["full_refresh"] is True and materialized[JOINING]["records"] > INVOICES
        assert materialized["acme"]["full_refresh"] is False and materialized["acme"]["records"] == 0
        assert live_rows(fleet) == {**rows_before, JOINING: INVOICES}
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
