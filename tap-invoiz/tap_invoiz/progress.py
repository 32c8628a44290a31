"""Progress of a stream's sync: its counters and INFO lines, and the tap's one-line summary over all streams."""

from __future__ import annotations

import math
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    import logging

#: Seconds between two progress lines of a stream (INFO); tests monkeypatch it.
PROGRESS_INTERVAL = 15.0


def counted(number: int, singular: str, plural: str) -> str:
    """``1 retry``, ``2 retries``, ``1,204 requests``."""
    return f"{number:,} {singular if number == 1 else plural}"


class StreamProgress:
    """Counters of one stream's sync and its INFO lines: once when the size of the listing is known, then at most
    every PROGRESS_INTERVAL seconds, and a summary at the end. Requests and retries are counted by page workers
    (hence the lock); everything else by the thread that emits records."""

    def __init__(self, name: str, logger: logging.Logger) -> None:
        self.name = name
        self.logger = logger
        self._lock = threading.Lock()
        self.requests = 0  # HTTP requests sent by this stream, retries and 401 resends included
        self.retries = 0  # retried 429/5xx/timeouts/connection errors/malformed answers
        self.new = self.changed = self.deleted = 0  # list streams: by fingerprint
        self.resent = 0  # unchanged invoices sent again because their invoice_payments were due
        self.records = 0  # child streams (invoice_payments): records written
        self.scan = 0
        self.pages = self.rows = 0  # of the current scan
        self.count: int | None = None  # meta.count of the last page
        self.stride = 0  # rows per page as the server delivers them
        self.candidates = self.checked = 0
        self.rejected = 0  # rows not emitted because PostgreSQL cannot store them (RejectedRow); retried next run
        self.started = time.monotonic()
        self._last_line = self.started

    def request_sent(self) -> None:
        with self._lock:
            self.requests += 1

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def emitted(self) -> int:
        return self.new + self.changed + self.deleted + self.resent + self.records

    def scan_started(self) -> None:
        self.scan += 1
        self.pages = self.rows = 0

    def page_listed(self, rows: int, count: int | None, workers: int) -> None:
        self.pages += 1
        self.rows += rows
        self.count = count
        if self.pages == 1:
            self.stride = rows
            pages = math.ceil(count / rows) if count is not None and rows else 1
            # a listing of one page ends at once: its summary line says the same (a fleet shard writes one per
            # account and stream, and Meltano re-logs every line)
            if count is not None and self.scan == 1 and pages > 1:
                self.logger.info(
                    "%s: listing %s rows in %s of %s, %s",
                    self.name,
                    f"{count:,}",
                    counted(pages, "page", "pages"),
                    rows,
                    f"up to {workers} at a time" if workers > 1 and pages > 2 else "one after another",
                )
                self._last_line = time.monotonic()
                return
        self.maybe_log()

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last_line >= PROGRESS_INTERVAL:
            self._last_line = now
            self.logger.info("%s", self.line())

    def line(self) -> str:
        scan = " (second scan)" if self.scan > 1 else ""
        if self.count is not None and self.stride:
            pages = max(self.pages, math.ceil(self.count / self.stride))
            listed = f"{self.pages:,}/{pages:,} pages, {self.rows:,}/{self.count:,} rows listed{scan}"
        else:
            listed = f"{self.pages:,} pages, {self.rows:,} rows listed{scan}"
        if self.candidates:
            listed += f", {self.checked:,}/{self.candidates:,} deletion candidates checked"
        return f"{self.name}: {listed}, {self.emitted:,} emitted"

    def summary(self, account: str, listed: int, tracked: int) -> str:
        seconds = time.monotonic() - self.started
        resent = f", {self.resent:,} resent for invoice_payments" if self.resent else ""
        rejected = f", {self.rejected:,} rejected (retried next run)" if self.rejected else ""
        return (
            f"{self.name}: account {account!r} done in {seconds:.1f} s: {listed:,} rows listed, "
            f"{self.emitted:,} records emitted "
            f"({self.new:,} new, {self.changed:,} changed, {self.deleted:,} deleted{resent}), "
            f"{counted(self.candidates, 'deletion candidate', 'deletion candidates')}, {tracked:,} tracked{rejected}; "
            f"{counted(self.requests, 'request', 'requests')}, {counted(self.retries, 'retry', 'retries')}"
        )


def sync_summary(progress: list[StreamProgress], token_requests: int, seconds: float) -> str:
    """One line over all streams: records emitted (per stream, and new/changed/deleted), requests, retries."""
    per_stream = ", ".join(f"{p.name} {p.emitted:,}" for p in progress)
    return (
        f"sync done in {seconds:.1f} s: {sum(p.emitted for p in progress):,} records emitted ({per_stream}); "
        f"{sum(p.new for p in progress):,} new, {sum(p.changed for p in progress):,} changed, "
        f"{sum(p.deleted for p in progress):,} deleted; "
        f"{counted(sum(p.requests for p in progress) + token_requests, 'request', 'requests')} "
        f"(incl. {counted(token_requests, 'token request', 'token requests')}), "
        f"{counted(sum(p.retries for p in progress), 'retry', 'retries')}"
    )
