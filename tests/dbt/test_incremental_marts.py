"""Incremental marts give the same rows as a full rebuild, to the cent, and rebuild only what changed.

On the dev fixture (tests/dbt/fixtures/raw_invoiz.sql, accounts ``haupt`` and ``zweit``) the raw tables change step
by step — an account added late with older load times than the other, a re-backfill (full refresh) that no longer
sends one invoice, a payment, deletions, a contact whose e-mail moves to another customer. After each step one
schema is built incrementally (``dbt build``) and another from scratch (``dbt build --full-refresh``); every mart and
intermediate table must hold the same rows (the version columns aside). A step that changes one account must not
rewrite the other account's rows, and a build without changes rebuilds nothing.

Needs the session's PostgreSQL, psycopg and dbt, like test_dbt_build.py; its own schemas, dropped afterwards.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "transform"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "raw_invoiz.sql"
AS_OF = "2026-11-29"

psycopg = pytest.importorskip("psycopg")
from persistent_dbt import DbtSession  # noqa: E402

from invoiz_ops.pipeline import connect, dbt_env, dbt_executable  # noqa: E402

pytestmark = [pytest.mark.skipif(dbt_executable() is None, reason="dbt is not installed"), pytest.mark.slow]

VERSION_COLUMNS = {"account_version", "customer_version"}
COMPARED = (
    "int_invoiz__contacts",
    "int_invoiz__invoices",
    "int_invoiz__invoice_payment_totals",
    "int_invoiz__customer_contacts",
    "int_invoiz__customer_invoice_totals",
    "customers",
    "customer_values",
    "customer_value_types",
    "customer_invoices",
    "unassigned_invoices",
    "receivables_aging",
    "invoice_number_collisions",
)
CHANGED = re.compile(r"(\w+): (\d+) changed account\(s\)")

SYNC_STATUS_TABLE = """
create table {raw}.sync_status (
    account text not null, stream text not null, run_id text, started_at timestamp, completed_at timestamp,
    full_refresh boolean, full_refresh_started_at timestamp, full_refresh_rows bigint,
    last_full_refresh_started_at timestamp, rows_listed bigint, records_emitted bigint, new bigint, changed bigint,
    deleted bigint, tracked bigint, requests bigint, retries bigint,
    _sdc_extracted_at timestamp, _sdc_received_at timestamp, _sdc_batched_at timestamp, _sdc_deleted_at timestamp,
    _sdc_sequence bigint, _sdc_table_version bigint, _sdc_sync_started_at bigint,
    primary key (account, stream)
)
"""


class Warehouse:
    def __init__(self, conn, pg_env: dict[str, str], raw: str, tmp: Path, session: DbtSession) -> None:
        self.conn, self.pg_env, self.raw, self.tmp, self.session = conn, pg_env, raw, tmp, session

    def execute(self, statement: str) -> None:
        self.conn.execute(statement.replace("{raw}", self.raw))

    def rows(self, statement: str, params: tuple | None = None) -> list[tuple]:
        return self.conn.execute(statement.replace("{raw}", self.raw), params).fetchall()

    def dbt(self, schema: str, *args: str, extra_vars: str = "") -> str:
        options = [
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT / "profiles"),
            "--target-path",
            str(self.tmp / schema / "target"),
            "--log-path",
            str(self.tmp / schema / "logs"),
            "--vars",
            f"{{invoiz_source_schema: {self.raw}, as_of_date: '{AS_OF}'{extra_vars}}}",
        ]
        result = self.session.invoke(list(args), options, dbt_env(self.pg_env, schema=schema))
        assert result.success, result.log[-6000:]
        return result.log

    def columns(self, schema: str, relation: str) -> list[str]:
        rows = self.rows(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
            "order by ordinal_position",
            (schema, relation),
        )
        return [r[0] for r in rows if r[0] not in VERSION_COLUMNS]

    def differences(self, incremental: str, full: str) -> dict[str, int]:
        found = {}
        for relation in COMPARED:
            columns = self.columns(full, relation)
            assert columns == self.columns(incremental, relation), relation
            cols = ", ".join(f'"{c}"' for c in columns)
            (count,) = self.rows(
                f"select count(*) from ((select {cols} from {incremental}.{relation} "
                f"except all select {cols} from {full}.{relation}) union all "
                f"(select {cols} from {full}.{relation} except all select {cols} from {incremental}.{relation})) d"
            )[0]
            if count:
                found[relation] = count
        return found


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, pg_env):
    suffix = uuid.uuid4().hex[:8]
    raw = f"dbt_incr_raw_{suffix}"
    incremental, full = f"dbt_incr_{suffix}", f"dbt_full_{suffix}"
    conn = connect(pg_env, autocommit=True)
    tmp = tmp_path_factory.mktemp("dbt-incremental")
    session = DbtSession(tmp / "dbt-console.log")
    try:
        conn.execute(FIXTURE.read_text(encoding="utf-8").replace("raw_invoiz", raw))
        yield Warehouse(conn, pg_env, raw, tmp, session), incremental, full
    finally:
        session.close()
        for schema in (incremental, full, raw):
            conn.execute(f"drop schema if exists {schema} cascade")
        conn.close()


def _build_both(warehouse, incremental: str, full: str, extra_vars: str = "") -> dict[str, int]:
    """Incremental build (with tests) and a full rebuild; the changed accounts each incremental model reported."""
    log = warehouse.dbt(incremental, "build", extra_vars=extra_vars)
    warehouse.dbt(full, "build", "--full-refresh", "--exclude-resource-type", "test", "unit_test")
    assert warehouse.differences(incremental, full) == {}
    return {model: int(n) for model, n in CHANGED.findall(log)}


def _row_versions(warehouse, schema: str, account: str) -> set:
    """Transaction ids that wrote an account's rows: unchanged when the rows were not rewritten."""
    return {
        (relation, row[0])
        for relation in ("int_invoiz__contacts", "int_invoiz__invoices")
        for row in warehouse.rows(f"select distinct xmin::text from {schema}.{relation} where account = '{account}'")
    }


