"""`make sync` / `make backfill` (ops/invoiz_ops/run.py): your account into your PostgreSQL; an unreachable one is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invoiz_ops.pipeline import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_tool(pipeline, job: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {**pipeline.env(), **overrides}  # TAP_INVOIZ_* of the sandbox, PG* of the test database, own state
    return subprocess.run(
        [sys.executable, "-m", "invoiz_ops.run", job, "--ignore-dotenv"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_make_sync_then_make_backfill_load_into_the_given_database(pipeline, invoiz_sandbox):
    first = run_tool(pipeline, "sync")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "meltano run sync into your PostgreSQL" in first.stdout
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices") == len(invoiz_sandbox.invoice_ids())
    assert pipeline.scalar("select count(*) from analytics.customer_values") > 0
    backfill = run_tool(pipeline, "backfill")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert "meltano run --full-refresh backfill" in backfill.stdout


def test_an_unreachable_database_is_one_line_before_anything_runs(pipeline, invoiz_sandbox):
    result = run_tool(pipeline, "sync", PGHOST="127.0.0.1", PGPORT="9")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "Cannot connect to PostgreSQL" in result.stderr and "PGHOST" in result.stderr and ".env" in result.stderr
    assert invoiz_sandbox.requests["token"] == 0
