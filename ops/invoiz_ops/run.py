"""`make sync` / `make backfill`: run the pipeline yourself, on your invoiz account, after the demo.

The invoiz settings come from .env or the environment, read by Meltano as in any `meltano run` (README, "Configure a
real invoiz account"). The database:
- yours when PGHOST is set (environment or .env): checked first; when it cannot be reached, one line says so;
- else the embedded PostgreSQL of this checkout (started for the run and stopped after it, on the same port every
  time), database `invoiz` (created on first use). The demo's sandbox data stays apart, in `invoiz_demo`.

Then `meltano run sync` or `meltano run --full-refresh backfill`, with Meltano's own state (`.meltano/meltano.db`),
the same as typing the command yourself with that database in PG*.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import psycopg

from invoiz_ops import embedded_db
from invoiz_ops.pipeline import MELTANO, PROJECT_ROOT, load_dotenv_database_settings, meltano_command

EXIT_NO_DATABASE = 3
PG_KEYS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")


def database_problem(env: dict[str, str]) -> str | None:
    """None when the database accepts a connection, else one line naming the settings to check."""
    try:
        psycopg.connect(
            host=env["PGHOST"],
            port=int(env.get("PGPORT") or 5432),
            user=env.get("PGUSER") or None,
            password=env.get("PGPASSWORD") or None,
            dbname=env.get("PGDATABASE") or None,
            connect_timeout=5,
        ).close()
    except (psycopg.Error, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        where = (
            f"{env.get('PGUSER') or '(PGUSER unset)'}@{env['PGHOST']}:{env.get('PGPORT') or 5432}/"
            f"{env.get('PGDATABASE') or '(PGDATABASE unset)'}"
        )
        return (
            f"Cannot connect to PostgreSQL {where} ({reason}): check PGHOST, PGPORT, PGUSER, PGPASSWORD and "
            "PGDATABASE in .env or your environment, or unset PGHOST to use the embedded PostgreSQL."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=["sync", "backfill"])
    parser.add_argument(
        "--ignore-dotenv",
        action="store_true",
        help="configure everything through the environment, not the project's .env (the tests do)",
    )
    args = parser.parse_args(argv)

    if not args.ignore_dotenv:
        load_dotenv_database_settings()
    started = False
    try:
        if os.environ.get("PGHOST"):
            pg_env = {key: os.environ.get(key, "") for key in PG_KEYS}
            where = "your PostgreSQL"
        else:
            started = not embedded_db.is_running()
            pg_env = embedded_db.start()
            embedded_db.create_database(pg_env, embedded_db.OWN_RUNS_DATABASE)
            pg_env["PGDATABASE"] = embedded_db.OWN_RUNS_DATABASE
            where = "the embedded PostgreSQL (PGHOST is not set)"
        if problem := database_problem(pg_env):
            print(problem, file=sys.stderr)
            return EXIT_NO_DATABASE
        command = ["run", "--full-refresh", "backfill"] if args.job == "backfill" else ["run", "sync"]
        print(f"meltano {' '.join(command)} into {where}: {embedded_db.url_for(pg_env)}", flush=True)
        argv_ = meltano_command(*command) if args.ignore_dotenv else [MELTANO, *command]
        result = subprocess.run(argv_, cwd=PROJECT_ROOT, env={**os.environ, **pg_env}, check=False)
        return result.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        if started:
            embedded_db.release()


if __name__ == "__main__":
    sys.exit(main())
