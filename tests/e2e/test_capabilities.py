"""Capabilities of tap-invoiz through Meltano: batch and stream-maps through `meltano run` into PostgreSQL, and
structured-logging as Meltano uses it. (The tap alone: tests/ecosystem/test_tap_capabilities.py.)"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal

import pytest

from invoiz_ops.pipeline import Pipeline, private_run_dirs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NO_DATABASE = {"PGHOST": "127.0.0.1", "PGPORT": "9", "PGUSER": "nobody", "PGPASSWORD": "", "PGDATABASE": "none"}


@pytest.fixture
def pipeline(pipeline, tmp_path):
    """The e2e pipeline, with its own .meltano/run and dbt target (other sessions may run meltano at the same time)."""
    pipeline.extra_env.update(private_run_dirs(tmp_path))
    return pipeline


def _target_summary(stderr: str) -> tuple[int, int]:
    """(records, batch manifests) target-postgres says it read."""
    match = re.search(r"(\d+) records, (\d+) batch manifests", stderr)
    assert match, stderr[-3000:]
    return int(match.group(1)), int(match.group(2))


def _money(value) -> Decimal:
    return Decimal(str(value))


def test_batch_messages_are_loaded_by_target_postgres(pipeline, invoiz_sandbox, tmp_path):
    root = tmp_path / "batches"
    root.mkdir()
    pipeline.extra_env["TAP_INVOIZ_BATCH_CONFIG"] = json.dumps(
        {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": root.as_uri(), "prefix": "invoiz-"},
        }
    )
    first = pipeline.run("tap-invoiz", "target-postgres")
    records, manifests = _target_summary(first.stderr)
    assert records == 0 and manifests >= 2  # everything came as BATCH files, none as RECORD messages
    assert any(root.iterdir())

    invoices = {i: invoiz_sandbox.invoice(i) for i in invoiz_sandbox.invoice_ids()}
    loaded = dict(pipeline.query("select id, total_gross from raw_invoiz.invoices"))
    assert set(loaded) == set(invoices)
    assert all(loaded[i] == _money(invoices[i]["totalGross"]) for i in invoices)
    emails = dict(pipeline.query("select id, email from raw_invoiz.contacts"))
    assert emails == {c["id"]: c.get("email") for c in invoiz_sandbox.contacts()}

    # the state was committed with the batches: the next run sends only the change, again as a batch
    paid = next(i for i, inv in invoices.items() if inv["state"] == "locked")
    invoiz_sandbox.pay(paid)
    second = pipeline.run("tap-invoiz", "target-postgres")
    assert _target_summary(second.stderr)[1] >= 1
    assert pipeline.scalar("select status from raw_invoiz.invoices where id = %s", (paid,)) == "paid"
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices") == len(invoices)


def test_an_inline_stream_map_hashes_emails_on_their_way_into_postgres(pipeline, invoiz_sandbox):
    pipeline.extra_env["TAP_INVOIZ_STREAM_MAPS"] = json.dumps(
        {"contacts": {"email": "md5(record['email']) if record['email'] else None"}}
    )
    pipeline.run("tap-invoiz", "target-postgres")
    stored = dict(pipeline.query("select id, email from raw_invoiz.contacts"))
    originals = {c["id"]: c.get("email") for c in invoiz_sandbox.contacts()}
    assert set(stored) == set(originals)
    assert any(originals.values())
    for contact_id, original in originals.items():
        assert stored[contact_id] == (hashlib.md5(original.encode()).hexdigest() if original else None)
    # other columns and streams are untouched
    assert pipeline.scalar("select count(*) from raw_invoiz.invoices") == len(invoiz_sandbox.invoice_ids())
    assert pipeline.scalar("select count(*) from raw_invoiz.contacts where contact_url like '%/customer/%'") == len(
        originals
    )


def test_structured_logging_meltano_receives_the_taps_log_records_as_fields(invoiz_sandbox, tmp_path):
    """structured-logging: Meltano configures singer-sdk's StructuredFormatter for the tap (SINGER_SDK_LOG_CONFIG) and
    parses its JSON log lines, so the tap's logger, level, metrics and stream arrive as fields of Meltano's own log
    events (here with `meltano --log-format=json`) instead of as text lines."""
    invoiz_sandbox.fault("rate_limit", scope="invoice_list", times=1, retry_after=0)  # one warning from the tap
    pipe = Pipeline(
        pg_env=NO_DATABASE,
        database="none",
        api_url=invoiz_sandbox.api_url,
        app_url=invoiz_sandbox.app_url,
        credentials=dict(invoiz_sandbox.credentials),
        account="test",
        state_dir=tmp_path / "state",
        # the tap shows singer-sdk's METRIC lines only at debug
        extra_env={**private_run_dirs(tmp_path), "TAP_INVOIZ_LOGLEVEL": "debug"},
    )
    result = pipe.meltano("--log-format=json", "invoke", "tap-invoiz", timeout=300)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    from_tap = [e for e in events if e.get("stdio") == "stderr" and "plugin_logger" in e]
    assert from_tap, result.stderr[-3000:]

    loggers = {e["plugin_logger"] for e in from_tap}
    assert {"tap-invoiz.invoices", "tap-invoiz.contacts", "singer_sdk.metrics"} <= loggers  # the tap's own loggers
    warnings = [e for e in from_tap if e["level"] == "warning" and e["plugin_logger"].startswith("tap-invoiz")]
    assert any("429" in e["event"] for e in warnings)
    assert all(e["level"] == "info" for e in from_tap if e["event"] == "METRIC")

    record_counts = {
        e["metric_info"]["tags"]["stream"]: e["metric_info"]["value"]
        for e in from_tap
        if e["event"] == "METRIC" and e["metric_info"]["metric"] == "record_count"
    }
    assert record_counts == {
        "invoices": len(invoiz_sandbox.invoice_ids()),
        "contacts": len(invoiz_sandbox.contact_ids()),
        "sync_status": 2,
    }  # the tap's report: one row per account and stream
    assert not any(line.startswith('{"level"') for line in (e["event"] for e in from_tap))  # parsed, not re-wrapped
