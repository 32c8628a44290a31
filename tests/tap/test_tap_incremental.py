"""tap-invoiz against the invoiz sandbox: what a first, an unchanged and a changed run emit, and the state."""

from __future__ import annotations

import pytest
from tap_helpers import run_tap, sandbox_config

import tap_invoiz.sync as tap_state


def first_and_reset(sb, **config):
    cfg = sandbox_config(sb, **config)
    first = run_tap(cfg)
    sb.reset_counters()
    return cfg, first


def test_first_run_emits_everything_and_reports_a_full_refresh_not_activate_version(invoiz_sandbox):
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb))
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert run.ids("contacts") == set(sb.contact_ids())
    assert run.activate_versions() == []  # it would act on every account's rows of the table
    status = {r["stream"]: r for r in run.records("sync_status")}
    assert set(status) == {"contacts", "invoices"}
    assert status["invoices"]["full_refresh"] is True
    assert status["invoices"]["full_refresh_rows"] == len(list(sb.invoice_ids()))
    assert status["invoices"]["full_refresh_started_at"] == status["invoices"]["started_at"]
    # every record of the full refresh was extracted after the moment staging compares with
    started = status["invoices"]["started_at"]
    assert all(
        m["time_extracted"] >= started for m in run.messages if m["type"] == "RECORD" and m["stream"] == "invoices"
    )
    assert run.records("invoice_payments") == []  # not selected by default: no detail requests
    assert sb.requests["invoice_detail"] == 0
    accounts = run.state["bookmarks"]["invoices"]["accounts"]
    assert list(accounts) == ["test"]
    assert accounts["test"]["rows"] == len(list(sb.invoice_ids()))


