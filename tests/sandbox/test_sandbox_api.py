"""The sandbox follows the reconstructed invoiz contract (docs/invoiz-api.md)."""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from sandbox_helpers import DATE_ONLY, ISO_DATETIME, ISO_MIDNIGHT, Client, get_token

from invoiz_sandbox import DEMO_CREDENTIALS, Sandbox
from tap_invoiz.diagnose.contract import CONTACT_EXPECTED, INVOICE_DETAIL_EXPECTED, INVOICE_LIST_EXPECTED

# what the tap's diagnosis expects of invoiz, from the tap's field tables (the sandbox itself does not import the tap)
INVOICE_LIST_FIELDS = set(INVOICE_LIST_EXPECTED)
INVOICE_DETAIL_FIELDS = set(INVOICE_DETAIL_EXPECTED)
STATES = {"draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled"}
TYPES = {"invoice", "depositInvoice", "closingInvoice", "recurringInvoice", "recurringInvoiceTemplate"}


# ------------------------------------------------------------------------------------------ basics
def test_public_api_and_defaults(invoiz_sandbox):
    sb = invoiz_sandbox
    assert DEMO_CREDENTIALS == {
        "api_key": "sandbox-key",
        "api_key_secret": "sandbox-secret",
        "installation_id": "sandbox-installation",
    }
    assert sb.credentials == DEMO_CREDENTIALS
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/", sb.api_url)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.app_url)
    assert len(sb.invoice_ids()) == 60
    assert sb.today.isoformat() == "2026-11-01"


def test_constructor_signature_and_context_manager():
    with Sandbox(
        seed=1, invoices=15, contacts=None, variants=(), max_page_size=500, latency_ms=0, today=None, port=0
    ) as sb:
        r = requests.get(sb.api_url + "invoice", timeout=5)
        assert r.status_code == 401
        port = sb.port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/invoice", timeout=2)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError):
        Sandbox(invoices=10, variants=["nope"])


# ------------------------------------------------------------------------------------------ auth
def test_token_with_basic_auth_and_installation_id(invoiz_sandbox):
    tok = get_token(invoiz_sandbox)
    assert isinstance(tok, str) and tok
    r = requests.get(invoiz_sandbox.api_url + "invoice", headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert r.status_code == 200


@pytest.mark.parametrize(
    "user,pw,inst",
    [
        ("sandbox-key", "wrong", "sandbox-installation"),
        ("wrong", "sandbox-secret", "sandbox-installation"),
        ("sandbox-key", "sandbox-secret", "other-installation"),
        ("sandbox-key", "sandbox-secret", None),
    ],
)
def test_wrong_credentials_get_401_with_error_shape(invoiz_sandbox, user, pw, inst):
    body = {} if inst is None else {"installationId": inst}
    r = requests.post(invoiz_sandbox.api_url + "auth/token", auth=(user, pw), json=body, timeout=5)
    assert r.status_code == 401
    j = r.json()
    assert set(j) == {"name", "message", "meta"} and isinstance(j["meta"], dict)
    assert "token" not in j


def test_token_without_basic_header_is_401(invoiz_sandbox):
    r = requests.post(invoiz_sandbox.api_url + "auth/token", json={"installationId": "sandbox-installation"}, timeout=5)
    assert r.status_code == 401
    bad = base64.b64encode(b"sandbox-key").decode()
    r = requests.post(
        invoiz_sandbox.api_url + "auth/token",
        headers={"Authorization": f"Basic {bad}"},
        json={"installationId": "sandbox-installation"},
        timeout=5,
    )
    assert r.status_code == 401


@pytest.mark.parametrize("path", ["invoice", "invoice/100001", "customer", "customer/5001"])
def test_every_call_needs_a_bearer_token(invoiz_sandbox, path):
    url = invoiz_sandbox.api_url + path
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5).status_code == 401
    tok = get_token(invoiz_sandbox)
    assert requests.get(url, headers={"Authorization": tok}, timeout=5).status_code == 401  # prefix required
    r = requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert r.status_code == 200
    assert invoiz_sandbox.requests["token"] == 1


