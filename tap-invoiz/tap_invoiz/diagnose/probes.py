"""The requests of the diagnosis: each one recorded as a :class:`Probe` (what was asked, what came back)."""

from __future__ import annotations

import decimal
import json
import time
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from tap_invoiz import retry
from tap_invoiz.auth import InvoizAuthenticator
from tap_invoiz.diagnose.contract import LOGGER, RATE_LIMIT_HEADERS
from tap_invoiz.diagnose.forms import json_type, plural
from tap_invoiz.errors import InvoizConfigError
from tap_invoiz.records import Unconvertible, to_integer
from tap_invoiz.responses import is_not_found

if t.TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass
class Probe:
    """One HTTP request: what was asked (no secret, no id) and what came back (parsed body kept in memory only)."""

    label: str
    status: int | None = None
    ms: float = 0.0
    body: t.Any = None
    json_ok: bool = False
    error: str | None = None
    retries: int = 0
    not_found: bool = False  # 404, or 400 whose body says NOT_FOUND (the tap's rule)
    rate_limited: int = 0  # HTTP 429 answers, retried ones included
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.json_ok

    @property
    def data(self) -> t.Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def meta(self) -> t.Any:
        return self.body.get("meta") if isinstance(self.body, dict) else None

    @property
    def rows(self) -> list[dict]:
        data = self.data
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    @property
    def count(self) -> int | None:
        meta = self.meta
        value = meta.get("count") if isinstance(meta, dict) else None
        if value is None or isinstance(value, bool):
            return None
        try:
            return to_integer(value)
        except Unconvertible:
            return None


class CannotConnect(Exception):  # a reason to stop, with the message for the user
    """Exit status 2: the API cannot be reached or the credentials are rejected; the message names the setting."""


class RecordingSession(requests.Session):
    """A requests session that times every request and keeps, for the token request, only the answer's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.token_probes: list[Probe] = []

    def request(self, method: str | bytes, url: str | bytes, *args: t.Any, **kwargs: t.Any) -> requests.Response:
        started = time.monotonic()
        probe = Probe(label="POST auth/token")
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            probe.error = type(exc).__name__
            probe.ms = (time.monotonic() - started) * 1000
            if str(url).endswith("auth/token"):
                self.token_probes.append(probe)
            raise
        probe.ms = (time.monotonic() - started) * 1000
        if str(url).endswith("auth/token"):
            probe.status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = None
            probe.json_ok = isinstance(body, dict)
            # keep the names and JSON types of the members, never the token itself
            probe.body = {name: json_type(value) for name, value in body.items()} if isinstance(body, dict) else None
            probe.headers = _rate_limit_headers(response)
            self.token_probes.append(probe)
        return response


def _rate_limit_headers(response: requests.Response) -> dict[str, str]:
    """Rate-limit headers (numbers and policies, nothing personal), at most 40 characters each."""
    return {name: response.headers[name][:40] for name in RATE_LIMIT_HEADERS if name in response.headers}


class Prober:
    """Read-only GETs with the tap's token handling: one re-authentication on 401; retries on 429, 5xx and
    connection errors with the tap's backoff (1, 2, 4 ... s or Retry-After, capped at 10 s), at most twice."""

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        url = str(config.get("api_url") or "https://app.invoiz.de/api/")
        self.api_url = url if url.endswith("/") else url + "/"
        self.max_retries = min(retry.DIAGNOSE_MAX_RETRIES, retry.max_retries(config))
        self.timeout = min(30.0, float(config.get("request_timeout") or 60))
        self.session = RecordingSession()
        auth_config = {
            **config,
            "api_url": self.api_url,
            "max_retries": self.max_retries,
            "request_timeout": self.timeout,
        }
        self.authenticator = InvoizAuthenticator(auth_config, session=self.session)
        from tap_invoiz import __version__

        self.headers = {
            "Accept": "application/json",
            "User-Agent": config.get("user_agent") or f"tap-invoiz/{__version__}",
        }
        self.probes: list[Probe] = []

    def token(self) -> str:
        try:
            return self.authenticator.token
        except InvoizConfigError as exc:
            raise CannotConnect(str(exc)) from None

    def get(
        self,
        path: str,
        params: Mapping[str, t.Any] | None = None,
        *,
        label_path: str | None = None,
        token: str | None = None,
    ) -> Probe:
        """GET ``path`` relative to api_url. ``label_path`` replaces an id in the label; ``token`` sends that token
        instead of the real one (and no re-authentication)."""
        query = urlencode(params or {})
        label = f"GET {label_path or path}" + (f"?{query}" if query else "")
        probe = Probe(label=label)
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            bearer = token if token is not None else self.token()
            response = self._send(path, params, bearer, probe)
            if response is None:
                if attempt > self.max_retries:
                    break
                self._wait(None, attempt, probe)
                continue
            if response.status_code == 401 and token is None and not reauthenticated:
                reauthenticated = True
                self.authenticator.invalidate(bearer)
                continue
            if response.status_code == 429:
                probe.rate_limited += 1
            if (response.status_code == 429 or response.status_code >= 500) and attempt <= self.max_retries:
                self._wait(response, attempt, probe)
                continue
            self._read_body(response, probe)
            break
        self.probes.append(probe)
        rows = f", {plural(len(probe.rows), 'row')}" if isinstance(probe.data, list) else ""
        LOGGER.info("diagnose: %s → %s in %.0f ms%s", probe.label, probe.status or probe.error, probe.ms, rows)
        return probe

    def _send(
        self, path: str, params: Mapping[str, t.Any] | None, bearer: str, probe: Probe
    ) -> requests.Response | None:
        """One GET; its time, status and rate-limit headers go into ``probe``; None if no answer came."""
        started = time.monotonic()
        try:
            response = self.session.get(
                self.api_url + path,
                params=params,
                timeout=self.timeout,
                headers={**self.headers, "Authorization": f"Bearer {bearer}"},
            )
        except requests.exceptions.RequestException as exc:
            probe.ms = (time.monotonic() - started) * 1000
            probe.error = type(exc).__name__
            probe.status = None
            return None
        probe.ms = (time.monotonic() - started) * 1000
        probe.status = response.status_code
        probe.headers = _rate_limit_headers(response)
        probe.error = None
        return response

    @staticmethod
    def _read_body(response: requests.Response, probe: Probe) -> None:
        probe.not_found = is_not_found(response)
        try:
            probe.body = json.loads(response.text, parse_float=decimal.Decimal)
            probe.json_ok = True
        except ValueError:
            probe.body = None
            probe.json_ok = False

    def _wait(self, response: requests.Response | None, attempt: int, probe: Probe) -> None:
        probe.retries += 1
        wait = retry.retry_after_seconds(response, cap=retry.DIAGNOSE_WAIT_CAP)
        if wait is None:
            wait = retry.backoff_seconds(attempt - 1, cap=retry.DIAGNOSE_WAIT_CAP)
        LOGGER.warning(
            "diagnose: %s failed (%s); retrying in %.1f s",
            probe.label,
            response.status_code if response is not None else probe.error,
            wait,
        )
        time.sleep(wait)
