"""Several accounts: one installation per account (a hash in the state), and each account's own full refreshes."""

from __future__ import annotations

import json

from tap_helpers import run_cli, run_tap, sandbox_config

from tap_invoiz.account_state import installation_hash


def test_state_keeps_a_one_way_hash_of_the_installation_not_the_id(invoiz_sandbox):
    cfg = sandbox_config(invoiz_sandbox)
    run = run_tap(cfg)
    entry = run.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert entry["installation"] == installation_hash("test", cfg["installation_id"])
    assert cfg["installation_id"] not in json.dumps(run.state)
    # salted with the account: the same installation under two names does not hash alike
    assert installation_hash("other", cfg["installation_id"]) != entry["installation"]


def test_credentials_of_another_installation_fail_before_anything_is_sent(invoiz_sandbox, tmp_path):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    # the same account name, credentials that reach another installation (the sandbox accepts them)
    sb.set_credentials(installation_id="another-installation")
    sb.reset_counters()
    moved = {**cfg, "installation_id": "another-installation"}
    run = run_cli(moved, first.state, tmp_path)
    assert run.returncode != 0
    assert "installation_id" in run.stderr and "'test'" in run.stderr and "account" in run.stderr
    assert "another-installation" not in run.stderr  # the id is a secret
    assert [m for m in run.messages if m["type"] in ("RECORD", "SCHEMA")] == []
    assert sum(sb.requests.values()) == 0  # not even a token request


def test_rotating_key_and_secret_of_the_same_installation_is_fine(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    sb.set_credentials(api_key="rotated-key", api_key_secret="rotated-secret")
    rotated = run_tap({**cfg, "api_key": "rotated-key", "api_key_secret": "rotated-secret"}, first.state)
    assert rotated.records("invoices") == [] and rotated.records("contacts") == []


def test_an_intended_move_is_allowed_by_a_setting(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    sb.set_credentials(installation_id="new-home")
    moved = run_tap({**cfg, "installation_id": "new-home", "allow_installation_change": True}, first.state)
    entry = moved.state["bookmarks"]["invoices"]["accounts"]["test"]
    assert entry["installation"] == installation_hash("test", "new-home")
    # afterwards the new installation is the account's own: no setting needed any more
    again = run_tap({**cfg, "installation_id": "new-home"}, moved.state)
    assert again.records("invoices") == []


def test_a_second_account_leaves_the_first_accounts_state_and_cut_off_alone(invoiz_sandbox):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb)
    first = run_tap(cfg)
    second = run_tap({**cfg, "account": "zweite"}, first.state)
    status = {(r["account"], r["stream"]) for r in second.records("sync_status")}
    assert status == {("zweite", "invoices"), ("zweite", "contacts")}  # no row names the first account
    assert {r["account"] for r in second.records("invoices")} == {"zweite"}
    accounts = second.state["bookmarks"]["invoices"]["accounts"]
    assert accounts["test"] == first.state["bookmarks"]["invoices"]["accounts"]["test"]
