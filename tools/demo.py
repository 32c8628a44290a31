"""`make demo`: the whole job on sandbox data, end to end, then a short summary read from the marts.

1. PostgreSQL: yours if PGHOST is set (environment or .env), else the embedded one (started here, stopped at the end).
2. The invoiz sandbox with a deterministic German demo dataset, on 127.0.0.1.
3. `meltano run --full-refresh sync` (backfill) into a freshly created database `invoiz_demo`,
   then one invoice is paid in the sandbox and `meltano run sync` (incremental) picks it up.
4. Prints top customers by value and the unassigned invoices, read from the dbt marts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from invoiz_sandbox import Sandbox

from tools import embedded_db
from tools.pipeline import (
    MELTANO,
    PROJECT_ROOT,
    Pipeline,
    database_server,
    load_dotenv_database_settings,
    recreate_database,
)

DEMO_DATABASE = "invoiz_demo"
DEMO_SEED = 42
DEMO_INVOICES = 500
DEMO_TODAY = "2026-11-01"
STATE_DIR = PROJECT_ROOT / ".meltano" / "demo-state"


def _summary(pipe: Pipeline) -> str:
    lines = ["", "Top customers by Kundenwert gesamt (total value):"]
    rows = pipe.query(
        """select email, total_value, invoice_value, open_amount, paid_amount, invoice_count
           from analytics.customer_values order by total_value desc, email limit 5"""
    )
    lines.append(f"  {'customer e-mail':<40} {'gesamt':>12} {'Rechnungen':>12} {'offen':>12} {'bezahlt':>12} {'#':>4}")
    for email, total, invoices, open_amount, paid, count in rows:
        lines.append(f"  {email:<40} {total:>12,.2f} {invoices:>12,.2f} {open_amount:>12,.2f} {paid:>12,.2f} {count:>4}")
    unassigned = pipe.query(
        "select unassigned_reason, count(*) from analytics.unassigned_invoices group by 1 order by 1"
    )
    lines.append("Unassigned invoices: " + (", ".join(f"{n} {reason}" for reason, n in unassigned) or "none"))
    return "\n".join(lines)


def run_demo() -> int:
    started_at = time.monotonic()
    load_dotenv_database_settings()
    pg_env, started_db = database_server()
    where = "embedded PostgreSQL" if started_db or not os.environ.get("PGHOST") else "your PostgreSQL"
    print(f"PostgreSQL: {where} at {pg_env['PGHOST']}:{pg_env['PGPORT']}, database {DEMO_DATABASE}", flush=True)
    try:
        with Sandbox(seed=DEMO_SEED, invoices=DEMO_INVOICES, today=DEMO_TODAY) as sandbox:
            print(f"invoiz sandbox: {sandbox.api_url} ({DEMO_INVOICES} invoices, seed {DEMO_SEED})", flush=True)
            recreate_database(pg_env, DEMO_DATABASE)
            shutil.rmtree(STATE_DIR, ignore_errors=True)
            pipe = Pipeline(
                pg_env=pg_env, database=DEMO_DATABASE, api_url=sandbox.api_url, app_url=sandbox.app_url,
                credentials=dict(sandbox.credentials), account="demo", state_dir=STATE_DIR,
            )
            print("1/2 backfill: meltano run --full-refresh sync", flush=True)
            pipe.run("sync", full_refresh=True)
            loaded = pipe.scalar("select count(*) from raw_invoiz.invoices")
            print(f"    loaded {loaded} invoices", flush=True)

            old_open = pipe.scalar(
                "select id from raw_invoiz.invoices where status = 'open' order by date, id limit 1"
            )
            if old_open is not None:
                sandbox.pay(old_open)
                print(f"    (in invoiz: the oldest open invoice, id {old_open}, is now paid)", flush=True)
            print("2/2 incremental: meltano run sync", flush=True)
            pipe.run("sync")
            status = pipe.scalar("select status from raw_invoiz.invoices where id = %s", (old_open,))
            print(f"    invoice {old_open} is now '{status}' in PostgreSQL", flush=True)
            print(_summary(pipe))
    finally:
        if started_db:
            embedded_db.stop()
    print(f"\nDone in {time.monotonic() - started_at:.0f} s. Browse the dbt docs: make docs  (http://127.0.0.1:8080)")
    return 0


def serve_docs() -> int:
    """Generate and serve the dbt docs site for the demo database (Ctrl-C to stop)."""
    load_dotenv_database_settings()
    pg_env, started_db = database_server()
    pipe = Pipeline(pg_env=pg_env, database=DEMO_DATABASE, api_url="", app_url="",
                    credentials={"api_key": "", "api_key_secret": "", "installation_id": ""}, state_dir=STATE_DIR)
    try:
        pipe.meltano("invoke", "dbt-postgres:docs-generate")
        print("dbt docs on http://127.0.0.1:8080 (Ctrl-C to stop)", flush=True)
        subprocess.run([MELTANO, "invoke", "dbt-postgres:docs-serve"], cwd=PROJECT_ROOT, env=pipe.env(), check=False)
    except KeyboardInterrupt:
        pass
    finally:
        if started_db:
            embedded_db.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", action="store_true", help="generate and serve the dbt docs for the demo database")
    args = parser.parse_args(argv)
    return serve_docs() if args.docs else run_demo()


if __name__ == "__main__":
    sys.exit(main())
