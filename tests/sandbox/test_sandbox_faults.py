"""Fault switches: each one changes what a client sees, and only where it is scoped."""

from __future__ import annotations

import time

import pytest
import requests
from sandbox_helpers import Client, get_token


def test_rate_limit_429_with_retry_after_for_next_n(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("rate_limit", times=2, retry_after=3)
    for _ in range(2):
        r = c.get("invoice")
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert set(r.json()) == {"name", "message", "meta"}
    assert c.get("invoice").status_code == 200
    assert sb.requests["invoice_list"] == 3  # faulted requests are counted too


def test_fault_scope_limits_the_request_kind(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("rate_limit", scope="invoice_detail", times=1)
    assert c.get("invoice").status_code == 200
    assert c.get("customer").status_code == 200
    assert c.get(f"invoice/{sb.invoice_ids()[0]}").status_code == 429
    assert c.get(f"invoice/{sb.invoice_ids()[0]}").status_code == 200
    sb.fault("rate_limit", scope=["token"], times=1)
    r = requests.post(
        sb.api_url + "auth/token",
        auth=("sandbox-key", "sandbox-secret"),
        json={"installationId": "sandbox-installation"},
        timeout=5,
    )
    assert r.status_code == 429
    assert get_token(sb)
    with pytest.raises(ValueError):
        sb.fault("rate_limit", scope="offers")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_for_next_n(invoiz_sandbox, status):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("server_error", status=status, times=2, scope="customer_list")
    assert [c.get("customer").status_code for _ in range(3)] == [status, status, 200]


def test_server_error_rate_is_reproducible(invoiz_sandbox_factory):
    def run():
        sb = invoiz_sandbox_factory(invoices=20)
        c = Client(sb)
        sb.fault("server_error", status=503, rate=0.5, scope="invoice_list")
        return [c.get("invoice").status_code for _ in range(40)]

    a, b = run(), run()
    assert a == b
    assert 5 < a.count(503) < 35 and a.count(200) == 40 - a.count(503)


def test_slow_responses_trip_a_client_timeout(invoiz_sandbox):
    sb = invoiz_sandbox
    tok = get_token(sb)
    sb.fault("slow", seconds=0.8, times=1, scope="invoice_list")
    with pytest.raises(requests.Timeout):
        requests.get(sb.api_url + "invoice", headers={"Authorization": f"Bearer {tok}"}, timeout=0.2)
    t = time.perf_counter()
    r = requests.get(sb.api_url + "invoice", headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert r.status_code == 200 and time.perf_counter() - t < 0.5


def test_fixed_latency(invoiz_sandbox_factory):
    sb = invoiz_sandbox_factory(invoices=10, latency_ms=150)
    c = Client(sb)
    t = time.perf_counter()
    c.ok("invoice")
    assert time.perf_counter() - t >= 0.15
    sb.set_latency(0)
    sb.fault("latency", ms=120, scope="customer_detail")
    t = time.perf_counter()
    c.ok("invoice")
    assert time.perf_counter() - t < 0.1
    t = time.perf_counter()
    c.ok(f"customer/{sb.contact_ids()[0]}")
    assert time.perf_counter() - t >= 0.12


def test_token_expiry_after_n_requests(invoiz_sandbox):
    sb = invoiz_sandbox
    sb.fault("token_expiry", after_requests=2)
    c = Client(sb)
    assert [c.get("invoice").status_code for _ in range(3)] == [200, 200, 401]
    assert c.get("invoice").status_code == 401  # stays stale
    c.token = get_token(sb)
    assert [c.get("customer").status_code for _ in range(3)] == [200, 200, 401]
    sb.clear_faults()
    c.token = get_token(sb)
    assert all(c.get("invoice").status_code == 200 for _ in range(5))


def test_token_expiry_after_seconds(invoiz_sandbox):
    sb = invoiz_sandbox
    sb.fault("token_expiry", after_seconds=0.3)
    c = Client(sb)
    assert c.get("invoice").status_code == 200
    time.sleep(0.35)
    assert c.get("invoice").status_code == 401
    c.token = get_token(sb)
    assert c.get("invoice").status_code == 200


def test_malformed_json_body(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("malformed_json", times=1, scope="invoice_list")
    r = c.get("invoice")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    assert c.get("invoice").json()["meta"]["count"] == 60


@pytest.mark.parametrize("status", [502, 503])
def test_html_error_page(invoiz_sandbox, status):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("html_error", status=status, times=1)
    r = c.get("invoice")
    assert r.status_code == status and r.headers["Content-Type"].startswith("text/html")
    assert r.text.lstrip().startswith("<html")
    with pytest.raises(ValueError):
        r.json()
    assert c.get("invoice").status_code == 200


def test_connection_reset(invoiz_sandbox):
    sb = invoiz_sandbox
    tok = get_token(sb)
    sb.fault("connection_reset", times=1, scope="invoice_detail")
    url = sb.api_url + f"invoice/{sb.invoice_ids()[0]}"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=5).status_code == 200


@pytest.mark.parametrize("order_by", ["date", "dueToDate", "totalNet", "totalGross"])
@pytest.mark.parametrize("desc", ["false", "true"])
def test_page_shift_inserts_rows_before_the_offset(invoiz_sandbox, desc, order_by):
    sb = invoiz_sandbox
    c = Client(sb)
    sb.fault("page_shift", after_page=1, insert=3)
    p1 = c.ok("invoice", orderBy=order_by, desc=desc, offset=0, limit=10)
    p2 = c.ok("invoice", orderBy=order_by, desc=desc, offset=10, limit=10)
    assert p2["meta"]["count"] == 63
    assert [r["id"] for r in p2["data"][:3]] == [r["id"] for r in p1["data"][-3:]]  # seen twice
    new = sorted(sb.invoice_ids())[-3:]
    assert not set(new) & {r["id"] for r in p1["data"] + p2["data"]}
    first = c.ok("invoice", orderBy=order_by, desc=desc, limit=3)["data"]
    assert {r["id"] for r in first} == set(new)  # they sort first
    p3 = c.ok("invoice", orderBy=order_by, desc=desc, offset=20, limit=10)
    assert p3["data"][0]["id"] == p2["data"][-1]["id"] or p3["meta"]["count"] == 63  # one-shot: no 2nd insert
    assert sb.list_faults() == []


def test_duplicate_row_on_two_pages(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    truth = [r["id"] for r in c.scan("invoice", limit=10, orderBy="date")]
    sb.fault("duplicate", after_page=1)
    seen = [r["id"] for r in c.scan("invoice", limit=10, orderBy="date")]
    assert len(seen) == 61 and set(seen) == set(truth)
    assert seen[9] == seen[10]  # last of p1 = first of p2
    again = [r["id"] for r in c.scan("invoice", limit=10, orderBy="date")]  # a new scan: normal
    assert again == truth
    # a client that stops at offset >= meta.count loses nothing either
    sb.fault("duplicate", after_page=2)
    seen, offset = [], 0
    while True:
        j = c.ok("invoice", limit=10, offset=offset, orderBy="date")
        seen += [r["id"] for r in j["data"]]
        offset += 10
        if offset >= j["meta"]["count"]:
            break
    assert set(seen) == set(truth) and len(seen) == 61 and seen[19] == seen[20]


def test_set_and_clear_faults(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    ids = sb.set_faults(
        {"kind": "server_error", "status": 502, "times": 5},
        {"kind": "rate_limit", "times": 5, "scope": "customer_list"},
    )
    assert len(ids) == 2 and len(sb.list_faults()) == 2
    sb.clear_faults("rate_limit")
    assert [f["kind"] for f in sb.list_faults()] == ["server_error"]
    sb.clear_faults()
    assert c.get("invoice").status_code == 200 and c.get("customer").status_code == 200
    with pytest.raises(ValueError):
        sb.fault("no_such_fault")
    with pytest.raises(ValueError):
        sb.fault("rate_limit", bogus=1)


def test_faults_via_admin_endpoint(invoiz_sandbox):
    sb = invoiz_sandbox
    c = Client(sb)
    r = c.admin("fault", kind="server_error", status=503, times=1, scope="invoice_list")
    assert r.status_code == 200 and isinstance(r.json()["result"], int)
    assert c.get("invoice").status_code == 503
    assert c.get("invoice").status_code == 200
    c.admin("set_faults", faults=[{"kind": "rate_limit", "times": 9}])
    assert c.get("customer").status_code == 429
    stats = c.s.get(sb.base_url + "/_sandbox/stats", timeout=5).json()
    assert stats["faults"][0]["kind"] == "rate_limit"
    c.admin("clear_faults")
    assert c.get("customer").status_code == 200
    assert c.admin("fault", kind="nope").status_code == 400
    c.admin("expire_tokens")
    assert c.get("customer").status_code == 401
