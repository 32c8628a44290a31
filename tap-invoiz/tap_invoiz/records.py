"""Turning invoiz API objects into records of the column contract (docs/DESIGN.md).

Rules:

* API names are camelCase; columns are snake_case. Every API field a stream does not map is kept verbatim, with its API
  name, in the object column ``extra_fields`` (``None`` when there is none) and named once per run in the log.
* Values are never silently altered. A value whose JSON type does not fit its column is handled like this:
  - a string that is exactly a decimal number (``"42.10"``) in a number/integer column is converted (losslessly),
  - anything else that does not fit (``"1.234,56"``, ``true``, an object, an unparseable date) becomes ``null``,
  and in both cases the raw value is also kept in ``extra_fields`` under its API name and the field is named once in a
  warning. A non-integer ``id`` stops the run with a clear error: rows without a usable key cannot be loaded.
* ``date`` columns hold the Europe/Berlin calendar date: an ISO timestamp with time and zone is converted to
  Europe/Berlin and its date taken (``2026-07-14T22:00:00.000Z`` → ``2026-07-15``); a plain ``YYYY-MM-DD`` and a
  timestamp without zone keep their own date.
* ``date-time`` columns keep the API's ISO text; a plain date becomes midnight UTC of that date.
* A row with a NUL character (U+0000) anywhere — in a value or a key, however deeply nested — is *rejected*:
  PostgreSQL can store U+0000 neither in ``text`` nor in ``jsonb``, and target-postgres would fail the whole batch
  (every run again, the other rows never loaded). :meth:`RecordMapper.map` raises :class:`RejectedRow`; the stream
  skips the row with a warning naming stream, id and field, does not record its fingerprint (so it is retried on
  every run until invoiz sends it without NUL) and loads the rest. Nothing is stripped or replaced.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import logging
import re
import typing as t
from zoneinfo import ZoneInfo

import msgspec

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

BERLIN = ZoneInfo("Europe/Berlin")
_DECIMAL_RE = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
_INT_RE = re.compile(r"^\s*-?\d+\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Unconvertible(Exception):
    """A raw value does not fit its column."""


class RejectedRow(Exception):
    """A row that cannot be loaded at all without altering it (a NUL character). Skip it, do not record it."""

    def __init__(self, stream: str, row_id: object, field: str, reason: str) -> None:
        self.stream, self.row_id, self.field, self.reason = stream, row_id, field, reason
        super().__init__(
            f"{stream}: row id {row_id} not loaded: field {field} {reason}; it is retried on every run until invoiz "
            "sends it without (nothing was stripped or replaced)"
        )


NUL = "\x00"


def find_nul(value: object, path: str = "") -> str | None:
    """Path (``customerData.name``, ``positions[2].title``) of the first string or key containing U+0000, else None."""
    if isinstance(value, str):
        return path or "(value)" if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            sub = f"{path}.{key_text}" if path else key_text
            if NUL in key_text:
                return sub
            found = find_nul(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


# JSON writes every U+0000 in a string or a key as the escape \u0000, so text without that escape has no NUL: one fast
# encoding spares most rows the recursive walk of find_nul (the escape can also come from a literal backslash followed by
# "u0000"; find_nul then decides).
_NUL_ESCAPE = b"\\u0000"
_NUL_CHECK = msgspec.json.Encoder()


def may_contain_nul(value: object) -> bool:
    """False only when no string or key in ``value`` contains U+0000 (then :func:`find_nul` returns None)."""
    try:
        return _NUL_ESCAPE in _NUL_CHECK.encode(value)
    except (TypeError, ValueError):  # something msgspec cannot write (an unpaired surrogate): let find_nul look
        return True


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


def to_integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (float, decimal.Decimal)) and value == int(value):
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    raise Unconvertible


def to_number(value: object) -> int | float | decimal.Decimal:
    if _is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str) and _DECIMAL_RE.match(value):
        return decimal.Decimal(value.strip())
    raise Unconvertible


def to_string(value: object) -> str:
    if isinstance(value, str):
        return value
    if _is_number(value):  # e.g. a customer number sent as 10001: keep its digits, still keep the raw value
        return str(value)
    raise Unconvertible


def to_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise Unconvertible


def to_object(value: object) -> dict:
    if isinstance(value, dict):
        return value
    raise Unconvertible


def to_array(value: object) -> list:
    if isinstance(value, list):
        return value
    raise Unconvertible


def parse_iso(value: str) -> dt.datetime | dt.date:
    text = value.strip()
    if _DATE_RE.match(text):
        return dt.date.fromisoformat(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise Unconvertible from exc


def to_berlin_date(value: object) -> str:
    """The Europe/Berlin calendar date of an API date (``YYYY-MM-DD``)."""
    if type(value) is str:
        return _berlin_date_of_text(value)
    if not isinstance(value, str) or not value.strip():
        raise Unconvertible
    return _berlin_date_of_text.__wrapped__(value)


def to_datetime(value: object) -> str:
    """An ISO date-time text: the API's own when it has a time; a plain date becomes midnight UTC."""
    if type(value) is str:
        return _datetime_of_text(value)
    if not isinstance(value, str) or not value.strip():
        raise Unconvertible
    return _datetime_of_text.__wrapped__(value)


# Dates repeat across rows (invoices of a day, due dates): converted once per distinct text. Values that raise
# Unconvertible are not cached (and are rare).
@functools.lru_cache(maxsize=8192)
def _berlin_date_of_text(value: str) -> str:
    if not value.strip():
        raise Unconvertible
    parsed = parse_iso(value)
    if isinstance(parsed, dt.datetime):
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(BERLIN)
        return parsed.date().isoformat()
    return parsed.isoformat()


