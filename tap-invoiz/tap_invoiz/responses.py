"""Reading invoiz answers: the JSON body (money as Decimal), the not-found form, a safe one-line error summary."""

from __future__ import annotations

import decimal
import json
import typing as t
from http import HTTPStatus

if t.TYPE_CHECKING:
    import requests


def response_body(response: requests.Response) -> t.Any:
    """The JSON body (parsed once, money as Decimal) or raise ValueError."""
    cached = getattr(response, "_invoiz_body", None)
    if cached is None:
        cached = json.loads(response.text, parse_float=decimal.Decimal)
        response._invoiz_body = cached  # type: ignore[attr-defined]
    return cached


def is_not_found(response: requests.Response) -> bool:
    """404, or 400 whose body contains NOT_FOUND (the API contract's not-found forms)."""
    if response.status_code == HTTPStatus.NOT_FOUND:
        return True
    return response.status_code == HTTPStatus.BAD_REQUEST and "NOT_FOUND" in (response.text or "")


def _error_codes(meta: object) -> list[str]:
    codes: list[str] = []
    if isinstance(meta, dict):
        for field, problems in meta.items():
            if isinstance(problems, list):
                codes += [f"{field}:{p.get('code')}" for p in problems if isinstance(p, dict)]
    return codes


def invoiz_error_summary(response: requests.Response) -> str:
    """Name, message and codes of an invoiz error body; never headers; at most 200 characters of other bodies."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join((response.text or "").split())
        return text[:200]
    if isinstance(body, dict):
        parts = [str(body.get(key)) for key in ("name", "message") if body.get(key)]
        codes = _error_codes(body.get("meta"))
        if codes:
            parts.append("codes " + ", ".join(codes[:10]))
        return "; ".join(parts)[:300]
    return str(body)[:200]