def test_stale_token_gets_401_and_a_new_one_works(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    assert c.get("invoice").status_code == 200
    invoiz_sandbox.expire_tokens()
    r = c.get("invoice")
    assert r.status_code == 401 and set(r.json()) == {"name", "message", "meta"}
    c.token = get_token(invoiz_sandbox)
    assert c.get("invoice").status_code == 200


# ------------------------------------------------------------------------------------------ lists
def test_paginated_shape_like_the_typescript_client(invoiz_sandbox):
    """S1 tests/lib/assertPaginated.ts: meta.count is an integer, data.length <= (limit || 20)."""
    c = Client(invoiz_sandbox)
    for path in ("invoice", "customer"):
        j = c.ok(path)
        assert isinstance(j["meta"]["count"], int) and not isinstance(j["meta"]["count"], bool)
        assert len(j["data"]) <= 20
        for limit in (1, 7, 50):
            assert len(c.ok(path, limit=limit)["data"]) <= limit
    assert len(c.ok("invoice")["data"]) == 20  # default page size 20
    assert c.ok("invoice")["meta"]["count"] == 60


def test_offset_paging_returns_every_invoice_once(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    rows = c.scan("invoice", limit=7, orderBy="date")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 60
    assert sorted(ids) == sorted(invoiz_sandbox.invoice_ids())
    assert c.ok("invoice", offset=60, limit=20)["data"] == []


def test_max_page_size_caps_limit_silently(invoiz_sandbox_factory):
    sb = invoiz_sandbox_factory(invoices=120, max_page_size=50)
    c = Client(sb)
    j = c.ok("invoice", limit=9999999)
    assert len(j["data"]) == 50 and j["meta"]["count"] == 120
    sb.set_max_page_size(500)
    assert len(c.ok("invoice", limit=9999999)["data"]) == 120


def test_meta_filter_is_an_object_of_counts_and_filters_work(invoiz_sandbox_factory):
    sb = invoiz_sandbox_factory(invoices=400)
    c = Client(sb)
    j = c.ok("invoice", filter="all")
    flt = j["meta"]["filter"]
    assert set(flt) >= {"all", "draft", "locked", "partiallyPaid", "paid", "dunned", "cancelled", "overdue"}
    states = collections.Counter(r["state"] for r in c.scan("invoice", limit=100))
    for state in STATES:
        assert flt[state]["count"] == states[state], state
        page = c.ok("invoice", filter=state, limit=500)
        assert page["meta"]["count"] == states[state]
        assert {r["state"] for r in page["data"]} <= {state}
    assert flt["all"]["count"] == j["meta"]["count"] == 400
    overdue = c.ok("invoice", filter="overdue", limit=500)["data"]
    assert overdue and all(r["state"] in ("locked", "partiallyPaid", "dunned") for r in overdue)
    assert all(r["dueToDate"][:10] < sb.today.isoformat() for r in overdue)
    assert c.get("invoice", filter="bogus").status_code == 400


@pytest.mark.parametrize(
    "order_by,key",
    [
        ("date", lambda r: r["date"]),
        ("dueToDate", lambda r: r["dueToDate"]),
        ("totalNet", lambda r: r["totalNet"]),
        ("totalGross", lambda r: r["totalGross"]),
        ("customerData.name", lambda r: r["customerData"]["name"].casefold()),
        ("number", lambda r: int(r["number"] or 0)),
        ("type", lambda r: r["type"]),
    ],
)
@pytest.mark.parametrize("desc", ["false", "true"])
def test_order_by(invoiz_sandbox, order_by, key, desc):
    c = Client(invoiz_sandbox)
    rows = c.scan("invoice", limit=25, orderBy=order_by, desc=desc)
    keys = [key(r) for r in rows]
    assert keys == sorted(keys, reverse=desc == "true")
    assert len(rows) == 60


def test_bad_paging_arguments_are_400(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    for params in ({"offset": "x"}, {"limit": "0"}, {"offset": "-1"}, {"orderBy": "updatedAt"}):
        r = c.get("invoice", **params)
        assert r.status_code == 400, params
        assert set(r.json()) == {"name", "message", "meta"}


def test_search_text(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    row = next(r for r in c.scan("invoice") if r["number"])
    name = row["customerData"]["name"]
    hits = c.ok("invoice", searchText=name[:6].lower(), limit=100)["data"]
    assert any(h["id"] == row["id"] for h in hits)
    assert all(name[:6].lower() in (h["customerData"]["name"] + (h["number"] or "") + h["title"]).lower() for h in hits)
    cust = c.ok("customer", searchText="zzzzqqq")
    assert cust["meta"]["count"] == 0 and cust["data"] == []


def test_customer_list_order_and_paging(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    rows = c.scan("customer", limit=5, orderBy="name")
    assert [r["name"].casefold() for r in rows] == sorted(r["name"].casefold() for r in rows)
    assert len(rows) == len(invoiz_sandbox.contact_ids()) == c.ok("customer")["meta"]["count"]
    rows = c.scan("customer", limit=5, orderBy="number", desc="true")
    assert [r["number"] for r in rows] == sorted((r["number"] for r in rows), reverse=True)


# ------------------------------------------------------------------------------------------ row shapes
def test_invoice_list_rows_have_the_L_fields(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    for r in c.scan("invoice"):
        assert set(r) == INVOICE_LIST_FIELDS
        assert isinstance(r["id"], int) and isinstance(r["customerId"], int)
        assert r["state"] in STATES and r["type"] in TYPES
        for money in ("totalNet", "totalGross", "outstandingAmount", "cashDiscountTotal"):
            assert isinstance(r[money], float), money
        assert ISO_MIDNIGHT.match(r["date"]) and ISO_MIDNIGHT.match(r["dueToDate"])
        assert set(r["metaData"]) == {"cancellation", "currentDunning", "nextDunning"}
        assert "email" not in r["customerData"]
        if r["state"] == "draft":
            assert r["number"] in (None, "") and r["lockedAt"] is None
        else:
            assert re.fullmatch(r"\d{4,}", r["number"]) and ISO_DATETIME.match(r["lockedAt"])
        if r["state"] == "paid":
            assert r["outstandingAmount"] == 0
        if r["state"] == "cancelled":
            canc = r["metaData"]["cancellation"]
            assert set(canc) == {"id", "number", "date", "totalNet", "totalGross"}
        else:
            assert r["metaData"]["cancellation"] == {}
        if r["state"] == "dunned":
            assert r["metaData"]["currentDunning"]["label"]


def test_contact_rows_carry_every_contact_field_of_the_contract(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    rows = c.scan("customer")
    assert rows and all(set(r) >= set(CONTACT_EXPECTED) for r in rows)
    assert set(c.ok(f"customer/{rows[0]['id']}")["data"]) >= set(CONTACT_EXPECTED)


def test_invoice_detail_envelope_and_D_fields(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    for iid in invoiz_sandbox.invoice_ids()[:25]:
        j = c.ok(f"invoice/{iid}")
        assert set(j["data"]) == {"invoice", "letterElements"}
        inv = j["data"]["invoice"]
        assert set(inv) >= INVOICE_DETAIL_FIELDS
        assert "createdAt" not in inv and "updatedAt" not in inv
        assert inv == invoiz_sandbox.invoice(iid)
        row = invoiz_sandbox.invoice_row(iid)
        assert {k: inv[k] for k in row} == row
        assert inv["positions"] and all(isinstance(p["id"], int) and p["title"] for p in inv["positions"])
        assert abs(sum(p["totalNet"] for p in inv["positions"]) - inv["totalNet"]) < 0.005
        paid = sum(p["amount"] for p in inv["payments"] if not p["cancellationPaymentId"])
        if inv["state"] in ("locked", "partiallyPaid", "dunned", "paid"):
            assert abs(inv["totalGross"] - paid - inv["outstandingAmount"]) < 0.005
        for p in inv["payments"]:
            assert p["type"] in ("payment", "partial") and p["invoiceId"] == iid
        assert inv["history"][0]["state"] == "draft"
        assert all(ISO_DATETIME.match(h["date"]) for h in inv["history"])


def test_unknown_ids_are_404_with_not_found_code(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    for path in ("invoice/999", "invoice/abc", "customer/1", "customer/99999999"):
        r = c.get(path)
        assert r.status_code == 404, path
        assert r.json()["meta"]["id"][0]["code"] == "NOT_FOUND"


def test_customer_shape(invoiz_sandbox):
    c = Client(invoiz_sandbox)
    rows = c.scan("customer")
    for r in rows:
        assert isinstance(r["id"], int) and isinstance(r["number"], str) and r["kind"] in ("company", "person")
        assert set(r["address"]) == {"street", "zipCode", "city", "countryIso"}
        for k in ("email", "phone1", "phone2", "mobile", "fax", "website", "contactPersons", "name"):
            assert k in r
        if r["kind"] == "company":
            assert r["companyName"] and r["name"] == r["companyName"]
        else:
            assert r["name"] == f"{r['firstName']} {r['lastName']}" and r["companyName"] is None
        assert c.ok(f"customer/{r['id']}")["data"] == r
        assert "createdAt" not in r and "updatedAt" not in r


def test_deep_links(invoiz_sandbox):
    iid = invoiz_sandbox.invoice_ids()[0]
    for path in (f"/invoice/{iid}", f"/customer/{invoiz_sandbox.contact_ids()[0]}"):
        r = requests.get(invoiz_sandbox.app_url + path, timeout=5)
        assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]


# ------------------------------------------------------------------------------------------ dataset
def test_dataset_has_the_interesting_cases():
    sb = Sandbox(seed=7, invoices=3000, today="2026-11-01")
    invs = [sb.dataset.invoice_canonical(i) for i in range(sb.dataset.n)]
    states = collections.Counter(i["state"] for i in invs)
    assert set(states) == STATES
    assert all(i["number"] is None for i in invs if i["state"] == "draft")
    numbers = [i["number"] for i in invs if i["number"]]
    assert len(numbers) == len(set(numbers)) and any(n.startswith("0") for n in numbers)
    pp = [i for i in invs if i["state"] == "partiallyPaid"]
    assert pp and all(0 < i["outstandingAmount"] < i["totalGross"] for i in pp)
    assert any(len(i["payments"]) == 2 for i in invs if i["state"] == "paid")
    assert any(i["customerData"].get("contact", {}).get("email") for i in invs)
    backdated = [b for a, b in zip(invs, invs[1:]) if b["date"] < a["date"]]
    assert backdated
    assert all(i["metaData"]["cancellation"]["number"] for i in invs if i["state"] == "cancelled")
    assert all(i["metaData"]["nextDunning"]["dunningLevel"] for i in invs if i["state"] == "dunned")
    assert {i["type"] for i in invs} >= {"invoice", "depositInvoice", "closingInvoice"}
    contacts = list(sb.contacts())
    assert {c["kind"] for c in contacts} == {"company", "person"}
    emails = [c["email"] for c in contacts]
    assert any(e in (None, "") for e in emails)
    assert any(e and e != e.strip() for e in emails)
    assert any(e and e.strip() != e.strip().lower() for e in emails)
    norm = collections.Counter(e.strip().lower() for e in emails if e)
    assert any(n > 1 for n in norm.values())
    text = json.dumps(contacts, ensure_ascii=False)
    assert re.search("[äöüÄÖÜ]", text) and "ß" in text
    assert {c["address"]["countryIso"] for c in contacts} >= {"DE", "AT", "CH"}


def _digest_cmd(seed, n):
    return [
        sys.executable,
        "-c",
        "import hashlib,json;from invoiz_sandbox import Sandbox;"
        f"sb=Sandbox(seed={seed},invoices={n});h=hashlib.sha256();"
        "[h.update(json.dumps(x,sort_keys=True,ensure_ascii=False).encode()) for x in sb.invoices()];"
        "[h.update(json.dumps(x,sort_keys=True,ensure_ascii=False).encode()) for x in sb.contacts()];"
        "print(sb.today, h.hexdigest())",
    ]


def test_dataset_is_identical_across_processes():
    outs = set()
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        outs.add(subprocess.run(_digest_cmd(5, 300), env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1
    other = subprocess.run(_digest_cmd(6, 300), capture_output=True, text=True, check=True).stdout
    assert other not in outs


def test_clock_default_derives_from_seed_and_is_explicit_when_given():
    assert Sandbox(seed=3, invoices=10).today == Sandbox(seed=3, invoices=20).today
    assert Sandbox(seed=3, invoices=10).today != Sandbox(seed=4, invoices=10).today
    assert Sandbox(seed=3, invoices=10, today="2026-11-01").today.isoformat() == "2026-11-01"


def test_100k_starts_fast_and_sorts():
    t = time.perf_counter()
    sb = Sandbox(seed=42, invoices=100_000)
    assert time.perf_counter() - t < 5
    with sb:
        c = Client(sb)
        t = time.perf_counter()
        j = c.ok("invoice", orderBy="date", desc="true", limit=500, offset=99_800)
        assert len(j["data"]) == 200 and j["meta"]["count"] == 100_000
        assert time.perf_counter() - t < 5
        assert c.ok("customer", limit=1)["meta"]["count"] == 20_000


# ------------------------------------------------------------------------------------------ CLI & fixture
def test_cli_prints_one_line_with_url_and_credentials_and_stops_on_sigterm():
    exe = os.path.join(os.path.dirname(sys.executable), "invoiz-sandbox")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "invoiz_sandbox"]
    p = subprocess.Popen(
        cmd
        + [
            "--port",
            "0",
            "--seed",
            "9",
            "--invoices",
            "30",
            "--variant",
            "date_only",
            "--variant",
            "updated_at",
            "--max-page-size",
            "10",
            "--today",
            "2026-11-01",
            "--latency-ms",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        # one line: where, and the (public, fixed) demo credentials it accepts
        m = re.fullmatch(
            r"invoiz-sandbox listening on (http://127\.0\.0\.1:(\d+)/api/) \(web app \S+\); credentials: "
            r"api_key=sandbox-key api_key_secret=sandbox-secret installation_id=sandbox-installation\. "
            r"Ctrl-C stops it\.\n",
            line,
        )
        assert m, line
        api = m.group(1)
        r = requests.post(
            api + "auth/token",
            auth=("sandbox-key", "sandbox-secret"),
            json={"installationId": "sandbox-installation"},
            timeout=5,
        )
        tok = r.json()["token"]
        j = requests.get(
            api + "invoice", params={"limit": 100}, headers={"Authorization": f"Bearer {tok}"}, timeout=5
        ).json()
        assert len(j["data"]) == 10 and j["meta"]["count"] == 30
        assert DATE_ONLY.match(j["data"][0]["date"]) and "updatedAt" in j["data"][0]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        out, err = p.communicate(timeout=5)
        assert out == ""
        assert tok not in err and "sandbox-secret" not in err
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.invoiz_sandbox(invoices=33, seed=3, variants=["date_only"])
def test_fixture_marker_overrides(invoiz_sandbox):
    assert len(invoiz_sandbox.invoice_ids()) == 33 and invoiz_sandbox.variants == {"date_only"}


@pytest.mark.parametrize("seed,n", [(1, 12), (7, 30), (42, 60), (99, 15), (2024, 200)])
def test_small_data_sets_always_cover_states_and_email_cases(seed, n):
    """Other tests (tap, dbt, e2e) rely on these cases being present in any small sandbox."""
    sb = Sandbox(seed=seed, invoices=n)
    invs = list(sb.invoices())
    assert {i["state"] for i in invs} == STATES
    assert any(b["date"] < a["date"] for a, b in zip(invs, invs[1:]))  # a back-dated invoice
    emails = [c["email"] for c in sb.contacts()]
    assert None in emails and "" in emails
    assert any(e and e != e.strip().lower() for e in emails)  # capitals / stray spaces
    norm = [e.strip().lower() for e in emails if e]
    assert len(norm) > len(set(norm))  # a shared address
    assert any("ß" in c["name"] and re.search("[äöü]", c["name"]) for c in sb.contacts())
    c = {cid: sb.contact(cid)["email"] for cid in range(5001, 5007)}
    assert c[5001] and c[5001] == c[5001].strip() and c[5003] is None and c[5005] == ""
    assert c[5004].lower() == c[5001].lower() and c[5004] != c[5001]
    assert c[5002] != c[5002].strip().lower()
    assert sb.contact(5006)["name"] == "Jürgen Weiß"
