"""The marts on sandbox data loaded through the real pipeline (`meltano run sync` = tap → target-postgres → dbt build):
a change arriving with the next sync, and the session's shared sync (fixture synced_marts) tying out to the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _customer_amounts(pipe, email: str) -> tuple[Decimal, Decimal, Decimal]:
    return pipe.query(
        "select invoice_value, open_amount, paid_amount from analytics.customer_values where email = %s", (email,)
    )[0]


def test_paying_an_old_invoice_moves_its_amount_from_open_to_paid(pipeline, invoiz_sandbox):
    pipeline.run("sync")
    # the oldest open invoice that is assigned to a customer
    invoice_id, email, outstanding = pipeline.query(
        """select invoice_id, email, open_amount from analytics.customer_invoices
           where status = 'open' and open_amount > 0 order by invoice_date, invoice_id limit 1"""
    )[0]
    value_before, open_before, paid_before = _customer_amounts(pipeline, email)

    invoiz_sandbox.pay(invoice_id)
    pipeline.run("sync")

    value_after, open_after, paid_after = _customer_amounts(pipeline, email)
    assert value_after == value_before
    assert open_after == open_before - outstanding
    assert paid_after == paid_before + outstanding
    status, label = pipeline.query(
        "select status, status_label from analytics.customer_invoices where invoice_id = %s", (invoice_id,)
    )[0]
    assert (status, label) == ("paid", "bezahlt")


def test_customer_values_tie_out_to_the_sandbox_to_the_cent(synced_marts):
    pipeline, invoiz_sandbox = synced_marts.pipeline, synced_marts.sandbox
    eligible = [
        invoiz_sandbox.invoice(i)
        for i in invoiz_sandbox.invoice_ids()
        if invoiz_sandbox.invoice(i)["state"] not in ("draft", "cancelled")
    ]
    source_total = sum(Decimal(str(i["totalGross"])) for i in eligible)
    assigned = pipeline.scalar("select coalesce(sum(invoice_value), 0) from analytics.customer_values")
    unassigned = pipeline.scalar(
        "select coalesce(sum(amount), 0) from analytics.unassigned_invoices where counts_toward_value"
    )
    assert assigned + unassigned == source_total
    # a contact without e-mail leaves its invoices unassigned, with the reason
    assert (
        pipeline.scalar(
            "select count(*) from analytics.unassigned_invoices where unassigned_reason = 'contact_without_email'"
        )
        > 0
    )
