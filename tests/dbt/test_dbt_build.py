"""dbt build of transform/ against the dev fixture (tests/dbt/fixtures/raw_invoiz.sql), with expected numbers.

Uses the session's PostgreSQL (fixture pg_env: yours via TEST_PGHOST, else embedded), psycopg, and dbt
(``DBT_EXECUTABLE``, ``dbt`` on PATH, or Meltano's dbt-postgres utility venv); skipped otherwise.
It loads the fixture into its own schemas (``dbt_test_raw_<id>``, ``dbt_test_<id>``) and drops them afterwards,
so it never touches raw_invoiz or analytics.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "transform"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "raw_invoiz.sql"
AS_OF = "2026-11-29"

psycopg = pytest.importorskip("psycopg")
from persistent_dbt import DbtSession  # noqa: E402

from invoiz_ops.pipeline import connect, dbt_env, dbt_executable  # noqa: E402

pytestmark = [
    pytest.mark.skipif(dbt_executable() is None, reason="dbt is not installed"),
    pytest.mark.slow,  # one dbt build and docs generate for the module: 10-20 s
]


@pytest.fixture(scope="module")
def built(tmp_path_factory, pg_env):
    suffix = uuid.uuid4().hex[:8]
    raw_schema, schema = f"dbt_test_raw_{suffix}", f"dbt_test_{suffix}"
    conn = connect(pg_env, autocommit=True)
    try:
        conn.execute(FIXTURE.read_text(encoding="utf-8").replace("raw_invoiz", raw_schema))
        tmp = tmp_path_factory.mktemp("dbt")
        options = [
            "--project-dir",
            str(PROJECT),
            "--profiles-dir",
            str(PROJECT / "profiles"),
            "--target-path",
            str(tmp / "target"),
            "--log-path",
            str(tmp / "logs"),
            "--vars",
            f"{{invoiz_source_schema: {raw_schema}, as_of_date: '{AS_OF}'}}",
        ]
        dbt = DbtSession(tmp / "dbt-console.log")
        try:
            result = dbt.invoke(["build"], options, dbt_env(pg_env, schema=schema))
            docs = dbt.invoke(["docs", "generate"], options, dbt_env(pg_env, schema=schema))
        finally:
            dbt.close()
        yield conn, schema, result, docs, tmp / "target"
    finally:
        conn.execute(f"drop schema if exists {schema} cascade")
        conn.execute(f"drop schema if exists {raw_schema} cascade")
        conn.close()


def _rows(built, sql):
    conn, schema = built[:2]
    return conn.execute(sql.replace("{s}", schema)).fetchall()


def test_build_passes_with_collision_warning(built):
    result = built[2]
    assert result.success, result.log[-5000:]
    assert "WARN 2 warn_invoice_number_collisions" in result.log


def test_customers_merge_shared_and_unicode_emails(built):
    emails = [r[0] for r in _rows(built, "select email from {s}.customers order by email")]
    assert emails == [
        "bjoern@schaefer.de",
        "info@mueller-gmbh.de",
        "juergen.weiss@example.de",
        "kontakt@strasse-soehne.de",
        "ärger@blümchen.de",
    ]
    # R8 fields from the contact that received the most recent invoice (zweit:1 invoiced 2026-10-30)
    assert _rows(
        built,
        "select source_account, source_contact_id, company_name, city, account_count "
        "from {s}.customers where email = 'bjoern@schaefer.de'",
    ) == [("zweit", 1, "Schäfer Consulting", "Potsdam", 2)]


def test_customer_values_to_the_cent(built):
    rows = _rows(
        built,
        "select email, invoice_value, total_value, open_amount, paid_amount, invoice_count "
        "from {s}.customer_values order by email",
    )
    assert rows == [
        ("bjoern@schaefer.de", Decimal("2261.00"), Decimal("2261.00"), Decimal("2142.00"), Decimal("0.00"), 3),
        ("info@mueller-gmbh.de", Decimal("1785.00"), Decimal("1785.00"), Decimal("595.00"), Decimal("1190.00"), 2),
        ("juergen.weiss@example.de", Decimal("2499.00"), Decimal("2499.00"), Decimal("1119.00"), Decimal("1380.00"), 2),
        ("kontakt@strasse-soehne.de", Decimal("491.86"), Decimal("491.86"), Decimal("0"), Decimal("396.66"), 2),
        ("ärger@blümchen.de", Decimal("400.00"), Decimal("400.00"), Decimal("300.00"), Decimal("100.00"), 2),
    ]


def test_unassigned_reasons(built):
    rows = dict(_rows(built, "select invoice_key, unassigned_reason from {s}.unassigned_invoices"))
    assert rows == {
        "haupt:106": "contact_without_email",
        "haupt:107": "contact_deleted",
        "haupt:108": "contact_not_found",
        "haupt:109": "no_recipient_contact",
        "haupt:113": "contact_email_invalid",
        "haupt:115": "contact_without_email",
    }


def test_deleted_rows_visible_in_staging_only(built):
    assert _rows(built, "select invoice_key from {s}.stg_invoiz__invoices where is_deleted order by 1") == [
        ("haupt:111",),
        ("haupt:117",),
    ]
    assert _rows(
        built, "select count(*) from {s}.customer_invoices where invoice_key in ('haupt:111', 'haupt:117')"
    ) == [(0,)]


def test_ticket_view_and_aging(built):
    assert _rows(
        built,
        "select status_label, state_label, days_since_invoice_date, invoice_url from {s}.customer_invoices "
        "where invoice_key = 'haupt:103'",
    ) == [("offen", "teilbezahlt", 89, "https://app.invoiz.de/invoice/103")]
    assert _rows(
        built, "select days_overdue, aging_bucket from {s}.receivables_aging where invoice_key = 'haupt:110'"
    ) == [(197, "90+")]


def test_collisions(built):
    assert _rows(built, "select invoice_number, collision_type from {s}.invoice_number_collisions order by 1") == [
        ("RE-1001", "across_accounts"),
        ("RE-1002", "within_account"),
    ]


def test_docs_generate(built):
    docs, target = built[3], built[4]
    assert docs.success, docs.log[-5000:]
    catalog = json.loads((target / "catalog.json").read_text(encoding="utf-8"))
    assert "model.tap_invoiz.customer_invoices" in catalog["nodes"]
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    # lineage from the raw tables to the ticket view
    parents = manifest["parent_map"]
    assert "model.tap_invoiz.int_invoiz__invoices" in parents["model.tap_invoiz.customer_invoices"]
    assert "source.tap_invoiz.invoiz.invoices" in parents["model.tap_invoiz.stg_invoiz__invoices"]
    assert "exposure.tap_invoiz.support_ticket_customer_panel" in manifest["exposures"]


def test_every_node_and_column_of_the_manifest_is_described(built):
    """The manifest of the build (every model, seed, source, column and exposure) carries a description, as
    test_docs_complete.py checks on the YAML: what the docs site shows."""
    manifest = json.loads((built[4] / "manifest.json").read_text(encoding="utf-8"))
    problems = []
    for uid, node in {**manifest["nodes"], **manifest["sources"]}.items():
        if node["resource_type"] not in ("model", "seed", "source"):
            continue
        if node.get("package_name") != "tap_invoiz":
            continue
        if not (node.get("description") or "").strip():
            problems.append(f"{uid}: no description")
        if node["resource_type"] != "seed" and not node.get("columns"):
            problems.append(f"{uid}: no columns")
        for cname, column in (node.get("columns") or {}).items():
            if not (column.get("description") or "").strip():
                problems.append(f"{uid}: column {cname} has no description")
    for uid, exposure in manifest.get("exposures", {}).items():
        if not (exposure.get("description") or "").strip():
            problems.append(f"{uid}: no description")
    assert manifest["docs"].get("doc.tap_invoiz.__overview__"), "no __overview__ doc block"
    assert not problems, "\n".join(problems)
