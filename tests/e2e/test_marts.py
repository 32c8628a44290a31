"""The marts on sandbox data loaded through the real pipeline (`meltano run sync` = tap → target-postgres → dbt build):
what a user sees of a sync (its log), a change arriving with the next sync, and the session's shared sync (fixture
synced_marts) tying out to the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoiz_ops.pipeline import VERBOSE_TARGET

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What a user's sync log must not show: METRIC lines, SQL statements, colour codes, dbt's per-node lines or precision
# warnings, a misleading "full_table mode".
NOISE = (
    "METRIC",
    "COPY ",
    "INSERT INTO",
    "full_table mode",
    "\x1b[",
    "unspecified precision",
    " pages of",
    "Skipping parse of env var",
    " START ",
    " OK created",
)


def _log(result) -> str:
    return result.stdout + result.stderr


def _customer_amounts(pipe, email: str) -> tuple[Decimal, Decimal, Decimal]:
    return pipe.query(
        "select invoice_value, open_amount, paid_amount from analytics.customer_values where email = %s", (email,)
    )[0]


def test_syncs_log_only_what_a_user_needs_and_a_paid_invoice_moves_from_open_to_paid(pipeline, invoiz_sandbox):
    """One chain of three `meltano run sync`s as a user runs them (meltano.yml's quiet logging): the first, one with
    nothing new, one after an old invoice was paid."""
    for key in VERBOSE_TARGET:  # the tests' fixture turns the target's lines on; a user's run has meltano.yml's
        pipeline.extra_env.pop(key, None)
    first = pipeline.run("sync")
    no_change = pipeline.run("sync")
    for result in (first, no_change):
        log = _log(result)
        assert [n for n in NOISE if n in log] == [], log[-3000:]
        assert "sync done in" in log
    log = _log(no_change)
    assert "0 records emitted (contacts 0, invoices 0)" in log
    assert "60 rows listed" in log and "listing 60 rows" not in log  # one page: its summary, no size line
    # Meltano's lines (start, state, 2 blocks: preflight + pipeline), the tap's (version, 1-2 per stream, run summary)
    assert len(log.splitlines()) <= 20, log

    # the oldest open invoice that is assigned to a customer
    invoice_id, email, outstanding = pipeline.query(
        """select invoice_id, email, open_amount from analytics.customer_invoices
           where status = 'open' and open_amount > 0 order by invoice_date, invoice_id limit 1"""
    )[0]
    value_before, open_before, paid_before = _customer_amounts(pipeline, email)

    invoiz_sandbox.pay(invoice_id)
    paid = pipeline.run("sync")
    assert [n for n in NOISE if n in _log(paid)] == [], _log(paid)[-3000:]

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
