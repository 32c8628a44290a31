"""The base stream of tap-invoiz: url and headers from the settings, the shared token, retries paced across the
run's workers, clear errors for every answer the tap cannot use — and, for the list streams, the wiring of a run:
its ledger (:mod:`tap_invoiz.ledger`), its listing (:mod:`tap_invoiz.listing`), paged by :mod:`tap_invoiz.paging`,
and the record loop (:mod:`tap_invoiz.sync`). Retry settings are in :mod:`tap_invoiz.retry`.
"""

from __future__ import annotations

import typing as t
from functools import cached_property
from http import HTTPStatus

import backoff
import requests
from singer_sdk import singerlib as singer
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams import RESTStream

from tap_invoiz import __version__, retry
from tap_invoiz.account_state import utc_now
from tap_invoiz.auth import CREDENTIAL_SETTINGS
from tap_invoiz.ledger import Ledger
from tap_invoiz.listing import FullListing, StateListing
from tap_invoiz.mapping_version import mapping_version
from tap_invoiz.paging import DEFAULT_MAX_CONCURRENCY, DEFAULT_PAGE_SIZE, Answer, PageWindow, SessionSetup, read_answer
from tap_invoiz.progress import StreamProgress
from tap_invoiz.responses import invoiz_error_summary, is_not_found, response_body
from tap_invoiz.singer_writer import PassthroughDecision
from tap_invoiz.sync import RecordLoop

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from singer_sdk import Stream
    from singer_sdk.helpers.types import Context

    from tap_invoiz.auth import InvoizAuthenticator
    from tap_invoiz.retry import RetryPacer


