"""Listing invoices by state (tap_invoiz.listing): a run costs what changed, and stays exact.

Every test compares what the tap emitted, applied in order to a table, with a fresh full sync of the sandbox.
"""

from __future__ import annotations

import copy
import random

import pytest
from tap_helpers import run_tap, sandbox_config

from tap_invoiz import fingerprint, ledger, listing

INVOICES = 600
PAGE = 25  # a full listing of 600 invoices: 24 pages; listed by state: 6 pages of open states + the audit
SANDBOX = {"invoices": INVOICES, "contacts": 80}


def apply(table: dict, run) -> dict:
    for record in run.records("invoices"):
        if record.get("_sdc_deleted_at") is not None:
            table.pop(record["id"], None)
        else:
            table[record["id"]] = record
    return table


def truth(sb, **config) -> dict:
    return run_tap(sandbox_config(sb, page_size=PAGE, **config), contacts=False).live("invoices")


def ids_in(sb, state: str) -> list[int]:
    return [i for i in sb.invoice_ids() if sb.invoice_row(i)["state"] == state]


def open_pages(sb) -> int:
    """Requests of listing the open states fully (draft, locked, partiallyPaid, dunned), at least one each."""
    return sum(max(1, -(-len(ids_in(sb, state)) // PAGE)) for state in listing.LISTED)


def date_of_a_third(sb) -> str:
    """A start_date with about a third of the invoices dated before it."""
    dates = sorted(sb.invoice_row(i)["date"][:10] for i in sb.invoice_ids())
    return dates[len(dates) // 3]


def before(sb, start_date: str) -> set[int]:
    return {i for i in sb.invoice_ids() if sb.invoice_row(i)["date"][:10] < start_date}


def setup_run(sb, **config):
    cfg = sandbox_config(sb, **{"page_size": PAGE, **config})
    first = run_tap(cfg)
    table = apply({}, first)
    sb.reset_counters()
    return cfg, first, table


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_a_run_without_changes_lists_only_the_open_states(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg, first, _ = setup_run(sb, full_scan_every=1000)  # no audit page in this run
    entry = first.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert entry["states"].startswith("st1:") and entry["runs"] == 0
    assert entry["counts"][0] == INVOICES
    quiet = run_tap(cfg, first.state)
    assert quiet.records("invoices") == [] and quiet.records("contacts") == []
    assert sb.requests["invoice_list"] == open_pages(sb) < INVOICES // PAGE / 3  # draft, locked, partiallyPaid, dunned
    assert sb.requests["invoice_detail"] == 0
    assert any("(listed by state)" in m for m in tap_log)
    assert quiet.state["bookmarks"]["invoices"]["accounts"]["test"]["runs"] == 1
    # full_scan_every=1: every invoice every run, as before
    sb.reset_counters()
    full = run_tap({**cfg, "full_scan_every": 1}, quiet.state)
    assert full.records("invoices") == [] and sb.requests["invoice_list"] == INVOICES // PAGE


def _write_and_pay(sb):
    new = sb.write_and_pay(customer_id=sb.contact_ids()[0])
    return {new}, set()


def _payment_deleted(sb):
    paid = ids_in(sb, "paid")[len(ids_in(sb, "paid")) // 3]  # an old one: far from the newest
    sb.delete_payment(paid)
    return {paid}, set()


def _storno_of_paid(sb):
    paid = ids_in(sb, "paid")[5]
    sb.cancel(paid)
    return {paid}, set()


def _open_to_dunned(sb):
    locked = ids_in(sb, "locked")[0]
    sb.dun(locked)
    return {locked}, set()


def _finalised_deleted(sb):
    locked, dunned = ids_in(sb, "locked")[1], ids_in(sb, "dunned")[0]
    sb.delete_invoice(locked, finalised=True)
    sb.delete_invoice(dunned, finalised=True)
    return set(), {locked, dunned}


def _open_paid(sb):
    locked, part = ids_in(sb, "locked")[0], ids_in(sb, "partiallyPaid")[0]
    sb.pay(locked)
    sb.pay(part)
    return {locked, part}, set()


def _partial_payment_and_next_dunning(sb):
    part, dunned = ids_in(sb, "partiallyPaid")[0], ids_in(sb, "dunned")[0]
    sb.partly_pay(part)
    sb.dun(dunned)
    return {part, dunned}, set()


def _drafts(sb):
    draft, other = ids_in(sb, "draft")[:2]
    sb.update_invoice(draft, title="Neuer Titel")
    sb.lock_invoice(other)
    gone = sb.create_invoice(state="draft")
    new = sb.create_invoice(state="draft")
    sb.delete_invoice(gone)
    return {draft, other, new}, set()


def _storno_of_open_and_new_cancelled(sb):
    locked = ids_in(sb, "locked")[2]
    sb.cancel(locked)
    new = sb.create_invoice(state="cancelled", date="2021-05-04")
    return {locked, new}, set()


CHANGE_KINDS = {
    "written and paid between runs": _write_and_pay,
    "payment deleted (paid → partially paid / locked)": _payment_deleted,
    "paid → cancelled (Storno)": _storno_of_paid,
    "open → dunned": _open_to_dunned,
    "finalised invoices deleted": _finalised_deleted,
    "open → paid": _open_paid,
    "partial payment, next dunning level": _partial_payment_and_next_dunning,
    "drafts edited, locked, created, deleted": _drafts,
    "Storno of an open invoice, a new cancelled one": _storno_of_open_and_new_cancelled,
}


@pytest.mark.invoiz_sandbox(**SANDBOX)
@pytest.mark.parametrize("kind", list(CHANGE_KINDS))
def test_each_change_kind_arrives_with_the_next_run(invoiz_sandbox, tap_log, kind):
    sb = invoiz_sandbox
    cfg, first, table = setup_run(sb, full_scan_every=1000)
    changed, deleted = CHANGE_KINDS[kind](sb)
    run = run_tap(cfg, first.state)
    assert any("(listed by state)" in m for m in tap_log), tap_log
    assert set(run.live("invoices")) == changed
    assert run.tombstones("invoices") == deleted
    assert apply(table, run) == truth(sb)
    # and the run after that is quiet again
    assert run_tap(cfg, run.state).records("invoices") == []


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_changes_whose_counts_cancel_out_are_still_found(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg, first, table = setup_run(sb, full_scan_every=1000)
    paid_old, paid_other = ids_in(sb, "paid")[10], ids_in(sb, "paid")[200]
    locked = ids_in(sb, "locked")
    sb.cancel(paid_old)  # paid −1, cancelled +1 (an old invoice)
    new = sb.write_and_pay(date="2020-01-02")  # paid +1, back-dated: not among the newest
    sb.delete_invoice(locked[3], finalised=True)  # all −1
    sb.delete_payment(paid_other)  # paid −1 …
    sb.pay(locked[0])  # … paid +1
    run = run_tap(cfg, first.state)
    assert any("(listed by state)" in m for m in tap_log)
    assert set(run.live("invoices")) == {paid_old, new, paid_other, locked[0]}
    assert run.tombstones("invoices") == {locked[3]}
    assert apply(table, run) == truth(sb)


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_an_edit_that_keeps_the_state_arrives_through_the_audit(invoiz_sandbox):
    """An edit of a paid invoice that no state or count reveals arrives within full_scan_every runs."""
    sb = invoiz_sandbox
    every = 4
    cfg, first, table = setup_run(sb, full_scan_every=every)
    paid = ids_in(sb, "paid")[123]
    sb.set_raw_fields("invoice", paid, {"title": "Nachträglich geändert"})
    state, seen_in = first.state, None
    for number in range(1, every + 1):
        run = run_tap(cfg, state)
        apply(table, run)
        state = run.state
        if paid in run.ids("invoices"):
            seen_in = number
    assert seen_in is not None
    assert table == truth(sb)


@pytest.mark.parametrize("variant", ["no_meta_filter", "locked_includes_dunned", "filter_ignored"])
def test_every_variant_of_the_filters_stays_exact(invoiz_sandbox_factory, tap_log, variant):
    sb = invoiz_sandbox_factory(variants=[variant], **SANDBOX)
    cfg, first, table = setup_run(sb)
    changed = _open_paid(sb)[0] | _storno_of_paid(sb)[0] | _write_and_pay(sb)[0]
    deleted = _finalised_deleted(sb)[1]
    tap_log.clear()
    run = run_tap(cfg, first.state)
    assert set(run.live("invoices")) == changed
    assert run.tombstones("invoices") == deleted
    assert apply(table, run) == truth(sb)
    assert not any("(listed by state)" in m for m in tap_log)
    warnings = [m for m in tap_log if "listing by state is off for this run" in m]
    if variant == "no_meta_filter":
        assert warnings == []  # without counts the tap never tries; it says why at INFO
        assert any("listing every invoice (no counts from an earlier run)" in m for m in tap_log)
    else:
        assert len(warnings) == 1, warnings  # said once


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_contacts_of_new_invoices_and_changed_emails_arrive_in_the_same_run(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=PAGE)
    first = run_tap(cfg)
    contact = sb.create_contact(kind="company", companyName="Neukunde GmbH", email="rechnung@neukunde.de")
    invoice = sb.write_and_pay(customer_id=contact)
    old = sb.contact_ids()[7]
    sb.set_contact_email(old, "neu@example.de")
    run = run_tap(cfg, first.state)
    assert any("(listed by state)" in m for m in tap_log)
    assert set(run.live("invoices")) == {invoice}
    assert run.live("invoices")[invoice]["customer_id"] == contact
    assert {c["id"]: c["email"] for c in run.records("contacts")} == {
        contact: "rechnung@neukunde.de",
        old: "neu@example.de",
    }


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_invoice_payments_follow_invoices_listed_by_state(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=PAGE)
    first = run_tap(cfg, payments=True)
    locked = ids_in(sb, "locked")[0]
    sb.pay(locked)
    run = run_tap(cfg, first.state, payments=True)
    assert any("(listed by state)" in m for m in tap_log)
    assert set(run.live("invoices")) == {locked}
    assert {p["invoice_id"] for p in run.records("invoice_payments")} == {locked}
    # selecting invoice_payments later needs every invoice once: that run lists everything
    tap_log.clear()
    other = {**cfg, "account": "ohne-zahlungen"}
    plain = run_tap(other)
    backfill = run_tap(other, plain.state, payments=True)
    assert any("invoice_payments needs every invoice once" in m for m in tap_log)
    assert len({p["invoice_id"] for p in backfill.records("invoice_payments")}) > INVOICES // 2


def test_state_codes_round_trip_and_the_cost_formula():
    codes = {100001 + i: 1 + i % 6 for i in range(1000)}
    assert listing.decode_states(listing.encode_states(codes, codes), codes) == codes
    with pytest.raises(ValueError):
        listing.decode_states(listing.encode_states(codes, codes), list(codes)[:-1])
    with pytest.raises(ValueError):
        listing.decode_states(None, codes)
    assert [len(listing.audit_pages(10, 4, run)) for run in range(8)] == [2, 3, 2, 3] * 2
    assert sorted(p for run in range(4) for p in listing.audit_pages(10, 4, run)) == list(range(10))
    counts = {
        "all": 100_000,
        "draft": 500,
        "locked": 5000,
        "partiallyPaid": 3100,
        "paid": 80_400,
        "dunned": 6800,
        "cancelled": 4200,
    }
    assert listing.estimated_requests(counts, 500, 100) == (1 + 10 + 7 + 14 + 2, 200)
    meta = {"count": 3, "filter": {k: {"count": v} for k, v in counts.items()}}
    assert listing.parse_counts(meta) == counts
    assert listing.parse_counts({"count": 3}) is None
    assert listing.parse_counts({"filter": {**meta["filter"], "paid": {"count": "viele"}}}) is None
    assert listing.parse_counts({"filter": {**meta["filter"], "paid": {"count": 1}}}) is None  # sum ≠ all


RANDOM_ACTIONS = (
    "write_and_pay",
    "pay",
    "partly_pay",
    "delete_payment",
    "dun",
    "cancel_open",
    "cancel_paid",
    "delete_finalised",
    "create",
    "edit_draft",
    "lock_draft",
    "delete_draft",
    "backdated",
)


def _random_change(sb, rng) -> None:
    action = rng.choice(RANDOM_ACTIONS)
    pick = lambda *states: rng.choice([i for s in states for i in ids_in(sb, s)] or [None])  # noqa: E731
    try:
        if action == "write_and_pay":
            sb.write_and_pay(customer_id=rng.choice(sb.contact_ids()))
        elif action == "backdated":
            sb.create_invoice(
                state=rng.choice(["paid", "cancelled", "locked", "dunned"]),
                date=f"20{rng.randint(18, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            )
        elif action == "pay":
            sb.pay(pick("locked", "partiallyPaid", "dunned"))
        elif action == "partly_pay":
            sb.partly_pay(pick("locked", "partiallyPaid", "dunned"))
        elif action == "delete_payment":
            sb.delete_payment(pick("paid", "partiallyPaid"))
        elif action == "dun":
            sb.dun(pick("locked", "partiallyPaid", "dunned"))
        elif action == "cancel_open":
            sb.cancel(pick("locked", "partiallyPaid", "dunned"))
        elif action == "cancel_paid":
            sb.cancel(pick("paid"))
        elif action == "delete_finalised":
            sb.delete_invoice(pick("locked", "dunned"), finalised=True)
        elif action == "create":
            sb.create_invoice(state=rng.choice(["draft", "locked", "partiallyPaid", "dunned"]))
        elif action == "edit_draft":
            sb.update_invoice(pick("draft"), title=f"Entwurf {rng.random():.6f}")
        elif action == "lock_draft":
            sb.lock_invoice(pick("draft"))
        elif action == "delete_draft":
            sb.delete_invoice(pick("draft"))
    except Exception as exc:  # a refused action (nothing of that state left) is no change
        if type(exc).__name__ not in ("SandboxError", "NotFound"):
            raise


@pytest.mark.slow
@pytest.mark.invoiz_sandbox(invoices=800, contacts=60)
@pytest.mark.parametrize("with_start_date", [False, True], ids=["all invoices", "start_date"])
def test_randomised_differential_many_runs_of_random_changes(invoiz_sandbox, tap_log, with_start_date):
    """After every run the emitted history, applied to a table, equals the sandbox — a missed change fails. With
    start_date, a third of the invoices are before it: listed and counted by invoiz, never emitted."""
    sb = invoiz_sandbox
    rng = random.Random(20261130)
    start_date = date_of_a_third(sb) if with_start_date else None
    cfg, first, table = setup_run(sb, full_scan_every=10, page_size=20, start_date=start_date)
    state = first.state
    for _ in range(30):
        for _ in range(rng.choice([0, 1, 2, 3, 6])):
            _random_change(sb, rng)
        run = run_tap(cfg, state)
        state = run.state
        assert apply(table, run) == truth(sb, start_date=start_date)
    assert sum("(listed by state)" in m for m in tap_log) >= 25  # the runs really listed by state


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_with_start_date_a_run_without_changes_costs_what_one_without_start_date_costs(invoiz_sandbox, tap_log):
    """The invoices before start_date are counted by invoiz: the state keeps their ids and states (never emitting
    them), so the counts still add up and the run lists only the open states."""
    sb = invoiz_sandbox
    start_date = date_of_a_third(sb)
    old = before(sb, start_date)
    cfg, first, table = setup_run(sb, full_scan_every=1000, start_date=start_date)
    assert set(first.live("invoices")) == set(sb.invoice_ids()) - old
    entry = first.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert entry["start_date"] == start_date and set(ledger.decode_outside(entry["outside"])) == old
    quiet = run_tap(cfg, first.state)
    assert quiet.records("invoices") == [] and any("(listed by state)" in m for m in tap_log)
    assert sb.requests["invoice_list"] == open_pages(sb) and sb.requests["invoice_detail"] == 0
    # changes before start_date are not emitted, and the counts still add up: listed by state, no fallback
    old_open = sorted(i for i in old if sb.invoice_row(i)["state"] in ("locked", "dunned"))
    sb.pay(old_open[0])
    sb.delete_invoice(old_open[1], finalised=True)
    changed, deleted = _open_paid(sb)[0], _finalised_deleted(sb)[1]
    tap_log.clear()
    run = run_tap(cfg, quiet.state)
    assert any("(listed by state)" in m for m in tap_log)
    assert not any("listing by state is off" in m for m in tap_log)
    assert set(run.live("invoices")) == changed - old and run.tombstones("invoices") == deleted - old
    assert apply(table, run) == truth(sb, start_date=start_date)
    # start_date removed: the invoices before it come in scope, so that run lists every invoice and sends them
    tap_log.clear()
    widened = run_tap({k: v for k, v in cfg.items() if k != "start_date"}, run.state)
    assert any("listing every invoice (start_date differs from the last run's)" in m for m in tap_log)
    assert set(widened.live("invoices")) == before(sb, start_date)


def test_small_accounts_list_every_invoice(invoiz_sandbox_factory, tap_log):
    """Listing by state only when a run without changes is expected to cost less: 60 invoices are one page."""
    sb = invoiz_sandbox_factory(invoices=60, contacts=10)
    cfg, first, _ = setup_run(sb, page_size=100)
    quiet = run_tap(cfg, first.state)
    assert quiet.records("invoices") == [] and sb.requests["invoice_list"] == 1
    assert any("listing by state would not save requests (4.0 vs 1 per run without changes)" in m for m in tap_log)


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_invoices_created_while_the_run_lists_make_it_fall_back_and_stay_exact(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg, first, table = setup_run(sb, full_scan_every=1000)
    sb.pay(ids_in(sb, "locked")[0])
    sb.fault("page_shift", after_page=1, insert=3)  # after the first list answer, 3 new invoices appear
    run = run_tap(cfg, first.state)
    assert sum("listing by state is off for this run: invoices changed during the run" in m for m in tap_log) == 1
    assert apply(table, run) == truth(sb)
    tap_log.clear()
    quiet = run_tap(cfg, run.state)
    assert quiet.records("invoices") == [] and any("(listed by state)" in m for m in tap_log)


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_when_it_lists_every_invoice_and_says_why(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    cfg, first, table = setup_run(sb)
    # a state from before listing by state (fingerprints only): one full listing, then by state
    entry = first.state["bookmarks"]["invoices"]["accounts"]["test"]
    old = copy.deepcopy(first.state)
    for key in ("states", "counts", "runs"):
        old["bookmarks"]["invoices"]["accounts"]["test"].pop(key)
    upgraded = run_tap(cfg, old)
    assert upgraded.records("invoices") == []
    assert any("listing every invoice (no counts from an earlier run)" in m for m in tap_log)
    assert upgraded.state["bookmarks"]["invoices"]["accounts"]["test"]["states"] == entry["states"]
    tap_log.clear()
    run_tap(cfg, upgraded.state)
    assert any("(listed by state)" in m for m in tap_log)
    # another start_date than the last run's: the invoices before it are not known yet
    tap_log.clear()
    dated = run_tap({**cfg, "start_date": date_of_a_third(sb)}, upgraded.state)
    assert any("listing every invoice (start_date differs from the last run's)" in m for m in tap_log)
    assert dated.records("invoices") == []  # nothing new in scope; the earlier ones stay (no tombstones)
    # an invoice in a state the tap does not know
    tap_log.clear()
    sb.set_raw_fields("invoice", ids_in(sb, "paid")[0], {"state": "archived"})  # counts and filters unchanged
    odd = run_tap({**cfg, "full_scan_every": 1}, upgraded.state)  # (by state only the audit would see it)
    assert len(odd.records("invoices")) == 1
    tap_log.clear()
    run_tap(cfg, odd.state)
    assert any("listing every invoice (invoices in a state the tap does not list by state)" in m for m in tap_log)


@pytest.mark.invoiz_sandbox(**SANDBOX)
def test_a_full_refresh_killed_midway_is_completed_by_a_full_listing(invoiz_sandbox, tap_log, monkeypatch):
    import tap_invoiz.sync as tap_state

    sb = invoiz_sandbox
    monkeypatch.setattr(tap_state, "STATE_EVERY", 100)
    cfg = sandbox_config(sb, page_size=PAGE)
    first = run_tap(cfg, contacts=False)
    midway = next(
        s
        for s in first.states
        if s["bookmarks"].get("invoices", {}).get("accounts", {}).get("test", {}).get("full_refresh_in_progress")
    )  # as if the run had been killed after this STATE message
    tap_log.clear()
    rest = run_tap(cfg, midway, contacts=False)
    assert any("listing every invoice (a full refresh of this account is not complete yet)" in m for m in tap_log)
    committed = set(fingerprint.decode(midway["bookmarks"]["invoices"]["accounts"]["test"]["fingerprints"]))
    assert set(rest.live("invoices")) == set(sb.invoice_ids()) - committed  # the rest of the full refresh
    tap_log.clear()
    run_tap(cfg, rest.state, contacts=False)
    assert any("(listed by state)" in m for m in tap_log)
