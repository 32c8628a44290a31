"""`meltano config test tap-invoiz` (Meltano 4's spelling of `meltano config tap-invoiz test`) with the settings in the
environment only, as a user checks a connection: passes against the sandbox, names the settings on bad credentials."""

from __future__ import annotations

import pytest

from invoiz_ops.pipeline import Pipeline, private_run_dirs

pytestmark = [pytest.mark.e2e]

NO_DATABASE = {"PGHOST": "127.0.0.1", "PGPORT": "9", "PGUSER": "nobody", "PGPASSWORD": "", "PGDATABASE": "none"}


def config_test(sb, tmp_path, **credentials) -> tuple[int, str]:
    pipe = Pipeline(
        pg_env=NO_DATABASE,
        database="none",
        api_url=sb.api_url,
        app_url=sb.app_url,
        credentials={**sb.credentials, **credentials},
        account="test",
        state_dir=tmp_path / "state",
        extra_env=private_run_dirs(tmp_path),
    )
    result = pipe.meltano("config", "test", "tap-invoiz", check=False, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_the_sandbox_credentials_pass(invoiz_sandbox, tmp_path):
    returncode, output = config_test(invoiz_sandbox, tmp_path)
    assert returncode == 0, output[-3000:]
    assert "Plugin configuration is valid" in output
    assert invoiz_sandbox.requests["token"] >= 1
    assert invoiz_sandbox.requests["invoice_list"] + invoiz_sandbox.requests["customer_list"] >= 1


@pytest.mark.parametrize("setting", ["api_key", "api_key_secret", "installation_id"])
def test_a_wrong_credential_fails_naming_the_settings(invoiz_sandbox, tmp_path, setting):
    wrong = f"wrong-{setting}-4711"
    returncode, output = config_test(invoiz_sandbox, tmp_path, **{setting: wrong})
    assert returncode != 0
    assert "Plugin configuration is invalid" in output
    # invoiz answers 401 whichever of the three is wrong, so the message names all three
    assert "invoiz rejected the credentials (HTTP 401 from auth/token)" in output
    assert "check settings api_key, api_key_secret and installation_id" in output
    assert wrong not in output
    assert invoiz_sandbox.requests["invoice_list"] == invoiz_sandbox.requests["customer_list"] == 0


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"TAP_INVOIZ_API_URL": "http://127.0.0.1:9/api/"},
            "after 3 attempts (ConnectionError: no connection to the host (refused or not found)): check setting api_url",
        ),
        (
            {"TAP_INVOIZ_PAGE_SIZE": "0"},
            "Config validation failed: setting page_size must be an integer from 1 to 1000",
        ),
    ],
)
def test_a_bad_setting_is_one_plain_text_line(invoiz_sandbox, tmp_path, env, message):
    """What `meltano config test` shows of the tap is its last line: the message itself, not a JSON log record."""
    pipe = Pipeline(
        pg_env=NO_DATABASE,
        database="none",
        api_url=invoiz_sandbox.api_url,
        app_url=invoiz_sandbox.app_url,
        credentials=dict(invoiz_sandbox.credentials),
        account="test",
        state_dir=tmp_path / "state",
        extra_env={**private_run_dirs(tmp_path), **env},
    )
    result = pipe.meltano("config", "test", "tap-invoiz", check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    line = next(line for line in output.splitlines() if message in line)
    assert not line.lstrip().startswith("{"), line
