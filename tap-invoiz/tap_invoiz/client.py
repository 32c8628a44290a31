"""The base stream of tap-invoiz: url and headers from the settings, the shared token, retries paced across the
run's workers, and clear errors for every answer the tap cannot use.

The list streams build on it in :mod:`tap_invoiz.sync` (listing, diff against the state, deletions) and
:mod:`tap_invoiz.state` (the fingerprints in the state); retry settings are in :mod:`tap_invoiz.retry`.
"""

from __future__ import annotations

import typing as t
from functools import cached_property
from http import HTTPStatus

import backoff
import requests
import requests.adapters
from singer_sdk import singerlib as singer
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.streams import RESTStream

from tap_invoiz import retry
from tap_invoiz.auth import CREDENTIAL_SETTINGS
from tap_invoiz.paging import DEFAULT_MAX_CONCURRENCY
from tap_invoiz.progress import StreamProgress
from tap_invoiz.responses import invoiz_error_summary, is_not_found, response_body

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

    from tap_invoiz.auth import InvoizAuthenticator
    from tap_invoiz.retry import RetryPacer

#: Exceptions a request is retried after (as singer-sdk's own retry decorator).
RETRIED_EXCEPTIONS = (
    ConnectionResetError,
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


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
        self._passthrough_for: tuple[object, object] | None = None  # (mask, stream maps) it was decided for
        self._passthrough = False

    def _generate_record_messages(self, record: dict) -> t.Iterator[singer.RecordMessage]:
        """singer-sdk's RECORD message, without its per-record walks when they cannot change the record: every
        property selected (nothing for ``pop_deselected_record_properties`` to remove), no conformance (see
        TYPE_CONFORMANCE_LEVEL) and no stream map or flattening (the same record, under the stream's name). Otherwise,
        and for every decision the SDK makes on its own, the SDK's code."""
        mask, maps = self.mask, self.stream_maps
        decided = self._passthrough_for
        if decided is None or decided[0] is not mask or decided[1] is not maps:
            self._passthrough_for = (mask, maps)
            self._passthrough = (
                self.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
                and mask[()]
                and all(mask.values())
                and len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and not maps[0].flattening_enabled
            )
        if not self._passthrough:
            yield from super()._generate_record_messages(record)
            return
        yield singer.RecordMessage(
            stream=maps[0].stream_alias, record=record, version=self._stream_version, time_extracted=utc_now()
        )

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
        return int(self.config.get("request_timeout") or retry.DEFAULT_REQUEST_TIMEOUT)

    # -- retries -------------------------------------------------------------------------------------------------

    def backoff_max_tries(self) -> int:
        """Attempts per request: the first one plus ``max_retries`` retries."""
        return retry.max_tries(self.config)

    def request_decorator(self, func: t.Callable) -> t.Callable:
        """The SDK's retry decorator — same exceptions, tries, wait generator and handler — without backoff's own
        INFO line per retry (:meth:`backoff_handler` logs one WARNING with the real wait)."""
        return backoff.on_exception(
            self.backoff_wait_generator,
            RETRIED_EXCEPTIONS,
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
                wait = retry.retry_after_seconds(response)
                shared = wait is not None or (
                    response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS
                )
                if wait is None:
                    wait = retry.backoff_seconds(attempt)
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
        everyone = (
            " (all requests pause)" if status == HTTPStatus.TOO_MANY_REQUESTS and self.max_concurrency > 1 else ""
        )
        self.logger.warning(
            "%s: request to %s failed (%s), attempt %d of %d; retrying in %.1f s%s",
            self.name,
            self.path,
            status,
            details.get("tries", 0),
            self.backoff_max_tries(),
            self.pacer.last_wait,
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
