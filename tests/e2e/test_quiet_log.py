"""What a user sees of `meltano run sync`: the tap's summaries and Meltano's own lines, no noise (no METRIC lines,
SQL statements, colour codes, dbt's per-node lines or precision warnings, misleading "full_table mode")."""

from __future__ import annotations

import pytest

from invoiz_ops.pipeline import VERBOSE_TARGET

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOISE = (
    "METRIC",
    "COPY ",
    "INSERT INTO",
    "full_table mode",
    "\x1b[",
    "unspecified precision",
    " pages of",
    "Skipping parse of env var",
    " START ",
    " OK created",
)


def test_a_sync_logs_only_what_a_user_needs(pipeline, invoiz_sandbox):
    for key in VERBOSE_TARGET:  # the tests' fixture turns the target's lines on; a user's run has meltano.yml's
        pipeline.extra_env.pop(key, None)
    first = pipeline.run("sync")
    no_change = pipeline.run("sync")
    for result in (first, no_change):
        log = result.stdout + result.stderr
        assert [n for n in NOISE if n in log] == [], log[-3000:]
        assert "sync done in" in log
    log = no_change.stdout + no_change.stderr
    assert "0 records emitted (contacts 0, invoices 0)" in log
    assert "listing 60 rows in 1 page of 60" in log
    # Meltano's lines (start, state, 2 blocks: preflight + pipeline), the tap's (version, 2 per stream, run summary)
    assert len(log.splitlines()) <= 20, log
