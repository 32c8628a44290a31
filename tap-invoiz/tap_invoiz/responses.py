"""Reading invoiz answers: the JSON body (money as Decimal), the not-found form, a safe one-line error summary."""

from __future__ import annotations

import decimal
import json
import typing as t
from http import HTTPStatus

import msgspec

if t.TYPE_CHECKING:
    import requests

# msgspec builds the same objects as json.loads(text, parse_float=Decimal) at about twice the speed: numbers with a
# fraction or an exponent become Decimal from their own text, integers of any size int, a repeated key keeps its last
# value. tests/tap/test_output_identical.py compares both on every answer of a sandbox sync.
_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)

#: True once an answer of this process held NaN or Infinity (JSON does not allow them; the stdlib decoder reads them
#: as float, and so does the tap). Floats are the one value msgspec writes differently from the stdlib
#: (``1e16`` vs ``1e+16``, ``null`` vs ``NaN``), so code that writes rows the fast way checks this first
#: (:func:`tap_invoiz.fingerprint.canonical_bytes`).
float_constants_seen = False


def _float_constant(text: str) -> float:
    global float_constants_seen
    float_constants_seen = True
    return float(text)


def decode_json(text: str) -> t.Any:
    """``json.loads(text, parse_float=Decimal)``, faster; raises ValueError for text that is no JSON."""
    try:
        return _DECODER.decode(text)
    except msgspec.DecodeError:
        # What msgspec refuses but the stdlib reads (NaN/Infinity, unpaired surrogate escapes) is read as the tap
        # always has; text neither reads raises the stdlib's ValueError, as before.
        return json.loads(text, parse_float=decimal.Decimal, parse_constant=_float_constant)


def response_body(response: requests.Response) -> t.Any:
    """The JSON body (parsed once, money as Decimal) or raise ValueError."""
    cached = getattr(response, "_invoiz_body", None)
    if cached is None:
        cached = decode_json(response.text)
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