@functools.lru_cache(maxsize=8192)
def _datetime_of_text(value: str) -> str:
    if not value.strip():
        raise Unconvertible
    parsed = parse_iso(value)
    if isinstance(parsed, dt.datetime):
        return value.strip()
    return f"{parsed.isoformat()}T00:00:00+00:00"


CONVERTERS: dict[str, Callable[[object], object]] = {
    "integer": to_integer,
    "number": to_number,
    "string": to_string,
    "boolean": to_boolean,
    "object": to_object,
    "array": to_array,
    "date": to_berlin_date,
    "date-time": to_datetime,
}

#: Types a kind's converter returns unchanged (the same object, no warning): RecordMapper.map keeps them without the
#: call. Exact types: a subclass takes the converter's way.
UNCHANGED: dict[str, frozenset[type]] = {
    "integer": frozenset({int}),
    "number": frozenset({int, float, decimal.Decimal}),
    "string": frozenset({str}),
    "boolean": frozenset({bool}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
    "date": frozenset(),
    "date-time": frozenset(),
}


class RecordMapper:
    """Maps API objects of one stream to records; remembers which names it already logged."""

    def __init__(self, stream_name: str, fields: Iterable[tuple[str, ...]], logger: logging.Logger) -> None:
        """``fields``: (api name, column, kind, ...) with kind one of :data:`CONVERTERS` (schemas.Field fits)."""
        self.stream_name = stream_name
        self.fields = [tuple(field[:3]) for field in fields]
        self.known = {api for api, _, _ in self.fields}
        # per field: (api, column, kind, types kept as they are, converter, "" means null (drafts' number))
        self._plan = [
            (api, column, kind, UNCHANGED[kind], CONVERTERS[kind], kind == "string" and column == "number")
            for api, column, kind in self.fields
        ]
        self.logger = logger
        self._logged_unknown: set[str] = set()
        self._logged_bad: set[str] = set()

    def ignore(self, *api_names: str) -> None:
        """API fields consumed elsewhere (not columns, not extra_fields)."""
        self.known.update(api_names)

    def map(self, raw: Mapping[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
        """Return (columns, extra_fields) for one API object; raise :class:`RejectedRow` for a row PostgreSQL cannot
        store unaltered (a NUL character; the field is named, never its value)."""
        nul_at = find_nul(raw) if may_contain_nul(raw) else None
        if nul_at is not None:
            raise RejectedRow(
                self.stream_name,
                raw.get("id"),
                nul_at,
                "contains a NUL character (U+0000), which PostgreSQL cannot store",
            )
        record: dict[str, t.Any] = {}
        extra: dict[str, t.Any] = {}
        for api, column, kind, unchanged, convert, empty_is_null in self._plan:
            value = raw.get(api)
            if value is None:
                record[column] = None
                continue
            if empty_is_null and value == "":
                record[column] = None  # drafts: "" → null (DESIGN.md)
                continue
            if type(value) in unchanged:
                record[column] = value
                continue
            try:
                converted = convert(value)
            except Unconvertible:
                converted = None
                extra[api] = value
                self._warn_bad(api, kind, value, converted=False)
            else:
                if type(converted) is not type(value) and kind not in ("date", "date-time"):
                    extra[api] = value
                    self._warn_bad(api, kind, value, converted=True)
            record[column] = converted
        known = self.known
        unknown = [name for name in raw if name not in known]
        if not unknown:
            return record, extra
        for name in unknown:
            extra[name] = raw[name]
        new_names = sorted(set(unknown) - self._logged_unknown)
        if new_names:
            self._logged_unknown.update(new_names)
            self.logger.info(
                "%s: API fields not in the schema, kept verbatim in extra_fields: %s",
                self.stream_name,
                ", ".join(new_names),
            )
        return record, extra

    def _warn_bad(self, api: str, kind: str, value: object, *, converted: bool) -> None:
        if api in self._logged_bad:
            return
        self._logged_bad.add(api)
        what = "converted" if converted else "loaded as null"
        # The value's type is logged, never the value itself (it may be personal data).
        self.logger.warning(
            "%s: field %s is a JSON %s, not a %s; %s, raw value kept in extra_fields (further cases not logged)",
            self.stream_name,
            api,
            type(value).__name__,
            kind,
            what,
        )


OPEN_STATES = {"locked", "sent", "dunned", "partiallyPaid"}


def invoice_status(state: object, outstanding: object) -> str:
    """Normalised status (docs/invoiz-api.md §4.5): draft | open | paid | cancelled | uncollectible | unknown.

    The invoiz state decides where it is unambiguous; otherwise (``printed``, ``downloaded``, new states) the
    outstanding amount of a non-draft, non-cancelled invoice does: > 0 → open, == 0 → paid.
    """
    if state == "draft":
        return "draft"
    if state == "cancelled":
        return "cancelled"
    if state == "uncollectible":
        return "uncollectible"
    if state == "paid":
        return "paid"
    if state in OPEN_STATES:
        return "open"
    try:
        amount = to_number(outstanding) if outstanding is not None else None
    except Unconvertible:
        amount = None
    if amount is not None:
        return "open" if amount > 0 else "paid"
    return "unknown"


def first_non_empty(*values: object) -> object:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value
    return None


def berlin_date_or_none(value: object) -> str | None:
    """:func:`to_berlin_date`, or None when the value is no date."""
    try:
        return to_berlin_date(value)
    except Unconvertible:
        return None