def test_incremental_marts_equal_a_full_rebuild_through_changes(warehouse):
    wh, incremental, full = warehouse
    # step 0: only account haupt
    for table in ("invoices", "contacts", "invoice_payments"):
        wh.execute(f"create table {{raw}}.held_{table} as select * from {{raw}}.{table} where account = 'zweit'")
        wh.execute(f"delete from {{raw}}.{table} where account = 'zweit'")
    _build_both(wh, incremental, full)
    assert wh.rows(f"select count(*) from {incremental}.int_invoiz__invoices where account = 'zweit'") == [(0,)]

    # step 1: zweit onboarded late, its rows loaded with OLDER _sdc_batched_at than haupt's (no global watermark)
    for table in ("invoices", "contacts", "invoice_payments"):
        wh.execute(
            f"insert into {{raw}}.{table} select * from {{raw}}.held_{table}; "
            f"update {{raw}}.{table} set _sdc_batched_at = timestamp '2026-10-01 03:00' where account = 'zweit'"
        )
    haupt_rows = _row_versions(wh, incremental, "haupt")
    changed = _build_both(wh, incremental, full)
    assert changed["int_invoiz__invoices"] == 1, changed
    assert _row_versions(wh, incremental, "haupt") == haupt_rows, "haupt's rows were rewritten for zweit's load"
    assert wh.rows(f"select account_count from {incremental}.customers where email = 'bjoern@schaefer.de'") == [(2,)]

    # step 2: haupt re-backfilled by a full refresh that no longer sends invoice 116 (deleted by the cut-off)
    wh.execute(SYNC_STATUS_TABLE)
    wh.execute(
        "update {raw}.invoices set _sdc_extracted_at = timestamp '2026-11-29 03:00:01', "
        "_sdc_batched_at = timestamp '2026-11-29 03:00:05' "
        "where account = 'haupt' and _sdc_deleted_at is null and id <> 116"
    )
    wh.execute(
        "insert into {raw}.sync_status (account, stream, full_refresh, full_refresh_started_at, full_refresh_rows, "
        "_sdc_extracted_at, _sdc_batched_at) select 'haupt', 'invoices', true, timestamp '2026-11-29 03:00', count(*), "
        "timestamp '2026-11-29 03:00', timestamp '2026-11-29 03:00:06' from {raw}.invoices "
        "where account = 'haupt' and _sdc_deleted_at is null and id <> 116"
    )
    zweit_rows = _row_versions(wh, incremental, "zweit")
    changed = _build_both(wh, incremental, full)
    assert changed["int_invoiz__invoices"] == 1, changed
    assert _row_versions(wh, incremental, "zweit") == zweit_rows, "zweit's rows were rewritten for haupt's refresh"
    assert wh.rows(f"select count(*) from {incremental}.int_invoiz__invoices where invoice_key = 'haupt:116'") == [(0,)]

    # step 3: a payment settles haupt:102
    wh.execute(
        "update {raw}.invoices set status = 'paid', state = 'paid', outstanding_amount = 0, paid_date = '2026-11-29', "
        "_sdc_batched_at = timestamp '2026-11-30 03:00' where account = 'haupt' and id = 102; "
        "insert into {raw}.invoice_payments (account, invoice_id, id, date, amount, type, _sdc_extracted_at, "
        "_sdc_batched_at) values ('haupt', 102, 8, '2026-11-29', 595.00, 'payment', '2026-11-30 03:00', "
        "'2026-11-30 03:00')"
    )
    # the changed keys through a subquery instead of constants (what a cycle in which most customers changed does)
    changed = _build_both(wh, incremental, full, extra_vars=", incremental_max_literal_keys: 0")
    assert changed["int_invoiz__invoices"] == 1, changed
    assert wh.rows(
        f"select open_amount, paid_amount from {incremental}.customer_values where email = 'info@mueller-gmbh.de'"
    ) == [(0, 1785)]

    # step 4: deletions in zweit: the shared customer's contact there and an invoice (tombstones)
    wh.execute(
        "update {raw}.contacts set _sdc_deleted_at = timestamp '2026-11-30 04:00', "
        "_sdc_batched_at = timestamp '2026-11-30 04:00' where account = 'zweit' and id = 1; "
        "update {raw}.invoices set _sdc_deleted_at = timestamp '2026-11-30 04:00', "
        "_sdc_batched_at = timestamp '2026-11-30 04:00' where account = 'zweit' and id = 203"
    )
    _build_both(wh, incremental, full)
    assert wh.rows(f"select account_count from {incremental}.customers where email = 'bjoern@schaefer.de'") == [(1,)]

    # step 5: a contact's e-mail moves it to a new customer
    wh.execute(
        "update {raw}.contacts set email = 'Neu@Schaefer.de', _sdc_batched_at = timestamp '2026-11-30 05:00' "
        "where account = 'haupt' and id = 9"
    )
    _build_both(wh, incremental, full)
    assert wh.rows(f"select invoice_value from {incremental}.customer_values where email = 'neu@schaefer.de'") == [
        (119,)
    ]

    # a build without changes rebuilds nothing
    before = _row_versions(wh, incremental, "haupt") | _row_versions(wh, incremental, "zweit")
    changed = _build_both(wh, incremental, full)
    assert changed == {"int_invoiz__contacts": 0, "int_invoiz__invoices": 0, "int_invoiz__invoice_payment_totals": 0}
    assert _row_versions(wh, incremental, "haupt") | _row_versions(wh, incremental, "zweit") == before
    customers_written = wh.rows(f"select distinct xmin::text from {incremental}.customers")
    wh.dbt(incremental, "run", "--select", "customers")
    assert wh.rows(f"select distinct xmin::text from {incremental}.customers") == customers_written
