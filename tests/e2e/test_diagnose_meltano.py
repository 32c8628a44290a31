"""`meltano invoke tap-invoiz --diagnose`: the diagnosis through Meltano, with the settings from the environment (as in
.env), as the README tells a user with a new live account to run it. Needs no database."""

from __future__ import annotations

import pytest

from invoiz_ops.pipeline import Pipeline, private_run_dirs

pytestmark = [pytest.mark.e2e]

NO_DATABASE = {"PGHOST": "127.0.0.1", "PGPORT": "9", "PGUSER": "nobody", "PGPASSWORD": "", "PGDATABASE": "none"}


def meltano_diagnose(sb, tmp_path, *args: str):
    pipe = Pipeline(
        pg_env=NO_DATABASE,
        database="none",
        api_url=sb.api_url,
        app_url=sb.app_url,
        credentials=dict(sb.credentials),
        account="test",
        state_dir=tmp_path / "state",
        extra_env=private_run_dirs(tmp_path),
    )
    return pipe.meltano("invoke", "tap-invoiz", "--diagnose", *args, check=False, timeout=300)


def test_meltano_invoke_prints_the_report_and_passes_the_exit_status(invoiz_sandbox, tmp_path):
    result = meltano_diagnose(invoiz_sandbox, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("# invoiz diagnosis for tap-invoiz")
    assert "❌ 0 block a correct sync" in result.stdout
    for value in invoiz_sandbox.credentials.values():
        assert value not in result.stdout + result.stderr


def test_meltano_invoke_with_output_and_a_blocking_item_exits_1(invoiz_sandbox, tmp_path):
    invoiz_sandbox.set_variants(["no_customer_email"])
    report = tmp_path / "invoiz-diagnosis.md"
    result = meltano_diagnose(invoiz_sandbox, tmp_path, "--output", str(report))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "❌ **E-mail**" in report.read_text(encoding="utf-8")
