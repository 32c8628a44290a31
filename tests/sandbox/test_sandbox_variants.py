"""Contract variants for the ❓ points of the contract: each one changes exactly its aspect."""

from __future__ import annotations

import pytest
from sandbox_helpers import DATE_ONLY, ISO_DATETIME, ISO_MIDNIGHT, Client

from invoiz_sandbox import VARIANTS


def _both(factory, variant, **kw):
    base = factory(**kw)
    var = factory(variants=[variant], **kw)
    return Client(base), Client(var), base, var


def test_every_variant_is_documented_and_tested():
    tested = {name[len("test_variant_") :] for name in globals() if name.startswith("test_variant_")}
    assert tested == set(VARIANTS)


def test_variant_iso_country(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "iso_country")
    b, v = cb.ok("customer")["data"], cv.ok("customer")["data"]
    assert all("countryIso" in r["address"] and "isoCountry" not in r["address"] for r in b)
    assert all("isoCountry" in r["address"] and "countryIso" not in r["address"] for r in v)
    assert [r["address"]["countryIso"] for r in b] == [r["address"]["isoCountry"] for r in v]
    cid = v[0]["id"]
    assert "isoCountry" in cv.ok(f"customer/{cid}")["data"]["address"]


def test_variant_detail_flat(invoiz_sandbox_factory):
    cb, cv, base, _ = _both(invoiz_sandbox_factory, "detail_flat")
    iid = base.invoice_ids()[5]
    nested = cb.ok(f"invoice/{iid}")["data"]
    flat = cv.ok(f"invoice/{iid}")["data"]
    assert set(nested) == {"invoice", "letterElements"}
    assert flat == nested["invoice"]


def test_variant_date_only(invoiz_sandbox_factory):
    cb, cv, base, _ = _both(invoiz_sandbox_factory, "date_only")
    iid = next(i["id"] for i in base.invoices() if i["state"] == "paid")
    b, v = cb.ok(f"invoice/{iid}")["data"]["invoice"], cv.ok(f"invoice/{iid}")["data"]["invoice"]
    for k in ("date", "dueToDate", "deliveryDate", "paidDate"):
        assert ISO_MIDNIGHT.match(b[k]) and DATE_ONLY.match(v[k]) and b[k].startswith(v[k])
    assert DATE_ONLY.match(v["payments"][0]["date"])
    assert ISO_DATETIME.match(v["lockedAt"]) and v["lockedAt"] == b["lockedAt"]  # datetimes stay datetimes
    assert all(DATE_ONLY.match(r["date"]) for r in cv.ok("invoice")["data"])


def test_variant_berlin_midnight(invoiz_sandbox_factory):
    sb = invoiz_sandbox_factory(variants=["berlin_midnight"])
    summer = sb.create_invoice(date="2026-07-15", amount=10)
    winter = sb.create_invoice(date="2026-01-15", amount=10)
    c = Client(sb)
    assert c.ok(f"invoice/{summer}")["data"]["invoice"]["date"] == "2026-07-14T22:00:00.000Z"
    assert c.ok(f"invoice/{winter}")["data"]["invoice"]["date"] == "2026-01-14T23:00:00.000Z"


def test_variant_updated_at(invoiz_sandbox_factory):
    cb, cv, _, var = _both(invoiz_sandbox_factory, "updated_at")
    assert all("updatedAt" not in r for r in cb.ok("invoice")["data"] + cb.ok("customer")["data"])
    rows = cv.ok("invoice")["data"]
    assert all(ISO_DATETIME.match(r["updatedAt"]) and ISO_DATETIME.match(r["createdAt"]) for r in rows)
    assert all(r["createdAt"] <= r["updatedAt"] for r in rows)
    iid = next(r["id"] for r in rows if r["state"] == "locked")
    before = cv.ok(f"invoice/{iid}")["data"]["invoice"]["updatedAt"]
    var.pay(iid, amount=0.01)
    after = cv.ok(f"invoice/{iid}")["data"]["invoice"]["updatedAt"]
    assert after > before and after.startswith("2026-11-01")
    cust = cv.ok("customer")["data"][0]
    assert ISO_DATETIME.match(cust["updatedAt"])
    var.set_contact_email(cust["id"], "neu@example.de")
    assert cv.ok(f"customer/{cust['id']}")["data"]["updatedAt"] > cust["updatedAt"]


