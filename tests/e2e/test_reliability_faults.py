"""API faults during a sync, through tap-invoiz and target-postgres into PostgreSQL (docs/RELIABILITY.md).

Each transient fault is switched on for a first (full) run, which must end with exactly the sandbox's data in the raw
tables; the faults that interact with the incremental logic (token expiry, page shift, a row on two pages) are switched
on again for an incremental run after typical changes (new, paid, back-dated, deleted rows), with the same check. A persistent failure (API down for the whole
retry budget) must fail the run with a message saying what failed, leave the state no further than what was loaded,
delete nothing, and the next run must complete it. The transient faults concern the plugins only and run them without
Meltano (e2e_helpers.direct_el); the persistent failure goes through the real `meltano run`, whose message, exit code
and state store it asserts.
"""

from __future__ import annotations

import pytest
from e2e_helpers import (  # noqa: F401 (own_meltano_dirs: autouse fixture)
    EL,
    assert_raw_tables_equal_source,
    assert_state_not_ahead_of_tables,
    deleted_ids,
    direct_el,
    make_changes,
    meltano_state,
    output,
    own_meltano_dirs,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Faults start after the first page (skip) so that they hit a sync in the middle of its scan, not only its start.
TRANSIENT_FAULTS = {
    # a token dies after 3 uses: every few requests a 401, re-authentication, the request repeated
    "token_expiry_mid_run": [dict(kind="token_expiry", after_requests=3)],
    "rate_limit_429_retry_after": [
        dict(kind="rate_limit", scope="invoice_list", times=2, retry_after=1, skip=1),
        dict(kind="rate_limit", scope="customer_list", times=1, retry_after=1),
    ],
    # three different 5xx answers in a row for the same page
    "server_errors_500_502_503_burst": [
        dict(kind="server_error", scope="invoice_list", status=s, times=1, skip=1) for s in (500, 502, 503)
    ],
    # a response that takes longer than request_timeout (1 s here) is abandoned and retried
    "slower_than_request_timeout": [dict(kind="slow", scope="invoice_list", seconds=3, times=1, skip=2)],
    "malformed_json": [
        dict(kind="malformed_json", scope="invoice_list", times=1, skip=2),
        dict(kind="malformed_json", scope="customer_list", times=1),
    ],
    "html_error_page": [
        dict(kind="html_error", scope="invoice_list", status=502, times=1, skip=1),
        dict(kind="html_error", scope="token", status=503, times=1),
    ],
    # invoices inserted (dated before all others, so they sort first) while the tap pages through the list
    "page_shift": [dict(kind="page_shift", after_page=2, insert=3)],
    # the same invoice on two pages
    "duplicate_record": [dict(kind="duplicate", after_page=2)],
}
INCREMENTAL_TOO = {"token_expiry_mid_run", "page_shift", "duplicate_record"}
FAULT_SETTINGS = {"page_size": 10, "request_timeout": 1}


def _arm(sandbox, specs):
    """Switch the faults on; return the Fault objects (their `fired` counter proves they happened)."""
    faults = []
    for spec in specs:
        spec = dict(spec)
        faults.append(sandbox.faults.add(spec.pop("kind"), **spec))
    return faults


@pytest.mark.parametrize("fault", list(TRANSIENT_FAULTS))
def test_transient_fault_during_a_sync_loses_nothing(pipeline, invoiz_sandbox, fault):
    sb = invoiz_sandbox

    # a first (full) run under the fault
    armed = _arm(sb, TRANSIENT_FAULTS[fault])
    first = direct_el(pipeline, check=False, **FAULT_SETTINGS)
    assert first.returncode == 0, output(first)[-3000:]
    assert all(f.fired >= 1 for f in armed), f"{fault}: the fault never happened: {sb.list_faults()}"
    assert_raw_tables_equal_source(pipeline, sb)

    if fault not in INCREMENTAL_TOO:
        return
    # an incremental run after typical changes, under the same fault again
    sb.clear_faults()
    changes = make_changes(sb)
    armed = _arm(sb, TRANSIENT_FAULTS[fault])
    second = direct_el(pipeline, check=False, **FAULT_SETTINGS)
    assert second.returncode == 0, output(second)[-3000:]
    assert all(f.fired >= 1 for f in armed), f"{fault}: the fault never happened in the incremental run"
    assert_raw_tables_equal_source(pipeline, sb)
    assert deleted_ids(pipeline, "invoices") == {changes["deleted_draft"]}
    assert deleted_ids(pipeline, "contacts") == set()


@pytest.mark.parametrize(
    ("down", "what"),
    [
        # the invoice list goes down after its second page: a partial scan
        (dict(kind="server_error", scope="invoice_list", status=503, rate=1.0, skip=2), ("HTTP 503", "/api/invoice")),
        # invoices complete, then the customer list answers HTML error pages only
        (dict(kind="html_error", scope="customer_list", status=502, rate=1.0), ("HTTP 502", "/api/customer")),
    ],
    ids=["invoice_list_down_mid_scan", "customer_list_down"],
)
def test_api_down_for_the_whole_retry_budget_fails_clearly_and_the_next_run_completes(
    pipeline,
    invoiz_sandbox,
    down,
    what,
):
    sb = invoiz_sandbox
    pipeline.extra_env.update(
        {"TAP_INVOIZ_PAGE_SIZE": "10", "TAP_INVOIZ_MAX_RETRIES": "1", "TAP_INVOIZ_REQUEST_TIMEOUT": "2"}
    )
    pipeline.run(*EL)
    state_before = meltano_state(pipeline)
    assert state_before, "the first run left no state"
    changes = make_changes(sb)

    _arm(sb, [down])
    failed = pipeline.run(*EL, check=False)
    log = output(failed)
    assert failed.returncode != 0
    for text in what:
        assert text in log, f"the failure message does not say {text!r}:\n{log[-3000:]}"
    assert "Extractor failed" in log
    # nothing was deleted after an incomplete scan, and the state does not claim more than the tables hold
    assert deleted_ids(pipeline, "invoices") == set()
    state_after = meltano_state(pipeline)
    assert state_after, "the failed run lost the state"
    assert_state_not_ahead_of_tables(pipeline, sb, state_after)

    sb.clear_faults()
    pipeline.run(*EL)
    assert_raw_tables_equal_source(pipeline, sb)
    assert deleted_ids(pipeline, "invoices") == {changes["deleted_draft"]}
    assert_state_not_ahead_of_tables(pipeline, sb, meltano_state(pipeline))
