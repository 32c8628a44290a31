"""The fleet on two workers through Dagster's celery executor: two copies of the project in their own folders (own
Meltano project, step folders and Dagster home), sharing nothing but PostgreSQL and the broker (an embedded valkey).

Cycle 1 loads every account and both workers run steps. In cycle 2 (one invoice paid in every account) worker B is
killed (kill -9 of its whole process tree) while it runs a load: its step goes back to the queue and worker A runs it;
the cycle ends with every account's change loaded, no row lost or duplicated. Cycle 3, on worker A alone: one
account's secret was rotated in invoiz, so its load fails, once, as a red step naming the account and the setting;
the other accounts and the marts complete; an account added to worker A's project since its earlier steps is loaded
by worker A without a restart (each step imports the code location afresh).
The installed software (virtualenvs) is shared read-only, as one image on several machines would be.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid

import pytest

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops.fleet.deploy import DAGSTER_VENV, Fleet, credentials_env
from invoiz_ops.pipeline import connect, drop_database, project_copy
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAMES = ["acme", "bolt", "cora", "dora"]
JOINING = "emil"  # declared before cycle 3 only
INVOICES = 30
STEP_TIMEOUT = 120  # a bound on one `meltano run`, far above the few seconds a load of 30 invoices takes
# a killed worker's step is handed on after this (plus one sweep of at most 9 s): the operator's setting, longer than
# the longest step here (a load or the marts' dbt build: seconds on a quiet machine, up to ≈ 65 s seen on one with a
# load average of 20)
VISIBILITY_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_rows(fleet: Fleet) -> dict[str, tuple[int, int]]:
    """(live invoices, live rows with a paid state) per account."""
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return {
            account: (rows, paid)
            for account, rows, paid in conn.execute(
                "SELECT account, count(*), count(*) FILTER (WHERE state = 'paid') FROM raw_invoiz.invoices "
                "WHERE _sdc_deleted_at IS NULL GROUP BY account"
            ).fetchall()
        }


def duplicates(fleet: Fleet) -> int:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT account, id FROM raw_invoiz.invoices GROUP BY 1, 2 HAVING count(*) > 1) d"
        ).fetchone()[0]


def workers_of_run(fleet: Fleet) -> dict[str, str]:
    """{step: worker} of the latest run's materializations."""
    return {key: meta.get("worker") for key, meta in fleet.materializations()}


def running_on(fleet: Fleet, worker: str) -> str | None:
    """A load step of the latest run that the worker has started and not finished, if any."""
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        run = conn.execute(
            "SELECT run_id FROM runs WHERE pipeline_name = 'fleet_cycle' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if not run:
            return None
        rows = conn.execute(
            "SELECT step_key, event FROM event_logs WHERE run_id = %s AND step_key LIKE 'load_%%' ORDER BY id",
            (run[0],),
        ).fetchall()
    taken, ended = set(), set()
    for step, event in rows:
        if f'"{worker}@' in event:
            taken.add(step)
        if '"STEP_SUCCESS"' in event or '"STEP_FAILURE"' in event:
            ended.add(step)
    return next(iter(sorted(taken - ended)), None)


@pytest.fixture(scope="module")
def two_workers(pg_env, tmp_path_factory):
    if not (DAGSTER_VENV / "bin" / "celery").exists():
        pytest.fail("the Dagster virtualenv lacks Celery: run `make dagster` (make test does)")
    folder = tmp_path_factory.mktemp("workers")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(NAMES) + 1, seed=9, invoices=INVOICES, today="2026-11-01") as sandbox:
        credentials = credentials_env(sandbox, [*NAMES, JOINING], sandbox.installation_ids)
        fleets = {}
        for name in ("a", "b"):
            fleets[name] = Fleet(
                project=project_copy(folder / f"worker-{name}", fleet=NAMES),
                pg_env=pg_env,
                warehouse=f"fleet_{suffix}",
                system_db=f"fleet_{suffix}_meltano",
                dagster_db=f"fleet_{suffix}_dagster",
                dagster_home=folder / f"worker-{name}" / "dagster-home",
                work_dir=folder / f"worker-{name}" / "steps",
                executor="celery",
                step_timeout=STEP_TIMEOUT,
                visibility_timeout=VISIBILITY_TIMEOUT,
                inherit_settings=False,
                extra_env={
                    "TAP_INVOIZ_API_URL": sandbox.api_url,
                    "TAP_INVOIZ_APP_URL": sandbox.app_url,
                    **credentials,
                },
            )
        a, b = fleets["a"], fleets["b"]
        workers = {}
        try:
            b.broker_url = a.start_broker(folder / "broker", free_port())
            a.deploy()  # databases, Meltano's system database, the Dagster instance: once, from worker A's copy
            workers = {name: fleets[name].start_worker(name, concurrency=1) for name in ("a", "b")}
            yield sandbox, a, b, workers, folder
        finally:
            for proc in workers.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
            a._run(
                [str(DAGSTER_VENV / "bin" / "python"), "-m", "invoiz_ops.fleet.broker", "stop"]
                + ["--dir", str(folder / "broker")],
                cwd=folder,
                check=False,
            )
            for db in (a.warehouse, a.system_db, a.dagster_db):
                drop_database(pg_env, db)