def test_variant_extra_fields(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "extra_fields")
    b, v = cb.ok("invoice")["data"][0], cv.ok("invoice")["data"][0]
    assert set(v) - set(b) == {"currency", "isMigrated", "customFields"}
    bc, vc = cb.ok("customer")["data"][0], cv.ok("customer")["data"][0]
    assert set(vc) - set(bc) == {"isArchived", "lastActivity"}


def test_variant_not_found_400(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "not_found_400")
    for path in ("invoice/42", "customer/42"):
        assert cb.get(path).status_code == 404
        r = cv.get(path)
        assert r.status_code == 400 and r.json()["meta"]["id"][0]["code"] == "NOT_FOUND"
        assert "NOT_FOUND" in r.text


def test_variant_draft_number_empty(invoiz_sandbox_factory):
    cb, cv, base, _ = _both(invoiz_sandbox_factory, "draft_number_empty")
    b = cb.ok("invoice", filter="draft", limit=100)["data"]
    v = cv.ok("invoice", filter="draft", limit=100)["data"]
    assert b and all(r["number"] is None for r in b) and all(r["number"] == "" for r in v)
    assert all(r["number"] for r in cv.ok("invoice", filter="paid")["data"])


def test_variant_lean_list(invoiz_sandbox_factory):
    cb, cv, base, _ = _both(invoiz_sandbox_factory, "lean_list")
    b, v = cb.ok("invoice")["data"][0], cv.ok("invoice")["data"][0]
    assert set(b) - set(v) == {"title", "lockedAt"}
    assert "lockedAt" in cv.ok(f"invoice/{v['id']}")["data"]["invoice"]


def test_variant_list_positions(invoiz_sandbox_factory):
    cb, cv, base, _ = _both(invoiz_sandbox_factory, "list_positions")
    b, v = cb.ok("invoice")["data"][0], cv.ok("invoice")["data"][0]
    assert "positions" not in b and v["positions"] == base.invoice(v["id"])["positions"]


def test_variant_no_customer_email(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "no_customer_email")
    assert all("email" in r for r in cb.ok("customer")["data"])
    assert all("email" not in r for r in cv.ok("customer")["data"])


def test_variants_switch_at_runtime_and_combine(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    iid = sb.invoice_ids()[0]
    assert "invoice" in c.ok(f"invoice/{iid}")["data"]
    r = c.admin("set_variants", variants=["detail_flat", "date_only"])
    assert r.status_code == 200 and r.json()["result"] == ["date_only", "detail_flat"]
    d = c.ok(f"invoice/{iid}")["data"]
    assert d["id"] == iid and DATE_ONLY.match(d["date"])
    assert c.admin("set_variants", variants=["bogus"]).status_code == 400
    sb.set_variants([])
    assert "invoice" in c.ok(f"invoice/{iid}")["data"]
    with pytest.raises(ValueError):
        sb.set_variants(["bogus"])


STATE_FILTERS = ("draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled")


def test_variant_no_meta_filter(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "no_meta_filter")
    assert "filter" in cb.ok("invoice")["meta"]
    for flt in ("all", "locked"):
        b, v = cb.ok("invoice", filter=flt), cv.ok("invoice", filter=flt)
        assert v["meta"] == {"count": b["meta"]["count"]} and v["data"] == b["data"]


def test_variant_locked_includes_dunned(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "locked_includes_dunned")
    v = cv.ok("invoice", filter="locked", limit=500)
    assert {r["state"] for r in v["data"]} == {"locked", "partiallyPaid", "dunned"}
    flt = cb.ok("invoice")["meta"]["filter"]
    open_count = sum(flt[s]["count"] for s in ("locked", "partiallyPaid", "dunned"))
    assert v["meta"]["count"] == v["meta"]["filter"]["locked"]["count"] == open_count == len(v["data"])
    # the other filters are unchanged
    for flt_name in ("dunned", "paid", "draft"):
        assert cv.ok("invoice", filter=flt_name, limit=500) == cb.ok("invoice", filter=flt_name, limit=500)


def test_variant_filter_ignored(invoiz_sandbox_factory):
    cb, cv, *_ = _both(invoiz_sandbox_factory, "filter_ignored")
    all_rows = cb.ok("invoice", filter="all", limit=500)
    for flt in STATE_FILTERS:
        v = cv.ok("invoice", filter=flt, limit=500)
        assert v["data"] == all_rows["data"] and v["meta"]["count"] == all_rows["meta"]["count"]
        assert v["meta"]["filter"] == cb.ok("invoice", filter=flt)["meta"]["filter"]  # true per-state counts
