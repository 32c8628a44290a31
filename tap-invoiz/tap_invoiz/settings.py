"""The settings of tap-invoiz: their JSON schema (what ``--about`` shows) and the checks singer-sdk's JSON-schema
validation does not do (URLs, ranges, the start date, the account name)."""

from __future__ import annotations

import datetime as dt
import typing as t
from urllib.parse import urlparse

from singer_sdk import typing as th

from tap_invoiz.listing import DEFAULT_FULL_SCAN_EVERY
from tap_invoiz.paging import DEFAULT_MAX_CONCURRENCY, DEFAULT_PAGE_SIZE, MAX_CONCURRENCY_LIMIT, PAGE_SIZE_MAX
from tap_invoiz.retry import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT

if t.TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        description="API key of your invoiz app (HTTP Basic username for auth/token).",
    ),
    th.Property(
        "api_key_secret",
        th.StringType,
        required=True,
        secret=True,
        description="Secret of the API key (HTTP Basic password for auth/token).",
    ),
    th.Property(
        "installation_id",
        th.StringType,
        required=True,
        secret=True,
        description="invoiz installation (tenant) id, sent as installationId to auth/token.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        default="https://app.invoiz.de/api/",
        description="Base URL of the invoiz REST API.",
    ),
    th.Property(
        "app_url",
        th.StringType,
        default="https://app.invoiz.de",
        description="Base URL of the invoiz web app, for invoice_url and contact_url.",
    ),
    th.Property(
        "account",
        th.StringType,
        default="default",
        description=(
            "Non-secret name of this invoiz installation. First column of every primary key (several accounts can "
            "share the tables) and the key of this account's fingerprints in the state. Keep it stable."
        ),
    ),
    th.Property(
        "start_date",
        th.DateType,
        description="Only invoices dated on or after this day (invoice date, YYYY-MM-DD) are emitted and tracked.",
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=DEFAULT_PAGE_SIZE,
        description=f"Rows per list request (limit), 1 to {PAGE_SIZE_MAX}.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=DEFAULT_MAX_CONCURRENCY,
        description=(
            "List pages fetched at the same time per stream (1 = one after another), 1 to "
            f"{MAX_CONCURRENCY_LIMIT}. Records are still emitted in API order; an HTTP 429 slows all workers down."
        ),
    ),
    th.Property(
        "full_scan_every",
        th.IntegerType,
        default=DEFAULT_FULL_SCAN_EVERY,
        description=(
            "Invoices: runs over which a full re-verification is spread (1 = list every invoice every run). "
            "Other runs list the open states fully, reconcile paid and cancelled by their counts and check "
            "1/full_scan_every of all invoices, so an edit no state or count shows arrives within that many runs."
        ),
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=DEFAULT_REQUEST_TIMEOUT,
        description="Seconds to wait for one API response before it counts as failed (and is retried).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=DEFAULT_MAX_RETRIES,
        description=(
            "Retries per request after HTTP 429, 5xx, timeouts, connection errors and malformed answers, with "
            "exponential backoff (1, 2, 4 ... 60 s) or the server's Retry-After."
        ),
    ),
    th.Property(
        "user_agent",
        th.StringType,
        description="User-Agent header (default tap-invoiz/<version>).",
    ),
    th.Property(
        "allow_installation_change",
        th.BooleanType,
        default=False,
        description=(
            "Permit an intended move of `account` to another invoiz installation. Without it, a run whose "
            "installation_id differs from the one this account was synced from fails before anything is sent. "
            "With it, the account's rows are replaced by the new installation's (rows missing there are marked "
            "deleted). Rotating the API key or secret of the same installation needs no change."
        ),
    ),
).to_dict()


def parse_start_date(value: str) -> dt.date:
    """YYYY-MM-DD, or an ISO 8601 timestamp on that day; nothing looser (01.02.2024 is ambiguous)."""
    value = value.strip()
    if len(value) == 10:  # YYYY-MM-DD
        return dt.date.fromisoformat(value)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _url_errors(config: Mapping[str, t.Any]) -> list[str]:
    errors = []
    for setting in ("api_url", "app_url"):
        value = config.get(setting)
        if value is None:
            continue
        parsed = urlparse(str(value))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors.append(f"setting {setting} must be an http(s) URL such as https://app.invoiz.de/api/")
    return errors


def _number_errors(config: Mapping[str, t.Any]) -> list[str]:
    errors = []
    for setting, high in (("page_size", PAGE_SIZE_MAX), ("max_concurrency", MAX_CONCURRENCY_LIMIT)):
        value = config.get(setting)
        if value is not None and (not _is_int(value) or not 1 <= value <= high):
            errors.append(f"setting {setting} must be an integer from 1 to {high} (got {value!r})")
    for setting, low in (("request_timeout", 1), ("max_retries", 0), ("full_scan_every", 1)):
        value = config.get(setting)
        if value is not None and (not _is_int(value) or value < low):
            errors.append(f"setting {setting} must be an integer >= {low} (got {value!r})")
    return errors


def config_errors(config: Mapping[str, t.Any]) -> list[str]:
    """Problems of the settings beyond their JSON schema, one message each naming the setting."""
    errors = _url_errors(config) + _number_errors(config)
    start = config.get("start_date")
    if start not in (None, ""):
        try:
            parse_start_date(str(start))
        except ValueError:
            errors.append(f"setting start_date must be a date YYYY-MM-DD (got {start!r})")
    account = config.get("account")
    if account is not None and not str(account).strip():
        errors.append("setting account must not be empty (it is part of every primary key)")
    return errors
