"""`make card EMAIL=...` (ops/invoiz_ops/card.py): the ticket-side customer card (R7), read from the marts the pipeline built."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import pytest

from invoiz_ops.pipeline import PROJECT_ROOT, private_run_dirs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPEN_STATES = {"locked", "partiallyPaid", "dunned"}
LABELS = {
    "paid": "bezahlt",
    "locked": "offen",
    "partiallyPaid": "offen",
    "dunned": "offen",
    "draft": "Entwurf",
    "cancelled": "storniert",
}


@pytest.fixture
def pipeline(pipeline, tmp_path):
    """The e2e pipeline, with its own .meltano/run and dbt target (other sessions may run meltano at the same time)."""
    pipeline.extra_env.update(private_run_dirs(tmp_path))
    return pipeline


def card(pipeline, *args: str) -> subprocess.CompletedProcess:
    env = pipeline.env()  # PG* of the test's server, PGDATABASE = the test's database
    return subprocess.run(
        [sys.executable, "-m", "invoiz_ops.card", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def euros(text: str) -> Decimal:
    """'1.234,56' → Decimal('1234.56')"""
    return Decimal(text.replace(".", "").replace(",", "."))


def headline(output: str, label: str) -> Decimal:
    match = re.search(rf"^\s*{label}\s+(-?[\d.]+,\d\d) EUR", output, re.MULTILINE)
    assert match, f"no line {label!r} in:\n{output}"
    return euros(match.group(1))


def customers_in_sandbox(sb) -> dict[str, list[dict]]:
    """Sandbox invoices per customer e-mail (the contact's address, trimmed and lower-cased)."""
    emails = {c["id"]: (c.get("email") or "").strip().lower() for c in sb.contacts()}
    invoices = defaultdict(list)
    for invoice_id in sb.invoice_ids():
        invoice = sb.invoice(invoice_id)
        email = emails.get(invoice["customerId"])
        if email:
            invoices[email].append(invoice)
    return invoices


def test_before_any_run_the_card_says_what_to_do(pipeline):
    empty = card(pipeline, "someone@example.org")  # an empty database: no marts yet
    assert empty.returncode == 3
    assert "make demo" in empty.stderr and "meltano run sync" in empty.stderr


def test_the_card_shows_the_customers_values_and_every_invoice_with_its_link(synced_marts):
    pipeline, invoiz_sandbox = synced_marts.pipeline, synced_marts.sandbox
    per_customer = customers_in_sandbox(invoiz_sandbox)
    email, invoices = next(
        (e, inv)
        for e, inv in sorted(per_customer.items())
        if any(i["state"] in OPEN_STATES for i in inv) and any(i["state"] == "paid" for i in inv)
    )
    result = card(pipeline, f"  {email.upper()} ")  # typed as a support agent might: matched as the marts normalise
    assert result.returncode == 0, result.stderr
    out = result.stdout

    # the values are the marts' ...
    total, invoice_value, open_amount, paid_amount = pipeline.query(
        "select total_value, invoice_value, open_amount, paid_amount from analytics.customer_values where email = %s",
        (email,),
    )[0]
    assert headline(out, "Kundenwert gesamt") == total
    assert headline(out, "Kundenwert Rechnungen") == invoice_value
    assert headline(out, "offen") == open_amount
    assert headline(out, "bezahlt") == paid_amount
    # ... and tie out to invoiz: the gross totals of the customer's finalised, not cancelled invoices
    counted = [i for i in invoices if i["state"] not in ("draft", "cancelled")]
    assert invoice_value == sum(Decimal(str(i["totalGross"])) for i in counted)
    assert open_amount == sum(Decimal(str(i["outstandingAmount"])) for i in counted if i["state"] in OPEN_STATES) > 0
    assert paid_amount > 0
    # bezahlt = the paid invoices listed + what was paid on open ones, and the card says how much the latter is
    paid_in_full = sum(Decimal(str(i["totalGross"])) for i in counted if i["state"] == "paid")
    partly = re.search(r"davon (-?[\d.]+,\d\d) EUR Teilzahlungen offener Rechnungen", out)
    assert paid_amount == paid_in_full + (euros(partly.group(1)) if partly else 0)
    assert "(brutto)" in out and "(gross)" not in out

    # every invoice of the customer, once, with number, date, days since, status and its link into invoiz
    lines = [line for line in out.splitlines() if "/invoice/" in line]
    assert len(lines) == len(invoices)
    facts = {
        row[0]: row[1:]
        for row in pipeline.query(
            """select invoice_id, invoice_number, invoice_date, days_since_invoice_date, status_label
               from analytics.customer_invoices where email = %s""",
            (email,),
        )
    }
    for invoice in invoices:
        link = f"{invoiz_sandbox.app_url.rstrip('/')}/invoice/{invoice['id']}"
        line = next(line for line in lines if line.endswith(link))
        number, day, days_since, label = facts[invoice["id"]]
        assert label == LABELS[invoice["state"]]
        cells = line.split()
        assert (number or "(Entwurf)") in cells
        assert str(day) == invoice["date"][:10] and str(day) in cells
        assert str(days_since) in cells
        assert label in cells or f"{label}*" in cells


def test_an_unknown_email_exits_1_with_a_message_and_no_email_shows_the_usage(synced_marts):
    pipeline, invoiz_sandbox = synced_marts.pipeline, synced_marts.sandbox
    known = {(c.get("email") or "").strip().lower() for c in invoiz_sandbox.contacts()}
    unknown = "niemand@example.invalid"
    assert unknown not in known

    result = card(pipeline, unknown)
    assert result.returncode == 1
    assert f"No customer with e-mail '{unknown}'" in result.stderr
    assert result.stdout == ""

    for args in ((), ("",), ("   ",)):
        usage = card(pipeline, *args)
        assert usage.returncode == 2
        assert "make card EMAIL=" in usage.stderr
