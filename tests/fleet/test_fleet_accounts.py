"""Accounts as data: one entry per account, own credentials, and the check that refuses an unsafe fleet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from invoiz_ops import accounts

CHECKOUT = Path(__file__).resolve().parents[2]


def creds(name: str, installation: str) -> dict[str, str]:
    prefix = "TAP_INVOIZ__" + name.upper().replace("-", "_")
    return {f"{prefix}_API_KEY": "key", f"{prefix}_API_KEY_SECRET": "secret", f"{prefix}_INSTALLATION_ID": installation}


@pytest.fixture
def project(tmp_path):
    shutil.copy(CHECKOUT / "meltano.yml", tmp_path / "meltano.yml")
    (tmp_path / "accounts").mkdir()
    (tmp_path / "accounts" / "fleet.yml").write_text(
        "accounts:\n- name: acme\n- name: bolt-gmbh\n  start_date: '2024-01-01'\n"
    )
    accounts.generate(tmp_path)
    return tmp_path


def test_one_entry_declares_an_account_with_its_own_credential_variables(project):
    declared = yaml.safe_load((project / "accounts" / "fleet.meltano.yml").read_text())["plugins"]["extractors"]
    bolt = declared[1]
    assert bolt == {
        "name": "tap-invoiz--bolt-gmbh",
        "inherit_from": "tap-invoiz",
        "config": {
            "account": "bolt-gmbh",
            "api_key": "$TAP_INVOIZ__BOLT_GMBH_API_KEY",
            "api_key_secret": "$TAP_INVOIZ__BOLT_GMBH_API_KEY_SECRET",
            "installation_id": "$TAP_INVOIZ__BOLT_GMBH_INSTALLATION_ID",
            "start_date": "2024-01-01",
        },
    }
    with (project / "accounts" / "fleet.yml").open("a") as fleet_list:
        fleet_list.write("- name: account-201\n")
    assert accounts.generate(project) is True
    assert [a.extractor for a in accounts.load_accounts(project)][-1] == "tap-invoiz--account-201"
    assert accounts.generate(project) is False  # idempotent


def test_check_passes_with_own_credentials_and_ignores_the_parents(project):
    env = {**creds("acme", "inst-1"), **creds("bolt-gmbh", "inst-2"), "TAP_INVOIZ_API_KEY": "parent"}
    assert accounts.check(project, env) == []


def test_check_refuses_shared_installation_and_missing_credentials(project):
    env = {**creds("acme", "inst-1"), **creds("bolt-gmbh", "inst-1")}
    problems = accounts.check(project, env)
    assert any("share one invoiz installation" in p and "tap-invoiz--acme" in p for p in problems)
    assert all("inst-1" not in p for p in problems)  # installation ids are secrets: never printed
    env = creds("acme", "inst-1")
    env.update({"TAP_INVOIZ_API_KEY": "parent", "TAP_INVOIZ_API_KEY_SECRET": "p", "TAP_INVOIZ_INSTALLATION_ID": "p"})
    problems = accounts.check(project, env)
    assert any("tap-invoiz--bolt-gmbh: no credentials" in p and "TAP_INVOIZ__BOLT_GMBH_API_KEY" in p for p in problems)


def test_check_refuses_secrets_in_yaml_borrowed_variables_and_stale_generated_file(project):
    (project / "accounts" / "hand.meltano.yml").write_text(
        yaml.safe_dump(
            {
                "plugins": {
                    "extractors": [
                        {
                            "name": "tap-invoiz--hand",
                            "inherit_from": "tap-invoiz",
                            "config": {
                                "account": "hand",
                                "api_key": "literal-key",
                                "api_key_secret": "$TAP_INVOIZ__ACME_API_KEY_SECRET",
                            },
                        },
                    ]
                }
            }
        )
    )
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: acme\n")
    env = {**creds("acme", "i1"), **creds("bolt-gmbh", "i2"), **creds("hand", "i3")}
    problems = "\n".join(accounts.check(project, env))
    assert "tap-invoiz--hand api_key is a literal secret" in problems
    assert "tap-invoiz--hand api_key_secret is $TAP_INVOIZ__ACME_API_KEY_SECRET (not its own variable)" in problems
    assert "tap-invoiz--hand does not set installation_id: it would inherit tap-invoiz's" in problems
    assert "fleet.meltano.yml is not up to date" in problems
    assert "literal-key" not in problems


def test_fleet_list_refuses_credentials_and_bad_names(project):
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: acme\n  api_key: oops\n")
    with pytest.raises(accounts.AccountsError, match="has credentials"):
        accounts.generate(project)
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: Acme_1\n")
    with pytest.raises(accounts.AccountsError, match="lower-case"):
        accounts.generate(project)
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: acme\n- acme\n")
    with pytest.raises(accounts.AccountsError, match="declared twice"):
        accounts.generate(project)


def test_secrets_file_must_be_private(project):
    secrets = project / "fleet.secrets.env"
    secrets.write_text("".join(f"{k}={v}\n" for k, v in {**creds("acme", "i1"), **creds("bolt-gmbh", "i2")}.items()))
    secrets.chmod(0o644)
    assert any("readable by others" in p for p in accounts.check(project, {}))
    secrets.chmod(0o600)
    assert accounts.check(project, {}) == []
    assert accounts.check(project, {"INVOIZ_FLEET_SECRETS": str(project / "elsewhere.env")})  # not found → missing


def test_a_step_sees_only_its_own_accounts_credentials(project):
    acme, bolt = accounts.load_accounts(project)
    env = {
        **creds("acme", "i1"),
        **creds("bolt-gmbh", "i2"),
        "TAP_INVOIZ_API_KEY": "parent",
        "TAP_INVOIZ_INSTALLATION_ID": "parent",
        "TAP_INVOIZ_API_URL": "http://127.0.0.1:1/api/",
        "PATH": "/bin",
    }
    step = accounts.step_env(bolt, env, {})
    assert step["TAP_INVOIZ__BOLT_GMBH_INSTALLATION_ID"] == "i2"
    assert step["TAP_INVOIZ_API_URL"] == "http://127.0.0.1:1/api/" and step["PATH"] == "/bin"
    assert not {k for k in step if k.startswith(("TAP_INVOIZ__ACME", "TAP_INVOIZ_API_KEY", "TAP_INVOIZ_INSTALLATION"))}
    from_file = accounts.step_env(acme, {}, creds("acme", "i9"))
    assert from_file["TAP_INVOIZ__ACME_INSTALLATION_ID"] == "i9"


def test_a_double_hyphen_name_is_refused_by_the_list_the_cli_and_the_check(project, capsys):
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: a--b\n")
    with pytest.raises(accounts.AccountsError, match="single hyphens"):
        accounts.generate(project)
    assert accounts.main(["--project", str(project), "add", "a--b"]) == 2
    assert "single hyphens" in capsys.readouterr().err
    assert not (project / "accounts" / "a--b.meltano.yml").exists()
    (project / "accounts" / "fleet.yml").write_text("accounts:\n- name: acme\n")
    accounts.generate(project)
    (project / "accounts" / "hand.meltano.yml").write_text(
        "plugins:\n  extractors:\n  - name: tap-invoiz--a--b\n    inherit_from: tap-invoiz\n    config:\n"
        "      api_key: $TAP_INVOIZ__A__B_API_KEY\n      api_key_secret: $TAP_INVOIZ__A__B_API_KEY_SECRET\n"
        "      installation_id: $TAP_INVOIZ__A__B_INSTALLATION_ID\n"
    )
    env = {**creds("acme", "i1"), **creds("a--b", "i2")}
    assert [p for p in accounts.check(project, env) if "single hyphens" in p] == [
        "accounts/hand.meltano.yml: tap-invoiz--a--b: account name 'a--b' must be lower-case letters and digits "
        "joined by single hyphens, at most 63 characters (it becomes the extractor name tap-invoiz--<name> and part "
        "of its variable names)"
    ]


def test_one_cli_adds_and_lists_every_account_and_not_the_generated_file(project, capsys):
    assert accounts.main(["--project", str(project), "add", "cora"]) == 0
    out = capsys.readouterr().out
    assert "wrote accounts/cora.meltano.yml" in out and "TAP_INVOIZ__CORA_INSTALLATION_ID=..." in out
    assert accounts.main(["--project", str(project), "add", "acme"]) == 2  # declared in fleet.yml already
    assert "tap-invoiz--acme is declared already, in accounts/fleet.meltano.yml" in capsys.readouterr().err
    assert accounts.main(["--project", str(project), "add", "fleet"]) == 2  # the generated file's name
    capsys.readouterr()
    assert accounts.main(["--project", str(project), "list"]) == 0
    listed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert listed == [
        ["tap-invoiz--cora", "account=cora", "accounts/cora.meltano.yml"],
        ["tap-invoiz--acme", "account=acme", "accounts/fleet.meltano.yml"],
        ["tap-invoiz--bolt-gmbh", "account=bolt-gmbh", "accounts/fleet.meltano.yml"],
    ]
    env = {**creds("acme", "i1"), **creds("bolt-gmbh", "i2"), **creds("cora", "i3")}
    assert accounts.check(project, env) == []  # the added file passes the check as it is


def test_a_shard_gets_its_accounts_and_their_credentials_only(project):
    (project / "accounts" / "fleet.yml").write_text(
        "accounts:\n- name: acme\n  full_scan_every: 4\n- name: bolt-gmbh\n- name: cora\n"
    )
    accounts.generate(project)
    acme, bolt, cora = accounts.load_accounts(project)
    env = {**creds("acme", "i1"), **creds("bolt-gmbh", "i2"), **creds("cora", "i3"), "TAP_INVOIZ_API_KEY": "parent"}
    shard = accounts.shard_env([acme, bolt], env, {})
    assert json.loads(shard["TAP_INVOIZ_FLEET_ACCOUNTS"]) == [
        {"name": "acme", "account": "acme", "full_scan_every": 4},
        {"name": "bolt-gmbh", "account": "bolt-gmbh"},
    ]
    # packed into one variable (Meltano copies the environment for every setting it resolves): theirs, nobody else's
    assert [k for k in shard if accounts.is_credential_variable(k)] == ["TAP_INVOIZ_FLEET_CREDENTIALS"]
    assert accounts.credentials_in(shard) == {**creds("acme", "i1"), **creds("bolt-gmbh", "i2")}
