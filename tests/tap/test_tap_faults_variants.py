"""tap-invoiz under API faults (retries, token expiry, malformed answers) and every contract variant of the sandbox."""

from __future__ import annotations

import copy

import pytest
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from tap_helpers import Run, _ListWriter, _parse, run_tap, sandbox_config

from invoiz_sandbox import VARIANTS
from tap_invoiz.tap import TapInvoiz


@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("rate_limit", {"retry_after": 1}),
        ("server_error", {"status": 503}),
        ("html_error", {"status": 502}),
        ("malformed_json", {}),
        ("connection_reset", {}),
    ],
)
@pytest.mark.parametrize("scope", ["invoice_list", "customer_list", "token"])
def test_transient_faults_are_retried_and_nothing_is_lost(invoiz_sandbox, kind, opts, scope):
    sb = invoiz_sandbox
    sb.fault(kind, scope=scope, times=2, **opts)
    run = run_tap(sandbox_config(sb, page_size=25))
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert run.ids("contacts") == set(sb.contact_ids())
    assert sb.requests[scope] >= 3 if scope != "token" else sb.requests["token"] == 3


def test_malformed_page_mid_scan_is_retried_not_half_loaded(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=10)
    first = run_tap(cfg)
    sb.pay(next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "locked"))
    sb.set_faults({"kind": "malformed_json", "scope": "invoice_list", "times": 1})
    run = run_tap(cfg, first.state)
    assert len(run.records("invoices")) == 1
    assert run.tombstones("invoices") == set()


def test_a_persistent_fault_fails_the_run_without_deletions(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=10, max_retries=1)
    first = run_tap(cfg)
    draft = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "draft")
    sb.delete_invoice(draft)  # gone from invoiz: a complete listing would send its tombstone
    # the invoice list answers its first page, then every later page is a proxy error, for good
    sb.set_faults({"kind": "html_error", "scope": "invoice_list", "skip": 1, "rate": 1.0})
    before = sb.requests["invoice_list"]
    writer = _ListWriter()
    tap = TapInvoiz(config=cfg, state=copy.deepcopy(first.state), message_writer=writer)
    with pytest.raises(RetriableAPIError, match="502"):
        tap.sync_all()
    assert sb.requests["invoice_list"] - before >= 3  # the first page, then a failing page and its retry
    messages, _ = _parse("\n".join(writer.lines))
    failed = Run(messages)
    assert failed.tombstones("invoices") == set()  # an incomplete listing proves no deletion

    sb.clear_faults()
    assert run_tap(cfg, first.state).tombstones("invoices") == {draft}  # the deletion was there to be missed


def test_expired_tokens_are_renewed_once_and_the_request_retried(invoiz_sandbox):
    sb = invoiz_sandbox
    sb.fault("token_expiry", after_requests=2)
    run = run_tap(sandbox_config(sb, page_size=10))
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert sb.requests["token"] > 1


def test_a_401_with_a_fresh_token_is_a_clear_error(invoiz_sandbox):
    sb = invoiz_sandbox
    sb.set_faults({"kind": "token_expiry", "after_requests": 0})
    with pytest.raises(FatalAPIError, match="api_key, api_key_secret and installation_id"):
        run_tap(sandbox_config(sb))


def test_slow_answers_time_out_and_are_retried(invoiz_sandbox):
    sb = invoiz_sandbox
    sb.fault("slow", scope="customer_list", times=1, seconds=3)
    run = run_tap(sandbox_config(sb, request_timeout=1))
    assert run.ids("contacts") == set(sb.contact_ids())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_parses(invoiz_sandbox, variant):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    baseline = run_tap(cfg, payments=True)
    sb.set_variants([variant])
    run = run_tap(cfg, payments=True)
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert run.ids("contacts") == set(sb.contact_ids())
    base_invoices = baseline.live("invoices")
    for invoice_id, record in run.live("invoices").items():
        before = base_invoices[invoice_id]
        for column in ("date", "due_to_date", "status", "total_gross", "outstanding_amount", "state"):
            assert record[column] == before[column], (variant, invoice_id, column)
        assert record["number"] == before["number"], (variant, invoice_id)
    base_contacts = baseline.live("contacts")
    for contact_id, record in run.live("contacts").items():
        assert record["country_iso"] == base_contacts[contact_id]["country_iso"], variant
        assert record["street"] == base_contacts[contact_id]["street"], variant
    assert {(r["invoice_id"], r["id"]) for r in run.records("invoice_payments")} == {
        (r["invoice_id"], r["id"]) for r in baseline.records("invoice_payments")
    }
    if variant in ("extra_fields", "updated_at"):
        assert all(r["extra_fields"] for r in run.records("invoices"))
        assert all(r["extra_fields"] for r in run.records("contacts"))
    elif variant not in ("list_positions",):
        assert not any(r["extra_fields"] for r in run.records("invoices")), variant


def test_extra_fields_keep_unknown_api_fields_verbatim(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    sb.set_variants(["extra_fields"])
    run = run_tap(sandbox_config(sb))
    invoice = run.records("invoices")[0]
    raw = sb.invoice_row(invoice["id"])
    assert set(invoice["extra_fields"]) == {"currency", "isMigrated", "customFields"}
    assert invoice["extra_fields"]["currency"] == raw["currency"]
    logged = [m for m in tap_log if "kept verbatim in extra_fields" in m]
    assert [m for m in logged if m.startswith("invoices:")] == [
        "invoices: API fields not in the schema, kept verbatim in extra_fields: currency, customFields, isMigrated"
    ]
    assert len([m for m in logged if m.startswith("contacts:")]) == 1
    assert not any(str(raw["currency"]) in m for m in logged)  # names only, never values


@pytest.mark.invoiz_sandbox(variants=["not_found_400"])
def test_deletions_are_confirmed_with_400_not_found_too(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    draft = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "draft")
    sb.delete_invoice(draft)
    contact = max(sb.contact_ids())
    sb.delete_contact(contact)
    run = run_tap(cfg, first.state)
    assert run.tombstones("invoices") == {draft}
    assert run.tombstones("contacts") == {contact}


@pytest.mark.invoiz_sandbox(max_page_size=7)
def test_a_server_that_caps_limit_silently_loses_nothing(invoiz_sandbox):
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb, page_size=50))
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert sb.requests["invoice_list"] == -(-len(list(sb.invoice_ids())) // 7)


class _Response:
    def __init__(self, rows, count):
        self._invoiz_body = {"data": rows, **({"meta": {"count": count}} if count is not None else {})}


@pytest.mark.parametrize(
    ("pages", "count", "requests"),
    [
        ([10, 10, 5], 25, 3),  # stops at meta.count
        ([10, 10, 10], 30, 3),  # exact multiple: no extra empty request
        ([10, 10, 5], None, 3),  # no meta.count: stops at the short page
        ([10, 10, 10, 0], None, 4),  # ... or at an empty page
        ([7, 7, 7, 4], 25, 4),  # server capped limit at 7: advance by rows received
    ],
)
def test_paginator_stop_conditions(pages, count, requests):
    from tap_invoiz.paging import InvoizPaginator

    counts: list = []
    paginator = InvoizPaginator(10, counts)
    made = 0
    offsets = []
    while not paginator.finished:
        offsets.append(paginator.current_value)
        rows = [{}] * pages[made]
        counts.append(count)
        paginator.advance(_Response(rows, count))
        made += 1
    assert made == requests
    assert offsets == [sum(pages[:i]) for i in range(requests)]
