"""What the fleet's Dagster steps ask PostgreSQL: what a failed load left committed, and the schema step's bookkeeping.

Runs in either virtualenv: the Dagster one has psycopg2 (dagster-postgres), the project's .venv has psycopg 3; both
speak DB-API with ``%s`` parameters. Connections come from the PG* variables (the warehouse) and
MELTANO_DATABASE_URI (Meltano's system database, where state lives).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

try:  # the Dagster virtualenv
    import psycopg2 as _driver
except ImportError:  # the project's .venv
    import psycopg as _driver  # type: ignore[no-redef]

RAW_SCHEMA = "raw_invoiz"
COUNTED_TABLES = ("invoices", "contacts")  # what a failure message counts (the tables an operator checks)
# The schema step's marker: which SCHEMA messages were last applied to this warehouse (one row).
MARKER_TABLE = "invoiz_fleet_schema"
# pg_advisory_lock key of the schema step: at most one process creates or alters the warehouse tables at a time.
SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"invoiz fleet warehouse schema").digest()[:8], "big", signed=True)


def _pg_kwargs(env: dict[str, str], database: str | None = None) -> dict:
    return {
        "host": env["PGHOST"],
        "port": int(env.get("PGPORT") or 5432),
        "user": env.get("PGUSER") or "postgres",
        "password": env.get("PGPASSWORD") or "",
        "dbname": database or env.get("PGDATABASE") or "postgres",
    }


def _system_db_kwargs(env: dict[str, str]) -> dict | None:
    uri = env.get("MELTANO_DATABASE_URI") or ""
    if not uri.startswith("postgresql"):
        return None
    parts = urlsplit(uri)
    return {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/"),
    }


@contextlib.contextmanager
def connection(kwargs: dict, autocommit: bool = True) -> Iterator:
    conn = _driver.connect(**kwargs)
    try:
        conn.autocommit = autocommit
        yield conn
    finally:
        conn.close()


def utcnow() -> dt.datetime:
    """Now in UTC without a zone: how target-postgres stores _sdc_batched_at and Meltano its state's updated_at."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def committed_rows(env: dict[str, str], accounts: list[str], seconds: float) -> dict[str, dict[str, int]]:
    """{account: {table: rows the target committed in the last ``seconds``}} (by _sdc_batched_at, which the target
    stores as the database session's local time: compared with the database's own clock)."""
    counts: dict[str, dict[str, int]] = {a: {} for a in accounts}
    with connection(_pg_kwargs(env)) as conn, conn.cursor() as cur:
        cur.execute("SELECT LOCALTIMESTAMP - make_interval(secs => %s)", (float(seconds),))
        since = cur.fetchone()[0]
        for table in COUNTED_TABLES:
            cur.execute("SELECT to_regclass(%s)", (f"{RAW_SCHEMA}.{table}",))
            if cur.fetchone()[0] is None:
                continue
            cur.execute(
                f"SELECT account, count(*) FROM {RAW_SCHEMA}.{table} "  # noqa: S608 - fixed names
                "WHERE account = ANY(%s) AND _sdc_batched_at >= %s GROUP BY account",
                (list(accounts), since),
            )
            for account, count in cur.fetchall():
                counts[account][table] = int(count)
    return counts


def state_saved_at(env: dict[str, str], state_id: str, since: dt.datetime) -> dt.datetime | None:
    """When Meltano last saved state ``state_id`` (it writes UTC), if that was after ``since`` (else None)."""
    kwargs = _system_db_kwargs(env)
    if kwargs is None:
        return None
    with connection(kwargs) as conn, conn.cursor() as cur:
        cur.execute("SELECT updated_at FROM state WHERE state_id = %s", (state_id,))
        row = cur.fetchone()
    return row[0] if row and row[0] and row[0] >= since else None


def describe_commit(env: dict[str, str], accounts: list[str], state_id: str, seconds: float) -> tuple[str, dict]:
    """One sentence on what a failed run left behind, and the numbers as metadata. Never says "unchanged" when rows
    were committed: the target commits batches before the run fails, and Meltano saves state as the target reports it.
    ``seconds``: how long the failed run took (what happened since it started is its doing)."""
    seconds += 2  # margin: the run's clock started just after the subprocess did
    try:
        rows = committed_rows(env, accounts, seconds)
        saved = state_saved_at(env, state_id, utcnow() - dt.timedelta(seconds=seconds))
    except Exception as exc:  # noqa: BLE001 - the failure message must not fail itself
        return f"what was committed is unknown ({type(exc).__name__})", {}
    parts = []
    for account, tables in rows.items():
        if any(tables.values()):
            counted = ", ".join(f"{n:,} {table}" for table, n in tables.items())
            parts.append(f"{counted} of account {account}" if len(accounts) > 1 else counted)
    committed = (
        f"rows committed before the failure: {'; '.join(parts)} (they stay; loads are upserts)"
        if parts
        else "no rows committed by this run"
    )
    if _system_db_kwargs(env) is None:
        state = "whether state was saved is not known here (Meltano's system database is not PostgreSQL)"
    elif saved:
        state = f"state saved up to {saved:%H:%M:%S} UTC (the next cycle continues from there)"
    else:
        state = "no state saved by this run (the next cycle starts from the previous state and sends those rows again)"
    metadata = {
        "committed_rows": {a: t for a, t in rows.items() if t},
        "state_saved_at": f"{saved:%Y-%m-%d %H:%M:%S} UTC" if saved else "",
    }
    return f"{committed}; {state}", metadata
