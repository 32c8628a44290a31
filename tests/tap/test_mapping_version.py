"""The mapping version (part of every row fingerprint's salt) derives itself from the field tables and schemas, so a
new API field re-emits every row once without a manual step, and a description edit re-emits nothing."""

from __future__ import annotations

import copy

from tap_helpers import run_tap, sandbox_config

from tap_invoiz import mapping_version as mv
from tap_invoiz import schemas, streams
from tap_invoiz.schemas import Field


def _tables() -> dict:
    return copy.deepcopy(mv.stream_tables())


def test_the_version_is_derived_from_the_current_tables():
    assert mv.mapping_version() == mv.compute(mv.stream_tables())
    assert mv.mapping_version().startswith(mv.CONVERTERS_VERSION + "-")


def test_a_new_api_field_changes_the_version():
    tables = _tables()
    fields, schema = tables["contacts"]
    tables["contacts"] = ([*fields, Field("birthday", "birthday", "date", "Birthday")], schema)
    assert mv.compute(tables) != mv.compute(_tables())


def test_a_new_derived_column_or_another_type_changes_the_version():
    tables = _tables()
    tables["invoices"][1]["properties"]["days_open"] = {"type": ["integer", "null"]}
    assert mv.compute(tables) != mv.compute(_tables())

    tables = _tables()
    tables["contacts"][1]["properties"]["discount"]["type"] = ["string", "null"]
    assert mv.compute(tables) != mv.compute(_tables())


def test_a_renamed_column_changes_the_version():
    tables = _tables()
    fields, schema = tables["invoices"]
    tables["invoices"] = ([f._replace(column="invoice_title") if f.api == "title" else f for f in fields], schema)
    assert mv.compute(tables) != mv.compute(_tables())


def test_descriptions_do_not_change_the_version():
    tables = _tables()
    fields, schema = tables["invoices"]
    schema["properties"]["title"]["description"] = "another text for people"
    tables["invoices"] = ([f._replace(description="reworded") for f in fields], schema)
    assert mv.compute(tables) == mv.compute(_tables())


def test_a_changed_mapping_re_emits_every_row_once(invoiz_sandbox, monkeypatch):
    cfg = sandbox_config(invoiz_sandbox, page_size=50)
    first = run_tap(cfg)
    assert run_tap(cfg, first.state).records("invoices") == []  # nothing changed: nothing sent

    # a field added to a table (the version is computed once per process: forget it before and after)
    monkeypatch.setattr(schemas, "CONTACT_FIELDS", [*schemas.CONTACT_FIELDS, Field("birthday", "birthday", "date", "")])
    mv.mapping_version.cache_clear()
    try:
        again = run_tap(cfg, first.state)
        then = run_tap(cfg, again.state)
    finally:
        monkeypatch.undo()
        mv.mapping_version.cache_clear()
    assert again.ids("invoices") == set(invoiz_sandbox.invoice_ids())
    assert again.ids("contacts") == set(invoiz_sandbox.contact_ids())
    assert then.records("invoices") == [] and then.records("contacts") == []  # once


def test_every_fingerprinted_stream_counts_in_the_version():
    """A new stream's field table and schema must be part of the version (tap_invoiz/mapping_version.py)."""
    classes = [v for v in vars(streams).values() if isinstance(v, type) and "schema" in vars(v) and hasattr(v, "name")]
    fingerprinted = {c.name for c in classes if c.name != "sync_status"}  # sync_status: the tap's report, not rows
    assert set(mv.stream_tables()) == fingerprinted
    for name, (fields, schema) in mv.stream_tables().items():
        assert {f.column for f in fields} <= set(schema["properties"]), name
