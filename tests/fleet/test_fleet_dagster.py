"""The fleet on Dagster: `python -m invoiz_ops.fleet.cycle` (Dagster's execute_job; multiprocess executor, a
temporary DAGSTER_HOME with PostgreSQL storage), accounts on one multi-tenant sandbox, Meltano state in a PostgreSQL system database.

Both modes: one step per account, and shards (several accounts per step in one tap process). Account `dora` has a
wrong secret in the first cycle: only its own step (or, in shard mode, its shard's step, after the shard's other
account has loaded) fails; the other accounts and the marts complete. Its secret is then rotated, and the second
cycle is incremental for the others and a first full load for it.
"""

from __future__ import annotations

import uuid

import pytest

from invoiz_ops.fleet.deploy import DAGSTER_VENV, Fleet, credentials_env
from invoiz_ops.pipeline import connect, drop_database, project_copy
from invoiz_sandbox import FleetSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INVOICES = 40
MODES = {
    # mode: (accounts, shards, expected steps in the first cycle)
    "per_account": (
        ["acme", "bolt", "dora"],
        0,
        {"load_acme": "STEP_SUCCESS", "load_bolt": "STEP_SUCCESS", "load_dora": "STEP_FAILURE"},
    ),
    # shard_of: cora and dora → shard 1, acme and bolt → shard 2
    "shards": (
        ["acme", "bolt", "cora", "dora"],
        2,
        {"load_shard_1_of_2": "STEP_FAILURE", "load_shard_2_of_2": "STEP_SUCCESS"},
    ),
}


@pytest.fixture(scope="module", params=list(MODES))
def cycles(request, pg_env, tmp_path_factory):
    """Deploy, then one cycle (per_account) or two (shards); what Dagster, the warehouse and the state recorded."""
    names, shards, _ = MODES[request.param]
    if not (DAGSTER_VENV / "bin" / "dagster").exists():
        pytest.fail("the Dagster virtualenv is missing: run `make dagster` (make test does)")
    folder = tmp_path_factory.mktemp("fleet")
    suffix = uuid.uuid4().hex[:10]
    with FleetSandbox(installations=len(names), seed=5, invoices=INVOICES, today="2026-11-01") as sandbox:
        project = project_copy(folder, fleet=names)
        credentials = credentials_env(sandbox, names, sandbox.installation_ids)
        # one account's credentials come from a private secrets file instead of the environment
        secrets = folder / "fleet.secrets.env"
        secrets.write_text("".join(f"{k}={credentials.pop(k)}\n" for k in list(credentials) if "__BOLT_" in k))
        secrets.chmod(0o600)
        credentials["TAP_INVOIZ__DORA_API_KEY_SECRET"] = "wrong"
        fleet = Fleet(
            project=project,
            pg_env=pg_env,
            warehouse=f"fleet_{suffix}",
            system_db=f"fleet_{suffix}_meltano",
            dagster_db=f"fleet_{suffix}_dagster",
            dagster_home=folder / "dagster-home",
            max_concurrent=2,
            shards=shards,
            inherit_settings=False,
            extra_env={
                "TAP_INVOIZ_API_URL": sandbox.api_url,
                "TAP_INVOIZ_APP_URL": sandbox.app_url,
                "INVOIZ_FLEET_SECRETS": str(secrets),
                **credentials,
            },
        )
        try:
            fleet.deploy()
            results = {"mode": request.param, "names": names}
            first = fleet.cycle()
            results[1] = (first, *fleet.last_run_steps(), dict(fleet.materializations()), rows(fleet))
            if request.param == "per_account":  # the second cycle runs in shard mode only (test time)
                yield results | state_and_marts(fleet)
                return
            acme = sandbox.installation(sandbox.installation_ids[0])
            acme.pay(next(i for i in acme.invoice_ids() if acme.invoice_row(i)["state"] == "locked"))
            fleet.extra_env["TAP_INVOIZ__DORA_API_KEY_SECRET"] = sandbox.credentials(sandbox.installation_ids[-1])[
                "api_key_secret"
            ]  # the rotated (fixed) secret
            second = fleet.cycle()
            results[2] = (second, *fleet.last_run_steps(), dict(fleet.materializations()), rows(fleet))
            yield results | state_and_marts(fleet)
        finally:
            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)


