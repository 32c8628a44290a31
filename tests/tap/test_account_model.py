"""What an account is (tap_invoiz.accounts): name rules, extractor and variable names, the settings it may override."""

from __future__ import annotations

import json

import pytest
from singer_sdk.helpers import capabilities

from tap_invoiz import accounts
from tap_invoiz.accounts import Account, AccountError, account_from_entry, parse_entries
from tap_invoiz.settings import CONFIG_SCHEMA

GOOD_NAMES = ["acme", "bolt-gmbh", "a1", "0", "x-1-y", "a" * 63]
BAD_NAMES = ["a--b", "-acme", "acme-", "Acme", "bolt_gmbh", "bolt gmbh", "", "a" * 64, "tap-invoiz--x--y", "ä"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name):
    assert accounts.name_problem(name) is None
    assert Account(name).extractor == f"tap-invoiz--{name}"
    assert accounts.name_of_extractor(Account(name).extractor) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_by_every_way_in(name):
    assert accounts.name_problem(name)
    with pytest.raises(AccountError):
        Account(name)
    with pytest.raises(AccountError, match="account name"):
        account_from_entry({"name": name})
    with pytest.raises(AccountError, match="account name"):
        account_from_entry(name)


def test_a_double_hyphen_is_refused_because_it_separates_parent_and_account():
    problem = accounts.name_problem("a--b")
    assert "single hyphens" in problem and "tap-invoiz--<name>" in problem


def test_credential_variables_are_meltanos_names_for_the_accounts_own_extractor():
    assert Account("bolt-gmbh").credential_variables() == {
        "api_key": "TAP_INVOIZ__BOLT_GMBH_API_KEY",
        "api_key_secret": "TAP_INVOIZ__BOLT_GMBH_API_KEY_SECRET",
        "installation_id": "TAP_INVOIZ__BOLT_GMBH_INSTALLATION_ID",
    }
    assert accounts.setting_variable("acme", "start_date") == "TAP_INVOIZ__ACME_START_DATE"
    assert accounts.plugin_variable("tap-invoiz-fleet", "accounts") == "TAP_INVOIZ_FLEET_ACCOUNTS"
    # distinct names never share a variable (a name has no "_" and no "--")
    names = ["a-b", "ab", "a-b-c", "ab-c", "a-bc"]
    assert len({accounts.setting_variable(n, "api_key") for n in names}) == len(names)


@pytest.mark.parametrize(
    ("variable", "is_credential"),
    [
        ("TAP_INVOIZ_API_KEY", True),
        ("TAP_INVOIZ_API_KEY_SECRET", True),
        ("TAP_INVOIZ_INSTALLATION_ID", True),
        ("TAP_INVOIZ__BOLT_GMBH_API_KEY", True),
        ("TAP_INVOIZ__ACME_INSTALLATION_ID", True),
        ("TAP_INVOIZ_API_URL", False),
        ("TAP_INVOIZ__ACME_START_DATE", False),
        ("TAP_INVOIZ_FLEET_ACCOUNTS", False),
        ("TAP_INVOIZ_FLEET_CREDENTIALS", True),  # several accounts' credentials, packed
        ("MY_API_KEY", False),
    ],
)
def test_credential_variables_are_recognised(variable, is_credential):
    assert accounts.is_credential_variable(variable) is is_credential


def test_packed_credentials_unpack_to_the_same_variables_and_a_variable_of_its_own_wins():
    acme, bolt = Account("acme").credential_variables(), Account("bolt").credential_variables()
    values = {acme["api_key"]: "k1", acme["api_key_secret"]: "s1", bolt["api_key"]: "k2", bolt["api_key_secret"]: ""}
    env = {**accounts.pack_credentials(values), bolt["api_key"]: "k2-own", "TAP_INVOIZ_API_URL": "http://x"}
    assert accounts.credentials_in(env) == {
        acme["api_key"]: "k1",
        acme["api_key_secret"]: "s1",
        bolt["api_key"]: "k2-own",
    }


@pytest.mark.parametrize(
    "packed", ['["k"]', "{not json", '{"TAP_INVOIZ_API_URL": "http://x"}', '{"TAP_INVOIZ__ACME_API_KEY": 1}']
)
def test_packed_credentials_that_are_not_credential_variables_are_refused_without_echoing_them(packed):
    with pytest.raises(accounts.AccountError, match="TAP_INVOIZ_FLEET_CREDENTIALS is not") as raised:
        accounts.credentials_in({"TAP_INVOIZ_FLEET_CREDENTIALS": packed})
    assert packed not in str(raised.value)


