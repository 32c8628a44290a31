"""Listing invoices by state through the real `meltano run` into PostgreSQL: a run costs what changed, and every
change kind a sync must see (docs/invoiz-api.md §6.1) lands exactly — changed rows updated, deleted ones marked deleted."""

from __future__ import annotations

import pytest
from e2e_helpers import emitted
from test_incremental import EL, assert_tables_match_sandbox, deleted_ids

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INVOICES, PAGE = 600, 25  # a full listing: 24 pages


def _ids(sandbox, state):
    return [i for i in sandbox.invoice_ids() if sandbox.invoice_row(i)["state"] == state]


@pytest.mark.invoiz_sandbox(invoices=INVOICES, contacts=80)
def test_change_kinds_arrive_through_meltano_run_when_listing_by_state(pipeline, invoiz_sandbox):
    sb = invoiz_sandbox
    pipeline.extra_env["TAP_INVOIZ_PAGE_SIZE"] = str(PAGE)
    pipeline.extra_env["TAP_INVOIZ_FULL_SCAN_EVERY"] = "1000"
    pipeline.run(*EL)
    paid, locked, dunned = _ids(sb, "paid"), _ids(sb, "locked"), _ids(sb, "dunned")
    written = sb.write_and_pay(customer_id=sb.contact_ids()[0])  # written and paid between two runs
    sb.delete_payment(paid[100])  # paid → partially paid / locked
    sb.cancel(paid[7])  # paid → cancelled (Storno)
    sb.dun(locked[0])  # open → dunned
    sb.pay(locked[1])  # open → paid
    sb.delete_invoice(locked[2], finalised=True)  # finalised invoices deleted
    sb.delete_invoice(dunned[0], finalised=True)
    sb.reset_counters()
    result = pipeline.run(*EL)
    assert emitted(result).get("invoices") == 5 + 2  # 5 changed rows, 2 tombstones
    assert deleted_ids(pipeline, "invoices") == {locked[2], dunned[0]}
    assert_tables_match_sandbox(pipeline, sb)
    assert pipeline.scalar("select status from raw_invoiz.invoices where id = %s", (written,)) == "paid"
    assert sb.requests["invoice_list"] < INVOICES // PAGE / 2  # listed by state, not every invoice
    assert sb.requests["invoice_detail"] == 3  # the ids that left the open lists: paid, 2 gone
    # the next run is quiet and costs only the open states
    sb.reset_counters()
    assert emitted(pipeline.run(*EL)).get("invoices", 0) == 0
    assert sb.requests["invoice_detail"] == 0
    assert_tables_match_sandbox(pipeline, sb)
