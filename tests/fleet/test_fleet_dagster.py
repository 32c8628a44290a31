"""The fleet on Dagster through its CLI: `dagster job execute` (multiprocess executor, a temporary DAGSTER_HOME with
PostgreSQL storage), four accounts on one multi-tenant sandbox, Meltano state in a PostgreSQL system database.

One account has a wrong secret in the first cycle: its step fails, the others and the marts complete. Its secret is
then rotated, and the second cycle is incremental for the others and a first full load for it.
"""
from __future__ import annotations

import uuid

import pytest

from invoiz_sandbox import FleetSandbox
from tools.fleet import DAGSTER_VENV, Fleet, credentials_env, demo_project
from tools.pipeline import connect, drop_database

NAMES = ["acme", "bolt", "cora", "dora"]
INVOICES = 40


@pytest.fixture(scope="module")
def cycles(pg_env, tmp_path_factory):
    if not (DAGSTER_VENV / "bin" / "dagster").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make orchestrate` (make test does)")
    folder = tmp_path_factory.mktemp("fleet")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(NAMES), seed=5, invoices=INVOICES, today="2026-11-01") as sandbox:
        project = demo_project(folder, NAMES)
        credentials = credentials_env(sandbox, NAMES, sandbox.installation_ids)
        # one account's credentials come from a private secrets file instead of the environment
        secrets = folder / "fleet.secrets.env"
        secrets.write_text("".join(f"{k}={credentials.pop(k)}\n" for k in list(credentials) if "__CORA_" in k))
        secrets.chmod(0o600)
        credentials["TAP_INVOIZ__DORA_API_KEY_SECRET"] = "wrong"
        fleet = Fleet(project=project, pg_env=pg_env, warehouse=f"fleet_{suffix}", system_db=f"fleet_{suffix}_meltano",
                      dagster_db=f"fleet_{suffix}_dagster", dagster_home=folder / "dagster-home", max_concurrent=2,
                      inherit_settings=False,
                      extra_env={"TAP_INVOIZ_API_URL": sandbox.api_url, "TAP_INVOIZ_APP_URL": sandbox.app_url,
                                 "INVOIZ_FLEET_SECRETS": str(secrets), **credentials})
        try:
            fleet.deploy()
            results = {}
            first = fleet.cycle()
            results[1] = (first, *fleet.last_run_steps(), dict(fleet.materializations()), rows(fleet))
            acme = sandbox.installation(sandbox.installation_ids[0])
            acme.pay(next(i for i in acme.invoice_ids() if acme.invoice_row(i)["state"] == "locked"))
            fleet.extra_env["TAP_INVOIZ__DORA_API_KEY_SECRET"] = sandbox.credentials(sandbox.installation_ids[3])[
                "api_key_secret"]  # the rotated (fixed) secret
            second = fleet.cycle()
            results[2] = (second, *fleet.last_run_steps(), dict(fleet.materializations()), rows(fleet))
            with connect(pg_env, fleet.system_db) as conn:
                results["state_ids"] = [r[0] for r in conn.execute("SELECT state_id FROM state ORDER BY 1")]
            with connect(pg_env, fleet.warehouse) as conn:
                results["marts"] = conn.execute(
                    "SELECT count(DISTINCT account) FROM analytics.customer_invoices").fetchone()[0]
            yield results
        finally:
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)


def rows(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        exists = conn.execute("SELECT to_regclass('raw_invoiz.invoices')").fetchone()[0]
        if not exists:
            return {}
        return dict(conn.execute("SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL "
                                 "GROUP BY account").fetchall())


def test_a_failing_account_fails_only_its_own_step_and_the_marts_still_run(cycles):
    proc, status, steps, materialized, loaded = cycles[1]
    assert proc.returncode != 0 and status == "FAILURE"
    assert steps == {"load_acme": "STEP_SUCCESS", "load_bolt": "STEP_SUCCESS", "load_cora": "STEP_SUCCESS",
                     "load_dora": "STEP_FAILURE", "marts": "STEP_SUCCESS"}, proc.stdout[-3000:]
    assert loaded == {"acme": INVOICES, "bolt": INVOICES, "cora": INVOICES}
    assert set(materialized) == {"acme", "bolt", "cora", "marts"}
    assert materialized["acme"]["records"] > INVOICES  # invoices + contacts, all new
    assert materialized["acme"]["requests"] >= 3


def test_state_is_in_the_postgresql_system_database(cycles):
    assert cycles["state_ids"] == [f"dev:tap-invoiz--{name}-to-target-postgres" for name in NAMES]


def test_the_second_cycle_is_incremental(cycles):
    proc, status, steps, materialized, loaded = cycles[2]
    assert status == "SUCCESS", proc.stdout[-3000:]
    assert set(steps.values()) == {"STEP_SUCCESS"}
    assert materialized["acme"]["records"] == 1 and materialized["acme"]["changed"] == 1  # the paid invoice
    assert materialized["bolt"]["records"] == 0 and materialized["cora"]["records"] == 0
    assert materialized["dora"]["new"] > INVOICES  # its first complete load, after the secret was rotated
    assert loaded == {name: INVOICES for name in NAMES}
    assert cycles["marts"] == len(NAMES)