def test_rerun_without_change_emits_nothing_and_no_activate_version(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    second = run_tap(cfg, first.state)
    assert second.records("invoices") == []
    assert second.records("contacts") == []
    assert second.activate_versions() == []
    assert sb.requests["invoice_detail"] == 0
    assert sb.requests["customer_detail"] == 0
    assert sb.requests["invoice_list"] == 1 and sb.requests["customer_list"] == 1
    assert second.fingerprints == first.fingerprints


def test_each_kind_of_change_is_emitted_with_the_next_run(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    invoices = {i: sb.invoice(i) for i in sb.invoice_ids()}
    open_ids = sorted((i for i, inv in invoices.items() if inv["state"] == "locked"), key=lambda i: invoices[i]["date"])
    to_pay, to_cancel, to_dun, to_part = open_ids[0], open_ids[1], open_ids[2], open_ids[3]
    sb.pay(to_pay)
    sb.cancel(to_cancel)
    sb.dun(to_dun)
    sb.partly_pay(to_part)
    customer = next(iter(sb.contact_ids()))
    new_id = sb.create_invoice(customer_id=customer)
    backdated = sb.create_invoice(customer_id=customer, date="2019-03-14")
    sb.set_contact_email(customer, "Neue.Adresse@Beispiel.de")

    run = run_tap(cfg, first.state)
    live = run.live("invoices")
    assert set(live) == {to_pay, to_cancel, to_dun, to_part, new_id, backdated}
    assert live[to_pay]["status"] == "paid" and live[to_pay]["outstanding_amount"] == 0
    assert live[to_cancel]["status"] == "cancelled"
    assert live[to_dun]["state"] == "dunned" and live[to_dun]["status"] == "open"
    assert live[to_dun]["meta_data"]["currentDunning"]
    assert live[to_part]["state"] == "partiallyPaid" and live[to_part]["status"] == "open"
    assert live[backdated]["date"] == "2019-03-14"
    assert [r["email"] for r in run.records("contacts")] == ["Neue.Adresse@Beispiel.de"]
    assert run.activate_versions() == []
    assert sb.requests["invoice_detail"] == 0
    # and the run after that is quiet again
    assert run_tap(cfg, run.state).records("invoices") == []


def test_reverted_payment_is_emitted(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    paid = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "paid")
    first = run_tap(cfg)
    sb.revert_payment(paid)
    run = run_tap(cfg, first.state)
    assert run.ids("invoices") == {paid}
    assert run.records("invoices")[0]["status"] == "open"


def test_deleted_draft_and_contact_become_tombstones_once(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    draft = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "draft")
    contact = max(sb.contact_ids())
    sb.delete_invoice(draft)
    sb.delete_contact(contact)
    run = run_tap(cfg, first.state)
    assert run.tombstones("invoices") == {draft}
    assert run.tombstones("contacts") == {contact}
    assert run.live("invoices") == {} and run.live("contacts") == {}
    tomb = run.records("invoices")[0]
    assert tomb["account"] == "test" and tomb["_sdc_deleted_at"] and tomb["state"] is None
    assert sb.requests["invoice_detail"] == 1 and sb.requests["customer_detail"] == 1
    assert run.activate_versions() == []
    again = run_tap(cfg, run.state)
    assert again.records("invoices") == [] and again.records("contacts") == []


def test_full_refresh_without_state_resends_all_and_reports_its_cut_off(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    draft = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "draft")
    sb.delete_invoice(draft)
    refresh = run_tap(cfg, None)
    assert refresh.ids("invoices") == set(sb.invoice_ids())
    assert refresh.activate_versions() == []
    status = {r["stream"]: r for r in refresh.records("sync_status")}["invoices"]
    # the vanished draft was extracted before the cut-off and not sent again: staging marks it deleted
    assert status["full_refresh_started_at"] > max(
        m["time_extracted"] for m in first.messages if m["type"] == "RECORD" and m["stream"] == "invoices"
    )
    # sync_status comes after every record of the streams it reports on
    kinds = [(m["type"], m.get("stream")) for m in refresh.messages]
    last_data = max(i for i, k in enumerate(kinds) if k[0] == "RECORD" and k[1] != "sync_status")
    assert kinds.index(("RECORD", "sync_status")) > last_data
    after = run_tap(cfg, refresh.state)
    assert after.records("invoices") == []
    status_after = {r["stream"]: r for r in after.records("sync_status")}["invoices"]
    assert status_after["full_refresh"] is False and status_after["full_refresh_started_at"] is None
    # the next run confirms the full refresh from the state its final STATE message wrote
    assert status_after["last_full_refresh_started_at"] == status["full_refresh_started_at"]


def test_a_killed_full_refresh_is_completed_by_the_next_run(invoiz_sandbox, monkeypatch):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=10)
    monkeypatch.setattr(tap_state, "STATE_EVERY", 20)
    killed = run_tap(cfg, None, contacts=False)
    partial = next(s for s in killed.states if s.get("bookmarks", {}).get("invoices", {}).get("accounts"))
    entry = partial["bookmarks"]["invoices"]["accounts"]["test"]
    assert "full_refresh_in_progress" in entry and "last_full_refresh" not in entry
    resumed = run_tap(cfg, partial, contacts=False)
    status = {r["stream"]: r for r in resumed.records("sync_status")}["invoices"]
    # the resumed run finishes the killed one's full refresh: same cut-off, all rows tracked
    assert status["full_refresh"] is False
    assert status["full_refresh_started_at"] == entry["full_refresh_in_progress"]["started_at"]
    assert status["full_refresh_rows"] == len(list(sb.invoice_ids()))
    final = resumed.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert "full_refresh_in_progress" not in final
    assert final["last_full_refresh"]["started_at"] == status["full_refresh_started_at"]


def test_page_size_and_credentials_do_not_touch_the_state(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    # every invoice listed again (full_scan_every 1), in pages of another size: none is emitted
    run = run_tap({**cfg, "page_size": 7, "full_scan_every": 1, "api_key_secret": cfg["api_key_secret"]}, first.state)
    assert run.records("invoices") == [] and run.records("contacts") == []
    assert sb.requests["invoice_list"] == -(-len(list(sb.invoice_ids())) // 7)


def test_accounts_are_kept_apart_in_the_state(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb)
    other = run_tap({**cfg, "account": "zweite"}, first.state)
    assert other.ids("invoices") == set(sb.invoice_ids())
    assert {r["account"] for r in other.records("invoices")} == {"zweite"}
    # a first sync of a second account must not soft-delete the first account's rows in a shared table
    assert other.activate_versions() == []
    accounts = other.state["bookmarks"]["invoices"]["accounts"]
    assert set(accounts) == {"test", "zweite"}
    assert accounts["test"] == first.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert run_tap(cfg, other.state).records("invoices") == []


def test_start_date_bounds_what_is_emitted_and_tracked(invoiz_sandbox):
    sb = invoiz_sandbox
    dates = sorted(sb.invoice(i)["date"][:10] for i in sb.invoice_ids())
    start = dates[len(dates) // 2]
    cfg = sandbox_config(sb, start_date=start)
    run = run_tap(cfg)
    expected = {i for i in sb.invoice_ids() if sb.invoice(i)["date"][:10] >= start}
    assert run.ids("invoices") == expected
    assert run.state["bookmarks"]["invoices"]["accounts"]["test"]["rows"] == len(expected)
    old = min(set(sb.invoice_ids()) - expected, key=lambda i: sb.invoice(i)["date"])
    if sb.invoice(old)["state"] in ("locked", "dunned", "partiallyPaid"):
        sb.pay(old)
    again = run_tap(cfg, run.state)
    assert again.records("invoices") == [] and again.tombstones("invoices") == set()


def test_a_run_killed_halfway_loses_nothing(invoiz_sandbox, monkeypatch):
    """Every STATE message covers only records written before it: resuming from any of them completes the data."""
    sb = invoiz_sandbox
    monkeypatch.setattr(tap_state, "STATE_EVERY", 10)
    cfg = sandbox_config(sb)
    full = run_tap(cfg)
    assert len(full.states) >= 4
    all_ids = set(sb.invoice_ids())
    for position, state in enumerate(full.states[:-1]):
        index = [i for i, m in enumerate(full.messages) if m["type"] == "STATE"][position]
        before = {
            m["record"]["id"] for m in full.messages[:index] if m["type"] == "RECORD" and m["stream"] == "invoices"
        }
        resumed = run_tap(cfg, state)
        assert before | resumed.ids("invoices") == all_ids
        tracked = state.get("bookmarks", {}).get("invoices", {}).get("accounts", {}).get("test", {}).get("rows", 0)
        assert tracked <= len(before)


def test_payments_are_read_only_for_new_or_changed_invoices(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    n = len(list(sb.invoice_ids()))
    first = run_tap(cfg, payments=True)
    assert sb.requests["invoice_detail"] == n
    expected = {(i, p["id"]) for i in sb.invoice_ids() for p in sb.invoice(i).get("payments", [])}
    assert {(r["invoice_id"], r["id"]) for r in first.records("invoice_payments")} == expected
    assert first.activate_versions() == []
    payments_status = {r["stream"]: r for r in first.records("sync_status")}["invoice_payments"]
    assert payments_status["full_refresh"] is True
    assert payments_status["records_emitted"] == len(expected)
    payment = first.records("invoice_payments")[0]
    assert set(payment) >= {"account", "invoice_id", "id", "date", "amount", "type", "extra_fields"}
    sb.reset_counters()
    quiet = run_tap(cfg, first.state, payments=True)
    assert quiet.records("invoice_payments") == [] and sb.requests["invoice_detail"] == 0
    assert quiet.activate_versions() == []
    target = next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "locked")
    payment_id = sb.pay(target)
    changed = run_tap(cfg, quiet.state, payments=True)
    assert sb.requests["invoice_detail"] == 1
    assert (target, payment_id) in {(r["invoice_id"], r["id"]) for r in changed.records("invoice_payments")}


def test_selecting_payments_later_backfills_them_once(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    sb.reset_counters()
    later = run_tap(cfg, first.state, payments=True)
    assert sb.requests["invoice_detail"] == len(list(sb.invoice_ids()))
    assert later.records("invoice_payments")
    sb.reset_counters()
    assert run_tap(cfg, later.state, payments=True).records("invoice_payments") == []
    assert sb.requests["invoice_detail"] == 0


def test_only_payments_selected_does_not_advance_invoice_state(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    only = run_tap(cfg, payments=True, invoices=False, contacts=False)
    assert only.records("invoices") == [] and only.records("invoice_payments")
    both = run_tap(cfg, only.state)
    assert both.ids("invoices") == set(sb.invoice_ids())


@pytest.mark.invoiz_sandbox(invoices=120)
def test_page_shift_and_duplicates_while_paging_lose_nothing_and_delete_nothing(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg, first = first_and_reset(sb, page_size=10)
    sb.fault("page_shift", after_page=2, insert=3)
    run = run_tap(cfg, first.state)
    assert run.tombstones("invoices") == set()
    new = set(sb.invoice_ids()) - set(first.ids("invoices"))
    assert len(new) == 3
    assert run.ids("invoices") == new
    sb.fault("duplicate", after_page=1)
    again = run_tap(cfg, run.state)
    assert again.records("invoices") == []


def test_batch_messages_state_follows_the_batches(invoiz_sandbox, tmp_path, monkeypatch):
    sb = invoiz_sandbox
    monkeypatch.setattr(tap_state, "STATE_EVERY", 10)
    cfg = sandbox_config(
        sb,
        batch_config={
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": tmp_path.as_uri(), "prefix": "b-"},
        },
    )
    first = run_tap(cfg)
    kinds = [(m["type"], m.get("stream")) for m in first.messages]
    assert kinds.count(("BATCH", "invoices")) == 1
    # no STATE between the start of the invoices stream and its BATCH message
    start, batch = kinds.index(("SCHEMA", "invoices")), kinds.index(("BATCH", "invoices"))
    assert ("STATE", None) not in kinds[start:batch]
    assert first.state["bookmarks"]["invoices"]["accounts"]["test"]["rows"] == len(list(sb.invoice_ids()))
    sb.pay(next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "locked"))
    second = run_tap(cfg, first.state)
    assert [(m["type"], m.get("stream")) for m in second.messages].count(("BATCH", "invoices")) == 1


def test_moving_start_date_later_drops_old_rows_from_the_state_without_tombstones(invoiz_sandbox):
    sb = invoiz_sandbox
    first = run_tap(sandbox_config(sb))
    dates = sorted(sb.invoice(i)["date"][:10] for i in sb.invoice_ids())
    start = dates[len(dates) // 2]
    later = run_tap(sandbox_config(sb, start_date=start), first.state)
    assert later.records("invoices") == []
    in_scope = sum(1 for i in sb.invoice_ids() if sb.invoice(i)["date"][:10] >= start)
    assert later.state["bookmarks"]["invoices"]["accounts"]["test"]["rows"] == in_scope
    assert sb.requests["invoice_detail"] == 0
