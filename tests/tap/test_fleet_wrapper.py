"""tap-invoiz-fleet: several accounts in one process, each with its own credentials and state entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from invoiz_sandbox import FleetSandbox
from tap_invoiz.accounts import credential_variables, is_credential_variable, pack_credentials
from tap_invoiz.results import read_results

NAMES = ["acme", "bolt-gmbh", "cora"]


@pytest.fixture
def fleet():
    with FleetSandbox(installations=len(NAMES), seed=9, invoices=30, today="2026-11-01") as f:
        yield f


def credentials_env(fleet) -> dict[str, str]:
    """Every account's credentials under its own variables (the account model's names)."""
    env = {}
    for name, installation in zip(NAMES, fleet.installation_ids):
        credentials = fleet.credentials(installation)
        env.update({variable: credentials[setting] for setting, variable in credential_variables(name).items()})
    return env


def run(tmp_path, fleet, env_overrides=None, state=None, accounts=None):
    env = {"PATH": "/usr/bin:/bin", **credentials_env(fleet)}
    env.update(env_overrides or {})
    env = {k: v for k, v in env.items() if v is not None}
    config = {
        "api_url": fleet.api_url,
        "app_url": fleet.app_url,
        "accounts": [{"name": n} for n in NAMES] if accounts is None else accounts,
        # tap-invoiz's own credentials are never used for an account
        "api_key": "parent",
        "api_key_secret": "parent",
        "installation_id": fleet.installation_ids[0],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    args = [sys.executable, "-m", "tap_invoiz.shard", "--config", str(tmp_path / "config.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc, messages


def records_per_account(messages):
    return Counter(m["record"]["account"] for m in messages if m["type"] == "RECORD" and m["stream"] == "invoices")


def test_every_account_syncs_into_one_stream_with_its_own_state(tmp_path, fleet):
    proc, messages = run(tmp_path, fleet)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert records_per_account(messages) == {"acme": 30, "bolt-gmbh": 30, "cora": 30}
    assert not [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
    state = [m for m in messages if m["type"] == "STATE"][-1]["value"]
    assert set(state["bookmarks"]["invoices"]["accounts"]) == set(NAMES)
    assert "FAILED" not in proc.stderr
    outcomes = read_results(proc.stderr)
    assert {name: (r["status"], r["streams"]["invoices"]) for name, r in outcomes.items()} == {
        name: ("ok", 30) for name in NAMES
    }
    # the next run, from that state, sends only what changed in one account
    fleet.installation(fleet.installation_ids[1]).create_invoice()
    proc, messages = run(tmp_path, fleet, state=state)
    assert proc.returncode == 0
    assert records_per_account(messages) == {"bolt-gmbh": 1}


def test_a_failing_account_is_skipped_and_the_others_sync(tmp_path, fleet):
    proc, messages = run(
        tmp_path, fleet, {"TAP_INVOIZ__BOLT_GMBH_API_KEY_SECRET": "wrong", "TAP_INVOIZ__CORA_INSTALLATION_ID": None}
    )
    assert proc.returncode == 0  # failures are reported per account, so that Meltano lets the target finish
    assert records_per_account(messages) == {"acme": 30}
    assert "fleet account 'bolt-gmbh': FAILED" in proc.stderr
    assert "fleet account 'cora': FAILED: no credentials (TAP_INVOIZ__CORA_INSTALLATION_ID)" in proc.stderr
    outcomes = read_results(proc.stderr)
    assert {name: r["status"] for name, r in outcomes.items()} == {
        "acme": "ok",
        "bolt-gmbh": "failed",
        "cora": "failed",
    }
    assert outcomes["cora"]["error"] == "no credentials (TAP_INVOIZ__CORA_INSTALLATION_ID)"
    assert outcomes["bolt-gmbh"]["error"] and outcomes["bolt-gmbh"]["records"] == 0
    assert "wrong" not in proc.stderr and "sandbox-secret" not in proc.stderr
    # the parent's credentials were not used for cora (its installation would have answered)
    assert fleet.installation(fleet.installation_ids[2]).requests["token"] == 0


def test_accounts_may_come_as_json_text_and_a_bad_entry_stops_the_run_before_anything_is_sent(tmp_path, fleet):
    # Meltano passes an array setting given through a variable (TAP_INVOIZ_FLEET_ACCOUNTS) as its JSON text
    entries = json.dumps([{"name": "acme", "full_scan_every": 2}, "bolt-gmbh"])
    proc, messages = run(tmp_path, fleet, accounts=entries)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert records_per_account(messages) == {"acme": 30, "bolt-gmbh": 30}
    assert "fleet: 2 accounts in" in proc.stderr and "0 failed" in proc.stderr
    for entries in ([{"name": "acme"}, {"name": "a--b"}], ["acme", "acme"], [{"name": "acme", "api_key": "k"}]):
        proc, messages = run(tmp_path, fleet, accounts=entries)
        assert proc.returncode != 0 and messages == []
        assert proc.stderr.strip().splitlines()[-1].startswith("setting accounts: ")
    assert sum(fleet.installation(i).requests["token"] for i in fleet.installation_ids) == 2  # the first run's only


def test_a_shard_writes_its_whole_state_once_at_the_end_after_every_record(tmp_path, fleet):
    proc, messages = run(tmp_path, fleet)
    assert proc.returncode == 0, proc.stderr[-2000:]
    states = [i for i, m in enumerate(messages) if m["type"] == "STATE"]
    # a run shorter than STATE_EVERY_SECONDS: one STATE message, the last one, after every account's records
    assert states == [len(messages) - 1]
    value = messages[-1]["value"]
    for stream in ("invoices", "contacts"):
        assert set(value["bookmarks"][stream]["accounts"]) == set(NAMES)


def test_a_shard_writes_each_streams_schema_once_before_its_records_and_again_only_when_it_differs(tmp_path, fleet):
    from singer_sdk.singerlib.encoding.simple import SchemaMessage

    from tap_invoiz.shard_state import ShardState

    proc, messages = run(tmp_path, fleet)
    assert proc.returncode == 0, proc.stderr[-2000:]
    schemas = Counter(m["stream"] for m in messages if m["type"] == "SCHEMA")
    assert set(schemas) >= {"invoices", "contacts", "sync_status"} and set(schemas.values()) == {1}
    for stream in schemas:
        first = {m["type"]: i for i, m in reversed(list(enumerate(messages))) if m.get("stream") == stream}
        assert first["SCHEMA"] < first["RECORD"]
    assert records_per_account(messages) == {"acme": 30, "bolt-gmbh": 30, "cora": 30}

    shard = ShardState({})
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    assert shard.schema_is_new(SchemaMessage(stream="s", schema=schema, key_properties=["id"]))
    assert not shard.schema_is_new(SchemaMessage(stream="s", schema=dict(schema), key_properties=["id"]))
    schema["properties"]["new_field"] = {"type": "string"}  # a changed schema is written again
    assert shard.schema_is_new(SchemaMessage(stream="s", schema=schema, key_properties=["id"]))
    assert shard.schema_is_new(SchemaMessage(stream="s", schema=schema, key_properties=["account", "id"]))


def test_each_account_syncs_from_its_own_entries_and_the_shard_keeps_the_others(fleet, capsys, monkeypatch):
    from tap_invoiz import shard, shard_state

    config = {"api_url": fleet.api_url, "app_url": fleet.app_url, "accounts": [{"name": n} for n in NAMES]}
    env = credentials_env(fleet)
    first, failed = shard.sync_accounts(config, None, {}, env)
    assert failed == []
    capsys.readouterr()

    # every STATE message due (0 s): each one carries every account's entries, the ones not synced yet from before
    monkeypatch.setattr(shard_state, "STATE_EVERY_SECONDS", 0.0)
    fleet.installation(fleet.installation_ids[0]).create_invoice()
    seen = []
    original = shard_state.ShardState.of_account

    def of_account(self, account):
        own = original(self, account)
        seen.append((account, {a for s in own["bookmarks"].values() for a in s.get("accounts", {})}))
        return own

    monkeypatch.setattr(shard_state.ShardState, "of_account", of_account)
    second, failed = shard.sync_accounts(config, None, first, env)
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert failed == [] and seen == [(name, {name}) for name in NAMES]  # its own entries only
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert len(states) > len(NAMES)  # written whenever an account's sync wrote one
    assert all(set(s["bookmarks"]["invoices"]["accounts"]) == set(NAMES) for s in states)
    assert states[-1] == second and messages[-1]["type"] == "STATE"
    acme_invoices = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "invoices"]
    assert [m["record"]["account"] for m in acme_invoices] == ["acme"]  # the new invoice only
    # the others' entries are unchanged apart from their run bookkeeping; acme's now tracks one more invoice
    for name in NAMES:
        before = first["bookmarks"]["invoices"]["accounts"][name]
        after = second["bookmarks"]["invoices"]["accounts"][name]
        assert after["installation"] == before["installation"]
        assert (after["fingerprints"] == before["fingerprints"]) == (name != "acme")


def test_packed_credentials_sync_every_account_and_leave_the_process_environment(tmp_path, fleet, capsys, monkeypatch):
    from tap_invoiz import shard

    for variable in [k for k in os.environ if k.startswith("TAP_INVOIZ")]:
        monkeypatch.delenv(variable)
    env = credentials_env(fleet)
    cora_key = credential_variables("cora")["api_key"]
    # how the fleet's steps pass them (one variable); a variable of its own wins over the same one packed
    monkeypatch.setenv(*pack_credentials({**env, cora_key: "wrong"}).popitem())
    monkeypatch.setenv(cora_key, env[cora_key])
    (tmp_path / "config.json").write_text(
        json.dumps({"api_url": fleet.api_url, "app_url": fleet.app_url, "accounts": NAMES})
    )
    assert shard.main(["--config", str(tmp_path / "config.json")]) == 0
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records_per_account(messages) == {name: 30 for name in NAMES}
    # read once, then gone from the environment (requests scans it on every request; children never see them)
    assert [k for k in os.environ if is_credential_variable(k)] == []
