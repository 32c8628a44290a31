"""The fleet demo (make fleet-demo): 3 accounts on the multi-tenant sandbox, deployed on Dagster, two cycles end to end.

    python -m invoiz_ops.fleet.demo [--keep] [--shards N] [--max-concurrent N]

`--keep` keeps the Dagster home and databases to look at them in the UI; without it they are deleted at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from invoiz_ops import accounts as fleet_accounts
from invoiz_ops import embedded_db
from invoiz_ops.fleet.deploy import DAGSTER_VENV, DEFINITIONS_MODULE, Fleet, credentials_env
from invoiz_ops.pipeline import connect, database_server, load_dotenv_database_settings, project_copy

DEMO_ACCOUNTS = ("nordlicht", "alpenblick", "rheinwerk")


def run_demo(args: argparse.Namespace) -> int:
    from invoiz_sandbox import FleetSandbox

    load_dotenv_database_settings()
    pg_env, started = database_server()
    names = list(DEMO_ACCOUNTS)
    folder = Path(tempfile.mkdtemp(prefix="invoiz-fleet-demo-"))
    fleet = None
    try:
        with FleetSandbox(installations=len(names), seed=42, invoices=300, today="2026-11-01") as sandbox:
            project = project_copy(folder, fleet=names)
            extra = {
                "TAP_INVOIZ_API_URL": sandbox.api_url,
                "TAP_INVOIZ_APP_URL": sandbox.app_url,
                **credentials_env(sandbox, names, sandbox.installation_ids),
            }
            fleet = Fleet(
                project=project,
                pg_env=pg_env,
                warehouse="invoiz_fleet_demo",
                system_db="invoiz_fleet_demo_meltano",
                dagster_db="invoiz_fleet_demo_dagster",
                dagster_home=folder / "dagster-home",
                max_concurrent=args.max_concurrent,
                shards=args.shards,
                extra_env=extra,
                inherit_settings=False,
            )
            from invoiz_ops.pipeline import drop_database

            for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                drop_database(pg_env, db)
            problems = fleet_accounts.check(project, fleet.env())
            if problems:
                print("\n".join(problems), file=sys.stderr)
                return 1
            print(
                f"fleet demo: {len(names)} accounts ({', '.join(names)}) on one sandbox at {sandbox.api_url}; "
                f"PostgreSQL {pg_env['PGHOST']}:{pg_env['PGPORT']}, database {fleet.warehouse}",
                flush=True,
            )
            started_at = time.monotonic()
            fleet.deploy()
            print(
                f"deployed in {time.monotonic() - started_at:.0f} s: system database {fleet.system_db} migrated, "
                f"Dagster instance in {fleet.dagster_db}",
                flush=True,
            )
            for cycle in (1, 2):
                if cycle == 2:  # something happens in one account between cycles
                    first = sandbox.installation(sandbox.installation_ids[0])
                    first.pay(next(i for i in first.invoice_ids() if first.invoice_row(i)["state"] == "locked"))
                    first.create_invoice()
                t0 = time.monotonic()
                fleet.cycle(check=True)
                status, steps = fleet.last_run_steps()
                print(
                    f"cycle {cycle}: {status} in {time.monotonic() - t0:.0f} s; steps: "
                    + ", ".join(f"{k} {v.removeprefix('STEP_').lower()}" for k, v in steps.items()),
                    flush=True,
                )
                for key, meta in fleet.materializations():
                    detail = (
                        f"{meta.get('records', 0)} records ({meta.get('new', 0)} new, {meta.get('changed', 0)} "
                        f"changed, {meta.get('deleted', 0)} deleted), {meta.get('requests', 0)} requests"
                        if key != "marts"
                        else "dbt build"
                    )
                    print(f"  {key:<12} {detail}, {meta.get('seconds')} s", flush=True)
            with connect(pg_env, fleet.warehouse) as conn:
                rows = conn.execute("SELECT account, count(*) FROM raw_invoiz.invoices GROUP BY account ORDER BY 1")
                print("rows per account: " + ", ".join(f"{a} {n}" for a, n in rows.fetchall()))
                customers = conn.execute("SELECT count(*) FROM analytics.customer_values").fetchone()[0]
                print(f"analytics.customer_values: {customers} customers over all accounts")
            with connect(pg_env, fleet.system_db) as conn:
                states = conn.execute("SELECT state_id FROM state ORDER BY 1").fetchall()
                print("state in the system database: " + ", ".join(s for (s,) in states))
            if args.keep:
                print(
                    f"kept: Dagster home {fleet.dagster_home} (runs, steps, assets in database {fleet.dagster_db}), "
                    f"the project copy {project}, databases {fleet.warehouse}, {fleet.system_db}, {fleet.dagster_db}"
                    + (" (the embedded PostgreSQL keeps running)" if started else "")
                    + f". To look at them: export the lines of `invoiz_ops.fleet.deploy env` with DAGSTER_HOME="
                    f"{fleet.dagster_home}, then from that folder: {DAGSTER_VENV}/bin/dagster-webserver -m "
                    f"{DEFINITIONS_MODULE}"
                )
        return 0
    finally:
        if not args.keep:
            if fleet is not None:
                from invoiz_ops.pipeline import drop_database

                for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                    drop_database(pg_env, db)
            shutil.rmtree(folder, ignore_errors=True)
        if started and not args.keep:
            embedded_db.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m invoiz_ops.fleet.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-concurrent", type=int, default=2, help="steps at once (multiprocess executor)")
    parser.add_argument("--shards", type=int, default=0, help="0: one step per account (default); N: N shard steps")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep its folder (project copy, Dagster home) and databases to look at them in the UI; without it they "
        "are deleted at the end",
    )
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
