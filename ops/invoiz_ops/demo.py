"""`make demo`: the whole job on sandbox data, end to end, then a short summary read from the marts.

1. PostgreSQL: yours if PGHOST is set (environment or .env), else the embedded one (started here, stopped at the end).
2. The invoiz sandbox with a deterministic German demo dataset, on 127.0.0.1.
3. `meltano run --full-refresh backfill` into a freshly created database `invoiz_demo`,
   then one invoice is paid in the sandbox and `meltano run sync` (incremental) picks it up.
4. Prints top customers by value and the unassigned invoices, read from the dbt marts.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import time

from invoiz_ops import embedded_db
from invoiz_ops.card import money
from invoiz_ops.pipeline import (
    PROJECT_ROOT,
    Pipeline,
    database_server,
    load_dotenv_database_settings,
    recreate_database,
)
from invoiz_sandbox import Sandbox

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
    lines.append(
        f"  {'customer e-mail':<40} {'gesamt':>12} {'Rechnungen':>12} {'offen':>12} {'bezahlt':>12} {'#':>4}   (EUR)"
    )
    for email, total, invoices, open_amount, paid, count in rows:
        amounts = " ".join(f"{money(v, '').strip():>12}" for v in (total, invoices, open_amount, paid))
        lines.append(f"  {email:<40} {amounts} {count:>4}")
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
                pg_env=pg_env,
                database=DEMO_DATABASE,
                api_url=sandbox.api_url,
                app_url=sandbox.app_url,
                credentials=dict(sandbox.credentials),
                account="demo",
                state_dir=STATE_DIR,
            )
            print("1/2 backfill: meltano run --full-refresh backfill", flush=True)
            pipe.run("backfill", full_refresh=True)
            loaded = pipe.scalar("select count(*) from raw_invoiz.invoices")
            print(f"    loaded {loaded} invoices", flush=True)

            old_open = pipe.scalar("select id from raw_invoiz.invoices where status = 'open' order by date, id limit 1")
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
            embedded_db.release()
    print(
        f"\nDone in {time.monotonic() - started_at:.0f} s. Next: make card EMAIL=<an e-mail above> (its invoice links "
        "point at the demo's sandbox, which has stopped), make docs (the dbt docs site), and for your own invoiz "
        'account: README, "Run it yourself" (make sync).'
    )
    return 0


DOCS_PORT = 8080


class _QuietDocsHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # one line per request is noise here
        pass


class _DocsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A browser that closes a connection early (reload, a closed tab) is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def serve_docs(port: int = DOCS_PORT) -> int:
    """Generate the dbt docs for the demo database and serve them on 127.0.0.1
    until Ctrl-C. The site is dbt's static files (index.html, manifest.json, catalog.json) served by Python's own
    HTTP server: no log line per request, a clear message when the port is taken, and no traceback on Ctrl-C."""
    load_dotenv_database_settings()
    try:
        server = _DocsServer(("127.0.0.1", port), _QuietDocsHandler)
    except OSError as exc:
        print(
            f"Cannot serve the docs on 127.0.0.1:{port} ({exc.strerror}): another server (an earlier `make docs`?) "
            f"has the port. Stop it, or choose another: make docs DOCS_PORT={port + 1}",
            file=sys.stderr,
        )
        return 1
    pg_env, started_db = database_server()
    pipe = Pipeline(
        pg_env=pg_env,
        database=DEMO_DATABASE,
        api_url="",
        app_url="",
        credentials={"api_key": "", "api_key_secret": "", "installation_id": ""},
        state_dir=STATE_DIR,
    )
    target = PROJECT_ROOT / "transform" / "target"
    try:
        pipe.meltano("invoke", "dbt-postgres:docs-generate")
        if started_db:  # the site is static files: the database is not needed while serving
            embedded_db.release()
            started_db = False
        server.RequestHandlerClass = functools.partial(_QuietDocsHandler, directory=str(target))
        print(f"dbt docs on http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    finally:
        server.server_close()
        if started_db:
            embedded_db.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", action="store_true", help="generate and serve the dbt docs for the demo database")
    parser.add_argument("--port", type=int, default=DOCS_PORT, help=f"port of the docs site (default {DOCS_PORT})")
    args = parser.parse_args(argv)
    return serve_docs(args.port) if args.docs else run_demo()


if __name__ == "__main__":
    sys.exit(main())
