"""invoiz token authentication (docs/invoiz-api.md §1).

``POST {api_url}auth/token`` with HTTP Basic ``api_key:api_key_secret`` and the JSON body
``{"installationId": ...}`` returns ``{"token": "..."}``. Every other call sends ``Authorization: Bearer <token>``.
The token has no documented lifetime: it is cached for the whole run (shared by all streams and by the page workers
of a stream) and dropped when a call answers 401, after which the caller re-authenticates once and retries (see
``InvoizStream._request``). A lock makes this thread-safe: workers that get 401 with the same token cause one token
request, not one each.

Nothing here logs the credentials, the token, request headers or the token response body.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import typing as t

import requests

from tap_invoiz.errors import InvoizConfigError

if t.TYPE_CHECKING:
    from collections.abc import Mapping

LOGGER = logging.getLogger("tap-invoiz")

CREDENTIAL_SETTINGS = "api_key, api_key_secret and installation_id"
RETRY_STATUSES = {429, 500, 502, 503, 504}
#: First wait in seconds of the exponential backoff (1, 2, 4, ... capped at 60) when the server sends no Retry-After.
BACKOFF_BASE = 1.0
#: Retries of the token request when no connection could be made at all (connection refused, host not found): nothing
#: answers at api_url, which another minute of waiting rarely changes. With the backoff above: about 3 s, not 31 s.
CONNECT_RETRIES = 2


def retry_after_seconds(response: requests.Response | None, cap: float = 300.0) -> float | None:
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


class InvoizAuthenticator:
    """Fetches, caches and attaches the invoiz bearer token. One instance per tap run, shared by all streams."""

    def __init__(self, config: Mapping[str, t.Any], session: requests.Session | None = None) -> None:
        self._api_url = str(config.get("api_url") or "")
        self._key = config.get("api_key") or ""
        self._secret = config.get("api_key_secret") or ""
        self._installation_id = config.get("installation_id") or ""
        self._timeout = float(config.get("request_timeout") or 60)
        retries = config.get("max_retries")
        self._max_tries = 1 + max(0, int(5 if retries is None else retries))  # first attempt + retries
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

    def _fetch_token(self) -> str:
        # A fresh connection per token request: a server that answers an error before reading the body must not
        # leave it in a kept-alive connection for the next request.
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Connection": "close"}
        if not self._user_agent:
            from tap_invoiz import __version__

            self._user_agent = f"tap-invoiz/{__version__}"
        headers["User-Agent"] = self._user_agent
        attempt = 0
        max_tries = self._max_tries
        while True:
            attempt += 1
            self.token_requests += 1
            response = None
            error: str
            try:
                response = self._session.post(
                    self.token_url,
                    json={"installationId": self._installation_id},
                    auth=(self._key, self._secret),
                    headers=headers,
                    timeout=self._timeout,
                )
            except requests.exceptions.RequestException as exc:
                error = f"{type(exc).__name__}"
                if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
                    exc, requests.exceptions.Timeout
                ):
                    error = "ConnectionError: no connection to the host (refused or not found)"
                    max_tries = min(max_tries, 1 + CONNECT_RETRIES)
            else:
                status = response.status_code
                if status in (401, 403):
                    msg = (
                        f"invoiz rejected the credentials (HTTP {status} from auth/token): "
                        f"check settings {CREDENTIAL_SETTINGS}"
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
                        return token
                    error = "a 2xx answer without a token (not the invoiz API?)"
                    if "json" not in response.headers.get("Content-Type", ""):
                        msg = (
                            f"auth/token at {self.token_url} did not answer with JSON: check setting api_url "
                            "(it must point at the invoiz API, e.g. https://app.invoiz.de/api/)"
                        )
                        raise InvoizConfigError(msg)
                elif status in RETRY_STATUSES:
                    error = f"HTTP {status}"
                else:
                    msg = (
                        f"auth/token answered HTTP {status}: check settings api_url and "
                        f"{CREDENTIAL_SETTINGS}"
                    )
                    raise InvoizConfigError(msg)
            if attempt >= max_tries:
                msg = (
                    f"could not get an invoiz token from {self.token_url} after {attempt} attempts ({error}): "
                    "check setting api_url and the network"
                )
                raise InvoizConfigError(msg)
            wait = retry_after_seconds(response)
            if wait is None:
                wait = min(BACKOFF_BASE * 2.0 ** (attempt - 1), 60.0)
            LOGGER.warning("auth/token failed (%s), attempt %d of %d; retrying in %.1f s",
                           error, attempt, max_tries, wait)
            time.sleep(wait)
