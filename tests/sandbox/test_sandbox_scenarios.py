"""Scenario control: every action changes list and detail exactly as invoiz would."""

from __future__ import annotations

import datetime as dt

import pytest
from sandbox_helpers import ISO_DATETIME, Client

from invoiz_sandbox import NotFound, SandboxError


def _first(sb, state):
    return next(i["id"] for i in sb.invoices() if i["state"] == state)


def _detail(c, iid):
    return c.ok(f"invoice/{iid}")["data"]["invoice"]


def _row(c, iid, **params):
    return next(r for r in c.scan("invoice", limit=100, **params) if r["id"] == iid)


# ------------------------------------------------------------------------------------------ invoices
def test_create_invoice_default_is_locked_today(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    before = c.ok("invoice")["meta"]
    cid = sb.contact_ids()[3]
    iid = sb.create_invoice(customer_id=cid, amount=119.0)
    after = c.ok("invoice")["meta"]
    assert after["count"] == before["count"] + 1
    assert after["filter"]["locked"]["count"] == before["filter"]["locked"]["count"] + 1
    inv = _detail(c, iid)
    assert inv["state"] == "locked" and inv["totalGross"] == 119.0 and inv["totalNet"] == 100.0
    assert inv["outstandingAmount"] == 119.0 and inv["customerId"] == cid
    assert inv["date"] == "2026-11-01T00:00:00.000Z" and inv["lockedAt"].startswith("2026-11-01T")
    assert [h["state"] for h in inv["history"]] == ["draft", "locked"]
    assert int(inv["number"]) == max(int(r["number"]) for r in c.scan("invoice") if r["number"])
    assert inv["customerData"]["name"] == sb.contact(cid)["name"]
    assert _row(c, iid) == {k: inv[k] for k in _row(c, iid)}


def test_create_back_dated_invoice_sorts_by_its_date(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.create_invoice(date="2026-08-03", amount=50)
    inv = _detail(c, iid)
    assert inv["date"] == "2026-08-03T00:00:00.000Z" and inv["lockedAt"].startswith("2026-11-01")
    rows = c.scan("invoice", orderBy="date")
    pos = [r["id"] for r in rows].index(iid)
    assert rows[pos - 1]["date"] <= inv["date"] <= rows[pos + 1]["date"]
    assert pos < len(rows) - 5  # not at the end although it has the highest id
    assert iid == max(sb.invoice_ids())


@pytest.mark.parametrize("state", ["draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled"])
def test_create_invoice_in_each_state(invoiz_sandbox, state):
    sb = invoiz_sandbox
    iid = sb.create_invoice(state=state, amount=238.0)
    inv = sb.invoice(iid)
    assert inv["state"] == state
    assert (inv["number"] is None) == (state == "draft")
    expected = {
        "draft": 238.0,
        "locked": 238.0,
        "partiallyPaid": 119.0,
        "paid": 0.0,
        "dunned": 238.0,
        "cancelled": 0.0,
    }[state]
    assert inv["outstandingAmount"] == expected
    assert Client(sb).ok("invoice", filter=state, limit=500)["meta"]["count"] >= 1


def test_pay_full_amount(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = _first(sb, "locked")
    gross = sb.invoice(iid)["totalGross"]
    paid_before = c.ok("invoice")["meta"]["filter"]["paid"]["count"]
    pid = sb.pay(iid)
    inv = _detail(c, iid)
    assert inv["state"] == "paid" and inv["outstandingAmount"] == 0
    assert inv["payments"][-1] == {
        "id": pid,
        "date": "2026-11-01T00:00:00.000Z",
        "amount": gross,
        "type": "payment",
        "notes": "",
        "invoiceId": iid,
        "cancellationPaymentId": None,
        "financeApiBankTransactionId": None,
    }
    assert inv["history"][-1]["state"] == "paid" and inv["history"][-1]["date"].startswith("2026-11-01T")
    assert inv["paidDate"] == "2026-11-01T00:00:00.000Z"
    row = _row(c, iid)
    assert row["state"] == "paid" and row["outstandingAmount"] == 0
    assert c.ok("invoice")["meta"]["filter"]["paid"]["count"] == paid_before + 1
    with pytest.raises(SandboxError):
        sb.pay(iid)  # nothing left to pay


def test_partial_payments_then_full(invoiz_sandbox):
    sb = invoiz_sandbox
    iid = sb.create_invoice(amount=100.0)
    sb.partly_pay(iid, 30)
    inv = sb.invoice(iid)
    assert inv["state"] == "partiallyPaid" and inv["outstandingAmount"] == 70.0
    assert inv["payments"][-1]["type"] == "partial" and inv["payments"][-1]["amount"] == 30.0
    n_hist = len(inv["history"])
    sb.partly_pay(iid, 20)  # state unchanged → no new history entry
    inv = sb.invoice(iid)
    assert inv["outstandingAmount"] == 50.0 and len(inv["history"]) == n_hist
    with pytest.raises(SandboxError):
        sb.partly_pay(iid, 50)  # not partial any more
    with pytest.raises(SandboxError):
        sb.pay(iid, 60)  # more than outstanding
    sb.pay(iid)
    inv = sb.invoice(iid)
    assert inv["state"] == "paid" and [p["amount"] for p in inv["payments"]] == [30.0, 20.0, 50.0]


def test_revert_payment(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.create_invoice(amount=80.0, state="paid")
    pid = sb.invoice(iid)["payments"][-1]["id"]
    assert sb.revert_payment(iid) == pid
    inv = _detail(c, iid)
    assert inv["state"] == "locked" and inv["outstandingAmount"] == 80.0 and inv["paidDate"] is None
    p = inv["payments"][-1]
    assert p["id"] == pid and isinstance(p["cancellationPaymentId"], int)
    assert inv["history"][-1]["state"] == "locked"
    assert _row(c, iid)["state"] == "locked"
    with pytest.raises(NotFound):
        sb.revert_payment(iid)  # no active payment left
    iid2 = sb.create_invoice(amount=80.0)
    sb.partly_pay(iid2, 10)
    sb.partly_pay(iid2, 20)
    first = sb.invoice(iid2)["payments"][0]["id"]
    sb.revert_payment(iid2, payment_id=first)
    assert sb.invoice(iid2)["outstandingAmount"] == 60.0 and sb.invoice(iid2)["state"] == "partiallyPaid"


def test_dun_escalates(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.create_invoice(amount=10, date="2026-09-01")
    sb.dun(iid)
    inv = _detail(c, iid)
    assert inv["state"] == "dunned"
    assert inv["metaData"]["currentDunning"] == {"date": "2026-11-01T00:00:00.000Z", "label": "Zahlungserinnerung"}
    assert inv["metaData"]["nextDunning"]["dunningLevel"] == "firstReminder"
    assert inv["history"][-1]["state"] == "dunned"
    sb.dun(iid)
    assert sb.invoice(iid)["metaData"]["currentDunning"]["label"] == "1. Mahnung"
    assert _row(c, iid, filter="dunned")["metaData"]["nextDunning"]["dunningLevel"] == "secondReminder"
    sb.partly_pay(iid, 4)
    assert sb.invoice(iid)["state"] == "dunned" and sb.invoice(iid)["outstandingAmount"] == 6.0
    sb.pay(iid)
    inv = sb.invoice(iid)
    assert inv["state"] == "paid" and inv["metaData"]["nextDunning"] == {}
    with pytest.raises(SandboxError):
        sb.dun(iid)


def test_cancel_sets_cancellation_reference(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.create_invoice(amount=59.5)
    cancel_id = sb.cancel(iid)
    inv = _detail(c, iid)
    assert inv["state"] == "cancelled" and inv["outstandingAmount"] == 0
    canc = inv["metaData"]["cancellation"]
    assert canc["id"] == cancel_id and canc["number"].startswith("ST-")
    assert canc["date"] == "2026-11-01T00:00:00.000Z"
    assert canc["totalNet"] == inv["totalNet"] and canc["totalGross"] == 59.5
    assert inv["history"][-1]["state"] == "cancelled"
    assert _row(c, iid, filter="cancelled")["metaData"]["cancellation"] == canc
    with pytest.raises(SandboxError):
        sb.cancel(iid)
    with pytest.raises(SandboxError):
        sb.cancel(sb.create_invoice(state="draft"))  # drafts are deleted, not cancelled


def test_delete_draft_only(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    draft = sb.create_invoice(state="draft")
    count = c.ok("invoice")["meta"]["count"]
    sb.delete_invoice(draft)
    assert c.ok("invoice")["meta"]["count"] == count - 1
    r = c.get(f"invoice/{draft}")
    assert r.status_code == 404 and r.json()["meta"]["id"][0]["code"] == "NOT_FOUND"
    assert draft not in sb.invoice_ids()
    assert draft not in [r["id"] for r in c.scan("invoice", limit=100)]
    with pytest.raises(SandboxError) as e:
        sb.delete_invoice(_first(sb, "paid"))
    assert e.value.code == "NOT_ALLOWED"


def test_lock_and_update_draft(invoiz_sandbox):
    sb = invoiz_sandbox
    draft = sb.create_invoice(state="draft", amount=10)
    sb.update_invoice(draft, title="Angebot Größenänderung", amount=20, date="2026-10-15")
    inv = sb.invoice(draft)
    assert inv["title"] == "Angebot Größenänderung" and inv["totalGross"] == 20.0
    assert inv["date"] == "2026-10-15T00:00:00.000Z" and inv["number"] is None
    sb.lock_invoice(draft)
    inv = sb.invoice(draft)
    assert inv["state"] == "locked" and inv["number"] and ISO_DATETIME.match(inv["lockedAt"])
    with pytest.raises(SandboxError):
        sb.update_invoice(draft, title="x")  # finalised invoices are immutable


# ------------------------------------------------------------------------------------------ contacts
def test_set_contact_email(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    cid = sb.contact_ids()[0]
    sb.set_contact_email(cid, " Neu.Adresse@Example.DE ")
    assert c.ok(f"customer/{cid}")["data"]["email"] == " Neu.Adresse@Example.DE "
    row = next(r for r in c.scan("customer") if r["id"] == cid)
    assert row["email"] == " Neu.Adresse@Example.DE "
    sb.set_contact_email(cid, None)
    assert c.ok(f"customer/{cid}")["data"]["email"] is None


def test_contact_change_does_not_touch_invoice_snapshots(invoiz_sandbox):
    sb = invoiz_sandbox
    inv = next(sb.invoices())
    snap = inv["customerData"]
    sb.update_contact(inv["customerId"], lastName="Umbenannt", companyName="Umbenannt GmbH")
    assert sb.invoice(inv["id"])["customerData"] == snap


def test_create_update_delete_contact(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    n = c.ok("customer")["meta"]["count"]
    cid = sb.create_contact(
        kind="company",
        companyName="Bäckerei Groß & Söhne KG",
        email="info@baeckerei-gross.de",
        street="Schloßstraße 1",
        zipCode="01067",
        city="Dresden",
    )
    assert c.ok("customer")["meta"]["count"] == n + 1
    row = c.ok(f"customer/{cid}")["data"]
    assert row["name"] == "Bäckerei Groß & Söhne KG" and row["kind"] == "company"
    assert row["address"] == {"street": "Schloßstraße 1", "zipCode": "01067", "city": "Dresden", "countryIso": "DE"}
    assert isinstance(row["number"], str)
    pid = sb.create_contact(first_name="Jürgen", last_name="Weiß", email=None)
    assert sb.contact(pid)["name"] == "Jürgen Weiß" and sb.contact(pid)["kind"] == "person"
    sb.update_contact(pid, phone1="030 1234567", address={"city": "Köln"}, last_name="Weiss")
    row = c.ok(f"customer/{pid}")["data"]
    assert row["phone1"] == "030 1234567" and row["address"]["city"] == "Köln" and row["name"] == "Jürgen Weiss"
    iid = sb.create_invoice(customer_id=pid, amount=10)
    assert sb.invoice(iid)["customerData"]["name"] == "Jürgen Weiss"
    sb.delete_contact(pid)
    assert c.get(f"customer/{pid}").status_code == 404
    assert pid not in [r["id"] for r in c.scan("customer")]
    assert c.ok("customer")["meta"]["count"] == n + 1
    assert sb.invoice(iid)["customerId"] == pid  # invoices keep their snapshot
    with pytest.raises(NotFound):
        sb.update_contact(pid, email="x@y.de")


# ------------------------------------------------------------------------------------------ clock
def test_advance_clock(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.create_invoice(amount=10, due_days=14)
    before = c.ok("invoice")["meta"]["filter"]["overdue"]["count"]
    assert iid not in [r["id"] for r in c.scan("invoice", filter="overdue")]
    sb.advance_clock(15)
    assert sb.today == dt.date(2026, 11, 16)
    assert iid in [r["id"] for r in c.scan("invoice", filter="overdue")]
    assert c.ok("invoice")["meta"]["filter"]["overdue"]["count"] > before
    sb.pay(iid)
    assert sb.invoice(iid)["payments"][-1]["date"] == "2026-11-16T00:00:00.000Z"
    assert sb.invoice(iid)["history"][-1]["date"].startswith("2026-11-16T")


# ------------------------------------------------------------------------------------------ admin endpoint
def test_admin_endpoint_runs_every_action(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)

    def admin(action, **args):
        r = c.admin(action, **args)
        assert r.status_code == 200, (action, r.text)
        return r.json()["result"]

    iid = admin("create_invoice", amount=100, date="2026-07-01", state="locked")
    assert isinstance(iid, int) and sb.invoice(iid)["date"].startswith("2026-07-01")
    admin("partly_pay", invoice_id=iid, amount=40)
    assert sb.invoice(iid)["state"] == "partiallyPaid"
    admin("dun", invoice_id=iid)
    assert sb.invoice(iid)["state"] == "dunned"
    admin("pay", invoice_id=iid)
    assert sb.invoice(iid)["state"] == "paid"
    admin("revert_payment", invoice_id=iid)
    assert sb.invoice(iid)["outstandingAmount"] == 60.0
    admin("cancel", invoice_id=iid)
    assert sb.invoice(iid)["state"] == "cancelled"
    draft = admin("create_invoice", state="draft")
    admin("lock_invoice", invoice_id=draft)
    draft2 = admin("create_invoice", state="draft")
    admin("update_invoice", invoice_id=draft2, title="geändert")
    admin("delete_invoice", invoice_id=draft2)
    assert c.get(f"invoice/{draft2}").status_code == 404
    cid = admin("create_contact", kind="person", firstName="Ärmel", lastName="Öl", email="a@b.de")
    admin("update_contact", contact_id=cid, city="Gießen")
    admin("set_contact_email", contact_id=cid, email=None)
    assert sb.contact(cid)["email"] is None and sb.contact(cid)["address"]["city"] == "Gießen"
    admin("delete_contact", contact_id=cid)
    assert admin("advance_clock", days=2) == "2026-11-03"
    assert admin("invoice", invoice_id=iid)["state"] == "cancelled"
    assert iid in admin("invoice_ids")
    # refusals use the invoiz error shape
    r = c.admin("delete_invoice", invoice_id=iid)
    assert r.status_code == 400 and r.json()["meta"]["state"][0]["code"] == "NOT_ALLOWED"
    r = c.admin("pay", invoice_id=1)
    assert r.status_code == 404 and r.json()["meta"]["id"][0]["code"] == "NOT_FOUND"
    assert c.admin("no_such_action").status_code == 404
    assert c.admin("pay", bogus=1).status_code == 400


def test_request_counters(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    c.ok("invoice")
    c.ok("invoice", offset=20)
    c.ok(f"invoice/{sb.invoice_ids()[0]}")
    c.ok("customer")
    c.ok(f"customer/{sb.contact_ids()[0]}")
    c.get("invoice/1")
    assert {
        k: sb.requests[k] for k in ("token", "invoice_list", "invoice_detail", "customer_list", "customer_detail")
    } == {"token": 1, "invoice_list": 2, "invoice_detail": 2, "customer_list": 1, "customer_detail": 1}
    stats = c.s.get(sb.base_url + "/_sandbox/stats", timeout=5).json()
    assert stats["requests"]["invoice_list"] == 2 and stats["requests"]["admin"] == 1
    sb.reset_counters()
    assert sb.requests["invoice_list"] == 0 and sum(sb.requests.values()) == 0
    c.ok("invoice")
    c.admin("reset_counters")
    assert sum(sb.requests.values()) == 0  # the reset request itself was counted first


def test_set_today_issue_token_and_set_credentials(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    assert c.admin("set_today", today="2027-01-31").json()["result"] == "2027-01-31"
    iid = sb.create_invoice(amount=5)
    assert sb.invoice(iid)["date"].startswith("2027-01-31")
    tok = c.admin("issue_token").json()["result"]
    r = c.s.get(sb.api_url + "customer", headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert r.status_code == 200
    sb.set_credentials(api_key="neu", api_key_secret="geheim", installation_id="inst-2")
    old = c.s.post(
        sb.api_url + "auth/token",
        auth=("sandbox-key", "sandbox-secret"),
        json={"installationId": "sandbox-installation"},
        timeout=5,
    )
    assert old.status_code == 401
    new = c.s.post(sb.api_url + "auth/token", auth=("neu", "geheim"), json={"installationId": "inst-2"}, timeout=5)
    assert new.status_code == 200 and new.json()["token"]
    assert c.get("invoice").status_code == 200  # issued tokens stay valid


def test_concurrent_scans_are_consistent(invoiz_sandbox_factory):
    import concurrent.futures

    sb = invoiz_sandbox_factory(invoices=300)
    truth = [r["id"] for r in Client(sb).scan("invoice", limit=25, orderBy="date")]

    def scan(_):
        return [r["id"] for r in Client(sb).scan("invoice", limit=25, orderBy="date")]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(scan, range(4)))
    assert all(r == truth for r in results)


def test_pay_with_a_date_sets_paid_date(invoiz_sandbox):
    sb = invoiz_sandbox
    iid = sb.create_invoice(amount=10, date="2026-10-01")
    sb.pay(iid, date="2026-10-20")
    inv = sb.invoice(iid)
    assert inv["payments"][-1]["date"] == "2026-10-20T00:00:00.000Z"
    assert inv["paidDate"] == "2026-10-20T00:00:00.000Z"
