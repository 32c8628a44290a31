"""REST client for invoiz: base stream (auth, retries, response checks) and the list/diff/confirm machinery.

How a list stream syncs (the API has no updated-since filter and no updatedAt, contract §6):

1. It lists *all* rows (offset/limit paging until ``offset >= meta.count``, or a short page when ``meta.count`` is
   missing), de-duplicating ids within the run. Once the first page has given ``meta.count`` and the effective page
   size, up to ``max_concurrency`` further pages are fetched at the same time; rows are still handled strictly in
   offset order (:meth:`InvoizListStream.request_records`).
2. For every row it computes a fingerprint of the row as the API returned it (:mod:`tap_invoiz.fingerprint`) and
   emits the row only when the fingerprint differs from the one in the state (new or changed rows).
3. After a complete scan, tracked ids that were not seen are deletion candidates; each is confirmed with a detail
   request: 404 (or 400 whose body says NOT_FOUND) → a tombstone record (keys + ``_sdc_deleted_at``); 200 → the row
   still exists (it was skipped by a page shift) and is emitted if changed. If ``meta.count`` moved during the scan or
   fewer unique ids than ``meta.count`` came back, the list is scanned once more first.
4. The state (per stream and per ``account``) is updated only for rows that were emitted, and STATE messages follow the
   records they cover, so a run killed halfway loses nothing: the next run re-emits what was not committed.

ACTIVATE_VERSION is never sent (several accounts may share the tables); a run without prior state reports its full
refresh in the ``sync_status`` stream instead (:mod:`tap_invoiz.account_state`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math
import threading
import time
import typing as t
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from http import HTTPStatus

import backoff
import requests
import requests.adapters
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import OffsetPaginator
from singer_sdk.streams import RESTStream

from tap_invoiz import auth as auth_module
from tap_invoiz import fingerprint as fpmod
from tap_invoiz.account_state import AccountEntry, utc_now
from tap_invoiz.auth import CREDENTIAL_SETTINGS, retry_after_seconds
from tap_invoiz.mapping_version import mapping_version
from tap_invoiz.records import RecordMapper, RejectedRow, Unconvertible, to_berlin_date, to_integer

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_invoiz.auth import InvoizAuthenticator

#: Emitted records between two STATE messages (each carries the whole encoded fingerprint map).
STATE_EVERY = 5000
#: Seconds between two progress lines of a stream (INFO); tests monkeypatch it.
PROGRESS_INTERVAL = 15.0
#: Default and upper bound of the setting max_concurrency (list pages in flight per stream). 2, not more: invoiz
#: documents no rate limit and the contract suggests 1–2; with 500-row pages at 100 ms a 100k backfill is bound by
#: the loader's CPU, not by latency (docs/BENCHMARKS.md, section 1), and in the 10k grid 4 saved 0–1.5 s per run.
DEFAULT_MAX_CONCURRENCY = 2
MAX_CONCURRENCY_LIMIT = 32


def response_body(response: requests.Response) -> t.Any:
    """The JSON body (parsed once, money as Decimal) or raise ValueError."""
    cached = getattr(response, "_invoiz_body", None)
    if cached is None:
        cached = json.loads(response.text, parse_float=decimal.Decimal)
        response._invoiz_body = cached  # type: ignore[attr-defined]
    return cached


def is_not_found(response: requests.Response) -> bool:
    """404, or 400 whose body contains NOT_FOUND (contract §7, S2's rule)."""
    if response.status_code == HTTPStatus.NOT_FOUND:
        return True
    return response.status_code == HTTPStatus.BAD_REQUEST and "NOT_FOUND" in (response.text or "")


def invoiz_error_summary(response: requests.Response) -> str:
    """Name, message and codes of an invoiz error body; never headers; at most 200 characters of other bodies."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join((response.text or "").split())
        return text[:200]
    if isinstance(body, dict):
        parts = [str(body.get(key)) for key in ("name", "message") if body.get(key)]
        meta = body.get("meta")
        if isinstance(meta, dict):
            codes = []
            for field, problems in meta.items():
                if isinstance(problems, list):
                    codes += [f"{field}:{p.get('code')}" for p in problems if isinstance(p, dict)]
            if codes:
                parts.append("codes " + ", ".join(codes[:10]))
        return "; ".join(parts)[:300]
    return str(body)[:200]


class ScanCancelled(Exception):  # noqa: N818 - not an error of its own: another page's error ends the scan
    """Raised in a page worker whose scan was given up (another page failed): ends its retries at once."""


class RetryPacer:
    """When requests may be sent. Shared by all streams and page workers of a run.

    A 429 (or any answer with Retry-After) pauses *every* worker until the server's time is up — the rate limit is
    the account's, so the other workers would only collect more 429s. Other failures (5xx, timeouts, malformed pages)
    make only the failing request wait. The waiting happens here rather than in backoff's sleep so that a given-up
    scan can wake its workers (:meth:`bind`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused_until = 0.0  # time.monotonic() before which no request is sent
        self._local = threading.local()  # per thread: own retry time, last wait, the scan's cancel event
        self.pauses = 0  # shared pauses so far (429 / Retry-After)

    def bind(self, cancelled: threading.Event | None) -> None:
        """Start of one page in a worker thread: waits end early (ScanCancelled) once ``cancelled`` is set."""
        self._local.cancelled = cancelled
        self._local.not_before = 0.0

    def pause_all(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self.pauses += 1
        self._local.last_wait = seconds

    def pause_this_request(self, seconds: float) -> None:
        self._local.not_before = time.monotonic() + seconds
        self._local.last_wait = seconds

    @property
    def last_wait(self) -> float:
        """The wait set by this thread's last failure (for the retry log line)."""
        return float(getattr(self._local, "last_wait", 0.0))

    def wait_turn(self) -> None:
        """Block until this thread may send (shared pause and its own retry time); ScanCancelled if given up."""
        cancelled: threading.Event | None = getattr(self._local, "cancelled", None)
        while True:
            if cancelled is not None and cancelled.is_set():
                raise ScanCancelled
            with self._lock:
                until = max(self._paused_until, getattr(self._local, "not_before", 0.0))
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            if cancelled is None:
                time.sleep(remaining)
            else:
                cancelled.wait(remaining)  # a pause extended meanwhile by another 429 is seen on the next loop


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
            if count is not None and self.scan == 1:
                pages = math.ceil(count / rows) if rows else 1
                self.logger.info(
                    "%s: listing %s rows in %s of %s, %s", self.name, f"{count:,}", counted(pages, "page", "pages"), rows,
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


class InvoizStream(RESTStream):
    """Base: url from ``api_url``, token auth with one re-authentication on 401, retries on 429/5xx/malformed
    answers with backoff honouring Retry-After, clear errors for everything else."""

    primary_keys: t.ClassVar[list[str]] = ["account", "id"]
    replication_key = None
    _not_found_ok = False
    # records.py already converts every API field to its column's type (and keeps what does not fit in extra_fields);
    # singer-sdk's recursive re-check of each record against the schema cost about a fifth of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = StreamProgress(self.name, self.logger)
        self._pool_sized = False

    @property
    def replication_method(self) -> str:
        """Always FULL_TABLE for the SDK: the tap keeps its own bookmarks (fingerprints), there is no replication key.
        A catalog asking for INCREMENTAL would make the SDK look for a replication key and never allow ACTIVATE_VERSION.
        """
        return "FULL_TABLE"

    @property
    def url_base(self) -> str:
        url = str(self.config.get("api_url") or "https://app.invoiz.de/api/")
        return url if url.endswith("/") else url + "/"

    @property
    def account(self) -> str:
        return str(self.config.get("account") or "default")

    @property
    def app_url(self) -> str:
        return str(self.config.get("app_url") or "https://app.invoiz.de").rstrip("/")

    @property
    def authenticator(self) -> InvoizAuthenticator:
        return self._tap.invoiz_authenticator  # type: ignore[attr-defined]

    @property
    def pacer(self) -> RetryPacer:
        return self._tap.invoiz_pacer  # type: ignore[attr-defined]

    @property
    def max_concurrency(self) -> int:
        value = self.config.get("max_concurrency")
        return DEFAULT_MAX_CONCURRENCY if value is None else max(1, int(value))

    @property
    def requests_session(self) -> requests.Session:
        """The SDK's session with a connection pool as large as the page workers (requests keeps 10 per host, and
        would open and drop extra connections beyond that)."""
        session = super().requests_session
        if not self._pool_sized:
            size = max(10, self.max_concurrency + 1)
            adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._pool_sized = True
        return session

    @cached_property
    def user_agent(self) -> str:
        from tap_invoiz import __version__

        return self.config.get("user_agent") or f"tap-invoiz/{__version__}"

    @property
    def http_headers(self) -> dict:
        return {"Accept": "application/json", "User-Agent": self.user_agent}

    @property
    def timeout(self) -> int:
        return int(self.config.get("request_timeout") or 60)

    # -- retries -------------------------------------------------------------------------------------------------

    def backoff_max_tries(self) -> int:
        """Attempts per request: the first one plus ``max_retries`` retries."""
        return 1 + max(0, int(self.config.get("max_retries", 5)))

    def request_decorator(self, func: t.Callable) -> t.Callable:
        """The SDK's retry decorator — same exceptions, tries, wait generator and handler — without backoff's own
        INFO line per retry (:meth:`backoff_handler` logs one WARNING with the real wait)."""
        return backoff.on_exception(
            self.backoff_wait_generator,
            (
                ConnectionResetError,
                RetriableAPIError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """1, 2, 4, ... 60 s — or what the server's Retry-After asks for (capped at 300 s).

        The wait is handed to the pacer, which makes the next attempt wait (in :meth:`_request`); backoff itself
        sleeps 0 s. A 429 or a Retry-After pauses every worker, other failures only this request.
        """

        def waits() -> t.Generator[float, t.Any, None]:
            exception = yield  # type: ignore[misc]
            attempt = 0
            while True:
                response = getattr(exception, "response", None)
                response = response if isinstance(response, requests.Response) else None
                wait = retry_after_seconds(response)
                shared = wait is not None or (
                    response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS
                )
                if wait is None:
                    wait = min(auth_module.BACKOFF_BASE * 2.0**attempt, 60.0)
                attempt += 1
                if shared:
                    self.pacer.pause_all(wait)
                else:
                    self.pacer.pause_this_request(wait)
                exception = yield 0.0

        return waits()

    def backoff_jitter(self, value: float) -> float:
        return value  # deterministic waits; Retry-After is honoured exactly

    def backoff_handler(self, details: t.Any) -> None:
        exc = details.get("exception")
        response = getattr(exc, "response", None)
        status = response.status_code if isinstance(response, requests.Response) else type(exc).__name__
        self.progress.retried()
        everyone = " (all requests pause)" if status == HTTPStatus.TOO_MANY_REQUESTS and self.max_concurrency > 1 else ""
        self.logger.warning(
            "%s: request to %s failed (%s), attempt %d of %d; retrying in %.1f s%s",
            self.name, self.path, status, details.get("tries", 0), self.backoff_max_tries(), self.pacer.last_wait,
            everyone,
        )

    # -- requests ------------------------------------------------------------------------------------------------

    def _request(self, prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
        """Send with the cached token once the pacer allows; on 401 drop the token, re-authenticate once and resend.

        Workers that get 401 with the same token share one re-authentication (the authenticator's lock). A resend
        that gets 401 again fails with a message naming the credential settings — unless that token had worked (or
        was replaced) meanwhile: then it expired under concurrent use and is renewed again, a few times at most.
        """
        auth = self.authenticator
        response = None
        attempts = 2 + self.max_concurrency
        for attempt in range(1, attempts + 1):
            self.pacer.wait_turn()
            token = auth.token_for_request()
            prepared_request.headers["Authorization"] = f"Bearer {token}"
            self.progress.request_sent()
            response = self.requests_session.send(
                prepared_request, timeout=self.timeout, allow_redirects=self.allow_redirects
            )
            if response.status_code != HTTPStatus.UNAUTHORIZED:
                auth.accepted(token)
                break
            if attempt == attempts or (attempt > 1 and not auth.expired(token)):
                break
            if auth.invalidate(token):
                self.logger.info("%s: token rejected (HTTP 401), re-authenticating once", self.name)
        assert response is not None
        self._write_request_duration_log(endpoint=self.path, response=response, context=context, extra_tags=None)
        self.validate_response(response)
        return response

    def response_error_message(self, response: requests.Response) -> str:
        path = requests.utils.urlparse(response.url).path if response.url else self.path
        return f"HTTP {response.status_code} from invoiz for {path}: {invoiz_error_summary(response)}"

    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(self.response_error_message(response), response)
        if self._not_found_ok and is_not_found(response):
            return
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"{self.response_error_message(response)} — rejected even with a fresh token: check settings "
                f"{CREDENTIAL_SETTINGS} (the invoiz app may lack access to this resource)"
            )
            raise FatalAPIError(msg)
        if status >= HTTPStatus.BAD_REQUEST:
            raise FatalAPIError(self.response_error_message(response))
        # 2xx/3xx: must be a JSON object with "data"; anything else (an HTML error page from a proxy, a truncated
        # body) is retried and, if it persists, fails the run — never half-loaded.
        content_type = response.headers.get("Content-Type", "")
        try:
            body = response_body(response)
        except ValueError as exc:
            kind = "an HTML page" if "html" in content_type else "malformed JSON"
            msg = f"invoiz answered HTTP {status} with {kind} for {self.path}"
            raise RetriableAPIError(msg, response) from exc
        if not isinstance(body, dict) or "data" not in body:
            msg = f"invoiz answered HTTP {status} for {self.path} without a 'data' member"
            raise RetriableAPIError(msg, response)

    def fetch_detail(self, path: str) -> t.Any | None:
        """GET ``path`` (relative to api_url); ``data`` of the answer, or None if invoiz says it does not exist."""
        prepared = self.build_prepared_request(method="GET", url=self.url_base + path, headers=self.http_headers)
        self._not_found_ok = True
        try:
            response = self.request_decorator(self._request)(prepared, None)
        finally:
            self._not_found_ok = False
        if is_not_found(response):
            return None
        return response_body(response).get("data")

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        if self._not_found_ok and is_not_found(response):
            return
        data = response_body(response).get("data")
        if isinstance(data, list):
            for row in data:
                if isinstance(row, dict):
                    yield row


class InvoizListStream(InvoizStream):
    """A full listing per run, diffed against the fingerprints in the state; see the module docstring."""

    detail_path: str = ""  # e.g. "invoice/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {}

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: list[int | None] = []
        self._loaded = False
        self._had_prior_state = False
        self._entry: AccountEntry | None = None
        self._started_at = ""
        self._fps: dict[int, int] = {}
        self._emit_children = False
        self._unflushed = 0

    # -- mapping, supplied by the streams ---------------------------------------------------------------------------

    mapper: RecordMapper

    def map_row(self, raw: dict) -> dict:
        raise NotImplementedError

    def in_scope(self, raw: dict) -> bool:  # noqa: ARG002
        return True

    def detail_object(self, data: t.Any) -> dict | None:
        return data if isinstance(data, dict) else None

    # -- paging ------------------------------------------------------------------------------------------------------

    def get_new_paginator(self) -> InvoizPaginator:
        self._counts = []
        return InvoizPaginator(int(self.config.get("page_size") or 500), self._counts)

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:  # noqa: ARG002
        return {"offset": next_page_token or 0, "limit": int(self.config.get("page_size") or 500), **self.list_params}

    def validate_response(self, response: requests.Response) -> None:
        super().validate_response(response)
        if not self._not_found_ok and response.status_code < HTTPStatus.MULTIPLE_CHOICES:
            data = response_body(response).get("data")
            if not isinstance(data, list):
                msg = f"invoiz answered {self.path} with 'data' that is a JSON {type(data).__name__}, not a list"
                raise RetriableAPIError(msg, response)

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        meta = response_body(response).get("meta")
        count = meta.get("count") if isinstance(meta, dict) else None
        try:
            self._counts.append(to_integer(count) if count is not None else None)
        except Unconvertible:
            self._counts.append(None)
        yield from super().parse_response(response)

    def _list_request(self, context: Context | None, offset: int) -> requests.PreparedRequest:
        return self.build_prepared_request(
            method="GET", url=self.get_url(context), params=self.get_url_params(context, offset),
            headers=self.http_headers,
        )

    def request_records(self, context: Context | None) -> Iterable[dict]:
        """The rows of one listing, strictly in offset order — the same rows in the same order whatever
        ``max_concurrency`` is.

        The first page is fetched alone: it gives ``meta.count`` and the effective page size (the rows actually
        received; the server may cap ``limit`` silently). Then a window of at most ``max_concurrency`` requests runs
        ahead at offsets one stride apart while the rows are handled in order, so memory stays bounded by the window.
        Where to go next is still decided page by page by :class:`InvoizPaginator`, exactly as without concurrency;
        if a page before the end comes back with another number of rows than the first one (a server that changes
        its cap mid-scan), the pages fetched ahead would skip (or repeat) rows: they are dropped and the rest is
        listed one page after another. Without
        ``meta.count`` the whole listing is sequential. A page that fails for good ends the scan with its error once
        the pages before it have been handled; the other workers are woken and give up.
        """
        paginator = self.get_new_paginator()
        workers = self.max_concurrency
        fetch = self.request_decorator(self._request)
        cancelled = threading.Event()
        ahead: deque[tuple[int, Future[requests.Response]]] = deque()  # (offset, response to come), in offset order
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.name}-page") if workers > 1 else None
        run_ahead = executor is not None
        stride = 0
        next_ahead = 0
        last_rows = 0

        def fetch_in_worker(offset: int) -> requests.Response:
            self.pacer.bind(cancelled)
            try:
                return fetch(self._list_request(context, offset), context)
            finally:
                self.pacer.bind(None)

        self.progress.scan_started()
        try:
            with self.get_http_request_counter() as request_counter:
                request_counter.with_context(context)
                while not paginator.finished:
                    offset = paginator.current_value
                    if ahead and ahead[0][0] != offset:
                        # The previous page had fewer (or more) rows than the stride: the pages fetched ahead would
                        # leave a gap (or overlap).
                        self.logger.info(
                            "%s: a page before the end had %d rows instead of %d; listing the rest one page after "
                            "another", self.name, last_rows, stride,
                        )
                        for _, future in ahead:
                            future.cancel()
                        ahead.clear()
                        run_ahead = False
                    count = self._counts[-1] if self._counts else None
                    if run_ahead and stride and isinstance(count, int):
                        next_ahead = max(next_ahead, offset)
                        while len(ahead) < workers and next_ahead < count:
                            ahead.append((next_ahead, executor.submit(fetch_in_worker, next_ahead)))  # type: ignore[union-attr]
                            next_ahead += stride
                    if ahead:
                        response = ahead.popleft()[1].result()
                    else:
                        response = fetch(self._list_request(context, offset), context)
                    request_counter.increment()
                    rows = list(self.parse_response(response))
                    last_rows = len(rows)
                    if not stride:
                        stride = len(rows)
                    paginator.advance(response)
                    self.progress.page_listed(len(rows), self._counts[-1], workers)
                    yield from rows
        finally:
            cancelled.set()  # wakes workers that wait for a retry; they give up (ScanCancelled)
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    # -- state -------------------------------------------------------------------------------------------------------

    @property
    def fingerprint_salt(self) -> str:
        """Part of every fingerprint: a new app_url (links) or mapping version re-emits all rows once."""
        return f"{mapping_version()}|{self.app_url}"

    @staticmethod
    def account_states(stream: InvoizStream) -> dict:
        return stream.stream_state.setdefault("accounts", {})

    def _load_state(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._started_at = utc_now()  # before the first request: every record of this run is extracted later
        self._fps, self._had_prior_state = self._read_map(self)
        self._entry = self.account_entry(self, had_prior_state=self._had_prior_state)

    def account_entry(self, stream: InvoizStream, *, had_prior_state: bool) -> AccountEntry:
        """This account's entry in ``stream``'s state as the run found it (installation, full refreshes)."""
        return AccountEntry(
            self.account_states(stream).get(self.account), self.run_id, self._started_at,
            had_prior_state=had_prior_state,
        )

    @property
    def run_id(self) -> str:
        return self._tap.run_id  # type: ignore[attr-defined]

    def _read_map(self, stream: InvoizStream) -> tuple[dict[int, int], bool]:
        entry = self.account_states(stream).get(self.account)
        if not isinstance(entry, dict) or "fingerprints" not in entry:
            return {}, False
        try:
            return fpmod.decode(entry["fingerprints"]), True
        except (ValueError, TypeError, KeyError) as exc:
            stream.logger.warning(
                "%s: state of account %r unreadable (%s); treating this run as a first run", stream.name,
                self.account, exc,
            )
            return {}, False

    def _store_map(self, stream: InvoizStream, fps: dict[int, int], entry: AccountEntry, *, final: bool) -> None:
        fingerprints = {"format": fpmod.FORMAT, "rows": len(fps), "fingerprints": fpmod.encode(fps)}
        installation = self._tap.installation_hash  # type: ignore[attr-defined]
        self.account_states(stream)[self.account] = entry.updated(fingerprints, installation=installation, final=final)

    def _commit_state(self, *, final: bool = False) -> None:
        """Write the fingerprints of everything emitted so far into the stream state and (unless the tap writes
        BATCH messages, whose STATE must wait for the batch files) send a STATE message."""
        batching = bool(self.get_batch_config(self.config))
        if batching and not final:
            return
        if self.selected and self._entry is not None:
            self._store_map(self, self._fps, self._entry, final=final)
        self._commit_children(final=final)
        self.state_manager.is_flushed = False
        if not final and not batching:
            self._write_state_message()
        self._unflushed = 0

    def _commit_children(self, *, final: bool) -> None:
        """Hook for streams whose children keep their own fingerprint maps."""

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: target-postgres applies ACTIVATE_VERSION to the whole table, and several accounts may share it.

        Rows gone from invoiz are marked by tombstones (incremental runs) and, after a full refresh, by the
        ``sync_status`` stream's cut-off per account (:mod:`tap_invoiz.account_state`).
        """
        return False

    def sync_status(self, listed: int) -> dict:
        """This stream's row for the ``sync_status`` stream (see :mod:`tap_invoiz.account_state`)."""
        entry = self._entry
        full_refresh = entry.full_refresh if entry is not None else None
        confirmed = entry.confirmed if entry is not None else None
        progress = self.progress
        return {
            "account": self.account,
            "stream": self.name,
            "run_id": self.run_id,
            "started_at": self._started_at,
            "completed_at": utc_now(),
            "full_refresh": not self._had_prior_state,
            "full_refresh_started_at": full_refresh.started_at if full_refresh else None,
            "full_refresh_rows": len(self._fps) if full_refresh else None,
            "last_full_refresh_started_at": confirmed.started_at if confirmed else None,
            "rows_listed": listed,
            "records_emitted": progress.emitted,
            "new": progress.new,
            "changed": progress.changed,
            "deleted": progress.deleted,
            "tracked": len(self._fps),
            "requests": progress.requests,
            "retries": progress.retries,
        }

    # -- children ----------------------------------------------------------------------------------------------------

    def child_needs(self, row_id: int, fp: int) -> bool:  # noqa: ARG002
        return False

    def child_done(self, row_id: int, fp: int | None) -> None:
        """Record that the children of ``row_id`` were synced (fp None: the row was deleted)."""

    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterable[Context | None]:  # noqa: ARG002
        if self._emit_children and record.get("_sdc_deleted_at") is None:
            yield {"account": record["account"], "invoice_id": record["id"]}

    # -- the sync ----------------------------------------------------------------------------------------------------

    def tombstone(self, row_id: int) -> dict:
        record = dict.fromkeys(self.schema["properties"])
        record.update({"account": self.account, "id": row_id, "_sdc_deleted_at": self._now})
        return record

    def _row_id(self, raw: dict) -> int:
        try:
            return to_integer(raw.get("id"))
        except Unconvertible:
            msg = f"{self.name}: a row from {self.path} has no integer id (got a JSON {type(raw.get('id')).__name__})"
            raise FatalAPIError(msg) from None

    def _emit(self, raw: dict, row_id: int, fp: int, *, need_self: bool, need_child: bool) -> Iterable[dict]:
        try:
            record = self.map_row(raw)
        except RejectedRow as exc:  # e.g. a NUL character: skipped, fingerprint not recorded, retried next run
            self.logger.warning("%s", exc)
            self.progress.rejected += 1
            return
        record["_sdc_deleted_at"] = None
        self._emit_children = need_child
        kind = ("new" if row_id not in self._fps else "changed") if need_self else "resent"
        yield record  # written (and its children synced) before the generator resumes
        self._emit_children = False
        setattr(self.progress, kind, getattr(self.progress, kind) + 1)
        if need_self:
            self._fps[row_id] = fp
        if need_child:
            self.child_done(row_id, fp)
        self._unflushed += 1
        if self._unflushed >= STATE_EVERY:
            self._commit_state()

    def get_records(self, context: Context | None) -> Iterable[dict]:
        self.progress.started = time.monotonic()
        self._load_state()
        self._now = utc_now()
        salt = self.fingerprint_salt
        selected = self.selected
        seen: set[int] = set()
        complete = False
        for scan in (1, 2):
            seen_now: set[int] = set()
            for raw in self.request_records(context):
                row_id = self._row_id(raw)
                if row_id in seen_now:  # the same row on two pages (a page shift): handled once
                    continue
                seen_now.add(row_id)
                if not self.in_scope(raw):
                    if self._fps.pop(row_id, None) is not None:
                        self._unflushed += 1
                    continue
                fp = fpmod.fingerprint(raw, salt)
                need_self = selected and self._fps.get(row_id) != fp
                need_child = self.child_needs(row_id, fp)
                if need_self or need_child:
                    yield from self._emit(raw, row_id, fp, need_self=need_self, need_child=need_child)
            counts = [c for c in self._counts if c is not None]
            final_count = counts[-1] if counts else None
            # One set of ids per scan, merged afterwards (not two sets filled row by row): the tap's memory at 100k rows.
            seen = seen_now if not seen else seen | seen_now
            complete = final_count is None or (len(set(counts)) == 1 and len(seen_now) >= final_count)
            if complete:
                break
            self.logger.warning(
                "%s: scan %d looked inconsistent (meta.count %s, %d unique rows): rows were added or removed "
                "while paging%s", self.name, scan, sorted(set(counts)), len(seen_now),
                "; scanning once more" if scan == 1 else "; missed rows follow with the next run",
            )
        # Deletions: only after a scan that ran to its end (an exception above ends the run before this point).
        # Each candidate is confirmed with a detail request, so a page shift never deletes a row that exists.
        candidates = sorted(row_id for row_id in self._fps if row_id not in seen)
        if not selected:
            candidates = []
        self.progress.candidates = len(candidates)
        if len(candidates) > max(50, len(self._fps) // 10):
            self.logger.warning(
                "%s: %d of %d tracked rows are missing from the listing; confirming each with a detail request "
                "(only rows invoiz answers 404/NOT_FOUND for are marked deleted)", self.name, len(candidates),
                len(self._fps),
            )
        for row_id in candidates:
            data = self.fetch_detail(self.detail_path.format(id=row_id))
            self.progress.checked += 1
            self.progress.maybe_log()
            raw = self.detail_object(data) if data is not None else None
            if raw is None:
                yield self.tombstone(row_id)
                self.progress.deleted += 1
                self._fps.pop(row_id, None)
                self.child_done(row_id, None)
                self._unflushed += 1
                continue
            if not self.in_scope(raw):
                self._fps.pop(row_id, None)
                continue
            # It exists but the listing skipped it. Its detail differs from a list row, so its fingerprint is taken
            # from the detail: emitted now if that changed, and again from the list once the listing shows it.
            fp = fpmod.fingerprint(raw, salt)
            if self._fps.get(row_id) != fp:
                yield from self._emit(raw, row_id, fp, need_self=True, need_child=self.child_needs(row_id, fp))
        self._commit_state(final=True)
        self._tap.sync_status_rows.append(self.sync_status(len(seen)))  # type: ignore[attr-defined]
        self.logger.info("%s", self.progress.summary(self.account, len(seen), len(self._fps)))


def berlin_date_or_none(value: object) -> str | None:
    try:
        return to_berlin_date(value)
    except Unconvertible:
        return None


__all__ = ["InvoizListStream", "InvoizStream", "berlin_date_or_none", "logging"]
