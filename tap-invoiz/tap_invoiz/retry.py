"""Retry and backoff: every setting of how often and how long the tap retries, and when requests may be sent.

The list and detail requests of the streams (:mod:`tap_invoiz.client`), the token request (:mod:`tap_invoiz.auth`) and
the probes of ``--diagnose`` all take their retry numbers from here.
"""

from __future__ import annotations

import email.utils
import threading
import time
import typing as t
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError

if t.TYPE_CHECKING:
    from collections.abc import Generator, Mapping

#: Exceptions a stream's request is retried after (as singer-sdk's own retry decorator).
RETRIED_EXCEPTIONS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
#: Default of the setting max_retries: retries per request after 429, 5xx, timeouts, connection errors, bad answers.
DEFAULT_MAX_RETRIES = 5
#: Default of the setting request_timeout (seconds for one answer before the request counts as failed).
DEFAULT_REQUEST_TIMEOUT = 60
#: HTTP statuses that are retried (the token request; the streams retry 429 and every 5xx).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: First wait in seconds of the exponential backoff (1, 2, 4, ... capped at BACKOFF_CAP) when the server sends no
#: Retry-After. Tests make it small.
BACKOFF_BASE = 1.0
#: Longest wait of the exponential backoff, seconds.
BACKOFF_CAP = 60.0
#: Longest wait a server's Retry-After may ask for, seconds.
RETRY_AFTER_CAP = 300.0
#: Retries of the token request when no connection could be made at all (connection refused, host not found): nothing
#: answers at api_url, which another minute of waiting rarely changes. With the backoff above: about 3 s, not 31 s.
CONNECT_RETRIES = 2
#: ``--diagnose`` is a quick first contact: at most this many retries per request, waits of at most DIAGNOSE_WAIT_CAP.
DIAGNOSE_MAX_RETRIES = 2
DIAGNOSE_WAIT_CAP = 10.0


def max_retries(config: Mapping[str, t.Any]) -> int:
    """The setting max_retries (default DEFAULT_MAX_RETRIES), never below 0."""
    value = config.get("max_retries")
    return max(0, int(DEFAULT_MAX_RETRIES if value is None else value))


def max_tries(config: Mapping[str, t.Any]) -> int:
    """Attempts per request: the first one plus ``max_retries`` retries."""
    return 1 + max_retries(config)


def backoff_seconds(retry: int, cap: float = BACKOFF_CAP) -> float:
    """The wait before retry number ``retry`` (0 for the first retry) when the server asks for none: 1, 2, 4, ..."""
    return min(BACKOFF_BASE * 2.0**retry, cap)


def retry_after_seconds(response: requests.Response | None, cap: float = RETRY_AFTER_CAP) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date), capped; None when absent/invalid."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, cap))


class ScanCancelled(Exception):  # not an error of its own: another page's error ends the scan
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

    def waits(self) -> Generator[float, t.Any, None]:
        """backoff's wait generator for the streams: 1, 2, 4, ... 60 s — or what the server's Retry-After asks for
        (capped at 300 s). The wait is set here and kept by :meth:`wait_turn` before the next attempt; backoff itself
        sleeps 0 s. A 429 or a Retry-After pauses every worker, other failures only this request."""
        exception = yield  # type: ignore[misc]
        attempt = 0
        while True:
            response = getattr(exception, "response", None)
            response = response if isinstance(response, requests.Response) else None
            wait = retry_after_seconds(response)
            shared = wait is not None or (response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS)
            if wait is None:
                wait = backoff_seconds(attempt)
            attempt += 1
            if shared:
                self.pause_all(wait)
            else:
                self.pause_this_request(wait)
            exception = yield 0.0

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
