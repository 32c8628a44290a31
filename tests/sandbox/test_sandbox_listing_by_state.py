"""Listing by state: meta.filter counts stay exact through every change kind a sync must see (docs/invoiz-api.md §6.1),
and the realistic state mix."""

from __future__ import annotations

import collections

import pytest
from sandbox_helpers import Client

from invoiz_sandbox import Sandbox
from invoiz_sandbox.data import STATES, Dataset, SandboxError

STATE_FILTERS = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")


def _counts(c):
    return {k: v["count"] for k, v in c.ok("invoice")["meta"]["filter"].items()}


def _truth(c):
    rows = c.scan("invoice", limit=500)
    return collections.Counter(r["state"] for r in rows), len(rows)


def _first(sb, state):
    return next(i for i in sb.invoice_ids() if sb.invoice_row(i)["state"] == state)


def _assert_counts_exact(c):
    counts = _counts(c)
    states, total = _truth(c)
    assert counts["all"] == total == sum(counts[s] for s in STATE_FILTERS)
    for s in STATE_FILTERS:
        assert counts[s] == states[s], s
        page = c.ok("invoice", filter=s, limit=500)
        assert page["meta"]["count"] == counts[s] and {r["state"] for r in page["data"]} <= {s}


def test_change_kinds_keep_meta_filter_exact(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    before = _counts(c)
    new = sb.write_and_pay()  # written and paid between two runs
    assert sb.invoice_row(new)["state"] == "paid"
    paid = _first(sb, "paid")
    sb.delete_payment(paid)  # paid → locked / partiallyPaid
    assert sb.invoice_row(paid)["state"] in ("locked", "partiallyPaid")
    storno = [i for i in sb.invoice_ids() if sb.invoice_row(i)["state"] == "paid"][1]
    sb.cancel(storno)  # paid → cancelled
    locked = _first(sb, "locked")
    sb.dun(locked)  # open → dunned
    gone = _first(sb, "locked")
    sb.delete_invoice(gone, finalised=True)  # a finalised invoice deleted
    after = _counts(c)
    assert after["all"] == before["all"]  # one written, one deleted
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["dunned"] == before["dunned"] + 1
    assert c.get(f"invoice/{gone}").status_code == 404
    _assert_counts_exact(c)


def test_finalised_delete_only_for_unpaid_invoices(invoiz_sandbox):
    sb = invoiz_sandbox
    with pytest.raises(SandboxError):
        sb.delete_invoice(_first(sb, "locked"))  # without finalised=True: drafts only
    for state in ("paid", "partiallyPaid", "cancelled"):
        with pytest.raises(SandboxError):
            sb.delete_invoice(_first(sb, state), finalised=True)
    dunned = _first(sb, "dunned")
    assert sb.delete_invoice(dunned, finalised=True) == dunned
    assert dunned not in sb.invoice_ids()


def test_admin_actions_for_change_kinds(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    r = c.admin("write_and_pay")
    assert r.status_code == 200 and sb.invoice_row(r.json()["result"])["state"] == "paid"
    paid = _first(sb, "paid")
    assert c.admin("delete_payment", invoice_id=paid).status_code == 200
    locked = _first(sb, "locked")
    assert c.admin("delete_invoice", invoice_id=locked, finalised=True).status_code == 200
    _assert_counts_exact(c)


def test_realistic_mix_by_age():
    ds = Dataset(seed=7, invoices=20000, mix="realistic")
    states = collections.Counter(STATES[s] for s in ds.state)
    assert 0.77 <= states["paid"] / ds.n <= 0.83
    assert 0.03 <= states["cancelled"] / ds.n <= 0.05
    today = ds.today.toordinal()
    old = [STATES[ds.state[i]] for i in range(ds.n) if today - ds.day[i] > 365]
    recent = [STATES[ds.state[i]] for i in range(ds.n) if today - ds.day[i] <= 14]
    assert old.count("paid") / len(old) > 0.75  # most old invoices are paid
    assert recent.count("paid") / len(recent) < 0.5  # recent ones are mostly open or drafts
    default = collections.Counter(STATES[s] for s in Dataset(seed=7, invoices=20000).state)
    assert default["paid"] / 20000 > 0.9  # the default mix is unchanged
    with pytest.raises(ValueError):
        Dataset(invoices=10, mix="bogus")


def test_realistic_mix_over_http():
    with Sandbox(seed=3, invoices=600, mix="realistic", today="2026-11-01") as sb:
        c = Client(sb)
        _assert_counts_exact(c)
        assert sb.stats()["mix"] == "realistic"
