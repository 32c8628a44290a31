"""Progress and summary lines of tap-invoiz (tap-invoiz/README.md): time-based progress per stream with the right numbers, a
summary per stream and one for the run, and a quiet default log (no line per page or per request)."""

from __future__ import annotations

import logging
import re

import pytest
from tap_helpers import run_cli, run_tap, sandbox_config

import tap_invoiz.progress as tap_progress

PROGRESS = re.compile(r"^invoices: (\d+)/(\d+) pages, ([\d,]+)/([\d,]+) rows listed, ([\d,]+) emitted$")


def number(text: str) -> int:
    return int(text.replace(",", ""))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def tap_records():
    """LogRecords of the tap's loggers at INFO and above (what a user sees by default)."""
    handler = _Records()
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("tap-invoiz")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.invoiz_sandbox(invoices=95)
@pytest.mark.parametrize("workers", [1, 4])
def test_progress_lines_carry_pages_rows_and_emitted_records(invoiz_sandbox, tap_records, monkeypatch, workers):
    monkeypatch.setattr(tap_progress, "PROGRESS_INTERVAL", 0.0)  # a line after every page
    run_tap(sandbox_config(invoiz_sandbox, page_size=10, max_concurrency=workers), contacts=False)
    messages = [r.getMessage() for r in tap_records]
    expected_start = "one after another" if workers == 1 else f"up to {workers} at a time"
    assert f"invoices: listing 95 rows in 10 pages of 10, {expected_start}" in messages
    progress = [PROGRESS.match(m).groups() for m in messages if PROGRESS.match(m)]
    assert [int(done) for done, *_ in progress] == list(range(2, 11))
    for done, total, rows, count, emitted in progress:
        assert number(total) == 10 and number(count) == 95
        assert number(rows) == min(int(done) * 10, 95)
        assert number(emitted) == (int(done) - 1) * 10  # a page is counted before its rows are emitted


@pytest.mark.invoiz_sandbox(invoices=300, latency_ms=40)
def test_progress_lines_come_at_most_once_per_interval(invoiz_sandbox, tap_records, monkeypatch):
    monkeypatch.setattr(tap_progress, "PROGRESS_INTERVAL", 0.25)
    run_tap(sandbox_config(invoiz_sandbox, page_size=10, max_concurrency=1), contacts=False)  # 30 pages, >= 1.2 s
    times = [r.created for r in tap_records if PROGRESS.match(r.getMessage())]
    assert len(times) >= 2
    assert all(later - earlier >= 0.25 - 0.02 for earlier, later in zip(times, times[1:]))


@pytest.mark.invoiz_sandbox(invoices=300)
def test_default_log_is_quiet_a_few_lines_per_stream(invoiz_sandbox, tap_records, monkeypatch):
    assert 10 <= tap_progress.PROGRESS_INTERVAL <= 15
    monkeypatch.setattr(tap_progress, "PROGRESS_INTERVAL", 3600.0)  # however slow this machine is today
    run_tap(sandbox_config(invoiz_sandbox, page_size=10))  # 30 + 6 pages
    per_stream = {}
    for record in tap_records:
        per_stream.setdefault(record.name, []).append(record.getMessage())
    assert not any(PROGRESS.match(m) for m in per_stream["tap-invoiz.invoices"])
    for name in ("tap-invoiz.invoices", "tap-invoiz.contacts"):
        # our size line and our summary (the SDK's "Beginning sync ... in full_table mode" only at DEBUG)
        assert len(per_stream[name]) == 2, per_stream[name]


def test_metrics_and_sdk_chatter_only_at_debug(invoiz_sandbox, tmp_path):
    cfg = sandbox_config(invoiz_sandbox, page_size=10)
    quiet = run_cli(cfg, tmp_path=tmp_path, env={"TAP_INVOIZ_LOGLEVEL": "info"})
    assert quiet.returncode == 0, quiet.stderr
    assert "METRIC" not in quiet.stderr  # the summary lines say what the counters would
    for chatter in ("full_table mode", "Skipping parse of env var", "as child stream", "Skipping deselected"):
        assert chatter not in quiet.stderr
    invoiz_sandbox.reset_counters()
    verbose = run_cli(cfg, tmp_path=tmp_path, env={"TAP_INVOIZ_LOGLEVEL": "debug"})
    assert verbose.returncode == 0, verbose.stderr
    requests = invoiz_sandbox.requests
    assert verbose.stderr.count("http_request_duration") == requests["invoice_list"] + requests["customer_list"]
    assert '"metric":"record_count"' in verbose.stderr
    assert "in full_table mode" in verbose.stderr


def test_a_single_page_listing_has_no_size_line_only_its_summary(invoiz_sandbox, tap_log):
    run_tap(sandbox_config(invoiz_sandbox, page_size=500))
    invoices = [m for m in tap_log if m.startswith("invoices:")]
    assert not [m for m in invoices if m.startswith("invoices: listing 60 rows")], invoices
    assert [m for m in invoices if "60 rows listed" in m and " done in " in m], invoices


def test_summary_counts_new_changed_deleted_requests_and_retries(invoiz_sandbox, tap_records):
    sb = invoiz_sandbox
    # a full listing (by state, 60 invoices in pages of 10 would cost 4 requests instead of 6: see
    # test_listing_by_state.py for its summary)
    cfg = sandbox_config(sb, page_size=10, full_scan_every=1)
    first = run_tap(cfg)
    sb.pay(next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "locked"))
    sb.delete_invoice(next(i for i in sb.invoice_ids() if sb.invoice(i)["state"] == "draft"))
    sb.create_invoice(customer_id=next(iter(sb.contact_ids())))
    sb.set_faults(
        {"kind": "rate_limit", "scope": "invoice_list", "times": 1, "retry_after": 0},
        {"kind": "malformed_json", "scope": "invoice_list", "times": 1},
    )
    tap_records.clear()
    run = run_tap(cfg, first.state)
    assert len(run.records("invoices")) == 3
    messages = [r.getMessage() for r in tap_records]
    rows = len(sb.invoice_ids())  # 60: one deleted, one added
    pages = -(-rows // 10)
    assert any(
        "invoices: account 'test' done in" in m
        and m.endswith(
            f": {rows} rows listed, 3 records emitted (1 new, 1 changed, 1 deleted), 1 deletion candidate, "
            f"{rows} tracked; {pages + 2 + 1} requests, 2 retries"  # pages, 2 retried, 1 detail to confirm the deletion
        )
        for m in messages
    ), [m for m in messages if "done in" in m]
    contacts = len(sb.contact_ids())
    summary = [m for m in messages if m.startswith("sync done in")]
    assert len(summary) == 1
    assert summary[0].endswith(
        f"s: 3 records emitted (contacts 0, invoices 3); 1 new, 1 changed, 1 deleted; "
        f"{pages + 3 + -(-contacts // 10) + 1} requests (incl. 1 token request), 2 retries"
    )


def test_summary_counts_invoice_payments(invoiz_sandbox, tap_records):
    run = run_tap(sandbox_config(invoiz_sandbox), payments=True)
    payments = len(run.records("invoice_payments"))
    assert payments > 0
    summary = next(r.getMessage() for r in tap_records if r.getMessage().startswith("sync done in"))
    assert f"invoice_payments {payments:,}" in summary
