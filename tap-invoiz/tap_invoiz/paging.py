"""Offset/limit paging of the list endpoints, with a window of pages fetched ahead by worker threads.

The rows of a listing are always handled strictly in offset order — the same rows in the same order whatever
``max_concurrency`` is; the workers only fetch the next pages early.
"""

from __future__ import annotations

import threading
import typing as t
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from singer_sdk.pagination import OffsetPaginator

from tap_invoiz.responses import response_body

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_invoiz.sync import InvoizListStream

#: Largest value of the setting page_size.
PAGE_SIZE_MAX = 1000
#: Default of the setting page_size. 500: the upper end of what the API contract suggests (100–500); 5× fewer round
#: trips than 100, the fastest in docs/BENCHMARKS.md. A server that caps limit silently is handled (the tap pages by
#: the rows it gets).
DEFAULT_PAGE_SIZE = 500
#: Default and upper bound of the setting max_concurrency (list pages in flight per stream). 2, not more: invoiz
#: documents no rate limit and the contract suggests 1–2; with 500-row pages at 100 ms a 100k backfill is bound by
#: the loader's CPU, not by latency (docs/BENCHMARKS.md, section 1), and in the 10k grid 4 saved 0–1.5 s per run.
DEFAULT_MAX_CONCURRENCY = 2
MAX_CONCURRENCY_LIMIT = 32


class InvoizPaginator(OffsetPaginator):
    """Offset/limit paging. Advances by the rows actually received (the server may cap ``limit`` silently) and stops
    at ``offset >= meta.count``, at an empty page, or — only when ``meta.count`` is missing — at a short page."""

    def __init__(self, page_size: int, counts: list[int | None]) -> None:
        super().__init__(start_value=0, page_size=page_size)
        self.counts = counts  # meta.count of every page, for the completeness check

    def _rows(self, response: requests.Response) -> list:
        body = response_body(response)
        return body.get("data") or []

    def get_next(self, response: requests.Response) -> int | None:
        return self._value + len(self._rows(response))

    def has_more(self, response: requests.Response) -> bool:
        rows = self._rows(response)
        count = self.counts[-1] if self.counts else None
        if not rows:
            return False
        if isinstance(count, int):
            return self._value + len(rows) < count
        return len(rows) >= self.page_size


class PageWindow:
    """One listing of a stream, its rows strictly in offset order.

    The first page is fetched alone: it gives ``meta.count`` and the effective page size (the rows actually
    received; the server may cap ``limit`` silently). Then a window of at most ``max_concurrency`` requests runs
    ahead at offsets one stride apart while the rows are handled in order, so memory stays bounded by the window.
    Where to go next is still decided page by page by :class:`InvoizPaginator`, exactly as without concurrency;
    if a page before the end comes back with another number of rows than the first one (a server that changes
    its cap mid-scan), the pages fetched ahead would skip (or repeat) rows: they are dropped and the rest is
    listed one page after another. Without ``meta.count`` the whole listing is sequential. A page that fails for
    good ends the scan with its error once the pages before it have been handled; the other workers are woken and
    give up.
    """

    def __init__(self, stream: InvoizListStream, context: Context | None) -> None:
        self.stream = stream
        self.context = context
        self.workers = stream.max_concurrency
        self.fetch = stream.request_decorator(stream._request)  # the stream's own send, with retries
        self.cancelled = threading.Event()
        self.ahead: deque[tuple[int, Future[requests.Response]]] = deque()  # (offset, response to come), in order
        self.executor: ThreadPoolExecutor | None = None
        self.run_ahead = self.workers > 1
        self.stride = 0
        self.next_ahead = 0
        self.last_rows = 0

    def rows(self) -> Iterable[dict]:
        """Every row of the listing, page after page (the stream's parse_response), counted as SDK metrics."""
        stream = self.stream
        paginator = stream.get_new_paginator()
        if self.workers > 1:
            self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"{stream.name}-page")
        stream.progress.scan_started()
        try:
            with stream.get_http_request_counter() as request_counter:
                request_counter.with_context(self.context)
                while not paginator.finished:
                    response = self._response(paginator.current_value)
                    request_counter.increment()
                    rows = list(stream.parse_response(response))
                    self.last_rows = len(rows)
                    self.stride = self.stride or len(rows)
                    paginator.advance(response)
                    stream.progress.page_listed(len(rows), stream.page_counts[-1], self.workers)
                    yield from rows
        finally:
            self.cancelled.set()  # wakes workers that wait for a retry; they give up (ScanCancelled)
            if self.executor is not None:
                self.executor.shutdown(wait=False, cancel_futures=True)

    def _response(self, offset: int) -> requests.Response:
        """The answer for ``offset``: from the window if it was fetched ahead, else fetched now."""
        self._drop_misaligned(offset)
        self._fill(offset)
        if self.ahead:
            return self.ahead.popleft()[1].result()
        return self.fetch(self.stream.list_request(self.context, offset), self.context)

    def _drop_misaligned(self, offset: int) -> None:
        """The previous page had fewer (or more) rows than the stride: the pages fetched ahead would leave a gap (or
        overlap), so they are dropped and the rest is listed one page after another."""
        if not self.ahead or self.ahead[0][0] == offset:
            return
        self.stream.logger.info(
            "%s: a page before the end had %d rows instead of %d; listing the rest one page after another",
            self.stream.name,
            self.last_rows,
            self.stride,
        )
        for _, future in self.ahead:
            future.cancel()
        self.ahead.clear()
        self.run_ahead = False

    def _fill(self, offset: int) -> None:
        """Keep up to ``max_concurrency`` pages in flight, once the stride and ``meta.count`` are known."""
        counts = self.stream.page_counts
        count = counts[-1] if counts else None
        if not (self.run_ahead and self.stride and isinstance(count, int)) or self.executor is None:
            return
        self.next_ahead = max(self.next_ahead, offset)
        while len(self.ahead) < self.workers and self.next_ahead < count:
            self.ahead.append((self.next_ahead, self.executor.submit(self._fetch_in_worker, self.next_ahead)))
            self.next_ahead += self.stride

    def _fetch_in_worker(self, offset: int) -> requests.Response:
        pacer = self.stream.pacer
        pacer.bind(self.cancelled)
        try:
            return self.fetch(self.stream.list_request(self.context, offset), self.context)
        finally:
            pacer.bind(None)
