"""Bad data from the API, through `meltano run sync` (tap → target-postgres → dbt build) into PostgreSQL (docs/RELIABILITY.md).

Rows are served with NUL characters, 100 kB strings, SQL-looking names, unicode e-mails, unknown invoice states,
null amounts and amounts as strings (sandbox `set_raw_fields`). Each value is loaded verbatim, or converted
losslessly with the raw value kept, or its row is rejected with a warning naming stream, id and field — never
silently altered; the dbt build (its data tests included) passes and customer values reconcile with the source.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import pytest
from e2e_helpers import (  # noqa: F401 (own_meltano_dirs: autouse fixture)
    EL,
    emitted,
    meltano_state,
    output,
    own_meltano_dirs,
    state_fingerprints,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIG = "Großauftrag " + "äöü-ß€ 0123456789 " * 5600  # ~ 100 kB of UTF-8
SQLISH = "Robert'); DROP TABLE raw_invoiz.contacts; --"
SQLISH_TITLE = "'; DELETE FROM analytics.customer_values WHERE ''='"
UNICODE_EMAILS = ["jürgen.weiß@bäckerei-müller.de", "用户@例子.广告"]


def _amount(value) -> Decimal:
    """What an amount counts in the marts: a JSON number, or a string that is exactly a decimal; else 0 (null)."""
    if isinstance(value, bool) or value is None:
        return Decimal(0)
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return Decimal(value.strip())
    return Decimal(0)


def _status(state, outstanding) -> str:
    """docs/invoiz-api.md §4.5, as docs/DESIGN.md states it (independent of the tap's code)."""
    if state in ("draft", "cancelled", "uncollectible", "paid"):
        return state
    if state in ("locked", "sent", "dunned", "partiallyPaid"):
        return "open"
    try:
        amount = Decimal(str(outstanding)) if outstanding is not None and not isinstance(outstanding, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None:
        return "unknown"
    return "open" if amount > 0 else "paid"


@pytest.fixture
def bad_rows(invoiz_sandbox):
    """Inject the bad values; return the ids that carry them."""
    sb = invoiz_sandbox
    contacts = sb.contact_ids()
    ids = sb.invoice_ids()
    by_state = {}
    for invoice_id in ids:
        by_state.setdefault(sb.invoice(invoice_id)["state"], []).append(invoice_id)
    paid, open_ = by_state["paid"], by_state["locked"] + by_state.get("dunned", [])
    rows = {
        "contact_nul": contacts[6],
        "contact_big": contacts[7],
        "contact_sql": contacts[8],
        "contact_unicode": contacts[9],
        "contact_unicode2": contacts[10],
        "invoice_nul": paid[0],
        "invoice_big": paid[1],
        "invoice_sql": paid[2],
        "invoice_unknown_state_open": open_[0],
        "invoice_unknown_state_no_amount": paid[3],
        "invoice_null_amounts": paid[4],
        "invoice_amount_decimal_string": paid[5],
        "invoice_amount_german_string": paid[6],
    }
    sb.set_raw_fields("contact", rows["contact_nul"], {"name": "Evil\x00Corp GmbH"})
    sb.set_raw_fields("contact", rows["contact_big"], {"name": BIG, "notes": BIG})
    sb.set_raw_fields(
        "contact", rows["contact_sql"], {"name": SQLISH, "companyName": SQLISH, "email": "o'reilly+x@example.org"}
    )
    sb.set_raw_fields("contact", rows["contact_unicode"], {"email": UNICODE_EMAILS[0]})
    sb.set_raw_fields("contact", rows["contact_unicode2"], {"email": UNICODE_EMAILS[1]})
    nul_snapshot = dict(sb.invoice_row(rows["invoice_nul"])["customerData"], name="Nul\x00Name")
    sb.set_raw_fields("invoice", rows["invoice_nul"], {"customerData": nul_snapshot})
    sb.set_raw_fields("invoice", rows["invoice_big"], {"title": BIG})
    sb.set_raw_fields("invoice", rows["invoice_sql"], {"title": SQLISH_TITLE})
    sb.set_raw_fields("invoice", rows["invoice_unknown_state_open"], {"state": "archived"})
    sb.set_raw_fields(
        "invoice", rows["invoice_unknown_state_no_amount"], {"state": "writtenOff", "outstandingAmount": None}
    )
    sb.set_raw_fields(
        "invoice", rows["invoice_null_amounts"], {"totalGross": None, "totalNet": None, "outstandingAmount": None}
    )
    sb.set_raw_fields("invoice", rows["invoice_amount_decimal_string"], {"totalGross": "119.00"})
    sb.set_raw_fields("invoice", rows["invoice_amount_german_string"], {"totalGross": "1.234,56"})
    return rows


def test_bad_values_from_the_api_are_loaded_verbatim_or_rejected_loudly_and_marts_reconcile(
    pipeline,
    invoiz_sandbox,
    bad_rows,
):
    sb, rows = invoiz_sandbox, bad_rows
    result = pipeline.run("sync", check=False)
    log = output(result)
    assert result.returncode == 0, log[-4000:]  # includes `dbt build`: every model and data test passed

    # NUL: the row is rejected by name (stream, id, field), never stripped; everything else loaded
    assert f"contacts: row id {rows['contact_nul']} not loaded: field name contains a NUL character" in log
    assert f"invoices: row id {rows['invoice_nul']} not loaded: field customerData.name contains a NUL character" in log
    rejected_invoices, rejected_contacts = {rows["invoice_nul"]}, {rows["contact_nul"]}
    loaded_invoices = {r[0] for r in pipeline.query("select id from raw_invoiz.invoices")}
    loaded_contacts = {r[0] for r in pipeline.query("select id from raw_invoiz.contacts")}
    assert loaded_invoices == set(sb.invoice_ids()) - rejected_invoices
    assert loaded_contacts == set(sb.contact_ids()) - rejected_contacts
    state = meltano_state(pipeline)
    assert rejected_invoices.isdisjoint(state_fingerprints(state, "invoices")), "a rejected row was marked done"
    assert rejected_contacts.isdisjoint(state_fingerprints(state, "contacts"))

    # text: verbatim, however long or SQL-like
    def contact(column, contact_id):
        return pipeline.scalar(f"select {column} from raw_invoiz.contacts where id = %s", (contact_id,))

    def invoice(column, invoice_id):
        return pipeline.scalar(f"select {column} from raw_invoiz.invoices where id = %s", (invoice_id,))

    assert contact("name", rows["contact_big"]) == BIG and contact("notes", rows["contact_big"]) == BIG
    assert invoice("title", rows["invoice_big"]) == BIG
    assert contact("name", rows["contact_sql"]) == SQLISH
    assert contact("company_name", rows["contact_sql"]) == SQLISH
    assert contact("email", rows["contact_sql"]) == "o'reilly+x@example.org"
    assert invoice("title", rows["invoice_sql"]) == SQLISH_TITLE
    assert contact("email", rows["contact_unicode"]) == UNICODE_EMAILS[0]
    assert contact("email", rows["contact_unicode2"]) == UNICODE_EMAILS[1]

    # unknown states: kept verbatim; status from the outstanding amount, or 'unknown' without one
    assert (
        invoice("state", rows["invoice_unknown_state_open"]),
        invoice("status", rows["invoice_unknown_state_open"]),
    ) == ("archived", "open")
    assert (
        invoice("state", rows["invoice_unknown_state_no_amount"]),
        invoice("status", rows["invoice_unknown_state_no_amount"]),
    ) == ("writtenOff", "unknown")

    # amounts: null stays null; an exact decimal string is converted and the raw value kept; anything else is
    # null with the raw value kept in extra_fields, and the field is named in a warning (its type, not its value)
    null_row = rows["invoice_null_amounts"]
    assert (invoice("total_gross", null_row), invoice("total_net", null_row)) == (None, None)
    assert invoice("extra_fields", null_row) is None
    converted = rows["invoice_amount_decimal_string"]
    assert invoice("total_gross", converted) == Decimal("119.00")
    assert invoice("extra_fields ->> 'totalGross'", converted) == "119.00"
    german = rows["invoice_amount_german_string"]
    assert invoice("total_gross", german) is None
    assert invoice("extra_fields ->> 'totalGross'", german) == "1.234,56"
    assert "invoices: field totalGross is a JSON str, not a number" in log
    assert "1.234,56" not in log

    # the SQL-looking text did nothing: both raw tables and the marts are all there
    assert pipeline.scalar("select count(*) from raw_invoiz.contacts") == len(loaded_contacts)
    assert pipeline.scalar("select count(*) from analytics.customer_values") > 0

    # marts reconcile with the source (minus the rejected rows), to the cent
    eligible = [sb.invoice_row(i) for i in sorted(loaded_invoices)]
    eligible = [r for r in eligible if _status(r["state"], r.get("outstandingAmount")) not in ("draft", "cancelled")]
    source_total = sum((_amount(r["totalGross"]) for r in eligible), Decimal(0))
    assigned = pipeline.scalar("select coalesce(sum(invoice_value), 0) from analytics.customer_values")
    unassigned = pipeline.scalar(
        "select coalesce(sum(amount), 0) from analytics.unassigned_invoices where counts_toward_value"
    )
    assert assigned + unassigned == source_total
    # the invoices of the rejected contact are still counted: unassigned, because their contact is missing
    orphaned = [i for i in loaded_invoices if sb.invoice_row(i).get("customerId") == rows["contact_nul"]]
    if orphaned:  # unassigned_invoices lists drafts and cancelled invoices too
        assert pipeline.scalar(
            "select count(*) from analytics.unassigned_invoices where contact_id = %s and unassigned_reason = "
            "'contact_not_found'",
            (rows["contact_nul"],),
        ) == len(orphaned)
    # customers with unicode e-mails get their own value: the sum of their invoices
    for key in ("contact_unicode", "contact_unicode2"):
        theirs = sum((_amount(r["totalGross"]) for r in eligible if r.get("customerId") == rows[key]), Decimal(0))
        values = pipeline.query(
            """select cv.invoice_value from analytics.customer_values cv
               where cv.email in (select customer_email from analytics.int_invoiz__invoices where contact_id = %s)""",
            (rows[key],),
        )
        if theirs:
            assert values == [(theirs,)], key

    # the next run retries the rejected rows (warned again) and sends nothing else
    again = pipeline.run(*EL)
    assert f"contacts: row id {rows['contact_nul']} not loaded" in output(again)
    assert f"invoices: row id {rows['invoice_nul']} not loaded" in output(again)
    assert emitted(again) == {"invoices": 0, "contacts": 0}

    # once invoiz sends them without NUL, they load
    sb.set_raw_fields("contact", rows["contact_nul"], None)
    sb.set_raw_fields("invoice", rows["invoice_nul"], None)
    fixed = pipeline.run(*EL)
    assert "not loaded" not in output(fixed)
    assert emitted(fixed) == {"invoices": 1, "contacts": 1}
    assert contact("name", rows["contact_nul"]) == sb.contact(rows["contact_nul"])["name"]
    assert (
        invoice("customer_data ->> 'name'", rows["invoice_nul"])
        == (sb.invoice_row(rows["invoice_nul"])["customerData"]["name"])
    )
