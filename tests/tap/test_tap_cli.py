"""The console script: up-front checks of the settings, exit codes, and no secrets in any output."""

from __future__ import annotations

import json
import subprocess

import pytest
from tap_helpers import TAP_EXE, run_cli, sandbox_config

SECRETS = {
    "api_key": "K3y-do-not-log-4711",
    "api_key_secret": "S3cret-do-not-log-0815",
    "installation_id": "Inst-do-not-log-42",
}


def test_wrong_credentials_exit_non_zero_naming_the_settings(invoiz_sandbox, tmp_path):
    cfg = sandbox_config(invoiz_sandbox, api_key_secret="wrong")
    run = run_cli(cfg, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "invoiz rejected the credentials (HTTP 401 from auth/token)" in run.stderr
    assert "api_key, api_key_secret and installation_id" in run.stderr
    assert run.messages == []  # nothing moved: not even a SCHEMA message
    assert "Traceback" not in run.stderr
    assert invoiz_sandbox.requests["invoice_list"] == 0


def test_wrong_installation_id_is_reported_the_same_way(invoiz_sandbox, tmp_path):
    run = run_cli(sandbox_config(invoiz_sandbox, installation_id="nope"), tmp_path=tmp_path)
    assert run.returncode != 0 and "installation_id" in run.stderr and run.messages == []


@pytest.mark.parametrize("missing", ["api_key", "api_key_secret", "installation_id"])
def test_a_missing_credential_is_named(invoiz_sandbox, tmp_path, missing):
    cfg = sandbox_config(invoiz_sandbox)
    del cfg[missing]
    run = run_cli(cfg, tmp_path=tmp_path)
    assert run.returncode != 0
    assert f"'{missing}' is a required property" in run.stderr
    assert run.messages == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"page_size": 0}, "setting page_size must be an integer from 1 to 1000"),
        ({"page_size": 5000}, "setting page_size must be an integer from 1 to 1000"),
        ({"api_url": "app.invoiz.de/api"}, "setting api_url must be an http(s) URL"),
        ({"start_date": "01.02.2024"}, "setting start_date must be a date YYYY-MM-DD"),
        ({"account": "  "}, "setting account must not be empty"),
        ({"max_retries": -1}, "setting max_retries must be an integer >= 0"),
    ],
)
def test_bad_settings_are_named_before_any_request(invoiz_sandbox, tmp_path, overrides, expected):
    run = run_cli(sandbox_config(invoiz_sandbox, **overrides), tmp_path=tmp_path)
    assert run.returncode != 0
    assert expected in run.stderr
    assert run.messages == []
    assert invoiz_sandbox.requests["token"] == 0


def test_an_api_url_that_is_not_invoiz_is_named(invoiz_sandbox, tmp_path):
    # the sandbox's web app answers HTML (or 404) where the API should be
    run = run_cli(sandbox_config(invoiz_sandbox, api_url=invoiz_sandbox.app_url + "/nothing/"), tmp_path=tmp_path)
    assert run.returncode != 0
    assert "api_url" in run.stderr
    assert run.messages == []


def test_an_unreachable_api_url_is_named(tmp_path):
    cfg = {**SECRETS, "api_url": "http://127.0.0.1:9/api/", "max_retries": 0, "request_timeout": 2}
    run = run_cli(cfg, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "check setting api_url" in run.stderr
    assert run.messages == []


def test_no_secret_appears_in_any_output_even_at_debug(invoiz_sandbox_factory, tmp_path):
    sb = invoiz_sandbox_factory(credentials=SECRETS)
    sb.fault("token_expiry", after_requests=3)  # re-authentication happens too
    sb.fault("rate_limit", scope="invoice_list", times=1, retry_after=0)
    cfg = sandbox_config(sb, page_size=10)
    token = sb.issue_token()
    for argv_extra in ((), ("--discover",), ("--about",)):
        run = run_cli(
            cfg, tmp_path=tmp_path, env={"LOGLEVEL": "DEBUG", "TAP_INVOIZ_LOGLEVEL": "DEBUG"}, args=argv_extra
        )
        assert run.returncode == 0, run.stderr[-2000:]
        output = run.stderr + run.stdout
        for secret in (*SECRETS.values(), token):
            assert secret not in output, f"secret leaked with {argv_extra}"
        if not argv_extra:
            assert "DEBUG" in run.stderr and run.records("invoices")
            assert "Bearer" not in run.stderr and "Authorization" not in run.stderr


def test_wrong_credentials_at_debug_do_not_leak_either(invoiz_sandbox, tmp_path):
    cfg = sandbox_config(
        invoiz_sandbox, **{**SECRETS, "installation_id": invoiz_sandbox.credentials["installation_id"]}
    )
    run = run_cli(cfg, tmp_path=tmp_path, env={"LOGLEVEL": "DEBUG"})
    assert run.returncode != 0
    for secret in (SECRETS["api_key"], SECRETS["api_key_secret"]):
        assert secret not in run.stderr


def test_about_lists_the_settings_and_marks_secrets():
    about = json.loads(
        subprocess.run([TAP_EXE, "--about", "--format=json"], capture_output=True, text=True, check=True).stdout
    )
    props = about["settings"]["properties"]
    for name in ("api_key", "api_key_secret", "installation_id"):
        assert props[name].get("secret") is True or props[name].get("writeOnly") is True
    for name in (
        "api_url",
        "app_url",
        "account",
        "start_date",
        "page_size",
        "request_timeout",
        "max_retries",
        "user_agent",
    ):
        assert name in props


def test_discover_works_without_credentials(tmp_path):
    (tmp_path / "c.json").write_text("{}")
    proc = subprocess.run(
        [TAP_EXE, "--config", str(tmp_path / "c.json"), "--discover"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    streams = {s["tap_stream_id"]: s for s in json.loads(proc.stdout)["streams"]}
    assert set(streams) == {"invoices", "contacts", "invoice_payments", "sync_status"}
    assert streams["sync_status"]["key_properties"] == ["account", "stream"]
    assert streams["invoice_payments"]["key_properties"] == ["account", "invoice_id", "id"]
    assert streams["invoices"]["key_properties"] == ["account", "id"]


def test_connection_refused_gives_up_after_a_few_quick_attempts(tmp_path):
    # max_retries counts for answers that may change (429, 5xx, timeouts); a refused connection is tried 3 times
    cfg = {**SECRETS, "api_url": "http://127.0.0.1:9/api/", "max_retries": 5}
    run = run_cli(cfg, tmp_path=tmp_path)
    assert run.returncode != 0
    assert "could not get an invoiz token from http://127.0.0.1:9/api/auth/token after 3 attempts" in run.stderr
    assert "check setting api_url and the network" in run.stderr
    assert run.stderr.count("auth/token failed") == 2
    assert "attempt 2 of 3" in run.stderr
    assert run.messages == []
