"""Offset/limit paging of the list endpoints, with a window of pages fetched ahead by worker threads.

The rows of a listing are always handled strictly in offset order — the same rows in the same order whatever
``max_concurrency`` is; the workers only fetch the next pages early.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import typing as t
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.utils
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import OffsetPaginator

from tap_invoiz.records import Unconvertible, to_integer
from tap_invoiz.responses import response_body

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable

    from tap_invoiz.progress import StreamProgress
    from tap_invoiz.retry import RetryPacer

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
#: How long (seconds) the thread handling rows may keep the GIL while a page worker waits for it, during a listing
#: (CPython's default is 5 ms). A worker reads an answer in many small socket reads and needs the GIL after each one;
#: the rows' thread is busy with the previous page the whole time, so at the default each read waited up to 5 ms, the
#: page ahead arrived only once that page was done, and invoiz's time to send it added to the tap's instead of
#: overlapping it. Measured (100,000 invoices, max_concurrency 1, no latency, docs/BENCHMARKS.md section 2): 14.6 s
#: at 5 ms, 10.5 s at 1 ms, the same CPU time.
GIL_SWITCH_INTERVAL = 0.001


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
        return self.current_value + len(self._rows(response))

    def has_more(self, response: requests.Response) -> bool:
        rows = self._rows(response)
        count = self.counts[-1] if self.counts else None
        if not rows:
            return False
        if isinstance(count, int):
            return self.current_value + len(rows) < count
        return len(rows) >= self.page_size


class Answer(t.NamedTuple):
    """One list answer as the listings read it."""

    rows: list[dict]
    count: int | None  # meta.count
    meta: object


def read_answer(response: requests.Response, path: str) -> Answer:
    """Rows and ``meta.count`` of a list answer; its ``data`` must be a list (else retried, then fatal)."""
    body = response_body(response)
    data = body.get("data")
    if not isinstance(data, list):
        msg = f"invoiz answered {path} with 'data' that is a JSON {type(data).__name__}, not a list"
        raise RetriableAPIError(msg, response)
    meta = body.get("meta")
    count = meta.get("count") if isinstance(meta, dict) else None
    try:
        count = to_integer(count) if count is not None else None
    except Unconvertible:
        count = None
    return Answer([row for row in data if isinstance(row, dict)], count, meta)


class PageWindow:
    """One listing, its rows strictly in offset order.

    ``fetch(offset)`` sends the list request for one page (with retries) and ``read(response)`` turns its answer
    into an :class:`Answer` (and may raise to end the listing); the window knows nothing else of the stream.

    The first page is fetched alone: it gives ``meta.count`` and the effective page size (the rows actually
    received; the server may cap ``limit`` silently). Then a window of at most ``workers`` requests runs ahead at
    offsets one stride apart while the rows are handled in order, so memory stays bounded by the window. The window
    is filled as soon as a page's answer is read, before its rows are handled: while page k is handled, pages k+1 …
    k+``workers`` are on their way — at ``workers`` 1 too (one request in flight, one page ahead), so the tap's work
    per page overlaps invoiz's time to answer the next instead of adding to it. Where to go
    next is still decided page by page by :class:`InvoizPaginator`, exactly as without concurrency; if a page before
    the end comes back with another number of rows than the first one (a server that changes its cap mid-scan), the
    pages fetched ahead would skip (or repeat) rows: they are dropped and the rest is listed one page after another.
    Without ``meta.count`` the whole listing is sequential. A page that fails for good ends the scan with its error
    once the pages before it have been handled; the other workers are woken and give up.
    """

    def __init__(
        self,
        fetch: Callable[[int], requests.Response],
        read: Callable[[requests.Response], Answer],
        *,
        page_size: int,
        workers: int,
        pacer: RetryPacer,
        progress: StreamProgress,
        logger: logging.Logger,
        name: str,
        counter: t.ContextManager[t.Any] | None = None,
    ) -> None:
        self.fetch = fetch
        self.counter = counter  # the SDK's request counter (a metric), counted per page
        self.read = read
        self.page_size = page_size
        self.workers = workers
        self.pacer = pacer
        self.progress = progress
        self.logger = logger
        self.name = name
        self.counts: list[int | None] = []  # meta.count of every page, for the completeness check
        self.cancelled = threading.Event()
        self.ahead: deque[tuple[int, Future[requests.Response]]] = deque()  # (offset, response to come), in order
        self.executor: ThreadPoolExecutor | None = None
        self.run_ahead = True
        self.stride = 0
        self.next_ahead = 0
        self.last_rows = 0

    def rows(self) -> Iterable[dict]:
        """Every row of the listing, page after page (each page counted by the SDK's request counter, if given)."""
        paginator = InvoizPaginator(self.page_size, self.counts)
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"{self.name}-page")
        self.progress.scan_started()
        switch_interval = sys.getswitchinterval()  # process-wide: lowered while this listing runs, then restored
        sys.setswitchinterval(min(switch_interval, GIL_SWITCH_INTERVAL))
        try:
            with self.counter or contextlib.nullcontext() as counter:
                while not paginator.finished:
                    response = self._response(paginator.current_value)
                    answer = self.read(response)
                    if counter is not None:
                        counter.increment()
                    self.counts.append(answer.count)
                    self.last_rows = len(answer.rows)
                    self.stride = self.stride or len(answer.rows)
                    paginator.advance(response)
                    if not paginator.finished:  # the next pages are fetched while this one's rows are handled
                        self._drop_misaligned(paginator.current_value)
                        self._fill(paginator.current_value)
                    self.progress.page_listed(len(answer.rows), answer.count, self.workers)
                    yield from answer.rows
        finally:
            self.cancelled.set()  # wakes workers that wait for a retry; they give up (ScanCancelled)
            if self.executor is not None:
                self.executor.shutdown(wait=False, cancel_futures=True)
            sys.setswitchinterval(switch_interval)

    def _response(self, offset: int) -> requests.Response:
        """The answer for ``offset``: from the window if it was fetched ahead (the window was aligned to ``offset``
        and filled right after the previous page was read), else fetched now (the first page; listing one page
        after another)."""
        if self.ahead:
            return self.ahead.popleft()[1].result()
        return self.fetch(offset)

    def _drop_misaligned(self, offset: int) -> None:
        """The previous page had fewer (or more) rows than the stride: the pages fetched ahead would leave a gap (or
        overlap), so they are dropped and the rest is listed one page after another."""
        if not self.ahead or self.ahead[0][0] == offset:
            return
        self.logger.info(
            "%s: a page before the end had %d rows instead of %d; listing the rest one page after another",
            self.name,
            self.last_rows,
            self.stride,
        )
        for _, future in self.ahead:
            future.cancel()
        self.ahead.clear()
        self.run_ahead = False

    def _fill(self, offset: int) -> None:
        """Keep up to ``workers`` pages in flight, once the stride and ``meta.count`` are known."""
        count = self.counts[-1] if self.counts else None
        if not (self.run_ahead and self.stride and isinstance(count, int)) or self.executor is None:
            return
        self.next_ahead = max(self.next_ahead, offset)
        while len(self.ahead) < self.workers and self.next_ahead < count:
            self.ahead.append((self.next_ahead, self.executor.submit(self._fetch_in_worker, self.next_ahead)))
            self.next_ahead += self.stride

    def _fetch_in_worker(self, offset: int) -> requests.Response:
        self.pacer.bind(self.cancelled)
        try:
            return self.fetch(offset)
        finally:
            self.pacer.bind(None)


class SessionSetup:
    """What a stream's requests session needs once, not per request: a connection pool as large as the page
    workers (requests keeps 10 per host, and would open and drop extra connections beyond that), and the proxies of
    each scheme and host (``Session.send`` reads every environment variable for them on each request: ~3 ms in a
    shard, whose environment holds hundreds of accounts' credentials)."""

    def __init__(self) -> None:
        self._pool_sized = False
        self._proxies: dict[tuple[str, str], dict] = {}

    def session(self, session: requests.Session, workers: int) -> requests.Session:
        if not self._pool_sized:
            adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(10, workers + 1))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._pool_sized = True
        return session

    def send(self, session: requests.Session, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        return session.send(request, proxies=self.proxies(session, request), **kwargs)

    def proxies(self, session: requests.Session, request: requests.PreparedRequest) -> dict:
        """The proxies requests would resolve for this request (environment, no_proxy), once per scheme and host."""
        key = urlsplit(request.url or "")[:2]
        found = self._proxies.get(key)
        if found is None:
            found = self._proxies[key] = requests.utils.resolve_proxies(request, session.proxies, session.trust_env)
        return found
