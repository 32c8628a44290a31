"""Idempotence through the real `meltano run` (docs/RELIABILITY.md): the same sync twice leaves identical tables, and
`--full-refresh` twice leaves identical live rows — equal also to what the incremental runs built."""

from __future__ import annotations

import pytest
from e2e_helpers import (  # noqa: F401 (own_meltano_dirs: autouse fixture)
    EL,
    RUN_METADATA_COLUMNS,
    assert_raw_tables_equal_source,
    emitted,
    make_changes,
    own_meltano_dirs,
    snapshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLES = ("invoices", "contacts")


def test_same_sync_twice_and_full_refresh_twice_leave_identical_tables(pipeline, invoiz_sandbox):
    sb = invoiz_sandbox
    pipeline.extra_env["TAP_INVOIZ_PAGE_SIZE"] = "10"
    pipeline.run(*EL)
    make_changes(sb)  # paid, new, back-dated, deleted draft, changed e-mail: the second sync has work to do

    pipeline.run(*EL)
    after_first = {t: snapshot(pipeline, t) for t in TABLES}
    again = pipeline.run(*EL)
    assert emitted(again) == {"invoices": 0, "contacts": 0}
    # every column of every row (tombstones included), the _sdc_* metadata too: nothing was touched
    assert {t: snapshot(pipeline, t) for t in TABLES} == after_first
    assert_raw_tables_equal_source(pipeline, sb)

    pipeline.run(*EL, full_refresh=True)
    refreshed = {t: snapshot(pipeline, t, exclude=RUN_METADATA_COLUMNS, live_only=True) for t in TABLES}
    pipeline.run(*EL, full_refresh=True)
    assert {t: snapshot(pipeline, t, exclude=RUN_METADATA_COLUMNS, live_only=True) for t in TABLES} == refreshed
    # and a full refresh rebuilds exactly what the incremental runs had built
    incremental = {
        t: [tuple((c, v) for c, v in row if c not in RUN_METADATA_COLUMNS) for row in rows]
        for t, rows in after_first.items()
    }
    incremental = {t: [row for row in rows if dict(row)["_sdc_deleted_at"] is None] for t, rows in incremental.items()}
    assert refreshed == incremental
    assert_raw_tables_equal_source(pipeline, sb)

    # which metadata columns really change with a full refresh (documented in docs/RELIABILITY.md)
    full = {t: snapshot(pipeline, t, live_only=True) for t in TABLES}
    changed = {
        c
        for t in TABLES
        for before, now in zip(after_first_live(after_first[t]), full[t])
        for (c, v1), (_, v2) in zip(before, now)
        if v1 != v2
    }
    assert changed <= set(RUN_METADATA_COLUMNS), changed


def after_first_live(rows):
    return [row for row in rows if dict(row)["_sdc_deleted_at"] is None]