def state_and_marts(fleet: Fleet) -> dict:
    with connect(fleet.pg_env, fleet.system_db) as conn:
        state_ids = [r[0] for r in conn.execute("SELECT state_id FROM state ORDER BY 1")]
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        marts = conn.execute("SELECT count(DISTINCT account) FROM analytics.customer_invoices").fetchone()[0]
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        pools = dict(
            conn.execute(
                "SELECT concurrency_key, count(*) FROM concurrency_slots WHERE deleted = false GROUP BY concurrency_key"
            ).fetchall()
        )
    return {"state_ids": state_ids, "marts": marts, "pools": pools}


def rows(fleet: Fleet) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.warehouse) as conn:
        exists = conn.execute("SELECT to_regclass('raw_invoiz.invoices')").fetchone()[0]
        if not exists:
            return {}
        return dict(
            conn.execute(
                "SELECT account, count(*) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL GROUP BY account"
            ).fetchall()
        )


def test_a_failing_account_fails_only_its_own_step_and_the_marts_still_run(cycles):
    proc, status, steps, materialized, loaded = cycles[1]
    good = [n for n in cycles["names"] if n != "dora"]
    assert proc.returncode != 0 and status == "FAILURE"
    assert steps == {"warehouse_schema": "STEP_SUCCESS", **MODES[cycles["mode"]][2], "marts": "STEP_SUCCESS"}, (
        proc.stdout[-3000:]
    )
    assert loaded == {name: INVOICES for name in good}
    assert set(materialized) == {*good, "marts"}
    assert materialized["acme"]["records"] > INVOICES  # invoices + contacts, all new
    assert materialized["acme"]["requests"] >= 3
    assert cycles["marts"] == len(good) or 2 in cycles  # the marts cover every loaded account


def test_state_is_in_the_postgresql_system_database(cycles):
    if cycles["mode"] == "shards":
        expected = [f"dev:tap-invoiz-fleet-to-target-postgres:shard-{k}-of-2" for k in (1, 2)]
    else:  # the failed account has saved no state
        expected = [f"dev:tap-invoiz--{name}-to-target-postgres" for name in cycles["names"] if name != "dora"]
    assert cycles["state_ids"] == expected


def test_every_load_step_is_in_its_own_pool_of_one_slot(cycles):
    """At most one load per account (or shard) at a time, across runs: the instance's pools, not Meltano's guard."""
    if cycles["mode"] == "shards":
        expected = {"invoiz-shard-1-of-2": 1, "invoiz-shard-2-of-2": 1}
    else:
        expected = {f"invoiz-account-{name}": 1 for name in cycles["names"]}
    assert cycles["pools"] == {**expected, "invoiz-marts": 1}


@pytest.mark.parametrize("cycles", ["shards"], indirect=True)  # the second cycle runs in shard mode only (test time)
def test_the_second_cycle_is_incremental(cycles):
    proc, status, steps, materialized, loaded = cycles[2]
    assert status == "SUCCESS", proc.stdout[-3000:]
    assert set(steps.values()) == {"STEP_SUCCESS"}
    assert materialized["acme"]["records"] == 1 and materialized["acme"]["changed"] == 1  # the paid invoice
    assert all(materialized[n]["records"] == 0 for n in cycles["names"] if n not in ("acme", "dora"))
    assert materialized["dora"]["new"] > INVOICES  # its first complete load, after the secret was rotated
    assert loaded == {name: INVOICES for name in cycles["names"]}
    assert cycles["marts"] == len(cycles["names"])
