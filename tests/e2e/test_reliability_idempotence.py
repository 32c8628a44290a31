"""Idempotence of tap-invoiz → target-postgres (docs/RELIABILITY.md): the same sync twice leaves identical tables, and
a full refresh twice leaves identical live rows — equal also to what the incremental runs built. The plugins run
without Meltano (e2e_helpers.direct_el: Meltano's configs, catalog and state hand-over), which this does not test."""

from __future__ import annotations

import pytest
from e2e_helpers import (  # noqa: F401 (own_meltano_dirs: autouse fixture)
    RUN_METADATA_COLUMNS,
    assert_raw_tables_equal_source,
    direct_el,
    emitted,
    make_changes,
    own_meltano_dirs,
    snapshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLES = ("invoices", "contacts")


def test_same_sync_twice_and_full_refresh_twice_leave_identical_tables(pipeline, invoiz_sandbox):
    sb = invoiz_sandbox
    page = {"page_size": 10}
    direct_el(pipeline, **page)
    make_changes(sb)  # paid, new, back-dated, deleted draft, changed e-mail: the second sync has work to do

    direct_el(pipeline, **page)
    after_first = {t: snapshot(pipeline, t) for t in TABLES}
    again = direct_el(pipeline, **page)
    assert emitted(again) == {"invoices": 0, "contacts": 0}
    # every column of every row (tombstones included), the _sdc_* metadata too: nothing was touched
    assert {t: snapshot(pipeline, t) for t in TABLES} == after_first
    assert_raw_tables_equal_source(pipeline, sb)

    direct_el(pipeline, full_refresh=True, **page)
    refreshed = {t: snapshot(pipeline, t, exclude=RUN_METADATA_COLUMNS, live_only=True) for t in TABLES}
    direct_el(pipeline, full_refresh=True, **page)
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