def sdk_builtin_settings() -> set[str]:
    """Settings singer-sdk adds to a tap's config schema (in place, once a tap is built: stream maps, batch, ...)."""
    found: set[str] = set()
    for value in vars(capabilities).values():
        if isinstance(value, dict) and isinstance(value.get("properties"), dict):
            found |= set(value["properties"])
    return found


def test_overridable_settings_are_the_taps_non_secret_settings_but_the_account_itself():
    builtin = sdk_builtin_settings()
    properties = {k: v for k, v in CONFIG_SCHEMA["properties"].items() if k not in builtin}
    non_secret = {name for name, schema in properties.items() if not schema.get("secret")}
    assert set(accounts.OVERRIDABLE_SETTINGS) == non_secret - {"account", "allow_installation_change"}
    assert "full_scan_every" in accounts.OVERRIDABLE_SETTINGS
    assert set(accounts.CREDENTIALS) == {name for name, schema in properties.items() if schema.get("secret")}


def test_an_entry_takes_overridable_settings_and_refuses_credentials_and_others():
    acct = account_from_entry({"name": "acme", "full_scan_every": 4, "start_date": "2024-01-01"})
    assert acct.settings == {"full_scan_every": 4, "start_date": "2024-01-01"} and acct.account == "acme"
    assert account_from_entry({"name": "acme", "account": "legacy"}).account == "legacy"
    with pytest.raises(AccountError, match=r"credentials \(api_key\).*TAP_INVOIZ__ACME_API_KEY") as refused:
        account_from_entry({"name": "acme", "api_key": "a-secret-value"})
    assert "a-secret-value" not in str(refused.value)
    with pytest.raises(AccountError, match="allow_installation_change"):
        account_from_entry({"name": "acme", "allow_installation_change": True})
    with pytest.raises(AccountError, match="`account` must be a non-empty string"):
        account_from_entry({"name": "acme", "account": " "})
    with pytest.raises(AccountError, match="needs a `name`"):
        account_from_entry({"start_date": "2024-01-01"})


def test_the_accounts_setting_may_be_a_list_or_its_json_text():
    entries = [{"name": "acme", "full_scan_every": 2}, "bolt"]
    assert parse_entries(entries) == entries
    assert parse_entries(json.dumps(entries)) == entries  # how Meltano passes an array setting through a variable
    assert [account_from_entry(e).name for e in parse_entries(json.dumps(entries))] == ["acme", "bolt"]
    assert parse_entries(None) == [] and parse_entries("") == []
    with pytest.raises(AccountError, match="not a JSON list"):
        parse_entries("acme, bolt")
    with pytest.raises(AccountError, match="must be a list"):
        parse_entries('{"name": "acme"}')


def test_duplicates_by_name_or_by_account_are_problems():
    found = accounts.duplicate_problems(
        [Account("acme"), Account("bolt", account="acme"), Account("cora"), Account("cora")]
    )
    assert found == [
        "accounts: account 'acme' is used by 'acme' and 'bolt': rows and state would mix",
        "accounts: name 'cora' is declared twice",
    ]


def test_an_accounts_tap_config_has_only_its_own_credentials_and_its_overrides():
    base = {
        "api_url": "http://127.0.0.1:1/api/",
        "full_scan_every": 96,
        "api_key": "parent",
        "api_key_secret": "parent",
        "installation_id": "parent",
        "accounts": ["acme", "bolt"],
    }
    env = {
        "TAP_INVOIZ__ACME_API_KEY": "k",
        "TAP_INVOIZ__ACME_API_KEY_SECRET": "s",
        "TAP_INVOIZ__ACME_INSTALLATION_ID": "i",
        "TAP_INVOIZ__BOLT_API_KEY": "other",
    }
    config, missing = Account("acme", settings={"full_scan_every": 3}).tap_config(base, env)
    assert config == {
        "api_url": "http://127.0.0.1:1/api/",
        "full_scan_every": 3,
        "account": "acme",
        "api_key": "k",
        "api_key_secret": "s",
        "installation_id": "i",
    }
    assert missing == []
    config, missing = Account("bolt").tap_config(base, env)
    assert missing == ["TAP_INVOIZ__BOLT_API_KEY_SECRET", "TAP_INVOIZ__BOLT_INSTALLATION_ID"]
    assert "installation_id" not in config and config["api_key"] == "other"  # never the parent's
