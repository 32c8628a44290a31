"""Stress of a fleet's first cycle (make stress-fleet): fresh deploys in a row, each followed by every account's first
load on an empty warehouse, loads in parallel. Counts failed and retried loads (there must be none).

    python -m bench.stress_fleet [--accounts 20] [--rounds 5] [--max-concurrent 4] [--shards 0]

Each round drops the three fleet databases, deploys (`invoiz_ops.fleet.deploy deploy`: databases, Meltano's system
database, dagster.yaml, pools, the schema step), then runs one cycle through the Dagster CLI. Without the schema step,
target-postgres' check-then-CREATE TABLE made parallel first loads collide now and then (docs/RELIABILITY.md).
Not part of `make test` (minutes); prints one line per round and a total. Exit status 1 if any load failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from invoiz_ops import embedded_db
from invoiz_ops.fleet.deploy import Fleet, credentials_env
from invoiz_ops.pipeline import connect, database_server, drop_database, project_copy
from invoiz_sandbox import FleetSandbox


def step_events(fleet: Fleet, run_id: str) -> dict[str, int]:
    with connect(fleet.pg_env, fleet.dagster_db) as conn:
        return dict(
            conn.execute(
                "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type IN "
                "('STEP_SUCCESS', 'STEP_FAILURE', 'STEP_RESTARTED', 'STEP_UP_FOR_RETRY') GROUP BY 1",
                (run_id,),
            ).fetchall()
        )


def meltano_runs_per_step(project: Path) -> dict[str, int]:
    """How often each load step started `meltano run` (1 each: no hidden second try)."""
    steps = project / ".fleet" / "steps"
    return {
        log.parent.name: log.read_text().count("Running job with name") for log in steps.glob("account-*/last-run.log")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stress_fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-concurrent", type=int, default=4)
    parser.add_argument("--shards", type=int, default=0)
    parser.add_argument("--invoices", type=int, default=30, help="invoices per account")
    args = parser.parse_args(argv)

    pg_env, started = database_server()
    names = [f"acct{k:03d}" for k in range(1, args.accounts + 1)]
    total_failed = total_retried = 0
    try:
        with (
            tempfile.TemporaryDirectory(prefix="invoiz-stress-fleet-") as tmp,
            FleetSandbox(installations=len(names), seed=11, invoices=args.invoices, today="2026-11-01") as sandbox,
        ):
            folder = Path(tmp)
            print(
                f"stress-fleet: {len(names)} accounts, {args.rounds} fresh deploys, first cycle each, "
                f"max_concurrent {args.max_concurrent}, shards {args.shards}, {args.invoices} invoices per account",
                flush=True,
            )
            for round_no in range(1, args.rounds + 1):
                round_dir = folder / f"round-{round_no}"
                project = project_copy(round_dir, fleet=names)
                fleet = Fleet(
                    project=project,
                    pg_env=pg_env,
                    warehouse="invoiz_stress_fleet",
                    system_db="invoiz_stress_fleet_meltano",
                    dagster_db="invoiz_stress_fleet_dagster",
                    dagster_home=round_dir / "dagster-home",
                    max_concurrent=args.max_concurrent,
                    shards=args.shards,
                    inherit_settings=False,
                    extra_env={
                        "TAP_INVOIZ_API_URL": sandbox.api_url,
                        "TAP_INVOIZ_APP_URL": sandbox.app_url,
                        **credentials_env(sandbox, names, sandbox.installation_ids),
                    },
                )
                for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                    drop_database(pg_env, db)
                t0 = time.monotonic()
                fleet.deploy()
                deployed = time.monotonic() - t0
                fleet.cycle()
                run_id, status = fleet.runs()[-1]
                events = step_events(fleet, run_id)
                runs = meltano_runs_per_step(project)
                retried = events.get("STEP_RESTARTED", 0) + events.get("STEP_UP_FOR_RETRY", 0)
                retried += sum(n - 1 for n in runs.values() if n > 1)
                failed = events.get("STEP_FAILURE", 0)
                with connect(pg_env, fleet.warehouse) as conn:
                    loaded = conn.execute(
                        "SELECT count(DISTINCT account) FROM raw_invoiz.invoices WHERE _sdc_deleted_at IS NULL"
                    ).fetchone()[0]
                    marts = conn.execute("SELECT count(DISTINCT account) FROM analytics.customer_invoices").fetchone()[
                        0
                    ]
                total_failed += failed
                total_retried += retried
                print(
                    f"round {round_no}: deploy {deployed:.0f} s, cycle {status} in {time.monotonic() - t0 - deployed:.0f} s;"
                    f" steps ok {events.get('STEP_SUCCESS', 0)}, failed {failed}, retried {retried}; accounts loaded "
                    f"{loaded}/{len(names)}, in the marts {marts}",
                    flush=True,
                )
                for db in (fleet.warehouse, fleet.system_db, fleet.dagster_db):
                    drop_database(pg_env, db)
    finally:
        if started:
            embedded_db.release()
    print(f"stress-fleet: {total_failed} failed and {total_retried} retried loads in {args.rounds} rounds")
    return 1 if total_failed or total_retried else 0


if __name__ == "__main__":
    sys.exit(main())
