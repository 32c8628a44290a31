"""What the fleet's Dagster steps ask PostgreSQL: what a failed load left committed, the schema step's bookkeeping,
whether the marts are out of date, and per account whether the live rows match what invoiz reported (the tap's
`sync_status` rows).

Runs in either virtualenv: the Dagster one has psycopg2 (dagster-postgres), the project's .venv has psycopg 3; both
speak DB-API with ``%s`` parameters. Connections come from the PG* variables (the warehouse) and
MELTANO_DATABASE_URI (Meltano's system database, where state lives).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

try:  # the Dagster virtualenv
    import psycopg2 as _driver
except ImportError:  # the project's .venv
    import psycopg as _driver  # type: ignore[no-redef]

RAW_SCHEMA = "raw_invoiz"
# Streams whose rows invoiz counts and the tap tracks one by one (sync_status.tracked: the rows of invoiz's listing —
# meta.count for a complete one — that the state knows after the run), loaded into raw tables of the same name: what
# a failure message counts (the tables an operator checks) and what the row checks compare.
COUNTED_TABLES = ("invoices", "contacts")
# The schema step's marker: which SCHEMA messages were last applied to this warehouse (one row).
MARKER_TABLE = "invoiz_fleet_schema"
# pg_advisory_lock key of the schema step: at most one process creates or alters the warehouse tables at a time.
SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"invoiz fleet warehouse schema").digest()[:8], "big", signed=True)
# pg_advisory_lock key of pool creation: at most one process creates the fleet's Dagster pools at a time.
POOLS_LOCK_KEY = int.from_bytes(hashlib.sha256(b"invoiz fleet dagster pools").digest()[:8], "big", signed=True)
# Seconds every connection of a step waits for PostgreSQL: a warehouse that does not answer fails the step (libpq's
# "timeout expired"), instead of holding it without end, or for the operating system's TCP time-out (minutes).
CONNECT_TIMEOUT = 10


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
    conn = _driver.connect(**kwargs, connect_timeout=CONNECT_TIMEOUT)
    try:
        conn.autocommit = autocommit
        yield conn
    finally:
        conn.close()


def utcnow() -> dt.datetime:
    """Now in UTC without a zone: how target-postgres stores _sdc_batched_at and Meltano its state's updated_at."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def rows_per_account(cur, accounts: list[str], condition: str, params: tuple = ()) -> dict[tuple[str, str], int]:
    """{(account, table): rows of the account that meet ``condition``} in each counted raw table that exists."""
    counts: dict[tuple[str, str], int] = {}
    for table in COUNTED_TABLES:
        cur.execute("SELECT to_regclass(%s)", (f"{RAW_SCHEMA}.{table}",))
        if cur.fetchone()[0] is None:
            continue
        cur.execute(
            f"SELECT account, count(*) FROM {RAW_SCHEMA}.{table} WHERE account = ANY(%s) AND {condition} "
            "GROUP BY account",
            (list(accounts), *params),
        )
        counts.update({(account, table): int(count) for account, count in cur.fetchall()})
    return counts


def committed_rows(env: dict[str, str], accounts: list[str], seconds: float) -> dict[str, dict[str, int]]:
    """{account: {table: rows the target committed in the last ``seconds``}} (by _sdc_batched_at, which the target
    stores as the database session's local time: compared with the database's own clock)."""
    counts: dict[str, dict[str, int]] = {a: {} for a in accounts}
    with connection(_pg_kwargs(env)) as conn, conn.cursor() as cur:
        cur.execute("SELECT LOCALTIMESTAMP - make_interval(secs => %s)", (float(seconds),))
        since = cur.fetchone()[0]
        for (account, table), count in rows_per_account(cur, accounts, "_sdc_batched_at >= %s", (since,)).items():
            counts[account][table] = count
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
    except Exception as exc:
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


# -- marts and row checks ---------------------------------------------------------------------------------------
def connect():
    return _driver.connect(connect_timeout=CONNECT_TIMEOUT)  # PG* from the environment (libpq)


@contextlib.contextmanager
def advisory_lock(key: int, env: dict[str, str]) -> Iterator:
    """A connection to the warehouse (autocommit) that holds a PostgreSQL advisory lock while the block runs; the lock
    ends with the connection, also when the process dies."""
    with connection(_pg_kwargs(env)) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield conn


def raw_watermark(conn) -> str:
    """A value that changes whenever a row of a raw table the marts read was written: the latest `_sdc_batched_at`
    and the row count of each (a soft delete re-writes the row, so it moves the former)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = %s AND column_name = "
            "'_sdc_batched_at' AND table_name <> 'sync_status' ORDER BY 1",
            (RAW_SCHEMA,),
        )
        tables = [t for (t,) in cur.fetchall()]
        parts = []
        for table in tables:
            cur.execute(f'SELECT max(_sdc_batched_at)::text, count(*) FROM {RAW_SCHEMA}."{table}"')
            latest, count = cur.fetchone()
            parts.append(f"{table}:{latest}:{count}")
    return ";".join(parts)


def dbt_project_hash(project: Path) -> str:
    """The dbt project's files (models, macros, seeds, settings): a new model version must rebuild the marts."""
    digest = hashlib.sha256()
    transform = project / "transform"
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(transform.rglob("*")):
        relative = path.relative_to(transform)
        if path.is_file() and not (set(relative.parts) & skip) and path.name != ".user.yml":
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def count_gaps(conn, accounts: list[str]) -> dict[str, dict]:
    """Per account: for each counted table (stream), invoiz's rows at the account's latest run (sync_status.tracked, else
    rows_listed) and the live rows in the warehouse. {account: {"invoices": (listed, live), ...}}; an account without a sync_status row
    (never loaded) is absent."""
    result: dict[str, dict] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{RAW_SCHEMA}.sync_status",))
        if cur.fetchone()[0] is None:
            return result
        cur.execute(
            f"SELECT DISTINCT ON (account, stream) account, stream, coalesce(tracked, rows_listed) "
            f"FROM {RAW_SCHEMA}.sync_status WHERE account = ANY(%s) AND stream = ANY(%s) "
            "AND coalesce(tracked, rows_listed) IS NOT NULL "
            "ORDER BY account, stream, completed_at DESC NULLS LAST",
            (accounts, list(COUNTED_TABLES)),
        )
        listed = cur.fetchall()
        live = rows_per_account(cur, accounts, "_sdc_deleted_at IS NULL")
    for account, stream, rows_listed in listed:
        result.setdefault(account, {})[stream] = (int(rows_listed), live.get((account, stream), 0))
    return result