def test_two_workers_share_a_cycle_and_a_killed_worker_loses_nothing(two_workers):
    sandbox, a, b, workers, folder = two_workers

    first = a.cycle(timeout=1200)
    status, steps = a.last_run_steps()
    assert status == "SUCCESS", first.stdout[-3000:] + first.stderr[-3000:]
    # the schema step, one load per account, the marts
    assert set(steps.values()) == {"STEP_SUCCESS"} and len(steps) == len(NAMES) + 2, steps
    assert {k: v[0] for k, v in live_rows(a).items()} == dict.fromkeys(NAMES, INVOICES)
    ran_on = workers_of_run(a)
    assert set(ran_on) == {*NAMES, "marts"}
    assert set(ran_on.values()) == {"a", "b"}, ran_on  # both workers did work
    for name in ("a", "b"):  # each worker ran its steps in its own copy's folders
        assert any((folder / f"worker-{name}" / "steps").iterdir())

    paid_before = live_rows(a)
    for iid in sandbox.installation_ids:
        account = sandbox.installation(iid)
        account.pay(next(i for i in account.invoice_ids() if account.invoice_row(i)["state"] == "locked"))

    outcome = {}
    cycle = threading.Thread(target=lambda: outcome.setdefault("proc", a.cycle(timeout=1500)))
    cycle.start()
    killed_step = None
    deadline = time.monotonic() + 600
    while killed_step is None and time.monotonic() < deadline and cycle.is_alive():
        killed_step = running_on(a, "b")
        time.sleep(0.5)
    assert killed_step, "worker b never started a load in the second cycle"
    os.killpg(workers["b"].pid, signal.SIGKILL)
    workers["b"].wait(timeout=30)
    cycle.join(timeout=1500)
    status, steps = a.last_run_steps()
    assert status == "SUCCESS", outcome["proc"].stdout[-3000:] + outcome["proc"].stderr[-3000:]
    assert set(steps.values()) == {"STEP_SUCCESS"}
    assert workers_of_run(a)[killed_step.removeprefix("load_")] == "a"  # worker a ran the killed worker's step
    after = live_rows(a)
    assert {k: v[0] for k, v in after.items()} == dict.fromkeys(NAMES, INVOICES)
    assert all(after[n][1] == paid_before[n][1] + 1 for n in NAMES), (paid_before, after)
    assert duplicates(a) == 0

    # cycle 3, worker a alone: one account's secret was rotated in invoiz and not in the fleet, and one account joined
    # (worker a, which ran steps of the first two cycles, runs on without a restart)
    victim = NAMES[-1]
    sandbox.installation(sandbox.installation_ids[NAMES.index(victim)]).set_credentials(
        api_key_secret="rotated-in-invoiz"
    )
    (a.project / "accounts" / "fleet.yml").write_text(
        "accounts:\n" + "".join(f"- name: {n}\n" for n in [*NAMES, JOINING])
    )
    fleet_accounts.generate(a.project)
    third = a.cycle(timeout=1200)
    (run_id, status), steps = a.runs()[-1], a.last_run_steps()[1]
    assert status == "FAILURE", third.stdout[-3000:]
    assert steps == {
        "warehouse_schema": "STEP_SUCCESS",
        **{f"load_{n}": ("STEP_FAILURE" if n == victim else "STEP_SUCCESS") for n in [*NAMES, JOINING]},
        "marts": "STEP_SUCCESS",
    }
    failure = a.step_failure(run_id, f"load_{victim}")
    assert failure["description"].startswith(f"account {victim}: "), failure
    assert failure["metadata"]["failed_process"].startswith("tap-invoiz"), failure
    assert "api_key_secret" in failure["metadata"]["first_error"], failure  # names the setting
    assert "rotated-in-invoiz" not in str(failure)
    ran_on = workers_of_run(a)
    assert set(ran_on.values()) == {"a"} and victim not in ran_on
    assert all(meta.get("records") == 0 for key, meta in a.materializations() if key not in ("marts", JOINING))
    # a step that ended in failure is not handed out again: its account's Meltano ran once in this cycle
    step_log = (a.work_dir / f"account-{victim}" / "last-run.log").read_text()
    assert step_log.count("Running job with name") == 1
    assert live_rows(a) == {**after, JOINING: (INVOICES, live_rows(a)[JOINING][1])} and duplicates(a) == 0
    # (the failed account's rows are untouched; the joined account's are all there)