class InvoizStream(RESTStream):
    """Base: url from ``api_url``, token auth with one re-authentication on 401, retries on 429/5xx/malformed
    answers with backoff honouring Retry-After, clear errors for everything else; a list stream's run."""

    primary_keys: t.ClassVar[list[str]] = ["account", "id"]
    replication_key = None
    detail_path: str = ""  # e.g. "invoice/{id}"
    list_params: t.ClassVar[dict[str, t.Any]] = {}
    not_found_ok: t.ClassVar[bool] = False  # the SDK's own requests (invoice_payments): 404 means no rows
    # records.py already converts every API field to its column's type (and keeps what does not fit in extra_fields);
    # singer-sdk's recursive re-check of each record against the schema cost about a fifth of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = StreamProgress(self.name, self.logger)
        self._session_setup = SessionSetup()
        self.started_at = ""
        self.ledger: Ledger | None = None
        self.children: Ledger | None = None  # invoice_payments, synced inside the invoices stream
        self.loop: RecordLoop | None = None
        self._passthrough = PassthroughDecision()  # RECORD messages without the SDK's walks, where they change nothing

    def _generate_record_messages(self, record: dict) -> t.Iterator[singer.RecordMessage]:
        if self._passthrough.applies(self):
            return iter((self._passthrough.message(self, record),))
        return super()._generate_record_messages(record)

    @property
    def replication_method(self) -> str:
        """Always FULL_TABLE for the SDK: the tap keeps its own bookmarks (fingerprints), there is no replication key
        (a catalog asking for INCREMENTAL would make the SDK look for one)."""
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
        """The SDK's session with a connection pool as large as the page workers (:class:`paging.SessionSetup`)."""
        return self._session_setup.session(super().requests_session, self.max_concurrency)

    @cached_property
    def user_agent(self) -> str:
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
            retry.RETRIED_EXCEPTIONS,
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        """The run's pacer keeps the waits (:meth:`tap_invoiz.retry.RetryPacer.waits`); see :meth:`_send`."""
        return self.pacer.waits()

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

    def send(
        self, prepared: requests.PreparedRequest, context: Context | None, not_found_ok: bool = False
    ) -> requests.Response:
        """One request with the SDK's retries (:meth:`request_decorator`); a 404 passes if ``not_found_ok``."""
        return self.request_decorator(self._send)(prepared, context, not_found_ok)

    def _request(self, prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
        """The SDK's send (used by its own request loop, i.e. by invoice_payments)."""
        return self._send(prepared_request, context, self.not_found_ok)

    def _send(
        self, prepared_request: requests.PreparedRequest, context: Context | None, not_found_ok: bool
    ) -> requests.Response:
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
            response = self._session_setup.send(
                self.requests_session, prepared_request, timeout=self.timeout, allow_redirects=self.allow_redirects
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
        self.check_response(response, not_found_ok=not_found_ok)
        return response

    def response_error_message(self, response: requests.Response) -> str:
        path = requests.utils.urlparse(response.url).path if response.url else self.path
        return f"HTTP {response.status_code} from invoiz for {path}: {invoiz_error_summary(response)}"

    def validate_response(self, response: requests.Response) -> None:
        self.check_response(response, not_found_ok=self.not_found_ok)

    def check_response(self, response: requests.Response, *, not_found_ok: bool) -> None:
        """Raise for an answer the tap cannot use: retriable (429, 5xx, not JSON, no ``data``) or fatal."""
        status = response.status_code
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(self.response_error_message(response), response)
        if not_found_ok and is_not_found(response):
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

    # -- listing -----------------------------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        return int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)

    def fetch_list(self, context: Context | None, params: dict[str, t.Any]) -> requests.Response:
        """One list request; its answer must have a list in ``data`` (checked before retries give up)."""

        def once(prepared: requests.PreparedRequest, ctx: Context | None) -> requests.Response:
            response = self._send(prepared, ctx, False)
            read_answer(response, self.path)
            return response

        prepared = self.build_prepared_request(
            method="GET", url=self.get_url(context), params=params, headers=self.http_headers
        )
        return self.request_decorator(once)(prepared, context)

    def fetch_page(self, context: Context | None, params: dict[str, t.Any]) -> Answer:
        """One page of the list with ``params`` (offset and limit included)."""
        return read_answer(self.fetch_list(context, {**self.list_params, **params}), self.path)

    def open_listing(
        self, context: Context | None, params: dict[str, t.Any], on_answer: Callable[[Answer], None]
    ) -> PageWindow:
        """A listing of every page of the list with ``params``; ``on_answer`` sees each answer before its rows."""
        counter = self.get_http_request_counter()
        counter.with_context(context)

        def fetch(offset: int) -> requests.Response:
            return self.fetch_list(context, {"offset": offset, "limit": self.page_size, **self.list_params, **params})

        def read(response: requests.Response) -> Answer:
            answer = read_answer(response, self.path)
            on_answer(answer)
            return answer

        return PageWindow(
            fetch,
            read,
            page_size=self.page_size,
            workers=self.max_concurrency,
            pacer=self.pacer,
            progress=self.progress,
            logger=self.logger,
            name=self.name,
            counter=counter,
        )

    # -- a list stream's run -----------------------------------------------------------------------------------------

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: target-postgres applies it to the whole table, which several accounts may share. Rows gone from
        invoiz get tombstones, or the ``sync_status`` cut-off after a full refresh (:mod:`tap_invoiz.account_state`)."""
        return False

    @property
    def fingerprint_salt(self) -> str:
        """Part of every fingerprint: a new app_url (links) or mapping version (derived from the field tables,
        :mod:`tap_invoiz.mapping_version`) re-emits all rows once."""
        return f"{mapping_version()}|{self.app_url}"

    @property
    def run_id(self) -> str:
        return self._tap.run_id  # type: ignore[attr-defined]

    def map_row(self, raw: dict) -> dict:  # each stream's (records.py)
        raise NotImplementedError

    def in_scope(self, raw: dict) -> bool:
        return True

    def detail_object(self, data: t.Any) -> dict | None:
        return data if isinstance(data, dict) else None

    def detail(self, row_id: int) -> dict | None:
        """The row as its detail request shows it, or None if invoiz says it does not exist."""
        url = self.url_base + self.detail_path.format(id=row_id)
        prepared = self.build_prepared_request(method="GET", url=url, headers=self.http_headers)
        response = self.send(prepared, None, not_found_ok=True)
        return None if is_not_found(response) else self.detail_object(response_body(response).get("data"))

    def tombstone(self, row_id: int, deleted_at: str) -> dict:
        record = dict.fromkeys(self.schema["properties"])
        record.update({"account": self.account, "id": row_id, "_sdc_deleted_at": deleted_at})
        return record

    def open_ledger(self, stream: Stream | None = None, **options: t.Any) -> Ledger:
        """This account's ledger in ``stream``'s state (default: this stream's)."""
        stream = stream or self
        return Ledger(
            stream.stream_state.setdefault("accounts", {}),
            self.account,
            run_id=self.run_id,
            started_at=self.started_at,
            logger=stream.logger,
            stream=stream.name,
            **options,
        )

    def open_children(self) -> Stream | None:
        """Hook: the child stream synced inside this one (its ledger goes to :attr:`children`)."""
        return None

    def choose_listing(self, context: Context | None) -> FullListing | StateListing:
        """Hook: how this run lists (invoices may list by state)."""
        return self.full_listing(context)

    def full_listing(self, context: Context | None) -> FullListing:
        assert self.ledger is not None
        return FullListing(
            lambda params, on_answer: self.open_listing(context, params, on_answer),
            self.ledger,
            selected=self.selected,
            name=self.name,
            path=self.path,
            logger=self.logger,
            progress=self.progress,
        )

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Open the ledgers, choose the listing, run the record loop (:mod:`tap_invoiz.sync`), report."""
        self.started_at = utc_now()  # before the first request: every record of this run is extracted later
        self.ledger = self.ledger_for_run()
        child = self.open_children()
        self.children = self.open_ledger(child) if child is not None else None
        self.loop = RecordLoop(self, self.ledger, self.children)
        listing = self.choose_listing(context)
        yield from self.loop.sync(listing, lambda: self.full_listing(context))
        self._tap.sync_status_rows.extend(self.loop.status_rows(self.run_id, child))  # type: ignore[attr-defined]

    def ledger_for_run(self) -> Ledger:  # hook: invoices keep per-id states too
        return self.open_ledger()

    def generate_child_contexts(self, record: dict, context: Context | None) -> Iterable[Context | None]:
        if self.loop is not None and self.loop.children_due and record.get("_sdc_deleted_at") is None:
            yield {"account": record["account"], "invoice_id": record["id"]}

    def write_state(self, *, final: bool) -> bool:
        """Write the fingerprints of everything emitted so far into the stream state and (unless the tap writes
        BATCH messages, whose STATE must wait for the batch files) send a STATE message. False: not written yet."""
        batching = bool(self.get_batch_config(self.config))
        if batching and not final:
            return False
        installation = self._tap.installation_hash  # type: ignore[attr-defined]
        if self.selected and self.ledger is not None:
            self.ledger.store(self.stream_state.setdefault("accounts", {}), installation=installation, final=final)
        child = self.open_children()
        if child is not None and self.children is not None:
            self.children.store(child.stream_state.setdefault("accounts", {}), installation=installation, final=final)
        self.state_manager.is_flushed = False
        if not final and not batching:
            self._write_state_message()
        return True
