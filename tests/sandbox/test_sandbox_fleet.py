"""One sandbox server, many installations: routing by installation id and token, own datasets, sizes, CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from sandbox_helpers import start_line_urls

from invoiz_sandbox import FleetSandbox, Sandbox
from invoiz_sandbox.multi_tenant import installation_seed, installation_size


def token(fleet, which, **overrides):
    c = {**fleet.credentials(which), **overrides}
    return requests.post(
        fleet.api_url + "auth/token",
        auth=(c["api_key"], c["api_key_secret"]),
        json={"installationId": c["installation_id"]},
        timeout=10,
    )


def get(fleet, tok, path, **params):
    return requests.get(fleet.api_url + path, params=params, headers={"Authorization": f"Bearer {tok}"}, timeout=10)


def scan(fleet, tok, path="invoice"):
    rows, offset = [], 0
    while True:
        page = get(fleet, tok, path, offset=offset, limit=100).json()["data"]
        rows += page
        if len(page) < 100:
            return rows
        offset += 100


@pytest.fixture
def fleet():
    with FleetSandbox(installations=3, seed=7, invoices=25, today="2026-11-01") as f:
        yield f


def test_each_installation_serves_its_own_dataset(fleet):
    first, second, _ = fleet.installation_ids
    rows_1 = scan(fleet, token(fleet, first).json()["token"])
    rows_2 = scan(fleet, token(fleet, second).json()["token"])
    assert len(rows_1) == len(rows_2) == 25
    assert [r["customerData"]["name"] for r in rows_1] != [r["customerData"]["name"] for r in rows_2]
    # the same data a stand-alone sandbox with the installation's seed serves
    alone = Sandbox(seed=installation_seed(7, first), invoices=25, today="2026-11-01")
    assert rows_1[0] == alone.invoice_row(rows_1[0]["id"])


def test_a_token_reads_only_its_own_installation(fleet):
    first, second, _ = fleet.installation_ids
    tok = token(fleet, first).json()["token"]
    fleet.installation(second).create_invoice(title="nur bei zwei")
    assert all(r["title"] != "nur bei zwei" for r in scan(fleet, tok))
    assert get(fleet, tok, "invoice").json()["meta"]["count"] == 25
    assert get(fleet, "not-a-token", "invoice").status_code == 401
    fleet.installation(first).expire_tokens()
    assert get(fleet, tok, "invoice").status_code == 401


def test_unknown_installation_or_wrong_secret_is_refused(fleet):
    first = fleet.installation_ids[0]
    assert token(fleet, first, installation_id="someone-else").status_code == 401
    assert token(fleet, first, api_key_secret="wrong").status_code == 401
    fleet.installation(first).set_credentials(api_key_secret="rotated")
    assert token(fleet, first).status_code == 200  # credentials() reports the rotated secret
    assert token(fleet, first, api_key_secret="sandbox-secret").status_code == 401


def test_faults_and_counters_are_per_installation(fleet):
    first, second, _ = fleet.installation_ids
    tok_1, tok_2 = token(fleet, first).json()["token"], token(fleet, second).json()["token"]
    fleet.installation(first).fault("server_error", times=5, scope="invoice_list")
    assert get(fleet, tok_1, "invoice").status_code == 500
    assert get(fleet, tok_2, "invoice").status_code == 200
    assert fleet.installation(first).requests["invoice_list"] == 1
    assert fleet.installation(second).requests["invoice_list"] == 1
    assert fleet.stats()["requests"]["invoice_list"] == 2


def test_admin_endpoint_per_installation(fleet):
    second = fleet.installation_ids[1]
    r = requests.post(f"{fleet.base_url}/_sandbox/installations/{second}/create_invoice", json={}, timeout=10)
    assert r.status_code == 200
    assert requests.get(f"{fleet.base_url}/_sandbox/installations/{second}/stats", timeout=10).json()["invoices"] == 26
    assert requests.get(f"{fleet.base_url}/_sandbox/installations/nope/stats", timeout=10).status_code == 404
    listed = requests.get(f"{fleet.base_url}/_sandbox/installations", timeout=10).json()["result"]
    assert [i["installation_id"] for i in listed] == fleet.installation_ids


def test_sizes_follow_a_skewed_distribution_deterministically():
    ids = [f"sandbox-installation-{i:03d}" for i in range(1, 201)]
    sizes = [installation_size(42, i) for i in ids]
    assert sizes == [installation_size(42, i) for i in ids]
    small = sum(100 <= s <= 2_000 for s in sizes)
    assert small >= 150  # most accounts are small
    assert 1 <= sum(s >= 20_000 for s in sizes) <= 20  # a few are large
    assert FleetSandbox(installations=200, seed=42).size(ids[0]) == sizes[0]


def test_cli_serves_several_installations():
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoiz_sandbox", "--installations", "4", "--invoices", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("invoiz-sandbox listening on http://127.0.0.1:")
        assert "4 installations sandbox-installation-001 … sandbox-installation-004" in line
        api_url, _ = start_line_urls(line)
        r = requests.post(
            api_url + "auth/token",
            auth=("sandbox-key", "sandbox-secret"),
            json={"installationId": "sandbox-installation-004"},
            timeout=10,
        )
        tok = r.json()["token"]
        answer = requests.get(api_url + "invoice", headers={"Authorization": f"Bearer {tok}"}, timeout=10).json()
        assert answer["meta"]["count"] == 5
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
