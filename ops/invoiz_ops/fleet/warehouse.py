"""What the fleet's Dagster steps read from the warehouse: whether the marts are out of date, and per account whether
the live rows match what invoiz reported (the tap's `sync_status` rows).

Runs in the Dagster code location's virtualenv (psycopg2 comes with dagster-postgres); the connection is the PG*
variables of the step, the warehouse's database PGDATABASE.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg2

RAW_SCHEMA = "raw_invoiz"
# Streams whose rows invoiz counts and the tap tracks one by one (sync_status.tracked: the rows of invoiz's listing —
# meta.count for a complete one — that the state knows after the run), loaded into raw tables of the same name.
COUNTED_STREAMS = ("invoices", "contacts")


def connect():
    return psycopg2.connect(connect_timeout=10)  # PG* from the environment (libpq)


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
    """Per account: for each counted stream, invoiz's rows at the account's latest run (sync_status.tracked, else
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
            (accounts, list(COUNTED_STREAMS)),
        )
        listed = cur.fetchall()
        live: dict[tuple[str, str], int] = {}
        for stream in COUNTED_STREAMS:
            cur.execute("SELECT to_regclass(%s)", (f"{RAW_SCHEMA}.{stream}",))
            if cur.fetchone()[0] is None:
                continue
            cur.execute(
                f"SELECT account, count(*) FROM {RAW_SCHEMA}.{stream} WHERE _sdc_deleted_at IS NULL "
                "AND account = ANY(%s) GROUP BY account",
                (accounts,),
            )
            live.update({(account, stream): n for account, n in cur.fetchall()})
    for account, stream, rows_listed in listed:
        result.setdefault(account, {})[stream] = (int(rows_listed), live.get((account, stream), 0))
    return result
