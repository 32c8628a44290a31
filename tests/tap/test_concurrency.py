"""Concurrent list pages (setting max_concurrency): real overlap, API order kept, and every guarantee of the
sequential scan (retries, 429 pauses, one re-authentication, no gaps, clear errors) still holds.

Overlap is measured on the sandbox side (max_in_flight, request_log in arrival order), never by wall-clock time.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest
from singer_sdk.exceptions import ConfigValidationError, RetriableAPIError
from tap_helpers import _ListWriter, _parse, run_tap, sandbox_config

from invoiz_sandbox.data import SandboxError
from tap_invoiz import fingerprint as fpmod
from tap_invoiz.auth import InvoizAuthenticator
from tap_invoiz.paging import DEFAULT_MAX_CONCURRENCY, GIL_SWITCH_INTERVAL
from tap_invoiz.retry import RetryPacer, ScanCancelled
from tap_invoiz.tap import TapInvoiz


def list_order(sb) -> list[int]:
    """Invoice ids in the order the tap lists them (orderBy=date, ties by id), read straight from the sandbox."""
    ds = sb.dataset
    with ds.lock:
        return [ds.inv_id(i) for i in ds.invoice_order("date", False, "all")]


def on_invoice_list_call(sb, number: int, action) -> None:
    """Run ``action(query)`` when the sandbox serves its ``number``-th invoice list page (1-based), inside that request."""
    original = sb._invoice_list
    calls = {"n": 0}

    def wrapped(query):
        calls["n"] += 1
        if calls["n"] == number:
            action(query)
        return original(query)

    sb._invoice_list = wrapped


def list_log(sb) -> list[dict]:
    return [entry for entry in sb.request_log if entry["kind"] == "invoice_list"]


@pytest.mark.invoiz_sandbox(invoices=300, latency_ms=30)
@pytest.mark.parametrize("workers", [1, 4])
def test_pages_really_overlap_and_never_more_than_max_concurrency(invoiz_sandbox, workers):
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb, page_size=10, max_concurrency=workers), contacts=False)
    assert run.ids("invoices") == set(sb.invoice_ids())
    if workers == 1:
        assert sb.max_in_flight["invoice_list"] == 1
    else:
        assert 1 < sb.max_in_flight["invoice_list"] <= workers
    assert sb.requests["invoice_list"] == 30  # no page fetched twice


@pytest.mark.invoiz_sandbox(invoices=250, latency_ms=5)
def test_records_and_state_are_identical_and_in_the_same_order_for_1_4_and_8_workers(invoiz_sandbox):
    sb = invoiz_sandbox
    runs = {workers: run_tap(sandbox_config(sb, page_size=7, max_concurrency=workers)) for workers in (1, 4, 8)}
    expected = runs[1]
    assert [r["id"] for r in expected.records("invoices")] == list_order(sb)
    for workers in (4, 8):
        assert runs[workers].records("invoices") == expected.records("invoices"), workers
        assert runs[workers].records("contacts") == expected.records("contacts"), workers
        assert runs[workers].fingerprints == expected.fingerprints, workers


@pytest.mark.invoiz_sandbox(invoices=100, max_page_size=7, latency_ms=5)
def test_a_server_capped_page_size_sets_the_stride(invoiz_sandbox):
    sb = invoiz_sandbox
    run = run_tap(sandbox_config(sb, page_size=50, max_concurrency=4), contacts=False)
    assert [r["id"] for r in run.records("invoices")] == list_order(sb)
    assert sb.requests["invoice_list"] == -(-100 // 7)
    assert sorted(int(e["offset"]) for e in list_log(sb)) == list(range(0, 100, 7))


def test_a_pause_set_by_one_thread_holds_back_every_thread_and_a_given_up_scan_wakes_them():
    pacer = RetryPacer()
    pacer.pause_all(0.3)
    until = time.monotonic() + 0.3
    ended: list[float] = []
    other = threading.Thread(target=lambda: (pacer.wait_turn(), ended.append(time.monotonic())))
    other.start()
    other.join()
    assert ended[0] >= until - 0.01  # wait_turn only returns once the shared pause is over
    cancelled = threading.Event()
    outcome: list[str] = []

    def worker() -> None:
        pacer.bind(cancelled)
        pacer.pause_this_request(3600)
        try:
            pacer.wait_turn()
            outcome.append("sent")
        except ScanCancelled:
            outcome.append("gave up")

    thread = threading.Thread(target=worker)
    thread.start()
    cancelled.set()
    thread.join(timeout=30)
    assert outcome == ["gave up"]


@pytest.mark.invoiz_sandbox(invoices=600, latency_ms=20)
def test_a_429_on_one_worker_pauses_every_worker(invoiz_sandbox, tap_log, monkeypatch):
    sb = invoiz_sandbox
    workers = 4
    pauses: list[tuple[float, float]] = []  # (when set, until) in time.monotonic()
    turns: list[tuple[float, float]] = []  # (start, end) of every wait before a send
    pause_all, wait_turn = RetryPacer.pause_all, RetryPacer.wait_turn

    def recording_pause_all(self, seconds):
        pauses.append((time.monotonic(), time.monotonic() + seconds))
        pause_all(self, seconds)

    def recording_wait_turn(self):
        start = time.monotonic()
        wait_turn(self)
        turns.append((start, time.monotonic()))

    monkeypatch.setattr(RetryPacer, "pause_all", recording_pause_all)
    monkeypatch.setattr(RetryPacer, "wait_turn", recording_wait_turn)
    # the 6th list request gets the 429: by then all workers are busy
    on_invoice_list_call(sb, 5, lambda _q: sb.fault("rate_limit", scope="invoice_list", times=1, retry_after=1))
    run = run_tap(sandbox_config(sb, page_size=5, max_concurrency=workers), contacts=False)
    assert [r["id"] for r in run.records("invoices")] == list_order(sb)
    assert len(pauses) == 1
    set_at, until = pauses[0]
    after = [(start, end) for start, end in turns if start >= set_at]
    assert after, "nothing was sent after the 429"
    assert all(end >= until - 0.01 for _, end in after)  # every worker, not only the one that got the 429
    log = list_log(sb)
    limited = [e for e in log if e["status"] == 429]
    assert len(limited) == 1
    retry = next(e for e in log if e["seq"] > limited[0]["seq"] and e["offset"] == limited[0]["offset"])
    # between the 429 and its retry only requests already on their way, and those racing the retry once the pause
    # is over, reach the server: at most one of each per other worker
    assert len([e for e in log if limited[0]["seq"] < e["seq"] < retry["seq"]]) <= 2 * (workers - 1)
    assert any("(429)" in m and "all requests pause" in m for m in tap_log)


@pytest.mark.invoiz_sandbox(invoices=300, latency_ms=30)
def test_tokens_expiring_mid_scan_cost_one_token_request_with_concurrent_workers(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    on_invoice_list_call(sb, 6, lambda _q: sb.expire_tokens())
    run = run_tap(sandbox_config(sb, page_size=10, max_concurrency=4), contacts=False)
    assert [r["id"] for r in run.records("invoices")] == list_order(sb)
    assert any(e["status"] == 401 for e in list_log(sb))
    assert sb.requests["token"] == 2  # the check before the sync, and one re-authentication
    assert sum("re-authenticating once" in m for m in tap_log) == 1


def test_concurrent_401s_with_the_same_token_fetch_one_new_token(invoiz_sandbox):
    sb = invoiz_sandbox
    auth = InvoizAuthenticator(sandbox_config(sb))
    old = auth.token
    start = threading.Barrier(8)
    results: list[tuple[bool, str]] = []

    def worker() -> None:
        start.wait()
        dropped = auth.invalidate(old)
        results.append((dropped, auth.token))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert auth.token_requests == 2
    assert sum(dropped for dropped, _ in results) == 1  # only one worker logs the re-authentication
    assert len({token for _, token in results}) == 1
    assert results[0][1] != old


@pytest.mark.invoiz_sandbox(invoices=50)
def test_at_max_concurrency_1_the_next_page_is_requested_while_this_one_is_handled(invoiz_sandbox):
    """One page ahead with one request in flight: when the first record of page 2 is written, the request for page 3
    reaches invoiz without the record loop going on (the writer holds it until then, or 30 s in vain)."""
    sb = invoiz_sandbox
    original = sb._invoice_list
    page_3_asked = threading.Event()

    def watching(query):
        if query.get("offset") == "20":
            page_3_asked.set()
        return original(query)

    sb._invoice_list = watching
    order = list_order(sb)
    seen_while_handling_page_2: list[bool] = []

    class HoldingWriter(_ListWriter):
        def write_message(self, message) -> None:
            record = getattr(message, "record", None)
            if getattr(message, "stream", None) == "invoices" and record and record.get("id") == order[10]:
                seen_while_handling_page_2.append(page_3_asked.wait(timeout=30))
            super().write_message(message)

    writer = HoldingWriter()
    TapInvoiz(config=sandbox_config(sb, page_size=10, max_concurrency=1), message_writer=writer).sync_all()
    assert seen_while_handling_page_2 == [True]
    assert sb.max_in_flight["invoice_list"] == 1
    messages, _ = _parse("\n".join(writer.lines))
    emitted = [m["record"]["id"] for m in messages if m["type"] == "RECORD" and m["stream"] == "invoices"]
    assert emitted == order


@pytest.mark.invoiz_sandbox(invoices=30)
def test_a_listing_lets_its_page_workers_take_the_gil_within_a_millisecond(invoiz_sandbox):
    """The page ahead overlaps the rows' work only if its worker gets the GIL back quickly after each socket read
    (tap_invoiz.paging.GIL_SWITCH_INTERVAL; the effect is measured in docs/BENCHMARKS.md, section 2); the process's
    own setting is back once the listings are done."""
    seen: list[float] = []

    class WatchingWriter(_ListWriter):
        def write_message(self, message) -> None:
            if getattr(message, "stream", None) == "invoices" and getattr(message, "record", None):
                seen.append(sys.getswitchinterval())
            super().write_message(message)

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    try:
        config = sandbox_config(invoiz_sandbox, page_size=10, max_concurrency=1)
        TapInvoiz(config=config, message_writer=WatchingWriter()).sync_all()
        assert len(seen) == len(invoiz_sandbox.invoice_ids())
        assert set(seen) == {GIL_SWITCH_INTERVAL} and GIL_SWITCH_INTERVAL == 0.001
        assert sys.getswitchinterval() == 0.005
    finally:
        sys.setswitchinterval(before)


@pytest.mark.invoiz_sandbox(invoices=300, latency_ms=10)
@pytest.mark.parametrize("workers", [1, 4])
def test_a_persistent_500_on_page_7_fails_clearly_and_emits_only_the_pages_before_it(invoiz_sandbox, workers):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=10, max_concurrency=workers, max_retries=3)
    original = sb._invoice_list

    def failing(query):
        if query.get("offset") == "60":
            raise SandboxError("invoiz is down", field="offset", code="INTERNAL", status=500)
        return original(query)

    sb._invoice_list = failing
    writer = _ListWriter()
    tap = TapInvoiz(config=cfg, message_writer=writer)
    with pytest.raises(RetriableAPIError, match=r"HTTP 500 from invoiz for /api/invoice"):
        tap.sync_all()
    messages, states = _parse("\n".join(writer.lines))
    emitted = [m["record"]["id"] for m in messages if m["type"] == "RECORD" and m["stream"] == "invoices"]
    assert emitted == list_order(sb)[:60]  # pages 1-6, in order; nothing from the pages fetched ahead
    assert not any(m["record"].get("_sdc_deleted_at") for m in messages if m["type"] == "RECORD")
    for state in states:  # no STATE claims a row that was not emitted
        entry = state.get("bookmarks", {}).get("invoices", {}).get("accounts", {}).get("test")
        if entry:
            assert set(fpmod.decode(entry["fingerprints"])) <= set(emitted)
    log = list_log(sb)
    assert sum(e["status"] == 500 for e in log) == 4  # 1 + max_retries
    # the window never ran past page 7 while it failed: 6 pages, 4 attempts, at most workers - 1 pages after it
    assert len(log) <= 6 + 4 + workers - 1


@pytest.mark.parametrize("workers", [1, 4, 8])
@pytest.mark.parametrize(
    ("kind", "opts"), [("page_shift", {"after_page": 2, "insert": 3}), ("duplicate", {"after_page": 1})]
)
@pytest.mark.invoiz_sandbox(invoices=120, latency_ms=5)
def test_page_shift_and_duplicates_give_exactly_the_source_data(invoiz_sandbox, kind, opts, workers):
    sb = invoiz_sandbox
    cfg = sandbox_config(sb, page_size=10, max_concurrency=workers)
    sb.fault(kind, **opts)
    first = run_tap(cfg, contacts=False)  # a first run under the fault
    clean = run_tap(cfg, contacts=False)  # and a run without state after it: the truth
    latest = {r["id"]: r for r in first.records("invoices")}
    assert latest == {r["id"]: r for r in clean.records("invoices")}
    assert set(latest) == set(sb.invoice_ids())
    assert first.fingerprints == clean.fingerprints


@pytest.mark.invoiz_sandbox(invoices=200, latency_ms=10)
def test_a_short_page_before_the_end_falls_back_to_one_page_at_a_time_without_a_gap(invoiz_sandbox, tap_log):
    sb = invoiz_sandbox
    on_invoice_list_call(sb, 4, lambda _q: sb.set_max_page_size(7))  # the server starts capping mid-scan
    run = run_tap(sandbox_config(sb, page_size=10, max_concurrency=4), contacts=False)
    assert [r["id"] for r in run.records("invoices")] == list_order(sb)
    assert any("a page before the end had 7 rows instead of 10" in m for m in tap_log)


@pytest.mark.invoiz_sandbox(invoices=120, latency_ms=10)
def test_without_meta_count_pages_are_fetched_one_after_another(invoiz_sandbox):
    sb = invoiz_sandbox
    original = sb._invoice_list

    def without_count(query):
        body = original(query)
        del body["meta"]["count"]
        return body

    sb._invoice_list = without_count
    run = run_tap(sandbox_config(sb, page_size=10, max_concurrency=4), contacts=False)
    assert [r["id"] for r in run.records("invoices")] == list_order(sb)
    assert sb.max_in_flight["invoice_list"] == 1


@pytest.mark.parametrize("value", [0, 33, -1, "4", True, 2.5])
def test_max_concurrency_out_of_range_is_named(invoiz_sandbox, value):
    with pytest.raises(ConfigValidationError) as info:
        TapInvoiz(config=sandbox_config(invoiz_sandbox, max_concurrency=value))
    assert any("max_concurrency" in error for error in info.value.errors)


def test_max_concurrency_is_a_documented_setting():
    setting = TapInvoiz.config_jsonschema["properties"]["max_concurrency"]
    assert setting["type"] == ["integer", "null"] or "integer" in setting["type"]
    assert (
        setting["default"] == DEFAULT_MAX_CONCURRENCY > 1
    )  # concurrent by default; meltano.yml agrees (tests/ecosystem)
    assert "429" in setting["description"]


@pytest.mark.invoiz_sandbox(invoices=400, latency_ms=20)
def test_the_connection_pool_fits_the_workers(invoiz_sandbox, caplog):
    sb = invoiz_sandbox
    caplog.set_level(logging.WARNING, logger="urllib3")
    run = run_tap(sandbox_config(sb, page_size=10, max_concurrency=16), contacts=False)
    assert run.ids("invoices") == set(sb.invoice_ids())
    assert sb.max_in_flight["invoice_list"] <= 16
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
