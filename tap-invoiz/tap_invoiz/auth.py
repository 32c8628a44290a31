"""invoiz token authentication (docs/invoiz-api.md §1).

``POST {api_url}auth/token`` with HTTP Basic ``api_key:api_key_secret`` and the JSON body
``{"installationId": ...}`` returns ``{"token": "..."}``. Every other call sends ``Authorization: Bearer <token>``.
The token has no documented lifetime: it is cached for the whole run (shared by all streams and by the page workers
of a stream) and dropped when a call answers 401, after which the caller re-authenticates once and retries (see
``InvoizStream._request``; retry settings in :mod:`tap_invoiz.retry`). A lock makes this thread-safe: workers that get 401 with the same token cause one token
request, not one each.

Nothing here logs the credentials, the token, request headers or the token response body.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

import requests

from tap_invoiz import retry
from tap_invoiz.errors import InvoizConfigError

if t.TYPE_CHECKING:
    from collections.abc import Mapping

LOGGER = logging.getLogger("tap-invoiz")

CREDENTIAL_SETTINGS = "api_key, api_key_secret and installation_id"


class InvoizAuthenticator:
    """Fetches, caches and attaches the invoiz bearer token. One instance per tap run, shared by all streams."""

    def __init__(self, config: Mapping[str, t.Any], session: requests.Session | None = None) -> None:
        self._api_url = str(config.get("api_url") or "")
        self._key = config.get("api_key") or ""
        self._secret = config.get("api_key_secret") or ""
        self._installation_id = config.get("installation_id") or ""
        self._timeout = float(config.get("request_timeout") or retry.DEFAULT_REQUEST_TIMEOUT)
        self._max_tries = retry.max_tries(config)
        self._user_agent = config.get("user_agent")
        self._session = session or requests.Session()
        self._token: str | None = None
        self._lock = threading.Lock()  # held while a token is fetched: concurrent callers wait for that one
        self._worked: set[str] = set()  # tokens that got at least one answer other than 401 (kept in memory only)
        self._uses: dict[str, int] = {}  # requests sent with each token
        self.token_requests = 0

    def __repr__(self) -> str:  # never show credentials or the token
        return f"InvoizAuthenticator(api_url={self._api_url!r})"

    @property
    def token_url(self) -> str:
        return self._api_url + "auth/token"

    @property
    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._fetch_token()
            return self._token

    def token_for_request(self) -> str:
        """The token for one request, counted (see :meth:`expired`)."""
        with self._lock:
            if self._token is None:
                self._token = self._fetch_token()
            self._uses[self._token] = self._uses.get(self._token, 0) + 1
            return self._token

    def invalidate(self, token: str | None = None) -> bool:
        """Forget the cached token (only if it is still ``token``, when given). True if this call dropped it, so of
        several workers that got 401 with the same token only the first one re-authenticates (and logs it)."""
        with self._lock:
            if self._token is not None and (token is None or token == self._token):
                self._token = None
                return True
            return False

    def accepted(self, token: str) -> None:
        """``token`` got an answer other than 401."""
        with self._lock:
            self._worked.add(token)

    def expired(self, token: str) -> bool:
        """Whether a 401 for ``token`` may mean it expired rather than that the credentials lack access: it worked
        before, another request has replaced it meanwhile, or other requests used it at the same time (with
        concurrent workers a token renewed for one of them can expire before another one's resend)."""
        with self._lock:
            return token in self._worked or token != self._token or self._uses.get(token, 0) > 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def _token_headers(self) -> dict[str, str]:
        # A fresh connection per token request: a server that answers an error before reading the body must not
        # leave it in a kept-alive connection for the next request.
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Connection": "close"}
        if not self._user_agent:
            from tap_invoiz import __version__

            self._user_agent = f"tap-invoiz/{__version__}"
        headers["User-Agent"] = self._user_agent
        return headers

    def _fetch_token(self) -> str:
        """A new token; retried after HTTP 429/5xx, timeouts and connection errors (:mod:`tap_invoiz.retry`)."""
        headers = self._token_headers()
        attempt = 0
        max_tries = self._max_tries
        while True:
            attempt += 1
            self.token_requests += 1
            response, error, refused = self._post_token(headers)
            if response is not None:
                token, error = self._read_token_answer(response)
                if token is not None:
                    return token
            if refused:
                max_tries = min(max_tries, 1 + retry.CONNECT_RETRIES)
            if attempt >= max_tries:
                msg = (
                    f"could not get an invoiz token from {self.token_url} after {attempt} attempts ({error}): "
                    "check setting api_url and the network"
                )
                raise InvoizConfigError(msg)
            wait = retry.retry_after_seconds(response)
            if wait is None:
                wait = retry.backoff_seconds(attempt - 1)
            LOGGER.warning(
                "auth/token failed (%s), attempt %d of %d; retrying in %.1f s", error, attempt, max_tries, wait
            )
            time.sleep(wait)

    def _post_token(self, headers: dict[str, str]) -> tuple[requests.Response | None, str, bool]:
        """One token request: (the answer, "", False), or (None, what failed, whether no connection was made)."""
        try:
            response = self._session.post(
                self.token_url,
                json={"installationId": self._installation_id},
                auth=(self._key, self._secret),
                headers=headers,
                timeout=self._timeout,
            )
        except requests.exceptions.RequestException as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
                exc, requests.exceptions.Timeout
            ):
                return None, "ConnectionError: no connection to the host (refused or not found)", True
            return None, f"{type(exc).__name__}", False
        return response, "", False

    def _read_token_answer(self, response: requests.Response) -> tuple[str | None, str]:
        """(the token, ""), or (None, why it is retried); InvoizConfigError for answers a retry cannot fix."""
        status = response.status_code
        if status in (401, 403):
            msg = (
                f"invoiz rejected the credentials (HTTP {status} from auth/token): check settings {CREDENTIAL_SETTINGS}"
            )
            raise InvoizConfigError(msg)
        if status == 404:
            msg = (
                f"invoiz answered HTTP 404 for {self.token_url}: check setting api_url "
                "(it must end with /api/, e.g. https://app.invoiz.de/api/)"
            )
            raise InvoizConfigError(msg)
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                body = None
            token = body.get("token") if isinstance(body, dict) else None
            if isinstance(token, str) and token:
                return token, ""
            if "json" not in response.headers.get("Content-Type", ""):
                msg = (
                    f"auth/token at {self.token_url} did not answer with JSON: check setting api_url "
                    "(it must point at the invoiz API, e.g. https://app.invoiz.de/api/)"
                )
                raise InvoizConfigError(msg)
            return None, "a 2xx answer without a token (not the invoiz API?)"
        if status in retry.RETRY_STATUSES:
            return None, f"HTTP {status}"
        msg = f"auth/token answered HTTP {status}: check settings api_url and {CREDENTIAL_SETTINGS}"
        raise InvoizConfigError(msg)
