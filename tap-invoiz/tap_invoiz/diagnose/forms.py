"""Helpers of the diagnosis that never look at values beyond their form (JSON type, date form, token form)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import typing as t
from collections import Counter

from tap_invoiz.diagnose.contract import OPENED
from tap_invoiz.records import BERLIN, Unconvertible, parse_iso

if t.TYPE_CHECKING:
    from collections.abc import Iterable


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, decimal.Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def census(objects: Iterable[dict]) -> tuple[int, dict[str, Counter]]:
    """(number of objects, field path → Counter of JSON types); member names only of :data:`OPENED` objects."""
    fields: dict[str, Counter] = {}
    total = 0

    def visit(obj: dict, prefix: str) -> None:
        for name, value in obj.items():
            path = f"{prefix}{name}"
            fields.setdefault(path, Counter())[json_type(value)] += 1
            if isinstance(value, dict) and path in OPENED:
                visit(value, path + ".")
            elif isinstance(value, list) and f"{path}[]" in OPENED:
                for item in value:
                    if isinstance(item, dict):
                        visit(item, f"{path}[].")

    for obj in objects:
        total += 1
        visit(obj, "")
    return total, fields


def values_at(objects: Iterable[dict], path: str) -> Iterable[object]:
    """Every value at ``path`` (``a.b``, ``a[].b``) in ``objects``; used for forms and types, never copied out."""
    parts = path.split(".")

    def walk(value: object, rest: list[str]) -> Iterable[object]:
        if not rest:
            yield value
            return
        head, tail = rest[0], rest[1:]
        if head.endswith("[]"):
            items = value.get(head[:-2]) if isinstance(value, dict) else None
            for item in items if isinstance(items, list) else []:
                yield from walk(item, tail)
        elif isinstance(value, dict) and head in value:
            yield from walk(value[head], tail)

    for obj in objects:
        yield from walk(obj, parts)


def date_form(value: object) -> str:
    """The form of a date text: ``YYYY-MM-DD``, UTC midnight, Berlin midnight, a date-time with/without zone."""
    if not isinstance(value, str):
        return f"JSON {json_type(value)}"
    text = value.strip()
    if not text:
        return "empty string"
    try:
        parsed = parse_iso(text)
    except Unconvertible:
        return "unreadable"
    if not isinstance(parsed, dt.datetime):
        return "YYYY-MM-DD"
    if parsed.tzinfo is None:
        return "date-time without zone"
    utc = parsed.astimezone(dt.timezone.utc)
    if utc.time() == dt.time(0):
        return "UTC midnight (…T00:00:00Z)"
    if parsed.astimezone(BERLIN).time() == dt.time(0):
        return "Berlin midnight as UTC instant (…T22/23:00:00Z)"
    return "date-time with zone"


def plural(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number:,} {singular if number == 1 else (plural or singular + 's')}"


def name_list(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def type_list(counter: Counter) -> str:
    return ", ".join(f"{kind} {number}" if len(counter) > 1 else kind for kind, number in counter.most_common())


def token_form(token: str) -> tuple[str, str | None]:
    """A description of the token's form (never the token) and, for a JWT with ``exp`` and ``iat``, its lifetime."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, TypeError):
            payload = None
        if isinstance(payload, dict):
            claims = sorted(str(name) for name in payload)
            lifetime = None
            exp, iat = payload.get("exp"), payload.get("iat")
            if isinstance(exp, (int, float)) and isinstance(iat, (int, float)) and exp > iat:
                lifetime = f"{int(exp - iat):,} s"
            return f"a JWT with claims {name_list(claims)}", lifetime
    kind = "hexadecimal" if all(c in "0123456789abcdefABCDEF" for c in token) else "opaque"
    return f"an {kind} string of {len(token)} characters", None


def counts_text(counts: Counter) -> str:
    """Counts as text, most frequent first: ``integer 40, numeric string 2``."""
    return ", ".join(f"{kind} {number}" for kind, number in counts.most_common())
