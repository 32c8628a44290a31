"""Every `.venv/bin/meltano ...` command the README shows, run as written against a sandbox and a test database, in
the README's order; the backfill job without --full-refresh and a job without any database stop with one line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import emitted

from invoiz_ops.pipeline import PROJECT_ROOT, meltano_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

README = (PROJECT_ROOT / "README.md").read_text()
COMMANDS = list(dict.fromkeys(re.findall(r"`\.venv/bin/meltano ([^`]+)`", README)))
STATE_ID = "dev:tap-invoiz-to-target-postgres"
SETTINGS = (
    "api_key",
    "api_key_secret",
    "installation_id",
    "account",
    "api_url",
    "app_url",
    "start_date",
    "page_size",
    "max_concurrency",
    "request_timeout",
    "max_retries",
    "user_agent",
    "allow_installation_change",
    "stream_maps",
    "stream_map_config",
    "batch_config",
)


def _output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def test_the_readme_names_the_commands_this_test_runs():
    assert set(COMMANDS) == {
        "config test tap-invoiz",
        "config list tap-invoiz --all",
        "run sync",
        "run --full-refresh backfill",
        "run docs",
        "schedule list",
        "state list",
        f"state get {STATE_ID}",
        "run --force sync",
    }, "a command was added to or changed in the README: run it in test_every_readme_command_works_as_written"


def test_every_readme_command_works_as_written(pipeline, invoiz_sandbox):
    invoices = len(invoiz_sandbox.invoice_ids())
    checks = {
        "config test tap-invoiz": lambda out: "Plugin configuration is valid" in out,
        "config list tap-invoiz --all": lambda out: all(f"{name} [env: " in out for name in SETTINGS),
        "run sync": lambda out: pipeline.scalar("select count(*) from raw_invoiz.invoices") == invoices,
        "run --full-refresh backfill": lambda out: emitted_invoices(out) == invoices,
        "run docs": lambda out: (Path(pipeline.env()["DBT_TARGET_PATH"]) / "catalog.json").exists(),
        "schedule list": lambda out: "sync-every-15-minutes" in out and "*/15 * * * *" in out,
        "state list": lambda out: STATE_ID in out,
        f"state get {STATE_ID}": lambda out: '"bookmarks"' in out,
        "run --force sync": lambda out: emitted_invoices(out) == 0,
    }
    for command in COMMANDS:  # in the README's order
        result = pipeline.meltano(*command.split(), check=False)
        out = _output(result)
        assert result.returncode == 0, f"meltano {command}:\n{out[-3000:]}"
        assert checks[command](out), f"meltano {command} did not do what the README says:\n{out[-3000:]}"


def emitted_invoices(out: str) -> int:
    return emitted(subprocess.CompletedProcess([], 0, stdout="", stderr=out)).get("invoices", 0)


def test_the_backfill_job_without_full_refresh_refuses_before_anything_moves(pipeline, invoiz_sandbox):
    result = pipeline.run("backfill", check=False)
    out = _output(result)
    assert result.returncode != 0
    assert "run `meltano run --full-refresh backfill`" in out and "Nothing was run" in out
    assert "Traceback" not in out
    assert invoiz_sandbox.requests["token"] == 0
    assert not pipeline.scalar("select count(*) from information_schema.schemata where schema_name = 'raw_invoiz'")


@pytest.mark.parametrize("job", ["sync", "backfill"])
def test_a_job_without_a_database_stops_with_one_line_naming_pghost_and_dotenv(pipeline, invoiz_sandbox, job):
    env = pipeline.env()
    del env["PGHOST"]
    args = ["run", "--full-refresh", job] if job == "backfill" else ["run", job]
    result = subprocess.run(
        meltano_command(*args), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = _output(result)
    assert result.returncode != 0
    line = next(line for line in out.splitlines() if "PGHOST is not set" in line)
    assert ".env" in line and "make sync" in line
    assert "Traceback" not in out and "AssertionError" not in out
    assert invoiz_sandbox.requests["token"] == 0
